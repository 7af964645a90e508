// Blocked attempts: the panel (#/blocked for every agency, and the agency
// page for one) over a chosen range, polled every 5 s (the live feed
// carries the overview only).
import { t, tn, fmtInt, fmtDateTime } from '../i18n.js';
import { getJSON, apiUrl, ApiError } from '../api.js';
import { download, csvName, BOM } from '../csv.js';
import * as paths from '../paths.js';
import { loadError } from '../errors.js';
import { h, setText, showTableMessage, when } from '../dom.js';
import { renderTable } from '../table.js';
import { cache, serverNow, agencyName, unitLabel, agencies } from '../state.js';
import { ruleText } from '../format.js';
import { methodBadge } from '../widgets.js';
import { RangePicker, rangeFromHash, rangeLabel, bounds } from '../timerange.js';

export const BLOCKED_REFRESH_MS = 5000;

/** The newest attempts the panel shows: as many on screen, and the range may hold more. */
const RECENT_LIMIT = 50;

/**
 * Download the server's CSV at `path` (the session's cookie goes with it)
 * under the name the server gives it (Content-Disposition: what and range).
 */
export async function downloadServerCsv(path) {
  const res = await fetch(apiUrl(path), { cache: 'no-store', credentials: 'same-origin' });
  if (!res.ok) {
    let msg = `HTTP ${res.status}`;
    try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new ApiError(res.status, msg);
  }
  const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') || '')?.[1] || csvName('export');
  const text = await res.text();
  // text() drops the byte-order mark; a spreadsheet needs it to read UTF-8.
  download(name, text.startsWith(BOM) ? text : BOM + text);
}

/** The server's CSV from a table's button: busy meanwhile, a failure said beside it. */
export async function csvFromServer(btn, path) {
  const old = btn.parentElement?.querySelector('.csv-error');
  old?.remove();
  btn.disabled = true;
  try {
    await downloadServerCsv(path);
  } catch (e) {
    btn.after(h('span', { class: 'form-error csv-error', role: 'alert', 'data-testid': `${btn.dataset.testid}-error`, text: t('table.csv.failed', { msg: loadError(e) }) }));
  } finally {
    btn.disabled = false;
  }
}

/**
 * Let the CSV button of `table` (drawn by renderTable) download the
 * server's export when pathOf() gives a path: the table holds the rows the
 * page asked for, the server's CSV every row of the range (up to the API's
 * limit). null keeps the table's own CSV of what it shows. The button is
 * table.js's: a listener capturing on the table takes the click first.
 * Call markCsv(table) after each redraw (the button says which it is).
 */
export function serverCsv(table, pathOf) {
  table.csvPath = pathOf;
  if (table.dataset.serverCsv) return;
  table.dataset.serverCsv = 'on';
  table.addEventListener('click', (e) => {
    const btn = e.target instanceof Element ? e.target.closest('button') : null;
    if (!btn || btn.dataset.testid !== `${table.dataset.testid}-csv`) return;
    const path = table.csvPath();
    if (!path) return;
    e.stopPropagation();
    csvFromServer(btn, path);
  }, true);
}

/** The CSV button's source (data-source "server" or "table") and help text. */
export function markCsv(table) {
  const btn = table.querySelector(`[data-testid="${table.dataset.testid}-csv"]`);
  if (!btn) return;
  const server = !!table.csvPath?.();
  btn.dataset.source = server ? 'server' : 'table';
  btn.title = t(server ? 'table.csv.server' : 'table.csv.help');
}

/** The ranges #/blocked offers (the agency page passes its own). */
const BLOCKED_PRESETS = ['15m', '1h', '6h', '24h', '7d', '30d'];

/**
 * The "Upaya akses diblokir" panel: attempts per agency (all agencies only),
 * top targets and clients over the range, and the newest attempts, for one
 * agency (its page, which owns the range) or all (#/blocked, with its own
 * picker). Polled every 5 s by its view.
 */
export class BlockedPanel {
  /** opts.range: the range to show; opts.picker: a picker of its own (in the address). */
  constructor(agency, signal, { range, picker = false } = {}) {
    this.agency = agency;
    this.signal = signal;
    this.range = range || { key: '15m' };
    this.picker = picker ? new RangePicker({
      presets: BLOCKED_PRESETS, value: this.range, testid: 'blocked-range-', serverNow, onChange: (r) => this.setRange(r),
    }) : null;
    this.c = {
      total: h('span', { class: 'panel-note', 'data-testid': 'blocked-total' }),
      agencies: h('ul', { class: 'chips blocked-agencies', 'data-testid': 'blocked-agencies' }),
      targets: h('table', { class: 'data', 'data-testid': 'blocked-targets-table' }),
      clients: h('table', { class: 'data', 'data-testid': 'blocked-clients-table' }),
      recent: h('table', { class: 'data', 'data-testid': 'blocked-recent-table' }),
    };
    this.setPaths();
    serverCsv(this.c.recent, () => this.recentCsvPath());
  }

  /** The server's CSV of every attempt of the range, when the table may not hold them all. */
  recentCsvPath() {
    if ((this.recentCount ?? 0) < RECENT_LIMIT) return null;
    const b = bounds(this.range, serverNow());
    return paths.blocked({ agency: this.agency, from: b.from, to: b.to, format: 'csv' });
  }

  /** Cache keys per range (without `from`, which moves every second); the last 15 min is the API's default window. */
  setPaths() {
    const r = this.range;
    const tag = r.key === '15m' ? '' : `#${r.key === 'custom' ? `${r.from}-${r.to}` : r.key}`;
    this.keys = { summary: this.url('summary', false) + tag, recent: this.url('recent', false) + tag };
  }

  /** The URL of a request: `from` (and a custom range's `to`) beyond the default. */
  url(which, withFrom = true) {
    const r = this.range;
    const b = withFrom && r.key !== '15m' ? bounds(r, serverNow()) : null;
    const q = { agency: this.agency, limit: which === 'summary' ? 10 : RECENT_LIMIT, from: b?.from, to: r.key === 'custom' ? b?.to : null };
    return which === 'summary' ? paths.blockedSummary(q) : paths.blocked(q);
  }

  setRange(r) {
    this.range = r;
    this.setPaths();
    this.titles();
    this.renderCached();
    this.load();
  }

  titles() {
    const range = rangeLabel(this.range);
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
    this.titles();
    return h('section', { class: 'panel blocked-panel', 'aria-labelledby': 'h-blocked-panel', 'data-testid': 'blocked-panel' },
      h('div', { class: 'panel-head' }, h(hn, { id: 'h-blocked-panel', text: t('blocked.title') }), c.total,
        this.picker?.element()),
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
        tables.forEach((tb) => showTableMessage(tb, loadError(e)));
      }
    }));
  }

  agencyUnit(r) {
    const unit = unitLabel(r.agency, r.unit);
    return this.agency ? unit : `${agencyName(r.agency)} / ${unit}`;
  }

  renderSummary(d) {
    const c = this.c;
    setText(c.total, tn('blocked.total', d.attempts, { n: fmtInt(d.attempts ?? 0), range: rangeLabel(this.range) }));
    c.total.dataset.value = String(d.attempts ?? 0);
    c.agencies.replaceChildren(...(d.agencies || []).map((a) => h('li', { class: 'chip', 'data-testid': `blocked-agency-${a.agency}`, 'data-value': String(a.attempts) },
      h('a', { href: `#/agency/${encodeURIComponent(a.agency)}`, text: tn('blocked.perAgency', a.attempts, { name: agencyName(a.agency), n: fmtInt(a.attempts) }) }))));
    renderTable(c.targets, [
      { h: 'col.target', cell: (r) => r.target, cls: 'site', title: (r) => r.target },
      { h: 'col.method', cell: (r) => methodBadge(r.method) },
      { h: 'col.rule', cell: (r) => ruleText(r), cls: 'site', title: (r) => `${r.rule} · ${r.list}` },
      { h: 'col.clients', cell: (r) => fmtInt(r.clients), cls: 'num', sortValue: (r) => r.clients },
      { h: 'col.attempts', cell: (r) => fmtInt(r.attempts), cls: 'num', sortValue: (r) => r.attempts },
    ], d.targets || [], (r, i) => `blocked-target-${i + 1}`);
    renderTable(c.clients, [
      { h: 'col.client', cell: (r) => r.client, cls: 'mono' },
      { h: this.agency ? 'col.unit' : 'col.agencyUnit', cell: (r) => this.agencyUnit(r) },
      { h: 'col.targets', cell: (r) => fmtInt(r.targets), cls: 'num', sortValue: (r) => r.targets },
      { h: 'col.attempts', cell: (r) => fmtInt(r.attempts), cls: 'num', sortValue: (r) => r.attempts },
    ], d.clients || [], (r, i) => `blocked-client-${i + 1}`);
  }

  renderRecent(rows) {
    renderTable(this.c.recent, [
      { h: 'col.time', cell: (r) => when(r.last_seen), cls: 'num', title: (r) => `${fmtDateTime(Date.parse(r.first_seen))} – ${fmtDateTime(Date.parse(r.last_seen))}`, sortValue: (r) => Date.parse(r.last_seen) },
      { h: this.agency ? 'col.unit' : 'col.agencyUnit', cell: (r) => this.agencyUnit(r) },
      { h: 'col.client', cell: (r) => r.client, cls: 'mono' },
      { h: 'col.target', cell: (r) => r.target, cls: 'site', title: (r) => r.target },
      { h: 'col.method', cell: (r) => methodBadge(r.method) },
      { h: 'col.rule', cell: (r) => ruleText(r), cls: 'site', title: (r) => `${r.rule} · ${r.list}` },
      { h: 'col.attempts', cell: (r) => fmtInt(r.attempts), cls: 'num', sortValue: (r) => r.attempts },
    ], rows, (r, i) => `blocked-row-${i + 1}`);
    this.recentCount = rows ? rows.length : 0;
    markCsv(this.c.recent);
  }
}

/** #/blocked: the panel for every agency. */
export class BlockedView {
  constructor() {
    this.ctl = new AbortController();
  }

  mount(root) {
    document.title = `${t('blocked.title')} · Simpul NOC`;
    this.panel = new BlockedPanel(null, this.ctl.signal, { range: rangeFromHash(BLOCKED_PRESETS, '15m'), picker: true });
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
