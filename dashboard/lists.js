// #/lists: the named domain lists (categories such as judi, pornografi)
// that policies switch on. Per list: the version in force (domains, hash,
// who and when), versions held for a confirmation (a sync or an upload that
// emptied or shrank the list), and the URL it syncs from with the last
// sync's outcome. An admin uploads a list (plain, hosts or adblock text, or
// its .gz) with the upload's progress shown, sets the source, syncs now,
// and confirms or discards a held version; the other roles read.
import { t, fmtInt } from './i18n.js';
import { h, showTableMessage, formMessage, field, when } from './dom.js';
import { renderTable } from './table.js';
import { getJSON, postJSON, request, upload } from './api.js';
import * as paths from './paths.js';
import { loadError } from './errors.js';
import { can } from './session.js';
import { openDialog } from './dialogs.js';

const REFRESH_MS = 5000;

function sourceText(s) {
  if (!s) return t('lists.noSource');
  const hours = Math.round((s.interval_secs / 3600) * 10) / 10;
  return `${s.url} · ${t('lists.every', { h: hours })}`;
}

function syncText(s) {
  if (!s) return '—';
  const at = s.last_attempt_ms ? when(s.last_attempt_ms) : t('lists.never');
  return s.last_error ? `${at} · ${s.last_error}` : at;
}

/** The list formats the collector reads. */
function formatSelect(id, testid) {
  return h('select', { id, 'data-testid': testid },
    ...['auto', 'plain', 'hosts', 'adblock'].map((v) => h('option', { value: v, text: t(`lists.format.${v}`) })));
}

export class ListsView {
  constructor() {
    this.ctl = new AbortController();
    this.admin = can.admin();
  }

  mount(root) {
    document.title = `${t('lists.title')} · Simpul NOC`;
    this.table = h('table', { class: 'data', 'data-testid': 'lists-table' });
    this.held = h('table', { class: 'data', 'data-testid': 'lists-held-table' });
    this.message = formMessage('lists-message');
    root.replaceChildren(h('div', { class: 'agency-page', 'data-testid': 'lists-page' },
      h('nav', { class: 'crumbs', 'aria-label': 'breadcrumb' }, h('a', { href: '#/', text: t('nav.back') })),
      h('section', { class: 'panel', 'aria-labelledby': 'h-lists' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-lists', text: t('lists.title') }),
          h('span', { class: 'panel-note', text: t('lists.note') })),
        this.message,
        h('div', { class: 'table-wrap' }, this.table)),
      h('section', { class: 'panel', 'aria-labelledby': 'h-lists-held' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-lists-held', text: t('lists.heldTitle') }),
          h('span', { class: 'panel-note', text: t('lists.heldNote') })),
        h('div', { class: 'table-wrap' }, this.held)),
      this.admin ? this.uploadForm() : h('p', { class: 'panel-note', 'data-testid': 'lists-readonly', text: t('lists.readonly') }),
      this.admin ? this.sourceForm() : null));
    this.load();
    this.timer = setInterval(() => this.load(), REFRESH_MS);
  }

  update() {}

  destroy() {
    this.ctl.abort();
    clearInterval(this.timer);
  }

  async load() {
    try {
      const lists = await getJSON(paths.lists(), { signal: this.ctl.signal });
      this.render(lists);
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.table, loadError(e));
    }
  }

  render(lists) {
    renderTable(this.table, [
      { h: 'lists.col.name', cell: (l) => h('span', { class: 'strong', text: l.name }) },
      { h: 'lists.col.version', cls: 'num', cell: (l) => (l.current ? `v${l.current.version}` : '—'), sortValue: (l) => l.current?.version },
      { h: 'lists.col.domains', cls: 'num', cell: (l) => (l.current ? fmtInt(l.current.domains) : '—'), sortValue: (l) => l.current?.domains },
      { h: 'lists.col.updated', cell: (l) => (l.current ? `${when(l.current.created_ms)} · ${l.current.created_by}` : '—'), sortValue: (l) => l.current?.created_ms },
      { h: 'lists.col.hash', cell: (l) => h('code', { title: l.current?.sha256 || null, text: l.current ? l.current.sha256.slice(0, 12) : '—' }) },
      { h: 'lists.col.source', cell: (l) => sourceText(l.source) },
      { h: 'lists.col.sync', cell: (l) => h('span', { 'data-testid': `list-sync-${l.name}`, class: l.source?.last_error ? 'warn' : null, text: syncText(l.source) }) },
      this.admin ? { h: 'lists.col.actions', sort: false, cell: (l) => (l.source ? h('button', { type: 'button', class: 'btn', 'data-testid': `list-sync-now-${l.name}`, text: t('lists.syncNow'), onclick: () => this.syncNow(l.name) }) : '') } : null,
    ].filter(Boolean), lists, (l) => `list-row-${l.name}`);
    const held = lists.flatMap((l) => l.held.map((v) => ({ ...v, current: l.current })));
    renderTable(this.held, [
      { h: 'lists.col.name', cell: (v) => v.name },
      { h: 'lists.col.version', cls: 'num', cell: (v) => `v${v.version}`, sortValue: (v) => v.version },
      { h: 'lists.col.domains', cls: 'num', cell: (v) => `${fmtInt(v.domains)} (${t('lists.now', { n: fmtInt(v.current?.domains ?? 0) })})`, sortValue: (v) => v.domains },
      { h: 'lists.col.reason', cell: (v) => v.hold_reason || '—' },
      { h: 'lists.col.updated', cell: (v) => `${when(v.created_ms)} · ${v.created_by}`, sortValue: (v) => v.created_ms },
      this.admin ? { h: 'lists.col.actions', sort: false, cell: (v) => h('span', { class: 'btn-row' },
        h('button', { type: 'button', class: 'btn primary', 'data-testid': `list-confirm-${v.name}-${v.version}`, text: t('lists.confirm'), onclick: () => this.decide(v, 'confirm') }),
        h('button', { type: 'button', class: 'btn danger', 'data-testid': `list-discard-${v.name}-${v.version}`, text: t('lists.discard'), onclick: () => this.decide(v, 'discard') })) } : null,
    ].filter(Boolean), held, (v) => `list-held-${v.name}-${v.version}`);
  }

  uploadForm() {
    const f = this.up = {
      name: h('input', { type: 'text', id: 'list-name', 'data-testid': 'list-upload-name', required: true, pattern: '[A-Za-z0-9_-]{1,64}', maxlength: '64' }),
      file: h('input', { type: 'file', id: 'list-file', 'data-testid': 'list-upload-file', required: true, accept: '.txt,.gz,.list,.hosts,text/plain,application/gzip' }),
      format: formatSelect('list-format', 'list-upload-format'),
      comment: h('input', { type: 'text', id: 'list-comment', 'data-testid': 'list-upload-comment', required: true, maxlength: '500' }),
      progress: h('progress', { 'data-testid': 'list-upload-progress', max: '100', value: '0', hidden: true }),
      status: h('span', { class: 'panel-note', 'data-testid': 'list-upload-status' }),
      message: formMessage('list-upload-message'),
      button: h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'list-upload-submit', text: t('lists.f.submit') }),
    };
    const form = h('form', { class: 'inline-form', 'data-testid': 'list-upload-form', novalidate: true },
      field('lists.f.name', 'list-name', f.name),
      field('lists.f.file', 'list-file', f.file),
      field('lists.f.format', 'list-format', f.format),
      field('lists.f.comment', 'list-comment', f.comment),
      h('div', { class: 'form-actions' }, f.button, f.progress, f.status), f.message);
    form.addEventListener('submit', (e) => { e.preventDefault(); this.upload(); });
    return h('section', { class: 'panel', 'aria-labelledby': 'h-lists-upload' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'h-lists-upload', text: t('lists.upload') }),
        h('span', { class: 'panel-note', text: t('lists.uploadNote') })), form);
  }

  async upload() {
    const f = this.up;
    f.message.clear();
    const name = f.name.value.trim();
    const file = f.file.files[0];
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) { f.message.say('error', t('lists.badName')); return; }
    if (!file) { f.message.say('error', t('lists.noFile')); return; }
    if (f.comment.value.trim().length < 3) { f.message.say('error', t('lists.needComment')); return; }
    const gz = file.name.endsWith('.gz');
    f.button.disabled = true;
    f.progress.hidden = false;
    f.progress.value = 0;
    try {
      const path = paths.list(name, paths.qs({ format: f.format.value, comment: f.comment.value.trim() }));
      const r = await upload('PUT', path, file, {
        contentType: gz ? 'application/gzip' : 'text/plain',
        onProgress: (sent, total) => {
          const p = total ? Math.min(100, Math.round((sent / total) * 100)) : 0;
          f.progress.value = p;
          f.status.textContent = p < 100 ? t('lists.progress', { p }) : t('lists.processing');
        },
      });
      f.status.textContent = '';
      const v = r.version;
      if (!r.changed) f.message.say('ok', t('lists.unchanged', { v: v.version }));
      else if (v.state === 'held') f.message.say('error', t('lists.heldMsg', { v: v.version, why: v.hold_reason }));
      else {
        const bad = r.invalid ? ` ${t('lists.invalid', { n: fmtInt(r.invalid), first: r.first_invalid.slice(0, 3).map((l) => `${l.line}: ${l.text}`).join('; ') })}` : '';
        f.message.say('ok', `${t('lists.uploaded', { name, v: v.version, n: fmtInt(v.domains), p: r.policies.length })}${bad}`);
      }
      f.file.value = '';
      this.load();
    } catch (e) {
      f.status.textContent = '';
      f.message.say('error', e.message);
    } finally {
      f.button.disabled = false;
      f.progress.hidden = true;
    }
  }

  sourceForm() {
    const s = this.src = {
      name: h('input', { type: 'text', id: 'src-name', 'data-testid': 'list-source-name', maxlength: '64' }),
      url: h('input', { type: 'url', id: 'src-url', 'data-testid': 'list-source-url', placeholder: 'https://' }),
      format: formatSelect('src-format', 'list-source-format'),
      hours: h('input', { type: 'number', id: 'src-hours', 'data-testid': 'list-source-hours', min: '1', max: '720', step: '1', value: '24' }),
      shrink: h('input', { type: 'number', id: 'src-shrink', 'data-testid': 'list-source-shrink', min: '0', max: '100', step: '1', value: '20' }),
      message: formMessage('list-source-message'),
    };
    const form = h('form', { class: 'inline-form', 'data-testid': 'list-source-form', novalidate: true },
      field('lists.f.name', 'src-name', s.name), field('lists.f.url', 'src-url', s.url),
      field('lists.f.format', 'src-format', s.format), field('lists.f.hours', 'src-hours', s.hours),
      field('lists.f.shrink', 'src-shrink', s.shrink),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'list-source-submit', text: t('lists.f.saveSource') })),
      s.message);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      s.message.clear();
      try {
        await request('PUT', paths.list(s.name.value.trim(), '/source'), {
          body: { url: s.url.value.trim(), format: s.format.value, interval_secs: Math.round(Number(s.hours.value) * 3600), max_shrink_percent: Number(s.shrink.value) },
        });
        s.message.say('ok', t('lists.sourceSaved'));
        this.load();
      } catch (err) {
        s.message.say('error', err.message);
      }
    });
    return h('section', { class: 'panel', 'aria-labelledby': 'h-lists-source' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'h-lists-source', text: t('lists.source') }),
        h('span', { class: 'panel-note', text: t('lists.sourceNote') })), form);
  }

  async syncNow(name) {
    this.message.clear();
    try {
      const r = await postJSON(paths.list(name, '/sync'), {});
      const v = r.version;
      this.message.say(v.state === 'held' ? 'error' : 'ok', !r.changed ? t('lists.unchanged', { v: v.version })
        : v.state === 'held' ? t('lists.heldMsg', { v: v.version, why: v.hold_reason })
          : t('lists.uploaded', { name, v: v.version, n: fmtInt(v.domains), p: r.policies.length }));
    } catch (e) {
      this.message.say('error', e.message);
    }
    this.load();
  }

  async decide(v, what) {
    const comment = h('input', { type: 'text', id: 'decide-comment', 'data-testid': 'list-decide-comment', maxlength: '500', required: true });
    const done = await openDialog({
      title: t(`lists.${what}.title`, { name: v.name, v: v.version }),
      content: [h('p', { class: 'dlg-text', text: v.hold_reason || '' }), field('lists.f.comment', 'decide-comment', comment)],
      ok: t(`lists.${what}`),
      danger: what === 'discard',
      testid: 'list-decide',
      submit: () => postJSON(paths.list(v.name, `/versions/${v.version}/${what}`), { comment: comment.value.trim() }),
    });
    if (done) {
      this.up?.message.clear();
      this.message.say('ok', t(`lists.${what}.done`, { name: v.name, v: v.version, p: done.policies?.length ?? 0 }));
      this.load();
    }
  }
}
