// #/search?q=…: what an address, a network, a site, an agency or a unit did
// over a range (GET /api/v1/search), and the drill-down built on it: agency →
// unit ("dinkes/gizi") → host (its address) → flows, and site → hosts. Every
// list links one level down; every table sorts, filters and downloads as CSV;
// the flows page on through the API's cursor.
import { t, fmtBytes, fmtInt } from '../i18n.js';
import { getJSON, getPage } from '../api.js';
import * as paths from '../paths.js';
import { h, setText, when } from '../dom.js';
import { serverNow, agencyName } from '../state.js';
import { endpoint, protoName, ruleText } from '../format.js';
import { sourceBadge, methodBadge, originBadge } from '../widgets.js';
import { RangePicker, rangeFromHash, bounds, hashParams } from '../timerange.js';
import { loadError } from '../errors.js';
import { DataTable } from '../table.js';
import { csvFromServer } from './blocked.js';

export const SEARCH_PRESETS = ['1h', '6h', '24h', '7d', '30d'];
const FLOW_PAGE = 100;
/**
 * Rows of each list in the search's answer (the API's defaults): a list
 * that full may hold more in the range, and its CSV is then the server's
 * (every row of the range, up to the API's limit).
 */
const SERVER_CSV_AT = { units: 20, hosts: 20, peers: 20, sites: 20, blocked: 100 };

/** The address of the search page for `q` (keeps the page's range). */
export function searchHref(q) {
  const keep = hashParams();
  const p = new URLSearchParams({ q });
  for (const k of ['range', 'from', 'to']) if (keep.has(k)) p.set(k, keep.get(k));
  return `#/search?${p}`;
}

const link = (q, text, testid) => h('a', { href: searchHref(q), 'data-testid': testid, text: text ?? q });

export class SearchView {
  constructor() {
    this.ctl = new AbortController();
    this.q = (hashParams().get('q') || '').trim();
  }

  mount(root) {
    document.title = `${t('search.title')} · Simpul NOC`;
    this.range = rangeFromHash(SEARCH_PRESETS, '24h');
    this.picker = new RangePicker({
      presets: SEARCH_PRESETS, value: this.range, testid: 'search-range-', serverNow,
      onChange: (r) => { this.range = r; this.load(); },
    });
    this.status = h('p', { class: 'panel-note', 'data-testid': 'search-status', role: 'status' });
    this.crumbs = h('nav', { class: 'crumbs', 'aria-label': 'breadcrumb', 'data-testid': 'search-crumbs' });
    this.kind = h('span', { class: 'badge', 'data-testid': 'search-kind' });
    this.matches = h('ul', { class: 'chips', 'data-testid': 'search-matches' });
    this.summary = h('div', { class: 'kpi-row', 'data-testid': 'search-summary' });
    this.tables = this.makeTables();
    this.sections = {};
    const panel = (key, title, table) => {
      this.sections[key] = h('section', { class: 'panel', 'aria-labelledby': `h-search-${key}`, hidden: true },
        h('div', { class: 'panel-head' }, h('h3', { id: `h-search-${key}`, text: t(title) })), table.element());
      return this.sections[key];
    };
    root.replaceChildren(h('div', { class: 'search-page', 'data-testid': 'search-page' },
      this.crumbs,
      h('div', { class: 'panel-head' },
        h('h2', { 'data-testid': 'search-title', text: this.q ? t('search.for', { q: this.q }) : t('search.title') }),
        this.kind, h('div', { class: 'head-tools' }, this.picker.element())),
      this.status, this.matches, this.summary,
      panel('units', 'search.units', this.tables.units),
      panel('hosts', 'search.hosts', this.tables.hosts),
      panel('peers', 'search.peers', this.tables.peers),
      panel('sites', 'search.sites', this.tables.sites),
      panel('flows', 'search.flows', this.tables.flows),
      panel('blocked', 'search.blocked', this.tables.blocked)));
    for (const part of Object.keys(SERVER_CSV_AT)) this.serverCsv(part);
    this.load();
  }

  /** A list as full as the answer allows downloads the server's CSV of it; a shorter one its own rows. */
  serverCsv(part) {
    const table = this.tables[part];
    const full = () => table.rows.length >= SERVER_CSV_AT[part];
    table.downloadCsv = () => (full() && this.bounds
      ? csvFromServer(table.csvButton, paths.search({ q: this.q, from: this.bounds.from, to: this.bounds.to, format: 'csv', part }))
      : DataTable.prototype.downloadCsv.call(table));
    table.markCsv = () => {
      table.csvButton.dataset.source = full() ? 'server' : 'table';
      table.csvButton.title = t(full() ? 'table.csv.server' : 'table.csv.help');
    };
  }

  update() {}

  destroy() { this.ctl.abort(); }

  makeTables() {
    const csv = (what) => () => [what, this.q];
    const bytes = (key, title) => ({ key, h: title, cell: (r) => fmtBytes(r[key]), value: (r) => r[key], cls: 'num' });
    const flowsCol = { key: 'flows', h: 'col.flows', cell: (r) => fmtInt(r.flows), value: (r) => r.flows, cls: 'num' };
    const unitCell = (r) => link(`${r.agency}/${r.unit}`, r.unit, `search-unit-${r.agency}-${r.unit}`);
    return {
      units: new DataTable({
        id: 'search-units', csv: csv('units'), sort: { key: 'bytes', dir: 'desc' },
        columns: [
          { key: 'agency', h: 'col.agency', cell: (r) => h('a', { href: `#/agency/${encodeURIComponent(r.agency)}`, text: agencyName(r.agency) }), value: (r) => r.agency },
          { key: 'unit', h: 'col.unit', cell: unitCell, value: (r) => r.unit },
          bytes('bytes', 'col.bytes'), flowsCol,
        ],
      }),
      hosts: new DataTable({
        id: 'search-hosts', csv: csv('hosts'), sort: { key: 'total', dir: 'desc' },
        columns: [
          { key: 'host', h: 'col.host', cell: (r) => link(r.host, r.host, `search-host-${r.host}`), value: (r) => r.host, cls: 'mono' },
          { key: 'agency', h: 'col.agency', cell: (r) => agencyName(r.agency), value: (r) => r.agency },
          { key: 'unit', h: 'col.unit', cell: unitCell, value: (r) => r.unit },
          bytes('bytes_up', 'col.up'), bytes('bytes_down', 'col.down'),
          { key: 'total', h: 'col.bytes', cell: (r) => fmtBytes(r.bytes_up + r.bytes_down), value: (r) => r.bytes_up + r.bytes_down, cls: 'num' },
          flowsCol,
        ],
      }),
      peers: new DataTable({
        id: 'search-peers', csv: csv('peers'), sort: { key: 'total', dir: 'desc' },
        columns: [
          { key: 'peer', h: 'col.peer', cell: (r) => link(r.peer, r.peer, `search-peer-${r.peer}`), value: (r) => r.peer, cls: 'mono' },
          { key: 'site', h: 'col.site', cell: (r) => (r.site ? link(r.site) : '—'), value: (r) => r.site || '', cls: 'site' },
          bytes('bytes_up', 'col.up'), bytes('bytes_down', 'col.down'),
          { key: 'total', h: 'col.bytes', cell: (r) => fmtBytes(r.bytes_up + r.bytes_down), value: (r) => r.bytes_up + r.bytes_down, cls: 'num' },
          flowsCol,
        ],
      }),
      sites: new DataTable({
        id: 'search-sites', csv: csv('sites'), sort: { key: 'bytes', dir: 'desc' },
        columns: [
          { key: 'site', h: 'col.site', cell: (r) => link(r.site, r.site, `search-site-${r.site}`), value: (r) => r.site, cls: 'site' },
          bytes('bytes', 'col.bytes'), flowsCol,
        ],
      }),
      flows: flowTable('search-flows', csv('flows'), () => this.nextFlows()),
      blocked: new DataTable({
        id: 'search-blocked', csv: csv('blocked'), sort: { key: 'time', dir: 'desc' },
        columns: [
          { key: 'time', h: 'col.time', cell: (r) => when(r.last_seen), value: (r) => r.last_seen, cls: 'num' },
          { key: 'client', h: 'col.client', cell: (r) => link(r.client, r.client), value: (r) => r.client, cls: 'mono' },
          { key: 'target', h: 'col.target', cell: (r) => r.target, value: (r) => r.target, cls: 'site' },
          { key: 'method', h: 'col.method', cell: (r) => methodBadge(r.method), value: (r) => r.method },
          { key: 'rule', h: 'col.rule', cell: (r) => ruleText(r), value: (r) => ruleText(r) },
          { key: 'attempts', h: 'col.attempts', cell: (r) => fmtInt(r.attempts), value: (r) => r.attempts, cls: 'num' },
        ],
      }),
    };
  }

  async load() {
    const seq = (this.seq = (this.seq || 0) + 1);
    for (const s of Object.values(this.sections)) s.hidden = true;
    this.summary.replaceChildren();
    this.matches.replaceChildren();
    if (!this.q) { setText(this.status, t('search.empty')); return; }
    setText(this.status, t('loading'));
    const b = bounds(this.range, serverNow());
    this.bounds = b;
    try {
      const d = await getJSON(paths.search({ q: this.q, from: b.from, to: b.to }), { signal: this.ctl.signal });
      if (seq === this.seq) this.render(d);
    } catch (e) {
      if (e.name !== 'AbortError' && seq === this.seq) setText(this.status, loadError(e));
    }
  }

  render(d) {
    this.result = d;
    setText(this.kind, t(`search.kind.${d.kind}`));
    this.kind.dataset.kind = d.kind;
    this.renderCrumbs(d);
    this.matches.replaceChildren(...(d.matches || []).map((m) => h('li', null, m.unit
      ? link(`${m.agency}/${m.unit}`, `${m.agency_name || m.agency} · ${m.unit_name || m.unit}`, `search-match-${m.agency}-${m.unit}`)
      : h('a', { href: `#/agency/${encodeURIComponent(m.agency)}`, 'data-testid': `search-match-${m.agency}`, text: m.agency_name || m.agency }))));
    const s = d.summary;
    if (!s) {
      setText(this.status, d.kind === 'names' && !(d.matches || []).length ? t('search.nothing') : d.kind === 'names' ? t('search.pick') : '');
      return;
    }
    setText(this.status, s.complete ? '' : t('search.partial', { n: fmtInt(s.scanned) }));
    const kpi = (key, value, testid) => h('div', { class: 'kpi small' },
      h('div', { class: 'kpi-label', text: t(key) }), h('div', { class: 'kpi-value', 'data-testid': testid, text: value }));
    this.summary.replaceChildren(
      kpi('search.kpi.flows', fmtInt(s.flows), 'search-kpi-flows'),
      kpi('search.kpi.up', fmtBytes(s.bytes_up), 'search-kpi-up'),
      kpi('search.kpi.down', fmtBytes(s.bytes_down), 'search-kpi-down'));
    const show = (key, rows, more) => {
      this.tables[key].setRows(rows || [], more);
      this.tables[key].markCsv?.();
      this.sections[key].hidden = false;
    };
    if (d.kind !== 'unit' && d.kind !== 'address') show('units', s.units);
    if (d.kind !== 'address') show('hosts', s.hosts);
    show('peers', s.peers);
    show('sites', s.sites);
    this.cursor = d.next_cursor;
    show('flows', d.flows, !!d.next_cursor);
    this.flowsLink(d);
    show('blocked', d.blocked);
  }

  /** Where this level sits: agency › unit › host. */
  renderCrumbs(d) {
    const parts = [h('a', { href: '#/', text: t('nav.overview') })];
    const ff = d.flows_filter || {};
    const owner = d.kind === 'address' && (d.matches || []).length === 1 ? d.matches[0] : null;
    const agency = ff.agency || owner?.agency;
    const unit = ff.unit || owner?.unit;
    if (agency) parts.push(h('a', { href: `#/agency/${encodeURIComponent(agency)}`, 'data-testid': 'crumb-agency', text: agencyName(agency) }));
    if (agency && unit) parts.push(link(`${agency}/${unit}`, owner?.unit_name || unit, 'crumb-unit'));
    if (d.kind === 'address') parts.push(h('span', { 'data-testid': 'crumb-host', text: d.q }));
    this.crumbs.replaceChildren(...parts.flatMap((p, i) => (i ? [h('span', { class: 'sep', text: ' › ' }), p] : [p])));
  }

  /** The server's CSV of every flow of the search (not only the pages loaded). */
  flowsLink(d) {
    const table = this.tables.flows.element();
    table.querySelector('.csv-all')?.remove();
    const href = paths.flows({ ...d.flows_filter, from: this.bounds.from, to: this.bounds.to, format: 'csv' });
    table.querySelector('.table-tools').append(h('a', {
      class: 'btn small csv-all', href, download: '', 'data-testid': 'search-flows-csv-all', text: t('table.csvAll'),
    }));
  }

  async nextFlows() {
    if (!this.cursor) return null;
    const ff = this.result?.flows_filter || {};
    const page = await getPage(paths.flows({
      ...ff, from: this.bounds.from, to: this.bounds.to, cursor: this.cursor, limit: FLOW_PAGE,
    }), { signal: this.ctl.signal });
    this.cursor = page.next;
    return { rows: page.data, more: !!page.next };
  }
}

/** A flows table (newest first), paged by `more`. */
export function flowTable(id, csv, more) {
  return new DataTable({
    id, csv, more, sort: null,
    columns: [
      { key: 'time', h: 'col.time', cell: (r) => when(r.last_seen), value: (r) => r.last_seen, cls: 'num' },
      { key: 'agency', h: 'col.agency', cell: (r) => r.agency, value: (r) => r.agency },
      { key: 'unit', h: 'col.unit', cell: (r) => r.unit, value: (r) => r.unit },
      { key: 'src', h: 'col.src', cell: (r) => endpoint(r.src_ip, r.src_port), value: (r) => endpoint(r.src_ip, r.src_port), cls: 'mono' },
      { key: 'dst', h: 'col.dst', cell: (r) => endpoint(r.dst_ip, r.dst_port), value: (r) => endpoint(r.dst_ip, r.dst_port), cls: 'mono' },
      { key: 'site', h: 'col.site', cell: (r) => r.site || '—', value: (r) => r.site || '', cls: 'site' },
      { key: 'source', h: 'col.source', cell: (r) => sourceBadge(r.site_source), value: (r) => r.site_source || '' },
      { key: 'proto', h: 'col.proto', cell: (r) => protoName(r.proto), value: (r) => r.proto },
      { key: 'bytes_up', h: 'col.bytesUp', cell: (r) => fmtBytes(r.bytes_up), value: (r) => r.bytes_up, cls: 'num' },
      { key: 'bytes_down', h: 'col.bytesDown', cell: (r) => fmtBytes(r.bytes_down), value: (r) => r.bytes_down, cls: 'num' },
      { key: 'origin', h: 'col.origin', cell: (r) => originBadge(r), value: (r) => `${r.origin || ''} ${r.sampling_interval ?? ''}` },
    ],
  });
}
