// #/reports: the monthly report (Pergub Kalsel 0113/2017 Pasal 14; Pergub
// Sumut 12/2022 Pasal 51) of a month, for the province or one agency (an
// officer: its own, fixed): download it as PDF or CSV (the collector makes
// both) and a preview of its figures from the same answer as JSON.
import { t, lang, fmtInt, fmtNum, fmtBytes, fmtBps, fmtDuration, fmtDateTime } from './i18n.js';
import { getJSON, apiUrl } from './api.js';
import * as paths from './paths.js';
import { loadError } from './errors.js';
import { h, setText, showTableMessage } from './dom.js';
import { renderTable } from './table.js';
import { ownAgency } from './session.js';
import { serverNow, agencyLabel, agencies } from './state.js';
import { pctLevel } from './format.js';

/** Months offered back from this one (the server refuses older). */
const MONTHS_BACK = 24;

const pad = (n) => String(n).padStart(2, '0');

/** "2026-11" of the month `back` months before the one `ms` is in, at UTC offset `offsetSecs` (the NOC's). */
export function monthKey(ms, offsetSecs, back = 0) {
  const z = new Date(ms + offsetSecs * 1000);
  const d = new Date(Date.UTC(z.getUTCFullYear(), z.getUTCMonth() - back, 1));
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`;
}

/** "+07:00" → 25200. */
function offsetSecs(text) {
  const m = /^([+-])(\d{2}):(\d{2})$/.exec(text || '');
  return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 3600 + Number(m[3]) * 60) : 7 * 3600;
}

/** "98,76%" truncated like the availability page (99,998 is not 100,00); "—" without a figure. */
function pctText(p) {
  return p == null ? '—' : `${fmtNum(Math.floor(p * 100) / 100, 2)}%`;
}

export class ReportsView {
  constructor() {
    this.ctl = new AbortController();
    this.seq = 0;
    // The server's default (the last whole month, in the NOC's zone) until one is chosen.
    this.month = null;
    this.agency = ownAgency() || '';
    this.pdfLang = lang();
  }

  mount(root) {
    document.title = `${t('nav.reports')} · Simpul NOC`;
    const own = ownAgency();
    const c = this.c = {
      month: h('input', {
        type: 'month', id: 'report-month', value: this.month, required: true, 'data-testid': 'report-month',
        onchange: (e) => { if (/^\d{4}-\d{2}$/.test(e.target.value)) { this.month = e.target.value; this.load(); } },
      }),
      agency: h('select', {
        id: 'report-agency', 'data-testid': 'report-agency', disabled: !!own,
        onchange: (e) => { this.agency = e.target.value; this.load(); },
      }),
      lang: h('select', {
        id: 'report-lang', 'data-testid': 'report-lang',
        onchange: (e) => { this.pdfLang = e.target.value; this.links(); },
      }, h('option', { value: 'id', text: 'Bahasa Indonesia' }), h('option', { value: 'en', text: 'English' })),
      pdf: h('a', { class: 'btn primary', 'data-testid': 'report-pdf', text: t('reports.pdf') }),
      csv: h('a', { class: 'btn', 'data-testid': 'report-csv', text: t('reports.csv') }),
      status: h('p', { class: 'panel-note', role: 'status', 'data-testid': 'report-status' }),
      usage: h('dl', { class: 'report-figures', 'data-testid': 'report-usage' }),
      availability: h('table', { class: 'data', 'data-testid': 'report-availability' }),
      severity: h('table', { class: 'data', 'data-testid': 'report-incidents' }),
      incidentsNote: h('p', { class: 'panel-note', 'data-testid': 'report-incidents-note' }),
      sites: h('table', { class: 'data', 'data-testid': 'report-sites' }),
      blocked: h('table', { class: 'data', 'data-testid': 'report-blocked' }),
      policy: h('table', { class: 'data', 'data-testid': 'report-policy' }),
      agencies: h('table', { class: 'data', 'data-testid': 'report-agencies' }),
      agenciesPanel: null,
    };
    c.lang.value = this.pdfLang;
    this.fillAgencies();
    const panel = (id, title, ...body) => h('section', { class: 'panel', 'aria-labelledby': id },
      h('div', { class: 'panel-head' }, h('h2', { id, text: title })), ...body);
    c.agenciesPanel = panel('h-rep-ag', t('reports.agencies'), h('div', { class: 'table-wrap' }, c.agencies));
    root.replaceChildren(h('div', { class: 'agency-page reports-page', 'data-testid': 'reports-page' },
      h('section', { class: 'panel', 'aria-labelledby': 'h-rep' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-rep', text: t('reports.title') }),
          h('span', { class: 'panel-note', text: t('reports.note') })),
        h('div', { class: 'inline-form report-controls' },
          h('div', { class: 'field' }, h('label', { for: 'report-month', text: t('reports.month') }), c.month),
          h('div', { class: 'field' }, h('label', { for: 'report-agency', text: t('reports.scope') }), c.agency),
          h('div', { class: 'field' }, h('label', { for: 'report-lang', text: t('reports.lang') }), c.lang)),
        h('div', { class: 'btn-row report-downloads' }, c.pdf, c.csv),
        c.status),
      panel('h-rep-use', t('reports.usage'), c.usage),
      c.agenciesPanel,
      panel('h-rep-av', t('reports.availability'), h('div', { class: 'table-wrap' }, c.availability)),
      panel('h-rep-inc', t('reports.incidents'), h('div', { class: 'table-wrap' }, c.severity), c.incidentsNote),
      panel('h-rep-sites', t('reports.sites'), h('div', { class: 'table-wrap' }, c.sites)),
      panel('h-rep-bl', t('reports.blocked'), h('div', { class: 'table-wrap' }, c.blocked)),
      panel('h-rep-pol', t('reports.policy'), h('div', { class: 'table-wrap' }, c.policy))));
    this.links();
    this.load();
    // Agency names arrive with the list; the choice stays.
    agencies(this.ctl.signal).then((list) => { this.known = list; this.fillAgencies(); }).catch(() => {});
  }

  destroy() { this.ctl.abort(); }

  update() {}

  fillAgencies() {
    const own = ownAgency();
    const sel = this.c.agency;
    const list = own ? [own] : (this.agencyCodes() || []);
    const options = [
      own ? null : h('option', { value: '', text: t('reports.province') }),
      ...list.map((code) => h('option', { value: code, text: agencyLabel(code) })),
    ].filter(Boolean);
    sel.replaceChildren(...options);
    sel.value = this.agency;
  }

  /** The agencies the page knows, by name. */
  agencyCodes() {
    return (this.known || []).map((a) => a.code).sort((a, b) => agencyLabel(a).localeCompare(agencyLabel(b)));
  }

  params(format) {
    return { month: this.month, agency: this.agency || null, format, lang: format === 'pdf' ? this.pdfLang : null };
  }

  /** The download links follow the choices (the collector names the files). */
  links() {
    this.c.pdf.href = apiUrl(paths.reportMonthly(this.params('pdf')));
    this.c.csv.href = apiUrl(paths.reportMonthly(this.params('csv')));
    this.c.pdf.setAttribute('download', '');
    this.c.csv.setAttribute('download', '');
  }

  async load() {
    this.links();
    const seq = ++this.seq;
    const c = this.c;
    setText(c.status, t('loading'));
    c.status.dataset.state = 'loading';
    try {
      const r = await getJSON(paths.reportMonthly(this.params(null)), { signal: this.ctl.signal });
      if (seq !== this.seq) return;
      // The months offered: from 24 back to this one, in the report's zone.
      const off = offsetSecs(r.utc_offset);
      c.month.max = monthKey(serverNow(), off);
      c.month.min = monthKey(serverNow(), off, MONTHS_BACK);
      if (!this.month) {
        this.month = r.month;
        c.month.value = r.month;
        this.links();
      }
      this.render(r);
      c.status.dataset.state = 'ok';
      setText(c.status, t(r.complete ? 'reports.generated' : 'reports.partial', { t: fmtDateTime(Date.parse(r.generated_at)) }));
    } catch (e) {
      if (e.name === 'AbortError' || seq !== this.seq) return;
      c.status.dataset.state = 'error';
      setText(c.status, loadError(e));
      for (const tbl of [c.availability, c.severity, c.sites, c.blocked, c.policy]) showTableMessage(tbl, loadError(e));
      c.usage.replaceChildren();
    }
  }

  render(r) {
    const c = this.c;
    const u = r.usage;
    const alloc = (v) => (v > 0 ? fmtBps(v) : t('alloc.none'));
    const fig = (key, testid, value) => [h('dt', { text: t(key) }), h('dd', { 'data-testid': `report-${testid}`, text: value })];
    c.usage.replaceChildren(
      ...fig('reports.bytesIn', 'bytes-in', `${fmtBytes(u.bytes_in)} (${fmtInt(u.bytes_in)} B)`),
      ...fig('reports.bytesOut', 'bytes-out', `${fmtBytes(u.bytes_out)} (${fmtInt(u.bytes_out)} B)`),
      ...fig('reports.allocDown', 'alloc-down', alloc(u.alloc_down_bps)),
      ...fig('reports.peakIn', 'peak-in', fmtBps(u.peak_in_bps)),
      ...fig('reports.p95In', 'p95-in', fmtBps(u.p95_in_bps)),
      ...fig('reports.peakOut', 'peak-out', fmtBps(u.peak_out_bps)),
      ...fig('reports.p95Out', 'p95-out', fmtBps(u.p95_out_bps)),
      ...(u.peak_1s_in_bps == null ? [] : fig('reports.peak1sIn', 'peak-1s-in', fmtBps(u.peak_1s_in_bps))),
      ...(u.peak_1s_out_bps == null ? [] : fig('reports.peak1sOut', 'peak-1s-out', fmtBps(u.peak_1s_out_bps))),
      ...fig('reports.hoursIn', 'hours-in', t('reports.hoursOf', { n: fmtInt(u.hours_above_95_in), of: fmtInt(u.hours_with_allocation) })),
      ...fig('reports.hoursOut', 'hours-out', t('reports.hoursOf', { n: fmtInt(u.hours_above_95_out), of: fmtInt(u.hours_with_allocation) })),
      ...fig('reports.overall', 'overall', pctText(r.availability.overall_pct)),
    );
    c.usage.dataset.bytesIn = String(u.bytes_in);
    c.agenciesPanel.hidden = !r.agencies.length;
    renderTable(c.agencies, [
      { h: 'col.agency', cell: (a) => agencyLabel(a.code) },
      { h: 'reports.bytesIn', cls: 'num', cell: (a) => fmtBytes(a.bytes_in), sortValue: (a) => a.bytes_in },
      { h: 'reports.bytesOut', cls: 'num', cell: (a) => fmtBytes(a.bytes_out), sortValue: (a) => a.bytes_out },
      { h: 'reports.allocDown', cls: 'num', cell: (a) => alloc(a.alloc_down_bps), sortValue: (a) => (a.alloc_down_bps > 0 ? a.alloc_down_bps : null) },
      { h: 'col.availability', cls: 'num', cell: (a) => pctText(a.availability_pct), sortValue: (a) => a.availability_pct },
      { h: 'col.incidents', cls: 'num', cell: (a) => fmtInt(a.incidents), sortValue: (a) => a.incidents },
    ], r.agencies, (a) => `report-agency-${a.code}`);
    renderTable(c.availability, [
      { h: 'col.node', cell: (a) => a.node_id },
      {
        h: 'col.availability', cls: 'num', sortValue: (a) => a.availability_pct,
        cell: (a) => (a.availability_pct == null ? t('reports.notEnrolled')
          : h('span', { class: 'pct-cell', 'data-level': pctLevel(a.availability_pct), text: pctText(a.availability_pct) + (a.never_seen ? ` · ${t('reports.neverSeen')}` : '') })),
      },
      { h: 'col.downtime', cls: 'num', cell: (a) => fmtDuration(a.down_ms / 1000), sortValue: (a) => a.down_ms },
      { h: 'col.unreachable', cls: 'num', cell: (a) => fmtDuration(a.unreachable_ms / 1000), sortValue: (a) => a.unreachable_ms },
      { h: 'col.maintenance', cls: 'num', cell: (a) => fmtDuration(a.maintenance_ms / 1000), sortValue: (a) => a.maintenance_ms },
      { h: 'col.incidents', cls: 'num', cell: (a) => fmtInt(a.incidents), sortValue: (a) => a.incidents },
    ], r.availability.nodes, (a) => `report-node-${a.node_id}`);
    renderTable(c.severity, [
      { h: 'reports.severity', cell: (s) => t(`sev.${s.severity}`) },
      { h: 'col.incidents', cls: 'num', cell: (s) => fmtInt(s.incidents), sortValue: (s) => s.incidents },
      { h: 'reports.meanAck', cls: 'num', cell: (s) => fmtDuration(s.mean_ack_secs), sortValue: (s) => s.mean_ack_secs },
      { h: 'reports.maxAck', cls: 'num', cell: (s) => fmtDuration(s.max_ack_secs), sortValue: (s) => s.max_ack_secs },
      { h: 'reports.meanResolve', cls: 'num', cell: (s) => fmtDuration(s.mean_resolve_secs), sortValue: (s) => s.mean_resolve_secs },
      { h: 'reports.maxResolve', cls: 'num', cell: (s) => fmtDuration(s.max_resolve_secs), sortValue: (s) => s.max_resolve_secs },
    ], r.incidents.by_severity, (s) => `report-severity-${s.severity}`);
    setText(c.incidentsNote, t('reports.incidentsApart', { m: fmtInt(r.incidents.in_maintenance), u: fmtInt(r.incidents.unreachable) }));
    renderTable(c.sites, [
      { h: 'col.site', cell: (s) => s.site },
      { h: 'col.bytes', cls: 'num', cell: (s) => fmtBytes(s.bytes), sortValue: (s) => s.bytes },
      { h: 'col.flows', cls: 'num', cell: (s) => fmtInt(s.flows), sortValue: (s) => s.flows },
    ], r.top_sites);
    renderTable(c.blocked, [
      { h: 'reports.category', cell: (b) => b.category },
      { h: 'reports.attempts', cls: 'num', cell: (b) => fmtInt(b.attempts), sortValue: (b) => b.attempts },
      { h: 'reports.clients', cls: 'num', cell: (b) => fmtInt(b.clients), sortValue: (b) => b.clients },
      { h: 'reports.targets', cls: 'num', cell: (b) => fmtInt(b.targets), sortValue: (b) => b.targets },
    ], r.blocked.categories, (b) => `report-category-${b.category}`);
    renderTable(c.policy, [
      { h: 'reports.when', cell: (p) => fmtDateTime(p.at_ms), sortValue: (p) => p.at_ms },
      { h: 'col.agency', cell: (p) => (p.scope === 'default' ? t('reports.defaultPolicy') : agencyLabel(p.scope)) },
      { h: 'reports.version', cls: 'num', cell: (p) => fmtInt(p.version), sortValue: (p) => p.version },
      { h: 'reports.by', cell: (p) => p.by },
      { h: 'reports.summary', cell: (p) => (p.changes.length ? `${p.comment} [${p.changes.join(', ')}]` : p.comment) },
    ], r.policy_changes);
  }
}
