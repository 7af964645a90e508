// Maintenance windows (on #/availability): the list, and for operators and
// admins the form to add one and the actions on each: change (not after it
// ended), end (while it runs), delete (before it starts). The server keeps
// the rules (a start in the past is admin-only, …) and says why in its
// errors, which are shown as they come. Whoever adds a window is the
// logged-in account: there is no "by" to type.
import { t, fmtDateTime } from './i18n.js';
import { h, showTableMessage, formMessage, localInput, inputMs, field } from './dom.js';
import { renderTable } from './table.js';
import { getJSON, postJSON, patchJSON, deleteJSON } from './api.js';
import * as paths from './paths.js';
import { loadError } from './errors.js';
import { can } from './session.js';
import { confirmDialog, openDialog } from './dialogs.js';

/** "Berlaku untuk" of a window. */
export function maintenanceScope(m, agencyLabel) {
  if (m.node_id) return m.node_id;
  if (m.agency) return t('mt.agencyScope', { name: agencyLabel(m.agency) });
  return t('mt.all');
}

/** Whether a window covers a node. */
export function windowCovers(m, node, agency) {
  if (m.node_id) return m.node_id === node;
  if (m.agency) return m.agency === agency;
  return true;
}

function windowState(m, now) {
  return m.ends_ms <= now ? 'done' : m.starts_ms <= now ? 'active' : 'planned';
}

/** Unix seconds from a datetime-local value (the NOC's zone), or NaN. */
function inputSecs(v) { return Math.floor(inputMs(v) / 1000); }

export class MaintenancePanel {
  /** onChange(): after a window changed (availability may have too). */
  constructor({ signal, serverNow, agencyLabel, onChange }) {
    this.signal = signal;
    this.serverNow = serverNow;
    this.agencyLabel = agencyLabel;
    this.onChange = onChange;
    this.table = h('table', { class: 'data', 'data-testid': 'maintenance-table' });
    this.message = formMessage('maintenance-message');
  }

  element() {
    return h('section', { class: 'panel', 'aria-labelledby': 'h-mt' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'h-mt', text: t('mt.title') })),
      can.operate() ? [h('h3', { class: 'part-title', id: 'h-mt-add', text: t('mt.add') }), this.form()] : null,
      h('div', { class: 'table-wrap' }, this.table));
  }

  form() {
    const now = this.serverNow();
    const from = Math.ceil(now / 300000) * 300000;
    const f = this.f = {
      scopeNode: h('input', { type: 'radio', name: 'mt-scope', value: 'node', id: 'mt-scope-node', checked: true, 'data-testid': 'maintenance-scope-node' }),
      scopeAgency: h('input', { type: 'radio', name: 'mt-scope', value: 'agency', id: 'mt-scope-agency', 'data-testid': 'maintenance-scope-agency' }),
      node: h('select', { id: 'mt-node', 'data-testid': 'maintenance-node', 'aria-label': t('mt.scope.node') }),
      agency: h('select', { id: 'mt-agency', 'data-testid': 'maintenance-agency', 'aria-label': t('mt.scope.agency'), hidden: true }),
      from: h('input', { type: 'datetime-local', id: 'mt-from', required: true, value: localInput(from), 'data-testid': 'maintenance-from' }),
      to: h('input', { type: 'datetime-local', id: 'mt-to', required: true, value: localInput(from + 2 * 3600e3), 'data-testid': 'maintenance-to' }),
      reason: h('input', { type: 'text', id: 'mt-reason', required: true, maxlength: '200', placeholder: t('mt.reason.ph'), 'data-testid': 'maintenance-reason' }),
    };
    const scopeChanged = () => { f.node.hidden = !f.scopeNode.checked; f.agency.hidden = !f.scopeAgency.checked; };
    f.scopeNode.addEventListener('change', scopeChanged);
    f.scopeAgency.addEventListener('change', scopeChanged);
    const form = h('form', { class: 'inline-form mt-form', 'data-testid': 'maintenance-form', 'aria-labelledby': 'h-mt-add', novalidate: true },
      h('fieldset', { class: 'field scope' }, h('legend', { text: t('mt.scope') }),
        h('div', { class: 'radios' },
          h('label', { class: 'radio' }, f.scopeNode, ` ${t('mt.scope.node')}`),
          h('label', { class: 'radio' }, f.scopeAgency, ` ${t('mt.scope.agency')}`)),
        f.node, f.agency),
      field('mt.from', 'mt-from', f.from),
      field('mt.to', 'mt-to', f.to),
      field('mt.reason', 'mt-reason', f.reason),
      h('div', { class: 'field submit' }, h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'maintenance-submit', text: t('mt.submit') })),
      this.message);
    form.addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    return form;
  }

  async load() {
    const jobs = [this.loadWindows()];
    if (this.f && !this.selectsFilled) jobs.push(this.fillSelects());
    await Promise.all(jobs);
  }

  async fillSelects() {
    try {
      const [nodes, ags] = await Promise.all([
        getJSON(paths.nodes(), { signal: this.signal }), getJSON(paths.agencies(), { signal: this.signal })]);
      this.f.node.replaceChildren(...nodes.filter((n) => n.status !== 'revoked')
        .map((n) => h('option', { value: n.node_id, text: `${n.node_id} · ${this.agencyLabel(n.agency)}` })));
      this.f.agency.replaceChildren(...ags.map((a) => h('option', { value: a.code, text: a.name })));
      this.selectsFilled = true;
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', loadError(e));
    }
  }

  async loadWindows() {
    try {
      this.render(await getJSON(paths.maintenance(), { signal: this.signal }));
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.table, loadError(e));
    }
  }

  render(list) {
    this.windows = list;
    const now = this.serverNow();
    const rows = [...list].sort((a, b) => b.starts_ms - a.starts_ms);
    const cols = [
      { h: 'col.appliesTo', cell: (m) => maintenanceScope(m, this.agencyLabel) },
      { h: 'col.from', cell: (m) => fmtDateTime(m.starts_ms), cls: 'num', sortValue: (m) => m.starts_ms },
      { h: 'col.to', cell: (m) => fmtDateTime(m.ends_ms), cls: 'num', sortValue: (m) => m.ends_ms },
      { h: 'col.state', cell: (m) => h('span', { class: `badge mt-${windowState(m, now)}`, 'data-state': windowState(m, now), text: t(`mt.state.${windowState(m, now)}`) }) },
      { h: 'col.reason', cell: (m) => m.reason, cls: 'site', title: (m) => m.reason },
      { h: 'col.by', cell: (m) => m.created_by },
    ];
    if (can.operate()) cols.push({ h: 'col.actions', cell: (m) => this.actions(m, windowState(m, now)), sort: false });
    renderTable(this.table, cols, rows, (m) => `maintenance-row-${m.id}`);
  }

  actions(m, st) {
    const btn = (what, cls, fn) => h('button', { type: 'button', class: `btn ${cls}`, 'data-testid': `maintenance-${what}-${m.id}`, text: t(`mt.${what}`), onclick: fn });
    if (st === 'done') return '—';
    return h('span', { class: 'row-actions' },
      btn('edit', '', () => this.edit(m)),
      st === 'active' ? btn('end', 'danger', () => this.end(m)) : btn('delete', 'danger', () => this.remove(m)));
  }

  async submit() {
    const f = this.f;
    const from = inputSecs(f.from.value);
    const to = inputSecs(f.to.value);
    if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) {
      this.message.say('error', t('mt.badRange'));
      return;
    }
    const reason = f.reason.value.trim();
    if (!reason) {
      this.message.say('error', t('mt.noReason'));
      f.reason.focus();
      return;
    }
    const body = { from: String(from), to: String(to), reason };
    if (f.scopeNode.checked) body.node = f.node.value; else body.agency = f.agency.value;
    try {
      const saved = await postJSON(paths.maintenance(), body, { signal: this.signal });
      f.reason.value = '';
      this.message.say('ok', t('mt.saved'));
      this.message.dataset.id = String(saved.id);
      this.changed();
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('mt.error', { e: e.message }));
    }
  }

  changed() {
    this.loadWindows();
    this.onChange?.();
  }

  /** Change times or reason. A running window's start is history (an admin may still move it). */
  async edit(m) {
    const started = m.starts_ms <= this.serverNow();
    const fromIn = h('input', { type: 'datetime-local', id: 'mt-edit-from', value: localInput(m.starts_ms), disabled: started && !can.admin(), 'data-testid': 'mt-edit-from' });
    const toIn = h('input', { type: 'datetime-local', id: 'mt-edit-to', value: localInput(m.ends_ms), 'data-testid': 'mt-edit-to' });
    const reasonIn = h('input', { type: 'text', id: 'mt-edit-reason', maxlength: '200', value: m.reason, 'data-testid': 'mt-edit-reason' });
    const saved = await openDialog({
      title: t('mt.edit.title', { scope: maintenanceScope(m, this.agencyLabel) }),
      testid: 'mt-edit-dialog',
      ok: t('mt.edit.ok'),
      content: [
        h('div', { class: 'dlg-fields' }, field('mt.from', 'mt-edit-from', fromIn), field('mt.to', 'mt-edit-to', toIn), field('mt.reason', 'mt-edit-reason', reasonIn)),
        started && !can.admin() ? h('p', { class: 'note', text: t('mt.edit.started') }) : null,
      ],
      submit: async () => {
        // Only what changed: an unchanged start stays exactly as stored (seconds included).
        const body = {};
        if (fromIn.value !== localInput(m.starts_ms)) body.from = String(inputSecs(fromIn.value));
        if (toIn.value !== localInput(m.ends_ms)) body.to = String(inputSecs(toIn.value));
        if (reasonIn.value.trim() !== m.reason) body.reason = reasonIn.value.trim();
        if (!Object.keys(body).length) return 'unchanged';
        if (Object.values(body).includes('NaN')) throw new Error(t('mt.badRange'));
        return patchJSON(paths.maintenanceWindow(m.id), body, { signal: this.signal });
      },
    });
    if (saved && saved !== 'unchanged') {
      this.message.say('ok', t('mt.updated'));
      this.changed();
    }
  }

  async end(m) {
    const ok = await confirmDialog({ title: t('mt.end.title'), text: t('mt.end.confirm', { scope: maintenanceScope(m, this.agencyLabel) }), ok: t('mt.end') });
    if (!ok) return;
    try {
      await postJSON(paths.maintenanceWindow(m.id, '/end'), undefined, { signal: this.signal });
      this.message.say('ok', t('mt.ended'));
      this.changed();
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('mt.error', { e: e.message }));
    }
  }

  async remove(m) {
    const ok = await confirmDialog({ title: t('mt.delete.title'), text: t('mt.delete.confirm', { scope: maintenanceScope(m, this.agencyLabel) }), ok: t('mt.delete') });
    if (!ok) return;
    try {
      await deleteJSON(paths.maintenanceWindow(m.id), { signal: this.signal });
      this.message.say('ok', t('mt.deleted'));
      this.changed();
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('mt.error', { e: e.message }));
    }
  }
}
