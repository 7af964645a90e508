// Blocked attempts: the panel (#/blocked for every agency, and the agency
// page for one) over a chosen range, polled every 5 s (the live feed
// carries the overview only).
import { t, tn, fmtInt, fmtDateTime } from '../i18n.js';
import { getJSON } from '../api.js';
import * as paths from '../paths.js';
import { h, setText, renderTable, showTableMessage, when } from '../dom.js';
import { cache, serverNow, agencyName, unitLabel, agencies } from '../state.js';
import { ruleText } from '../format.js';
import { methodBadge } from '../widgets.js';

export const BLOCKED_REFRESH_MS = 5000;

/** The blocked panel's time ranges (seconds back from now). */
const BLOCKED_RANGES = { '15m': 900, '1h': 3600, '24h': 86400, '7d': 7 * 86400 };

/**
 * The "Upaya akses diblokir" panel: attempts per agency (all agencies only),
 * top targets and clients of the last 15 min, and the newest attempts, for
 * one agency (its page) or all (#/blocked). Polled every 5 s by its view.
 */
export class BlockedPanel {
  constructor(agency, signal) {
    this.agency = agency;
    this.signal = signal;
    this.range = '15m';
    this.c = {
      total: h('span', { class: 'panel-note', 'data-testid': 'blocked-total' }),
      agencies: h('ul', { class: 'chips blocked-agencies', 'data-testid': 'blocked-agencies' }),
      targets: h('table', { class: 'data', 'data-testid': 'blocked-targets-table' }),
      clients: h('table', { class: 'data', 'data-testid': 'blocked-clients-table' }),
      recent: h('table', { class: 'data', 'data-testid': 'blocked-recent-table' }),
    };
    this.setPaths();
  }

  /** Cache keys per range (without `from`, which moves every second); the last 15 min is the API's default window. */
  setPaths() {
    const r = this.range === '15m' ? '' : `#${this.range}`;
    this.keys = { summary: this.url('summary', false) + r, recent: this.url('recent', false) + r };
  }

  /** The URL of a request: `from` for the ranges beyond the default. */
  url(which, withFrom = true) {
    const from = withFrom && this.range !== '15m' ? Math.floor(serverNow() / 1000) - BLOCKED_RANGES[this.range] : null;
    return which === 'summary'
      ? paths.blockedSummary({ agency: this.agency, limit: 10, from })
      : paths.blocked({ agency: this.agency, limit: 50, from });
  }

  setRange(r) {
    if (!BLOCKED_RANGES[r] || r === this.range) return;
    this.range = r;
    this.setPaths();
    this.rangeBtns.forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.range === r)));
    this.titles();
    this.renderCached();
    this.load();
  }

  titles() {
    const range = t(`blocked.range.${this.range}`);
    setText(this.c.targetsTitle, t('blocked.topTargets', { range }));
    setText(this.c.clientsTitle, t('blocked.topClients', { range }));
  }

  /** The panel; `hn` is the heading level of its title ('h2' on its own page, 'h3' inside the agency page). */
  element(hn) {
    const c = this.c;
    const sub = (id, title, table) => h('div', { class: 'blocked-part', role: 'group', 'aria-labelledby': id },
      title, h('div', { class: 'table-wrap' }, table));
    c.targetsTitle = h('h4', { id: 'h-blocked-targets', class: 'part-title' });
    c.clientsTitle = h('h4', { id: 'h-blocked-clients', class: 'part-title' });
    this.rangeBtns = Object.keys(BLOCKED_RANGES).map((r) => h('button', {
      type: 'button', class: 'range', 'data-testid': `blocked-range-${r}`, 'data-range': r, 'aria-pressed': String(r === this.range),
      onclick: () => this.setRange(r), text: t(`blocked.range.${r}`),
    }));
    this.titles();
    return h('section', { class: 'panel blocked-panel', 'aria-labelledby': 'h-blocked-panel', 'data-testid': 'blocked-panel' },
      h('div', { class: 'panel-head' }, h(hn, { id: 'h-blocked-panel', text: t('blocked.title') }), c.total,
        h('div', { class: 'range-group', role: 'group', 'aria-label': t('blocked.rangeLabel') }, ...this.rangeBtns)),
      this.agency ? null : c.agencies,
      h('div', { class: 'two' },
        sub('h-blocked-targets', c.targetsTitle, c.targets),
        sub('h-blocked-clients', c.clientsTitle, c.clients)),
      sub('h-blocked-recent', t('blocked.recent'), c.recent));
  }

  renderCached() {
    if (cache.has(this.keys.summary)) this.renderSummary(cache.get(this.keys.summary));
    if (cache.has(this.keys.recent)) this.renderRecent(cache.get(this.keys.recent));
  }

  async load() {
    try { await agencies(this.signal); } catch (e) {
      if (e.name === 'AbortError') return;
    }
    const jobs = [
      ['summary', this.keys.summary, (d) => this.renderSummary(d), [this.c.targets, this.c.clients]],
      ['recent', this.keys.recent, (d) => this.renderRecent(d), [this.c.recent]],
    ];
    await Promise.all(jobs.map(async ([which, path, render, tables]) => {
      try {
        const range = this.range;
        const d = await getJSON(this.url(which), { signal: this.signal });
        cache.set(path, d);
        if (range === this.range) render(d);
      } catch (e) {
        if (e.name === 'AbortError' || cache.has(path)) return;
        tables.forEach((tb) => showTableMessage(tb, t('error', { e: e.message })));
      }
    }));
  }

  agencyUnit(r) {
    const unit = unitLabel(r.agency, r.unit);
    return this.agency ? unit : `${agencyName(r.agency)} / ${unit}`;
  }

  renderSummary(d) {
    const c = this.c;
    setText(c.total, tn('blocked.total', d.attempts, { n: fmtInt(d.attempts ?? 0), range: t(`blocked.range.${this.range}`) }));
    c.total.dataset.value = String(d.attempts ?? 0);
    c.agencies.replaceChildren(...(d.agencies || []).map((a) => h('li', { class: 'chip', 'data-testid': `blocked-agency-${a.agency}`, 'data-value': String(a.attempts) },
      h('a', { href: `#/agency/${encodeURIComponent(a.agency)}`, text: tn('blocked.perAgency', a.attempts, { name: agencyName(a.agency), n: fmtInt(a.attempts) }) }))));
    renderTable(c.targets, [
      { h: 'col.target', cell: (r) => r.target, cls: 'site', title: (r) => r.target },
      { h: 'col.method', cell: (r) => methodBadge(r.method) },
      { h: 'col.rule', cell: (r) => ruleText(r), cls: 'site', title: (r) => `${r.rule} · ${r.list}` },
      { h: 'col.clients', cell: (r) => fmtInt(r.clients), cls: 'num' },
      { h: 'col.attempts', cell: (r) => fmtInt(r.attempts), cls: 'num' },
    ], d.targets || [], (r, i) => `blocked-target-${i + 1}`);
    renderTable(c.clients, [
      { h: 'col.client', cell: (r) => r.client, cls: 'mono' },
      { h: this.agency ? 'col.unit' : 'col.agencyUnit', cell: (r) => this.agencyUnit(r) },
      { h: 'col.targets', cell: (r) => fmtInt(r.targets), cls: 'num' },
      { h: 'col.attempts', cell: (r) => fmtInt(r.attempts), cls: 'num' },
    ], d.clients || [], (r, i) => `blocked-client-${i + 1}`);
  }

  renderRecent(rows) {
    renderTable(this.c.recent, [
      { h: 'col.time', cell: (r) => when(r.last_seen), cls: 'num', title: (r) => `${fmtDateTime(Date.parse(r.first_seen))} – ${fmtDateTime(Date.parse(r.last_seen))}` },
      { h: this.agency ? 'col.unit' : 'col.agencyUnit', cell: (r) => this.agencyUnit(r) },
      { h: 'col.client', cell: (r) => r.client, cls: 'mono' },
      { h: 'col.target', cell: (r) => r.target, cls: 'site', title: (r) => r.target },
      { h: 'col.method', cell: (r) => methodBadge(r.method) },
      { h: 'col.rule', cell: (r) => ruleText(r), cls: 'site', title: (r) => `${r.rule} · ${r.list}` },
      { h: 'col.attempts', cell: (r) => fmtInt(r.attempts), cls: 'num' },
    ], rows, (r, i) => `blocked-row-${i + 1}`);
  }
}

/** #/blocked: the panel for every agency. */
export class BlockedView {
  constructor() {
    this.ctl = new AbortController();
  }

  mount(root) {
    document.title = `${t('blocked.title')} · Simpul NOC`;
    this.panel = new BlockedPanel(null, this.ctl.signal);
    root.replaceChildren(h('div', { class: 'agency-page', 'data-testid': 'blocked-page' },
      h('nav', { class: 'crumbs', 'aria-label': 'breadcrumb' }, h('a', { href: '#/', text: t('nav.back') })),
      this.panel.element('h2')));
    this.panel.renderCached();
    this.panel.load();
    this.timer = setInterval(() => this.panel.load(), BLOCKED_REFRESH_MS);
  }

  update() {}

  destroy() {
    clearInterval(this.timer);
    this.ctl.abort();
  }
}
