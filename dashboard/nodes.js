// Nodes: what a tile or a row shows for a node; #/nodes, the list of
// every node (an agency officer's own only; the server filters) with, for
// an admin, a new enrollment token and revocation, each confirmed first;
// and #/node/<id>, one node: its state, health, the records it lost
// (`dropped_records`, `refused_records`) and its incidents.
import {
  t, tn, fmtAgo, fmtDateTime, fmtInt, fmtNum, fmtBytes, fmtDuration, fmtSpan,
} from './i18n.js';
import { h, setText, showTableMessage, formMessage, when } from './dom.js';
import { renderTable } from './table.js';
import { rankOf } from './sorting.js';
import { SEVERITIES } from './alarms.js';
import { getJSON, postJSON } from './api.js';
import * as paths from './paths.js';
import { loadError } from './errors.js';
import { RangePicker, rangeFromHash, rangeLabel, bounds, HISTORY_PRESETS } from './timerange.js';
import { can } from './session.js';
import { CollectorsLine } from './collectors.js';
import { confirmDialog, openDialog, secretBox } from './dialogs.js';

export function statusLabel(s) { return t(`status.${s}`) || s; }

/**
 * What a node tile shows: the outage detector's liveness (up, down,
 * unreachable, flapping) where it has one, else the registry's status
 * (never connected, revoked).
 */
export function nodeState(n) {
  if (n.status === 'revoked') return 'revoked';
  const l = n.liveness;
  if (l === 'up' || l === 'down' || l === 'unreachable' || l === 'flapping') return l;
  if (l === 'unknown') return n.status === 'never' ? 'never' : 'unknown';
  return n.status;
}

export function statusCell(n) {
  const st = nodeState(n);
  return h('span', { class: 'node status-cell', 'data-status': st }, h('span', { class: 'node-dot', 'aria-hidden': 'true' }), statusLabel(st));
}

const REFRESH_MS = 10000;

/** #/nodes */
export class NodesView {
  /**
   * serverNow(): the collector's clock; agencyLabel(code): its name, once
   * agencies(signal) has fetched the list.
   */
  constructor({ serverNow, agencyLabel, agencies }) {
    this.serverNow = serverNow;
    this.agencyLabel = agencyLabel;
    this.agencies = agencies;
    this.ctl = new AbortController();
  }

  mount(root) {
    document.title = `${t('nodes.title')} · Simpul NOC`;
    this.table = h('table', { class: 'data', 'data-testid': 'node-list-table' });
    this.message = formMessage('node-message');
    this.count = h('span', { class: 'panel-note', 'data-testid': 'node-count' });
    root.replaceChildren(h('div', { class: 'agency-page nodes-page', 'data-testid': 'nodes-page' },
      h('nav', { class: 'crumbs', 'aria-label': 'breadcrumb' }, h('a', { href: '#/', text: t('nav.back') })),
      h('section', { class: 'panel', 'aria-labelledby': 'h-node-list' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-node-list', text: t('nodes.title') }), this.count,
          can.admin() ? h('span', { class: 'panel-note', text: t('nodes.adminNote') }) : null),
        this.message,
        h('div', { class: 'table-wrap' }, this.table)),
      can.operate() ? h('section', { class: 'panel', 'aria-labelledby': 'h-collectors' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-collectors', text: t('collectors.title') })),
        (this.collectors = new CollectorsLine({ withTable: true })).el) : null));
    this.load();
    this.timer = setInterval(() => this.load(), REFRESH_MS);
  }

  update() {}

  destroy() {
    clearInterval(this.timer);
    this.collectors?.destroy();
    this.ctl.abort();
  }

  async load() {
    try {
      await this.agencies(this.ctl.signal);
      this.render(await getJSON(paths.nodes(), { signal: this.ctl.signal }));
    } catch (e) {
      if (e.name !== 'AbortError' && !this.nodes) showTableMessage(this.table, loadError(e));
    }
  }

  render(nodes) {
    this.nodes = nodes;
    const now = this.serverNow();
    const rows = [...nodes].sort((a, b) => a.agency.localeCompare(b.agency) || a.node_id.localeCompare(b.node_id));
    this.count.textContent = tn('nodes.total', rows.length, { n: fmtInt(rows.length) });
    const cols = [
      { h: 'col.node', cell: (n) => h('a', { class: 'strong', href: `#/node/${encodeURIComponent(n.node_id)}`, 'data-testid': `node-link-${n.node_id}`, text: n.node_id }) },
      { h: 'col.agency', cell: (n) => h('a', { href: `#/agency/${encodeURIComponent(n.agency)}`, text: this.agencyLabel(n.agency) }) },
      { h: 'col.status', cell: (n) => statusCell(n) },
      { h: 'col.lastSeen', cell: (n) => (n.last_seen ? fmtAgo(now - Date.parse(n.last_seen)) : t('seen.never')), title: (n) => (n.last_seen ? fmtDateTime(Date.parse(n.last_seen)) : null), sortValue: (n) => (n.last_seen ? Date.parse(n.last_seen) : null) },
      { h: 'col.address', cell: (n) => n.address || '—', cls: 'mono' },
      { h: 'col.version', cell: (n) => n.agent_version || n.health?.agent_version || '—' },
      { h: 'col.policy', cell: (n) => policyCell(n.policy) },
      { h: 'col.lostRecords', cell: (n) => lossCell(n.dropped_records), cls: 'num', title: () => t('node.dropped.help'), sortValue: (n) => n.dropped_records ?? 0 },
      { h: 'col.refusedRecords', cell: (n) => lossCell(n.refused_records), cls: 'num', title: () => t('node.refused.help'), sortValue: (n) => n.refused_records ?? 0 },
    ];
    if (can.admin()) cols.push({ h: 'col.actions', cell: (n) => this.actions(n), sort: false });
    renderTable(this.table, cols, rows, (n) => `node-row-${n.node_id}`, { rowData: (n) => ({ status: nodeState(n) }) });
  }

  actions(n) {
    return h('span', { class: 'row-actions' },
      h('button', { type: 'button', class: 'btn', 'data-testid': `node-enroll-${n.node_id}`, text: t('nodes.enroll'), onclick: () => this.enroll(n) }),
      n.status === 'revoked' ? null : h('button', {
        type: 'button', class: 'btn danger', 'data-testid': `node-revoke-${n.node_id}`, text: t('nodes.revoke'), onclick: () => this.revoke(n),
      }));
  }

  async enroll(n) {
    const ok = await confirmDialog({
      title: t('nodes.enroll.title', { node: n.node_id }), text: t('nodes.enroll.confirm', { node: n.node_id }),
      ok: t('nodes.enroll.ok'), danger: false,
    });
    if (!ok) return;
    this.message.clear();
    let issued;
    try {
      issued = await postJSON(paths.nodeEnrollmentToken(n.node_id), undefined, { signal: this.ctl.signal });
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('nodes.error', { e: e.message }));
      return;
    }
    // Shown once, in a dialog of its own: only its hash stays on the server.
    await openDialog({
      title: t('nodes.enroll.issued', { node: issued.node_id }),
      testid: 'enroll-dialog',
      content: [
        secretBox(t('nodes.enroll.token'), issued.token, 'enroll-token'),
        h('p', { class: 'note', text: t('nodes.enroll.note', { t: fmtDateTime(issued.expires_ms) }) }),
      ],
      ok: t('dlg.done'),
      cancel: t('dlg.close'),
    });
  }

  async revoke(n) {
    const ok = await confirmDialog({
      title: t('nodes.revoke.title', { node: n.node_id }), text: t('nodes.revoke.confirm', { node: n.node_id }), ok: t('nodes.revoke'),
    });
    if (!ok) return;
    try {
      await postJSON(paths.nodeRevoke(n.node_id), undefined, { signal: this.ctl.signal });
      this.message.say('ok', t('nodes.revoked', { node: n.node_id }));
      this.load();
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('nodes.error', { e: e.message }));
    }
  }
}

function policyCell(p) {
  if (!p || p.state === 'none') return '—';
  const label = `${t(`policy.${p.state}`)}${p.version ? ` · v${p.version}` : ''}`;
  return h('span', { class: `badge policy-${p.state}`, 'data-state': p.state, title: p.error || null, text: label });
}

/** A count of lost records: highlighted when not zero. */
function lossCell(v) {
  const n = v ?? 0;
  return h('span', { class: n > 0 ? 'loss' : null, 'data-value': String(n), text: fmtInt(n) });
}

const NODE_REFRESH_MS = 5000;

/** #/node/<id>: one node. */
export class NodeView {
  constructor(id, { serverNow, agencyLabel, agencies }) {
    this.id = id;
    this.serverNow = serverNow;
    this.agencyLabel = agencyLabel;
    this.agencies = agencies;
    this.ctl = new AbortController();
  }

  mount(root) {
    document.title = `${this.id} · Simpul NOC`;
    const c = this.c = {
      agency: h('a', { class: 'node-agency', 'data-testid': 'node-page-agency' }),
      status: h('span', { 'data-testid': 'node-page-status' }),
      notfound: h('p', { class: 'notice', 'data-testid': 'node-page-notfound', hidden: true }),
      facts: h('dl', { class: 'facts', 'data-testid': 'node-facts' }),
      dropped: h('span', { class: 'num', 'data-testid': 'node-dropped-records' }),
      refused: h('span', { class: 'num', 'data-testid': 'node-refused-records' }),
      agentDropped: h('p', { class: 'kpi-detail', 'data-testid': 'node-spool-dropped' }),
      spool: h('p', { class: 'kpi-detail', 'data-testid': 'node-spool' }),
      health: h('dl', { class: 'facts', 'data-testid': 'node-health' }),
      incidents: h('table', { class: 'data', 'data-testid': 'node-incidents-table' }),
      exporter: h('dl', { class: 'facts', 'data-testid': 'node-exporter' }),
      domains: h('table', { class: 'data', 'data-testid': 'node-exporter-domains' }),
    };
    const kpi = (id, label, value, ...notes) => h('section', { class: 'kpi loss-kpi', 'aria-labelledby': id },
      h('h3', { class: 'kpi-label', id, text: label }), h('div', { class: 'kpi-value' }, value), ...notes);
    const panel = (id, title, ...body) => h('section', { class: 'panel', 'aria-labelledby': id },
      h('div', { class: 'panel-head' }, typeof title === 'string' ? h('h3', { id, text: title }) : title), ...body);
    // The incidents' range, from the address (7 days unless it says otherwise).
    this.range = rangeFromHash(HISTORY_PRESETS, '7d');
    this.picker = new RangePicker({
      presets: HISTORY_PRESETS, value: this.range, testid: 'node-range-', serverNow: this.serverNow,
      onChange: (r) => { this.range = r; this.incTitle(); this.load(); },
    });
    c.incTitle = h('h3', { id: 'h-node-inc' });
    this.incTitle();
    root.replaceChildren(h('div', { class: 'agency-page node-page', 'data-testid': 'node-page', 'data-node': this.id },
      h('nav', { class: 'crumbs tabs', 'aria-label': 'breadcrumb' },
        h('a', { href: '#/', text: t('nav.back') }), h('a', { class: 'tab', href: '#/nodes', text: t('nodes.title') })),
      h('div', { class: 'agency-hero node-hero' },
        h('div', { class: 'hero-id' }, h('h2', { class: 'agency-title', text: this.id }), c.agency, h('div', null, c.status), c.notfound),
        kpi('k-dropped', t('node.dropped'), c.dropped, h('p', { class: 'kpi-detail wrap', text: t('node.dropped.help') }), c.agentDropped, c.spool),
        kpi('k-refused', t('node.refused'), c.refused, h('p', { class: 'kpi-detail wrap', text: t('node.refused.help') }))),
      h('div', { class: 'two' },
        panel('h-node-facts', t('node.facts'), c.facts),
        panel('h-node-health', t('node.health'), c.health)),
      c.exporterPanel = panel('h-node-exporter', t('node.exporter'), h('p', { class: 'note', text: t('node.exporter.note') }), c.exporter,
        h('div', { class: 'table-wrap' }, c.domains)),
      panel('h-node-inc', [c.incTitle, this.picker.element()], h('div', { class: 'table-wrap' }, c.incidents))));
    c.exporterPanel.dataset.testid = 'node-exporter-panel';
    c.exporterPanel.hidden = true; // an agent's page: shown once the exporters say it is one
    this.load();
    this.timer = setInterval(() => this.load(), NODE_REFRESH_MS);
  }

  update() {}

  destroy() {
    clearInterval(this.timer);
    this.ctl.abort();
  }

  incTitle() { setText(this.c.incTitle, t('node.incidents', { range: rangeLabel(this.range) })); }

  async load() {
    const signal = this.ctl.signal;
    const range = this.range;
    const b = bounds(range, this.serverNow());
    try {
      await this.agencies(signal).catch((e) => { if (e.name === 'AbortError') throw e; });
      const [nodes, incidents, exporters] = await Promise.all([
        getJSON(paths.nodes(), { signal }),
        getJSON(paths.incidents({ node: this.id, from: b.from, to: range.key === 'custom' ? b.to : null, limit: 100 }), { signal }).catch((e) => {
          if (e.name === 'AbortError') throw e;
          return null; // a node of another agency, or gone: the node list says so
        }),
        getJSON(paths.netflowExporters(), { signal }).catch((e) => {
          if (e.name === 'AbortError') throw e;
          return []; // an older collector: no exporters to show
        }),
      ]);
      if (range === this.range) {
        this.render(nodes.find((n) => n.node_id === this.id) || null, incidents);
        this.renderExporter(exporters.find((x) => x.node_id === this.id) || null);
      }
    } catch (e) {
      if (e.name !== 'AbortError' && !this.node) showTableMessage(this.c.incidents, loadError(e));
    }
  }

  render(n, incidents) {
    const c = this.c;
    this.node = n;
    c.notfound.hidden = !!n;
    if (!n) {
      setText(c.notfound, t('node.notfound', { node: this.id }));
      return;
    }
    c.agency.href = `#/agency/${encodeURIComponent(n.agency)}`;
    setText(c.agency, this.agencyLabel(n.agency));
    c.status.replaceChildren(statusCell(n));
    const dropped = n.dropped_records ?? 0;
    const refused = n.refused_records ?? 0;
    c.dropped.dataset.value = String(dropped);
    c.refused.dataset.value = String(refused);
    setText(c.dropped, fmtInt(dropped));
    setText(c.refused, fmtInt(refused));
    c.dropped.closest('.kpi').dataset.level = dropped > 0 ? 'crit' : 'ok';
    c.refused.closest('.kpi').dataset.level = refused > 0 ? 'warn' : 'ok';
    const hl = n.health;
    setText(c.agentDropped, hl ? t('node.spoolDropped', { n: fmtInt(hl.spool_dropped_records ?? 0) }) : '');
    setText(c.spool, hl && hl.spool_quota_bytes ? t('node.spool', { used: fmtBytes(hl.spool_bytes), quota: fmtBytes(hl.spool_quota_bytes), n: fmtInt(hl.spool_batches) }) : '');
    const now = this.serverNow();
    const seen = n.last_seen ? Date.parse(n.last_seen) : null;
    const enrolled = n.enrolled_at ? Date.parse(n.enrolled_at) : null;
    facts(c.facts, [
      ['col.agency', this.agencyLabel(n.agency)],
      ['node.hostname', n.hostname || '—'],
      ['col.address', n.address || '—'],
      ['col.version', n.agent_version || hl?.agent_version || '—'],
      ['col.lastSeen', seen == null ? t('seen.never') : `${fmtAgo(now - seen)} · ${fmtDateTime(seen)}`],
      ['node.enrolled', enrolled == null || !Number.isFinite(enrolled) ? '—' : fmtDateTime(enrolled)],
      ['col.policy', policyCell(n.policy)],
    ]);
    const drops = hl ? (hl.interfaces || []).reduce((s, i) => s + (i.kernel_drops || 0) + (i.queue_drops || 0), 0) : null;
    facts(c.health, hl ? [
      ['col.uptime', fmtDuration(hl.uptime_secs)],
      ['col.cpu', `${fmtNum(hl.cpu_percent, 1)}%`],
      ['node.memory', fmtBytes(hl.rss_bytes)],
      ['node.packets', fmtInt(hl.packets)],
      ['col.drops', fmtInt(drops)],
      ['node.decodeErrors', fmtInt(hl.decode_errors)],
      ['node.activeFlows', fmtInt(hl.active_flows)],
      ...linkFacts(hl),
    ] : [['node.health', t('node.noHealth')]]);
    if (incidents) this.renderIncidents(incidents, now);
  }

  /** A NetFlow/IPFIX exporter's protocol, sampling, templates and gaps; hidden for agents. */
  renderExporter(x) {
    const c = this.c;
    c.exporterPanel.hidden = !x;
    if (!x) return;
    const heard = x.last_heard_ms != null;
    const proto = t(`origin.${x.protocol}`);
    const rates = x.sampling_intervals || [];
    const rate = (n) => (n > 1 ? t('node.exporter.samplingValue', { n: fmtInt(n) }) : t('node.exporter.unsampled'));
    const span = (id, text) => h('span', { 'data-testid': id, text });
    facts(c.exporter, [
      ['node.exporter.protocol', span('node-exporter-protocol', proto)],
      ['node.exporter.sampling', span('node-exporter-sampling', heard && rates.length ? rates.map(rate).join(' · ') : t('node.exporter.notHeard'))],
      ['node.exporter.templates', span('node-exporter-templates', fmtInt(x.templates ?? 0))],
      ['node.exporter.lost', h('span', { 'data-testid': 'node-exporter-lost', 'data-value': String(x.lost ?? 0), class: x.lost > 0 ? 'loss' : null, title: t('node.exporter.lost.help'), text: fmtInt(x.lost ?? 0) })],
      ['node.exporter.lastExport', span('node-exporter-last-export', x.last_export_ms ? `${fmtAgo(this.serverNow() - x.last_export_ms)} · ${fmtDateTime(x.last_export_ms)}` : t('node.exporter.notHeard'))],
      ['node.exporter.traffic', span('node-exporter-traffic', t('node.exporter.trafficValue', { d: fmtInt(x.datagrams ?? 0), r: fmtInt(x.records ?? 0), e: fmtInt(x.decode_errors ?? 0) }))],
    ]);
    renderTable(c.domains, [
      { h: 'node.exporter.domain', cell: (d) => fmtInt(d.domain), cls: 'num', sortValue: (d) => d.domain },
      { h: 'node.exporter.protocol', cell: (d) => t(`origin.${d.protocol}`) },
      { h: 'node.exporter.sampling', cell: (d) => (d.sampling_interval > 1 ? `1:${fmtInt(d.sampling_interval)}` : '1:1'), sortValue: (d) => d.sampling_interval },
      { h: 'node.exporter.templates', cell: (d) => fmtInt(d.templates), cls: 'num', sortValue: (d) => d.templates },
      { h: 'node.exporter.options', cell: (d) => fmtInt(d.options_templates), cls: 'num', sortValue: (d) => d.options_templates },
      { h: 'node.exporter.lost', cell: (d) => lossCell(d.lost), cls: 'num', title: () => t('node.exporter.lost.help'), sortValue: (d) => d.lost },
      { h: 'node.exporter.datagrams', cell: (d) => fmtInt(d.datagrams), cls: 'num', sortValue: (d) => d.datagrams },
      { h: 'node.exporter.lastExport', cell: (d) => (d.last_export_ms ? fmtDateTime(d.last_export_ms) : '—'), cls: 'num', sortValue: (d) => d.last_export_ms },
    ], x.domains || [], (d) => `node-exporter-domain-${d.protocol}-${d.domain}`);
  }

  renderIncidents(list, now) {
    renderTable(this.c.incidents, [
      { h: 'col.severity', cell: (i) => h('span', { class: `sev sev-${i.severity}`, text: t(`sev.${i.severity}`) }), sortValue: (i) => rankOf(SEVERITIES, i.severity) },
      { h: 'col.kind', cell: (i) => h('span', { class: `kind kind-${i.kind}`, text: t(`kind.${i.kind}`) }) },
      { h: 'col.started', cell: (i) => when(i.started_ms), cls: 'num', title: (i) => fmtDateTime(i.started_ms), sortValue: (i) => i.started_ms },
      { h: 'col.duration', cell: (i) => (i.resolved_ms == null ? `${fmtSpan(now - i.started_ms)} · ${t('inc.ongoing')}` : fmtSpan(i.resolved_ms - i.started_ms)), cls: 'num', sortValue: (i) => (i.resolved_ms ?? now) - i.started_ms },
      { h: 'col.acked', cell: (i) => (i.acked_ms == null ? '—' : t('ack.by', { by: i.acked_by, t: when(i.acked_ms) })), sortValue: (i) => i.acked_ms },
    ], list, (i) => `node-incident-${i.id}`);
  }
}

/** Sum of a field over a list (absent fields count 0). */
const total = (list, key) => list.reduce((s, x) => s + (x[key] || 0), 0);

/**
 * The collector address, name lanes, name refusals and IPFIX export, each
 * only when the agent reports it (older agents, no enforcement, no export).
 */
function linkFacts(hl) {
  const rows = [];
  const span = (id, text) => h('span', { 'data-testid': id, text });
  const c = hl.collector;
  if (c) {
    rows.push(['node.collector', span('node-health-collector',
      t('node.collectorLink', { url: c.url, i: fmtInt((c.index ?? 0) + 1), n: fmtInt(c.failovers ?? 0) }))]);
  }
  const lanes = hl.name_lanes || [];
  if (lanes.length) {
    rows.push(['node.nameLanes', span('node-health-name-lanes', t('node.nameLanesValue', {
      lanes: fmtInt(lanes.length), frames: fmtInt(total(lanes, 'frames')), blocks: fmtInt(total(lanes, 'blocks')),
      lost: fmtInt(total(lanes, 'dropped') + total(lanes, 'read_errors')),
    }))]);
  }
  const b = hl.name_block;
  if (b) {
    rows.push(['node.nameBlock', span('node-health-name-block', t('node.nameBlockValue', {
      entries: fmtInt(b.entries_added ?? 0), resets: fmtInt(b.resets_sent ?? 0),
      errors: fmtInt((b.failures ?? 0) + (b.reset_errors ?? 0)),
    }))]);
  }
  const x = hl.ipfix;
  if (x) {
    rows.push(['node.ipfix', span('node-health-ipfix', t('node.ipfixValue', {
      messages: fmtInt(x.messages ?? 0), records: fmtInt(x.records ?? 0),
      errors: fmtInt((x.send_errors ?? 0) + (x.record_errors ?? 0)), skipped: fmtInt(x.interim_skipped ?? 0),
    }))]);
  }
  return rows;
}

/** A definition list from [[label key, text | Node]]. */
function facts(dl, rows) {
  dl.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', { text: t(k) }), h('dd', null, v)]));
}
