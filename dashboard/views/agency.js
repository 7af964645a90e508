// #/agency/<code>: one agency's rates against its allocation, the live
// chart (last 15 min per second), history, top hosts and sites, the newest
// flows, its blocked attempts and its nodes.
import { t, fmtBps, fmtCap, fmtBytes, fmtPct, fmtInt, fmtNum, fmtAgo, fmtDuration } from '../i18n.js';
import { getJSON, getPage } from '../api.js';
import * as paths from '../paths.js';
import { RateChart } from '../charts.js';
import { h, setText, when } from '../dom.js';
import { can } from '../session.js';
import { nodeState, statusLabel, statusCell } from '../nodes.js';
import {
  state, cache, serverNow, SERIES_SPAN, denseSeries, liveEnd, replaceSeries, agencyName, unitLabel, agencies,
} from '../state.js';
import { level, ratioOf, endpoint, protoName } from '../format.js';
import { bigBps, setBigBps, bar, setBar, sourceBadge, originBadge } from '../widgets.js';
import { BlockedPanel, BLOCKED_REFRESH_MS } from './blocked.js';
import { RangePicker, rangeFromHash, bounds, HISTORY_PRESETS } from '../timerange.js';
import { loadError } from '../errors.js';
import { DataTable, renderTable } from '../table.js';
import { downloadCsv, csvName } from '../csv.js';
import { searchHref } from './search.js';

/** The history's step: minutes while they are kept (30 days) and the range is short, else hours. */
function stepFor(from, to, nowSecs) {
  return to - from <= 36 * 3600 && from >= nowSecs - 30 * 86400 + 3600
    ? { step: '1m', stepSecs: 60 } : { step: '1h', stepSecs: 3600 };
}

export class AgencyView {
  constructor(code) {
    this.code = code;
    this.timers = [];
    this.ctl = new AbortController();
    // Top hosts, flows and blocked attempts name client addresses: not for the wall's viewer.
    this.detail = can.read();
  }

  mount(root) {
    this.root = root;
    const code = this.code;
    document.title = `${agencyName(code)} · Simpul NOC`;
    const c = this.c = {
      title: h('h2', { class: 'agency-title', id: 'agency-title' }),
      notfound: h('p', { class: 'notice', hidden: true }),
      inRate: bigBps('agency-page-in-bps'), outRate: bigBps('agency-page-out-bps'),
      inPct: h('span', { class: 'kpi-pct', 'data-testid': 'agency-page-in-pct' }),
      outPct: h('span', { class: 'kpi-pct', 'data-testid': 'agency-page-out-pct' }),
      inBar: bar('wide'), outBar: bar('wide'),
      inNote: h('div', { class: 'kpi-detail' }), outNote: h('div', { class: 'kpi-detail' }),
      inSplit: h('div', { class: 'kpi-detail split' }), outSplit: h('div', { class: 'kpi-detail split' }),
      nodeChips: h('ul', { class: 'chips' }),
      liveChart: h('div', { class: 'chart', 'data-testid': 'live-chart' }),
      histChart: h('div', { class: 'chart', 'data-testid': 'history-chart' }),
      totals: h('span', { class: 'panel-note', 'data-testid': 'history-totals' }),
      histPeaks: h('p', { class: 'panel-note hist-peaks', 'data-testid': 'history-peaks' }),
      nodes: h('table', { class: 'data', 'data-testid': 'nodes-table' }),
      histCsv: h('button', {
        type: 'button', class: 'btn small', 'data-testid': 'history-csv', text: t('chart.csv'),
        onclick: () => this.historyCsv(),
      }),
    };
    this.makeTables();
    // One range for the page (history and blocked attempts), from the address.
    this.range = rangeFromHash(HISTORY_PRESETS, '24h');
    this.picker = new RangePicker({
      presets: HISTORY_PRESETS, value: this.range, testid: 'range-', serverNow, onChange: (r) => this.setRange(r),
    });
    this.blocked = this.detail ? new BlockedPanel(code, this.ctl.signal, { range: this.range }) : null;
    const panel = (id, title, extra, ...body) => h('section', { class: 'panel', 'aria-labelledby': id },
      h('div', { class: 'panel-head' }, h('h3', { id, text: title }), extra), ...body);
    root.replaceChildren(
      h('div', { class: 'agency-page', 'data-testid': 'agency-page', 'data-code': code },
        h('nav', { class: 'crumbs', 'aria-label': 'breadcrumb' }, h('a', { href: '#/', text: t('nav.back') })),
        h('div', { class: 'agency-hero' },
          h('div', { class: 'hero-id' }, c.title, h('span', { class: 'code', text: code }), c.nodeChips, c.notfound,
            // Policies are for admins, operators and the agency's officer (not the wall's viewer).
            this.detail ? h('a', { class: 'panel-link hero-link', href: `#/policy/${encodeURIComponent(code)}`, 'data-testid': 'agency-policy-link', text: t('pol.link') }) : null),
          h('section', { class: 'kpi', 'aria-labelledby': 'k-in' },
            h('h3', { class: 'kpi-label', id: 'k-in', text: `↓ ${t('dir.in')}` }),
            h('div', { class: 'kpi-value' }, c.inRate, c.inPct), c.inBar, c.inNote, c.inSplit),
          h('section', { class: 'kpi', 'aria-labelledby': 'k-out' },
            h('h3', { class: 'kpi-label', id: 'k-out', text: `↑ ${t('dir.out')}` }),
            h('div', { class: 'kpi-value' }, c.outRate, c.outPct), c.outBar, c.outNote, c.outSplit)),
        panel('h-live', t('agency.live'), h('div', { class: 'head-tools' }, h('button', {
          type: 'button', class: 'btn small', 'data-testid': 'live-csv', text: t('chart.csv'), onclick: () => this.liveCsv(),
        })), c.liveChart),
        panel('h-hist', t('agency.history'), h('div', { class: 'head-tools' }, c.totals,
          this.picker.element(), c.histCsv), c.histChart, c.histPeaks),
        this.detail ? panel('h-units', t('agency.units'), null, this.t.units.element()) : null,
        this.detail ? h('div', { class: 'two' },
          panel('h-hosts', t('agency.topHosts'), null, this.t.hosts.element()),
          panel('h-sites', t('agency.topSites'), null, this.t.sites.element()))
          : panel('h-sites', t('agency.topSites'), null, this.t.sites.element()),
        this.detail ? panel('h-flows', t('agency.flows'), null, this.t.flows.element()) : null,
        this.blocked?.element('h3'),
        panel('h-nodes', t('agency.nodes'), null, h('div', { class: 'table-wrap' }, c.nodes)),
      ),
    );
    const alloc = () => {
      const a = state.overview?.agencies?.find((x) => x.code === code);
      return a ? { down: a.alloc_down_bps, up: a.alloc_up_bps } : null;
    };
    this.live = new RateChart(c.liveChart, { height: 300, live: true, span: SERIES_SPAN, alloc });
    // Drag across the history to look closer: a custom range, in the address.
    this.hist = new RateChart(c.histChart, {
      height: 260, live: false, alloc, peaks: true, onSelect: (from, to) => this.picker.set({ key: 'custom', from, to }),
    });
    this.update();
    this.renderCached();
    this.loadTables();
    this.loadHistory();
    if (this.blocked) {
      this.blocked.load();
      this.every(BLOCKED_REFRESH_MS, () => this.blocked.load());
    }
    this.every(15000, () => this.loadTables());
    this.every(60000, () => this.loadHistory());
    this.every(5000, () => { if (state.feed !== 'live') this.loadSeries(); });
    if (state.feed !== 'live') this.loadSeries();
  }

  every(ms, fn) { this.timers.push(setInterval(fn, ms)); }

  destroy() {
    this.timers.forEach(clearInterval);
    this.ctl.abort();
    this.live?.destroy();
    this.hist?.destroy();
  }

  /** Fetch and remember the answer under `key` (default: the path) for instant re-renders. */
  async fetchCached(path, key = path) {
    const data = await getJSON(path, { signal: this.ctl.signal });
    cache.set(key, data);
    return data;
  }

  historyKey() {
    const r = this.range;
    return `history:${this.code}:${r.key === 'custom' ? `${r.from}-${r.to}` : r.key}`;
  }

  update() {
    const c = this.c;
    const ov = state.overview;
    const a = ov?.agencies?.find((x) => x.code === this.code);
    setText(c.title, a ? a.name : this.code);
    if (a) document.title = `${a.name} · Simpul NOC`;
    c.notfound.hidden = !(ov && !a);
    if (ov && !a) setText(c.notfound, t('agency.notfound', { code: this.code }));
    if (a) {
      this.root.firstChild.dataset.ts = ov.ts;
      const rin = ratioOf(a.in_bps, a.alloc_down_bps);
      const rout = ratioOf(a.out_bps, a.alloc_up_bps);
      setBigBps(c.inRate, a.in_bps);
      setBigBps(c.outRate, a.out_bps);
      setText(c.inPct, fmtPct(rin)); c.inPct.dataset.level = level(rin);
      setText(c.outPct, fmtPct(rout)); c.outPct.dataset.level = level(rout);
      setBar(c.inBar, rin, t('dir.in'));
      setBar(c.outBar, rout, t('dir.out'));
      setText(c.inNote, a.alloc_down_bps > 0 ? `${t('kpi.of', { cap: fmtCap(a.alloc_down_bps) })} ${t('alloc')}` : t('alloc.none'));
      setText(c.outNote, a.alloc_up_bps > 0 ? `${t('kpi.of', { cap: fmtCap(a.alloc_up_bps) })} ${t('alloc')}` : t('alloc.none'));
      setText(c.inSplit, `${t('agency.internet')} ${fmtBps(a.internet_in_bps)} · ${t('agency.intranet')} ${fmtBps(a.intranet_in_bps)}`);
      setText(c.outSplit, `${t('agency.internet')} ${fmtBps(a.internet_out_bps)} · ${t('agency.intranet')} ${fmtBps(a.intranet_out_bps)}`);
    }
    const nodes = (ov?.nodes || []).filter((n) => n.agency === this.code);
    this.nodeList = nodes;
    const key = nodes.map((n) => `${n.node_id}:${nodeState(n)}`).join('|');
    if (key !== this.nodeKey) {
      this.nodeKey = key;
      c.nodeChips.replaceChildren(...nodes.map((n) => h('li', { class: 'chip node', 'data-status': nodeState(n), 'data-testid': `agency-node-${n.node_id}` },
        h('span', { class: 'node-dot', 'aria-hidden': 'true' }), `${n.node_id} · ${statusLabel(nodeState(n))}`)));
    }
    this.renderNodesTable();
    this.drawLive();
  }

  /** One value per second over the last 15 min; a second without a point is zero. */
  drawLive() {
    const d = denseSeries(this.code, liveEnd(this.code));
    if (!d) return;
    this.live.setData(d.xs, d.ins, d.outs);
    this.c.liveChart.dataset.known = String(d.known);
  }

  tick() { this.renderNodesTable(); }

  renderNodesTable() {
    const now = serverNow();
    const drops = (n) => (n.health.interfaces || []).reduce((s, i) => s + (i.kernel_drops || 0) + (i.queue_drops || 0), 0);
    renderTable(this.c.nodes, [
      { h: 'col.node', cell: (n) => h('a', { class: 'strong', href: `#/node/${encodeURIComponent(n.node_id)}`, text: n.node_id }) },
      { h: 'col.status', cell: (n) => statusCell(n) },
      { h: 'col.lastSeen', cell: (n) => (n.last_seen ? fmtAgo(now - Date.parse(n.last_seen)) : t('seen.never')), sortValue: (n) => (n.last_seen ? Date.parse(n.last_seen) : null) },
      { h: 'col.address', cell: (n) => n.address || '—', cls: 'mono' },
      { h: 'col.version', cell: (n) => n.agent_version || n.health?.agent_version || '—' },
      { h: 'col.uptime', cell: (n) => (n.health ? fmtDuration(n.health.uptime_secs) : '—'), cls: 'num', sortValue: (n) => n.health?.uptime_secs },
      { h: 'col.cpu', cell: (n) => (n.health ? `${fmtNum(n.health.cpu_percent, 1)}%` : '—'), cls: 'num', sortValue: (n) => n.health?.cpu_percent },
      { h: 'col.drops', cell: (n) => (n.health ? fmtInt(drops(n)) : '—'), cls: 'num', sortValue: (n) => (n.health ? drops(n) : null) },
      { h: 'col.lostRecords', cell: (n) => fmtInt(n.dropped_records ?? 0), cls: 'num', title: () => t('node.dropped.help'), sortValue: (n) => n.dropped_records ?? 0 },
    ], this.nodeList || [], (n) => `agency-node-row-${n.node_id}`);
  }

  tablePaths() {
    const agency = this.code;
    const b = bounds(this.range, serverNow());
    return {
      hosts: paths.topHosts({ agency, limit: 10 }),
      sites: paths.topSites({ agency, limit: 10 }),
      flows: paths.flows({ agency, limit: 50 }),
      units: paths.agencyUnits(agency, { from: b.from, to: b.to }),
      unitsKey: `units:${this.historyKey()}`,
    };
  }

  /** Sortable, filterable tables with CSV; the flows page on through the API's cursor. */
  makeTables() {
    const code = this.code;
    const bytes = (key, title) => ({ key, h: title, cell: (r) => fmtBytes(r[key]), value: (r) => r[key], cls: 'num' });
    const flowsCol = { key: 'flows', h: 'col.flows', cell: (r) => fmtInt(r.flows), value: (r) => r.flows, cls: 'num' };
    const unitLink = (r) => h('a', { href: searchHref(`${code}/${r.unit}`), text: this.unitName(r.unit) });
    this.t = {
      units: new DataTable({
        id: 'units', csv: () => ['units', code], sort: { key: 'total', dir: 'desc' },
        columns: [
          { key: 'unit', h: 'col.unit', cell: (r) => h('a', { href: searchHref(`${code}/${r.unit}`), 'data-testid': `unit-link-${r.unit}`, text: r.name || r.unit }), value: (r) => r.unit },
          bytes('bytes_in', 'col.down'), bytes('bytes_out', 'col.up'),
          { key: 'total', h: 'col.bytes', cell: (r) => fmtBytes(r.bytes_in + r.bytes_out), value: (r) => r.bytes_in + r.bytes_out, cls: 'num' },
        ],
      }),
      hosts: new DataTable({
        id: 'top-hosts', csv: () => ['top-hosts', code],
        columns: [
          { key: 'host', h: 'col.host', cell: (r) => h('a', { href: searchHref(r.host), text: r.host }), value: (r) => r.host, cls: 'mono' },
          { key: 'unit', h: 'col.unit', cell: unitLink, value: (r) => r.unit },
          bytes('bytes_down', 'col.down'), bytes('bytes_up', 'col.up'), flowsCol,
        ],
      }),
      sites: new DataTable({
        id: 'top-sites', csv: () => ['top-sites', code],
        columns: [
          { key: 'site', h: 'col.site', cell: (r) => (r.site && this.detail ? h('a', { href: searchHref(r.site), text: r.site }) : r.site || t('site.unknown')), value: (r) => r.site || '', cls: 'site' },
          { key: 'source', h: 'col.source', cell: (r) => sourceBadge(r.site_source), value: (r) => r.site_source || '' },
          bytes('bytes', 'col.bytes'), flowsCol,
        ],
      }),
      flows: new DataTable({
        id: 'flows', csv: () => ['flows', code], more: () => this.moreFlows(),
        columns: [
          { key: 'time', h: 'col.time', cell: (r) => when(r.last_seen), value: (r) => r.last_seen, cls: 'num' },
          { key: 'unit', h: 'col.unit', cell: (r) => this.unitName(r.unit), value: (r) => r.unit },
          { key: 'src', h: 'col.src', cell: (r) => endpoint(r.src_ip, r.src_port), value: (r) => endpoint(r.src_ip, r.src_port), cls: 'mono' },
          { key: 'dst', h: 'col.dst', cell: (r) => endpoint(r.dst_ip, r.dst_port), value: (r) => endpoint(r.dst_ip, r.dst_port), cls: 'mono' },
          { key: 'site', h: 'col.site', cell: (r) => r.site || '—', value: (r) => r.site || '', cls: 'site' },
          { key: 'source', h: 'col.source', cell: (r) => sourceBadge(r.site_source), value: (r) => r.site_source || '' },
          { key: 'proto', h: 'col.proto', cell: (r) => protoName(r.proto) + (r.kind === 'interim' ? ` · ${t('kind.interim')}` : ''), value: (r) => r.proto },
          { key: 'scope', h: 'col.scope', cell: (r) => (r.scope ? t(`scope.${r.scope}`) : '—'), value: (r) => r.scope || '' },
          { key: 'bytes_up', h: 'col.bytesUp', cell: (r) => fmtBytes(r.bytes_up), value: (r) => r.bytes_up, cls: 'num' },
          { key: 'bytes_down', h: 'col.bytesDown', cell: (r) => fmtBytes(r.bytes_down), value: (r) => r.bytes_down, cls: 'num' },
          { key: 'origin', h: 'col.origin', cell: (r) => originBadge(r), value: (r) => `${r.origin || ''} ${r.sampling_interval ?? ''}` },
        ],
      }),
    };
  }

  renderCached() {
    const p = this.tablePaths();
    if (cache.has(p.hosts)) this.renderHosts(cache.get(p.hosts));
    if (cache.has(p.sites)) this.renderSites(cache.get(p.sites));
    if (cache.has(p.flows)) this.renderFlows(cache.get(p.flows));
    if (cache.has(p.unitsKey)) this.t.units.setRows(cache.get(p.unitsKey));
    if (cache.has(this.historyKey())) this.renderHistory(cache.get(this.historyKey()));
    this.blocked?.renderCached();
  }

  unitName(code) { return unitLabel(this.code, code); }

  async loadTables() {
    const p = this.tablePaths();
    // Unit names first, so the tables show names rather than codes.
    try { await agencies(this.ctl.signal); } catch (e) { if (e.name === 'AbortError') return; }
    const jobs = this.detail ? [
      [p.hosts, (d) => this.renderHosts(d), this.t.hosts],
      [p.sites, (d) => this.renderSites(d), this.t.sites],
      [p.units, (d) => this.t.units.setRows(d), this.t.units, p.unitsKey],
    ] : [[p.sites, (d) => this.renderSites(d), this.t.sites]];
    const flows = this.detail ? this.loadFlows(p.flows) : null;
    await Promise.all(jobs.map(async ([path, render, table, key]) => {
      try { render(await this.fetchCached(path, key)); } catch (e) {
        if (e.name === 'AbortError') return;
        if (!cache.has(key || path)) table.message(loadError(e));
      }
    }).concat(flows ? [flows] : []));
  }

  /** The newest flows; once "more" loaded older pages, the refresh leaves them be. */
  async loadFlows(path) {
    if (this.flowsPaged) return;
    try {
      const page = await getPage(path, { signal: this.ctl.signal });
      if (this.flowsPaged) return;
      cache.set(path, page.data);
      this.flowCursor = page.next;
      this.t.flows.setRows(page.data, !!page.next);
    } catch (e) {
      if (e.name !== 'AbortError' && !cache.has(path)) this.t.flows.message(loadError(e));
    }
  }

  async moreFlows() {
    if (!this.flowCursor) return null;
    const page = await getPage(paths.flows({ agency: this.code, limit: 100, cursor: this.flowCursor }), { signal: this.ctl.signal });
    this.flowsPaged = true;
    this.flowCursor = page.next;
    return { rows: page.data, more: !!page.next };
  }

  /** The history chart's points as CSV: time, bytes and rates each way. */
  historyCsv() {
    const d = cache.get(this.historyKey());
    if (!d) return;
    downloadCsv(csvName('usage', this.code, this.range.key), [
      { title: 'ts', value: (p) => p.ts },
      { title: 'bytes_in', value: (p) => p.bytes_in },
      { title: 'bytes_out', value: (p) => p.bytes_out },
      { title: 'in_bps', value: (p) => p.in_bps },
      { title: 'out_bps', value: (p) => p.out_bps },
      { title: 'internet_bytes_in', value: (p) => p.internet_bytes_in },
      { title: 'internet_bytes_out', value: (p) => p.internet_bytes_out },
      { title: 'peak_in_bps', value: (p) => p.peak_in_bps },
      { title: 'peak_out_bps', value: (p) => p.peak_out_bps },
      { title: 'p95_in_bps', value: (p) => p.p95_in_bps },
      { title: 'p95_out_bps', value: (p) => p.p95_out_bps },
    ], d.points || []);
  }

  /** The live chart's seconds as CSV (a second without a point: empty). */
  liveCsv() {
    const d = denseSeries(this.code, liveEnd(this.code));
    if (!d) return;
    const rows = d.xs.map((x, i) => ({ ts: new Date(x * 1000).toISOString(), in: d.ins[i], out: d.outs[i] }));
    downloadCsv(csvName('live', this.code), [
      { title: 'ts', value: (r) => r.ts }, { title: 'in_bps', value: (r) => r.in }, { title: 'out_bps', value: (r) => r.out },
    ], rows);
  }

  renderHosts(rows) { this.t.hosts.setRows(rows); }

  renderSites(rows) { this.t.sites.setRows(rows); }

  renderFlows(rows) { if (!this.flowsPaged) this.t.flows.setRows(rows, !!this.flowCursor); }

  setRange(r) {
    this.range = r;
    this.loadHistory();
    if (this.detail) this.loadTables();
    this.blocked?.setRange(r);
  }

  async loadHistory() {
    const r = this.range;
    const now = Math.floor(serverNow() / 1000);
    const b = bounds(r, serverNow());
    const st = stepFor(b.from, b.to, now);
    // A preset starts on a step boundary so every bucket is whole, and runs to now.
    const from = r.key === 'custom' ? b.from : Math.floor(b.from / st.stepSecs) * st.stepSecs;
    const path = paths.agencyUsage(this.code, { from, to: r.key === 'custom' ? b.to : null, step: st.step });
    this.historyPath = path;
    try {
      const d = await this.fetchCached(path, this.historyKey());
      if (this.historyPath === path) this.renderHistory(d, from, b.to);
    } catch (e) {
      if (e.name !== 'AbortError') setText(this.c.totals, loadError(e));
    }
  }

  /** The range's peak and p95 beside the totals, and the time above 95 % of the allocation. */
  renderPeaks(d) {
    const parts = [];
    if (d.peak_in_bps != null) {
      parts.push(t('agency.peaks', {
        pin: fmtBps(d.peak_in_bps), pout: fmtBps(d.peak_out_bps), qin: fmtBps(d.p95_in_bps), qout: fmtBps(d.p95_out_bps),
      }));
    }
    if (d.hours_above_95) {
      const dur = (h) => fmtDuration(Math.round(h * 3600));
      parts.push(t('agency.above95', { din: dur(d.hours_above_95.download), dout: dur(d.hours_above_95.upload) }));
    }
    if (d.steps_without_peaks) parts.push(t('agency.peaksPartial', { n: fmtInt(d.steps_without_peaks) }));
    setText(this.c.histPeaks, parts.join(' · '));
    this.c.histPeaks.dataset.peakIn = String(d.peak_in_bps ?? '');
    this.c.histPeaks.dataset.p95In = String(d.p95_in_bps ?? '');
  }

  renderHistory(d, from, to) {
    const step = d.step_secs || 60;
    const f = from ?? Math.floor(Date.parse(d.from) / 1000);
    const e = to ?? Math.floor(Date.parse(d.to) / 1000);
    // Points with no traffic are omitted: a gap means zero.
    const byTs = new Map((d.points || []).map((p) => [Math.floor(Date.parse(p.ts) / 1000), p]));
    const xs = []; const ins = []; const outs = []; const peakIns = []; const peakOuts = [];
    for (let x = Math.floor(f / step) * step; x < e; x += step) {
      const p = byTs.get(x);
      xs.push(x); ins.push(p ? p.in_bps : 0); outs.push(p ? p.out_bps : 0);
      // A step stored before peaks were kept has none (a gap, not a zero).
      peakIns.push(p ? p.peak_in_bps ?? null : 0); peakOuts.push(p ? p.peak_out_bps ?? null : 0);
    }
    this.hist.setAllocRuns((d.allocation || []).map((r) => ({
      x: Math.floor(Date.parse(r.from) / 1000), down: r.download?.rate_bps || 0, up: r.upload?.rate_bps || 0,
    })));
    this.hist.setData(xs, ins, outs, peakIns, peakOuts);
    this.renderPeaks(d);
    this.c.histChart.dataset.range = this.range.key; // set once drawn, so tests wait for the drawing
    this.c.histChart.dataset.from = String(f);
    this.c.histChart.dataset.to = String(e);
    this.c.histChart.dataset.nonzero = String((d.points || []).length);
    setText(this.c.totals, t('agency.total', { in: fmtBytes(d.total_bytes_in), out: fmtBytes(d.total_bytes_out) }));
  }

  /** Polling fallback: the last 15 min per second from the usage API. */
  async loadSeries() {
    const from = Math.floor(serverNow() / 1000) - SERIES_SPAN;
    try {
      const d = await getJSON(paths.agencyUsage(this.code, { from, step: '1s' }), { signal: this.ctl.signal });
      if (state.feed === 'live') return;
      const byTs = new Map((d.points || []).map((p) => [Math.floor(Date.parse(p.ts) / 1000), p]));
      const pts = [];
      const end = Math.floor(Date.parse(d.to) / 1000) || from + SERIES_SPAN;
      for (let x = from; x < end; x++) {
        const p = byTs.get(x);
        pts.push({ ts: new Date(x * 1000).toISOString(), in_bps: p ? p.in_bps : 0, out_bps: p ? p.out_bps : 0 });
      }
      replaceSeries(this.code, pts);
      this.drawLive();
    } catch (_) { /* the banner already says we are disconnected */ }
  }
}
