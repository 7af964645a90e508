// #/incidents: the incidents (open, or all within the page's range; one
// agency or all), a timeline per node, and the time to acknowledge and resolve by
// severity. The list refreshes every 5 s, the rest every 30 s.
import { t, tn, fmtInt, fmtDateTime, fmtSpan, fmtDay, fmtTimeHM } from '../i18n.js';
import { fmtMonth, zoneMidnight, zoneParts, zoneTime } from '../format.js';
import { getJSON } from '../api.js';
import * as paths from '../paths.js';
import { loadError } from '../errors.js';
import { h, setText, showTableMessage, when } from '../dom.js';
import { renderTable } from '../table.js';
import { rankOf } from '../sorting.js';
import { ownAgency } from '../session.js';
import { windowCovers } from '../maintenance.js';
import { cache, serverNow, agencyLabel, agencies, onReset } from '../state.js';
import { sevBadge, kindBadge } from '../widgets.js';
import { ackCell, SEVERITIES, OUTAGE_KINDS, INCIDENTS_REFRESH_MS } from '../alarms.js';
import { maintenanceOf } from '../alarmfeed.js';
import { RangePicker, rangeFromHash, bounds, HISTORY_PRESETS } from '../timerange.js';

const HOUR = 3600e3;
const DAY = 86400e3;

const sevRank = (sev) => rankOf(SEVERITIES, sev);

/**
 * The timeline's axis, in the NOC's zone: [ms, label] every 15 min,
 * hour or 3 h (times), every day or 3 days (dates), or every month.
 */
function axisTicks(start, end) {
  const span = end - start;
  const out = [];
  const day0 = zoneMidnight(start);
  if (span > 62 * DAY) {
    const p = zoneParts(start);
    for (let k = 1, x = zoneTime(p.y, p.m + 1); x <= end; k++, x = zoneTime(p.y, p.m + k)) out.push([x, fmtMonth(x)]);
    return out;
  }
  const [step, label] = span <= 2 * HOUR ? [HOUR / 4, fmtTimeHM] : span <= 8 * HOUR ? [HOUR, fmtTimeHM]
    : span <= 36 * HOUR ? [3 * HOUR, fmtTimeHM] : span <= 10 * DAY ? [DAY, fmtDay] : [3 * DAY, fmtDay];
  for (let x = day0; x <= end; x += step) if (x >= start) out.push([x, label(x)]);
  return out;
}

/** Links between the outage pages. */
export function outageTabs(current) {
  const tab = (route, key) => h('a', {
    class: 'tab', href: `#/${route}`, 'data-testid': `tab-${route}`, 'aria-current': current === route ? 'page' : null, text: t(key),
  });
  return h('nav', { class: 'crumbs tabs', 'aria-label': t('nav.incidents') },
    h('a', { href: '#/', text: t('nav.back') }), tab('incidents', 'nav.incidents'), tab('availability', 'nav.availability'));
}

const incFilter = { open: true, agency: '' }; // reset at every login
onReset(() => { incFilter.open = true; incFilter.agency = ''; });

/** #/incidents: list with filters, a timeline per node, response times by severity. */
export class IncidentsView {
  constructor() {
    this.ctl = new AbortController();
    this.timers = [];
  }

  mount(root) {
    document.title = `${t('inc.title')} · Simpul NOC`;
    const c = this.c = {
      table: h('table', { class: 'data incidents-table', 'data-testid': 'incidents-table' }),
      stats: h('table', { class: 'data', 'data-testid': 'incident-stats-table' }),
      timeline: h('div', { class: 'timeline', 'data-testid': 'timeline' }),
      agency: h('select', { 'data-testid': 'inc-filter-agency', id: 'inc-agency', onchange: (e) => { incFilter.agency = e.target.value; this.reload(); } }),
      count: h('span', { class: 'panel-note', 'data-testid': 'incidents-count' }),
    };
    const toggle = (open, key) => h('button', {
      type: 'button', class: 'range', 'data-testid': `inc-filter-${open ? 'open' : 'all'}`, 'aria-pressed': String(incFilter.open === open),
      text: t(key), onclick: (e) => {
        incFilter.open = open;
        e.target.parentElement.querySelectorAll('button').forEach((b) => b.setAttribute('aria-pressed', String(b === e.target)));
        this.loadList();
      },
    });
    // The timeline's range, from the address (shared and kept over a reload).
    this.range = rangeFromHash(HISTORY_PRESETS, '24h');
    this.picker = new RangePicker({
      presets: HISTORY_PRESETS, value: this.range, testid: 'tl-range-', serverNow,
      onChange: (r) => { this.range = r; this.loadTimeline(); if (!incFilter.open) this.loadList(); },
    });
    const legend = h('span', { class: 'legend' }, ...['down', 'unreachable', 'flapping', 'maintenance'].map((k) => h('span', { class: `lg lg-${k}`, text: t(`tl.${k}`) })));
    const panel = (id, title, extra, ...body) => h('section', { class: 'panel', 'aria-labelledby': id },
      h('div', { class: 'panel-head' }, h('h3', { id, text: title }), extra), ...body);
    root.replaceChildren(h('div', { class: 'agency-page incidents-page', 'data-testid': 'incidents-page' },
      outageTabs('incidents'),
      // The range is the page's: the timeline and, under "all", the list.
      h('div', { class: 'page-head' }, h('h2', { class: 'agency-title', text: t('inc.title') }), this.picker.element()),
      panel('h-inc-list', t('inc.list'), h('div', { class: 'head-tools' }, c.count,
        h('div', { class: 'range-group', role: 'group', 'aria-label': t('inc.list') }, toggle(true, 'inc.filter.open'), toggle(false, 'inc.filter.all')),
        // An agency officer sees one agency: no picker listing the others.
        ownAgency() ? null : h('label', { class: 'select-label', for: 'inc-agency' }, t('inc.filter.agency'), ' ', c.agency)),
      h('div', { class: 'table-wrap' }, c.table)),
      panel('h-inc-tl', t('inc.timeline'), h('div', { class: 'head-tools' }, legend), c.timeline),
      panel('h-inc-stats', t('inc.stats'), null, h('div', { class: 'table-wrap' }, c.stats))));
    if (!ownAgency()) this.fillAgencies();
    this.reload();
    this.every(INCIDENTS_REFRESH_MS, () => this.loadList());
    this.every(30000, () => { this.loadTimeline(); this.loadStats(); });
  }

  every(ms, fn) { this.timers.push(setInterval(fn, ms)); }

  destroy() {
    this.timers.forEach(clearInterval);
    this.ctl.abort();
  }

  update() {}

  /** Every second: the durations of open incidents grow. */
  tick() {
    const now = serverNow();
    for (const el of this.c.table.querySelectorAll('.dur[data-start]')) {
      setText(el, `${fmtSpan(now - Number(el.dataset.start))} · ${t('inc.ongoing')}`);
    }
  }

  reload() {
    this.loadList();
    this.loadTimeline();
    this.loadStats();
  }

  /** The agency filter as query parameters (none: every agency the role may see). */
  q() { return { agency: incFilter.agency || null }; }

  async fetch(path) {
    const d = await getJSON(path, { signal: this.ctl.signal });
    cache.set(path, d);
    return d;
  }

  async fillAgencies() {
    let ags;
    try { ags = await agencies(this.ctl.signal); } catch (e) { if (e.name === 'AbortError') return; ags = []; }
    this.c.agency.replaceChildren(h('option', { value: '', text: t('inc.filter.allAgencies') }),
      ...ags.map((a) => h('option', { value: a.code, selected: a.code === incFilter.agency, text: a.name })));
  }

  async loadList() {
    // Open ones whenever they began; all of them within the page's range.
    const b = incFilter.open ? null : bounds(this.range, serverNow());
    const path = paths.incidents({
      limit: 500, open: incFilter.open, from: b?.from, to: this.range.key === 'custom' ? b?.to : null, ...this.q(),
    });
    this.listPath = path;
    try {
      const d = await this.fetch(path);
      if (this.listPath === path) { this.list = d; this.renderList(d); }
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.c.table, loadError(e));
    }
  }

  /**
   * Rows: every incident; an unreachable one under the outage of its root
   * (when that is in the list and overlaps it), not as a row of its own.
   */
  renderList(list) {
    const now = serverNow();
    const nested = new Map();
    const rows = [];
    for (const i of list) {
      if (i.kind === 'unreachable' && i.root_cause) {
        const root = list.find((r) => r.node_id === i.root_cause && r.kind !== 'unreachable'
          && r.started_ms <= i.detected_ms && (r.resolved_ms == null || r.resolved_ms >= i.started_ms));
        if (root) {
          if (!nested.has(root.id)) nested.set(root.id, new Set(root.children || []));
          nested.get(root.id).add(i.node_id);
          continue;
        }
      }
      rows.push(i);
    }
    setText(this.c.count, tn('inc.count', rows.length, { n: fmtInt(rows.length) }));
    this.c.count.dataset.value = String(rows.length);
    renderTable(this.c.table, [
      { h: 'col.severity', cell: (r) => sevBadge(r.severity), sortValue: (r) => sevRank(r.severity) },
      {
        h: 'col.kind',
        cell: (r) => {
          const under = [...(nested.get(r.id) || new Set(r.children || []))].sort();
          return h('span', { class: 'kind-cell' }, kindBadge(r),
            // In a window (detected in one, or one in force now): the way to change or end it.
            r.maintenance || (r.resolved_ms == null && maintenanceOf(r.node_id, r.agency))
              ? h('a', { class: 'badge maint', href: '#/availability', 'data-testid': `incident-maint-${r.id}`, title: t('inc.maint.link'), text: t('inc.maintenance') }) : null,
            r.kind === 'unreachable' && r.root_cause ? h('span', { class: 'sub', text: t('inc.because', { root: r.root_cause }) }) : null,
            under.length ? h('span', { class: 'sub children', 'data-testid': `incident-children-${r.id}` }, `${t('inc.under')} ${under.join(', ')}`) : null);
        },
      },
      { h: 'col.nodeAgency', cell: (r) => h('span', null, h('a', { href: `#/agency/${encodeURIComponent(r.agency)}`, class: 'strong', text: r.node_id }), h('span', { class: 'sub', text: agencyLabel(r.agency) })), sortValue: (r) => r.node_id },
      { h: 'col.started', cell: (r) => when(r.started_ms), cls: 'num', title: (r) => fmtDateTime(r.started_ms), sortValue: (r) => r.started_ms },
      {
        h: 'col.duration',
        cell: (r) => (r.resolved_ms == null
          ? h('span', { class: 'dur', 'data-start': String(r.started_ms), text: `${fmtSpan(now - r.started_ms)} · ${t('inc.ongoing')}` })
          : fmtSpan(r.resolved_ms - r.started_ms)),
        cls: 'num',
        sortValue: (r) => (r.resolved_ms ?? now) - r.started_ms,
      },
      { h: 'col.acked', cell: (r) => ackCell(r, () => this.loadList()), sortValue: (r) => r.acked_ms },
      { h: 'col.resolved', cell: (r) => (r.resolved_ms == null ? '—' : when(r.resolved_ms)), cls: 'num', sortValue: (r) => r.resolved_ms },
    ], rows, (r) => `incident-row-${r.id}`, {
      rowData: (r) => ({
        state: r.resolved_ms == null ? 'open' : 'resolved', acked: String(r.acked_ms != null), severity: r.severity, kind: r.kind, node: r.node_id,
      }),
    });
  }

  async loadStats() {
    const path = paths.incidentStats(this.q());
    try {
      this.renderStats(await this.fetch(path));
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.c.stats, loadError(e));
    }
  }

  renderStats(d) {
    const rows = SEVERITIES.filter((s) => d && d[s]).map((s) => ({ sev: s, ...d[s] }));
    const secs = (v) => (v == null ? '—' : fmtSpan(v * 1000));
    const num = (key, title, cell) => ({ h: title, cell: (r) => cell(r[key]), cls: 'num', sortValue: (r) => r[key] });
    renderTable(this.c.stats, [
      { h: 'col.severity', cell: (r) => sevBadge(r.sev), sortValue: (r) => sevRank(r.sev) },
      num('incidents', 'col.incidents', fmtInt),
      num('acknowledged', 'col.ackedN', fmtInt),
      num('resolved', 'col.resolvedN', fmtInt),
      num('mean_ack_secs', 'col.meanAck', secs),
      num('max_ack_secs', 'col.maxAck', secs),
      num('mean_resolve_secs', 'col.meanResolve', secs),
      num('max_resolve_secs', 'col.maxResolve', secs),
    ], rows, (r) => `incident-stats-${r.sev}`);
    if (!rows.length) showTableMessage(this.c.stats, t('inc.stats.none'));
  }

  async loadTimeline() {
    const range = this.range;
    const b = bounds(range, serverNow());
    const start = b.from * 1000;
    const end = b.to * 1000;
    try {
      const [nodes, incidents, windows] = await Promise.all([
        this.fetch(paths.nodes()),
        this.fetch(paths.incidents({ from: b.from, to: range.key === 'custom' ? b.to : null, limit: 10000, ...this.q() })),
        this.fetch(paths.maintenance()),
      ]);
      if (range === this.range) this.renderTimeline(range.key, start, end, nodes, incidents, windows);
    } catch (e) {
      if (e.name !== 'AbortError') this.c.timeline.replaceChildren(h('p', { class: 'empty', text: loadError(e) }));
    }
  }

  /** One track per node: outages (down, unreachable, flapping) over maintenance windows. */
  renderTimeline(range, start, end, nodes, incidents, windows) {
    const span = end - start;
    const pct = (x) => `${(((Math.min(end, Math.max(start, x)) - start) / span) * 100).toFixed(3)}%`;
    const seg = (from, to, cls, title, extra) => {
      const a = Math.max(from, start);
      const b = Math.min(to, end);
      if (b <= a) return null;
      return h('span', {
        class: `seg ${cls}`, title, ...extra,
        style: `left:${pct(a)};width:max(3px, calc(${pct(b)} - ${pct(a)}))`,
      });
    };
    const list = nodes.filter((n) => n.status !== 'revoked' && (!incFilter.agency || n.agency === incFilter.agency))
      .sort((a, b) => a.agency.localeCompare(b.agency) || a.node_id.localeCompare(b.node_id));
    const rows = list.map((n) => {
      // Outages only: agent health and clock skew are conditions beside them, not time the node was away.
      const mine = incidents.filter((i) => i.node_id === n.node_id && OUTAGE_KINDS.has(i.kind));
      const enrolled = Date.parse(n.enrolled_at);
      const track = h('div', { class: 'track' },
        Number.isFinite(enrolled) ? seg(start, enrolled, 'seg-none', `${t('tl.none')} (${fmtDateTime(enrolled)})`, { 'data-kind': 'none' }) : null,
        ...windows.filter((m) => windowCovers(m, n.node_id, n.agency)).map((m) => seg(m.starts_ms, m.ends_ms, 'seg-maintenance',
          `${t('tl.maintenance')}: ${fmtDateTime(m.starts_ms)} – ${fmtDateTime(m.ends_ms)} · ${m.reason}`, { 'data-kind': 'maintenance' })),
        ...mine.map((i) => {
          const kind = i.kind === 'unreachable' ? 'unreachable' : i.kind === 'flapping' ? 'flapping' : 'down';
          const to = i.resolved_ms ?? end;
          return seg(i.started_ms, to, `seg-${kind}${i.maintenance ? ' in-maint' : ''}`,
            `${t(`tl.${kind}`)}: ${fmtDateTime(i.started_ms)} – ${i.resolved_ms == null ? t('inc.ongoing') : fmtDateTime(i.resolved_ms)} (${fmtSpan(to - i.started_ms)})`,
            { 'data-kind': kind, 'data-incident': String(i.id) });
        }));
      return h('div', { class: 'tl-row', 'data-testid': `timeline-row-${n.node_id}`, 'data-node': n.node_id },
        h('div', { class: 'tl-label' }, h('span', { class: 'strong', text: n.node_id }), h('span', { class: 'sub', text: agencyLabel(n.agency) })),
        track);
    });
    const ticks = axisTicks(start, end).map(([x, text]) => h('span', { class: 'tick', style: `left:${pct(x)}`, text }));
    const axis = h('div', { class: 'tl-row tl-axis', 'aria-hidden': 'true' }, h('div', { class: 'tl-label' }), h('div', { class: 'axis' }, ...ticks));
    this.c.timeline.dataset.range = range;
    this.c.timeline.dataset.rows = String(rows.length);
    this.c.timeline.replaceChildren(...(rows.length ? [...rows, axis] : [h('p', { class: 'empty', text: t('empty') })]));
  }
}
