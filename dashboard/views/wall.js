// The wall (#/): KPIs, active alarms, agencies against their allocation,
// node tiles, top lists and blocked targets. At 1500 px wide and more it fills
// exactly one screen (fit()); narrower screens scroll.
import { t, tn, fmtBps, fmtCap, fmtBytes, fmtPct, fmtInt, fmtDateTime, fmtAgo } from '../i18n.js';
import { getJSON } from '../api.js';
import * as paths from '../paths.js';
import { loadError } from '../errors.js';
import { h, setText } from '../dom.js';
import { can } from '../session.js';
import { nodeState, statusLabel } from '../nodes.js';
import { state, cache, serverNow, denseSeries, liveEnd, agencyName } from '../state.js';
import { CRIT, level, ratioOf, policyTrouble } from '../format.js';
import { bigBps, setBigBps, bar, setBar, methodBadge, kindBadge } from '../widgets.js';
import { alarms, ackCell, INCIDENTS_REFRESH_MS } from '../alarms.js';
import { els } from '../chrome.js';
import { BLOCKED_REFRESH_MS } from './blocked.js';

const STATUS_ORDER = { down: 0, flapping: 1, unreachable: 2, unknown: 3, never: 4, up: 5, revoked: 6 };
const WALL_BLOCKED = paths.blockedSummary({ limit: 10 });
const WALL_INCIDENTS = paths.incidents({ open: true, limit: 500 });

/** A small in/out chart of the last 15 min on a canvas (wall rows). */
function drawSpark(canvas, code, scaleMax) {
  const w = canvas.clientWidth; const hh = canvas.clientHeight;
  if (!w || !hh) return;
  const dpr = window.devicePixelRatio || 1;
  const W = Math.round(w * dpr); const H = Math.round(hh * dpr);
  if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, W, H);
  const d = denseSeries(code, liveEnd(code));
  if (!d) return;
  const n = d.xs.length;
  const max = Math.max(scaleMax || 0, ...d.ins.filter((v) => v != null), ...d.outs.filter((v) => v != null), 1);
  const x = (i) => (i / (n - 1)) * W;
  const y = (v) => H - 1 - (Math.max(0, v) / max) * (H - 3);
  /** Trace a series, bridging nulls (skipped ticks); returns the first and last x drawn. */
  const path = (vals) => {
    ctx.beginPath();
    let x0 = null; let x1 = null;
    vals.forEach((v, i) => {
      if (v == null) return;
      if (x0 == null) { x0 = x(i); ctx.moveTo(x0, y(v)); } else ctx.lineTo(x(i), y(v));
      x1 = x(i);
    });
    return [x0, x1];
  };
  if (scaleMax) { // the allocation (the top edge unless traffic went above it)
    const ya = Math.max(dpr, y(scaleMax));
    ctx.strokeStyle = 'rgba(251, 191, 36, .6)'; ctx.setLineDash([4 * dpr, 4 * dpr]); ctx.lineWidth = dpr;
    ctx.beginPath(); ctx.moveTo(0, ya); ctx.lineTo(W, ya); ctx.stroke(); ctx.setLineDash([]);
  }
  const [x0, x1] = path(d.ins);
  if (x0 == null) return;
  ctx.lineTo(x1, H); ctx.lineTo(x0, H); ctx.closePath();
  ctx.fillStyle = 'rgba(56, 189, 248, .22)'; ctx.fill();
  ctx.lineWidth = 1.5 * dpr;
  path(d.ins); ctx.strokeStyle = '#38bdf8'; ctx.stroke();
  path(d.outs); ctx.strokeStyle = '#f472b6'; ctx.stroke();
}

export class OverviewView {
  mount(root) {
    this.root = root;
    this.agencyKey = null;
    this.nodeKey = null;
    document.title = `Simpul NOC · ${t('nav.overview')}`;
    const kpi = (id, label, aside, ...body) => h('section', { class: 'kpi', id, 'aria-labelledby': `${id}-h` },
      h('div', { class: 'kpi-head' }, h('h2', { class: 'kpi-label', id: `${id}-h`, text: label }), aside), ...body);
    this.k = {
      nodesUp: h('span', { class: 'num', 'data-testid': 'nodes-up-count' }),
      nodesTotal: h('span', { class: 'of' }),
      nodesDetail: h('div', { class: 'kpi-detail' }),
      upIn: bigBps('uplink-in-bps'), upInBar: bar('wide'), upInNote: h('span', { class: 'kpi-aside' }),
      upInPct: h('span', { class: 'kpi-pct', 'data-testid': 'uplink-in-pct' }),
      upOut: bigBps('uplink-out-bps'), upOutBar: bar('wide'), upOutNote: h('span', { class: 'kpi-aside' }),
      upOutPct: h('span', { class: 'kpi-pct', 'data-testid': 'uplink-out-pct' }),
      over: h('span', { class: 'num', 'data-testid': 'over-alloc-count' }),
      overList: h('span', { class: 'over-list' }),
    };
    const k = this.k;
    this.agencyList = h('ul', { class: 'agency-list', 'data-testid': 'agency-list' });
    this.nodeGrid = h('ul', { class: 'node-grid', 'data-testid': 'node-grid' });
    this.topAgencies = h('ol', { class: 'rank-list', 'data-testid': 'top-agencies' });
    this.topSites = h('ol', { class: 'rank-list', 'data-testid': 'top-sites' });
    this.blockedList = h('ol', { class: 'rank-list', 'data-testid': 'blocked-wall' });
    this.blockedNote = h('span', { class: 'panel-note', 'data-testid': 'blocked-wall-total' });
    this.alertList = h('ul', { class: 'alert-list', 'data-testid': 'alerts' });
    this.alertNote = h('span', { class: 'panel-note', 'data-testid': 'alerts-count' });
    this.alertMore = h('a', { class: 'alerts-more', href: '#/incidents', 'data-testid': 'alerts-more', hidden: true });
    this.ctl = new AbortController();
    this.showBlocked = can.read();
    this.agencyNote = h('span', { class: 'panel-note' });
    root.replaceChildren(
      h('h2', { class: 'sr-only', text: t('nav.overview') }),
      h('div', { class: 'kpis' },
        kpi('kpi-nodes', t('kpi.nodes'), null, h('div', { class: 'kpi-value' }, k.nodesUp, k.nodesTotal), k.nodesDetail),
        kpi('kpi-up-in', `↓ ${t('kpi.uplinkIn')}`, k.upInNote, h('div', { class: 'kpi-value' }, k.upIn, k.upInPct), k.upInBar),
        kpi('kpi-up-out', `↑ ${t('kpi.uplinkOut')}`, k.upOutNote, h('div', { class: 'kpi-value' }, k.upOut, k.upOutPct), k.upOutBar),
        kpi('kpi-over', t('kpi.over'), null, h('div', { class: 'kpi-value' }, k.over, k.overList))),
      this.wall = h('div', { class: 'wall' },
        h('div', { class: 'main-col' },
          this.alertPanel = h('section', { class: 'panel alerts-panel', 'aria-labelledby': 'h-alerts', 'data-testid': 'alerts-panel', 'aria-live': 'polite' },
            h('div', { class: 'panel-head' }, h('h2', { id: 'h-alerts', text: t('panel.alerts') }), this.alertNote,
              h('a', { class: 'panel-link', href: '#/incidents', 'data-testid': 'incidents-link', text: t('alerts.link') })),
            this.alertList, this.alertMore),
          this.agPanel = h('section', { class: 'panel agencies-panel', 'aria-labelledby': 'h-agencies' },
            h('div', { class: 'panel-head' }, h('h2', { id: 'h-agencies', text: t('panel.agencies') }), this.agencyNote,
              h('span', { class: 'legend' },
                h('span', { class: 'lg lg-ok' }, '< 80%'), h('span', { class: 'lg lg-warn' }, '≥ 80%'), h('span', { class: 'lg lg-crit' }, '≥ 95%'))),
            this.agencyList)),
        h('div', { class: 'side' },
          h('section', { class: 'panel nodes-panel', 'aria-labelledby': 'h-nodes' },
            h('div', { class: 'panel-head' }, h('h2', { id: 'h-nodes', text: t('panel.nodes') })), this.nodeGrid),
          h('section', { class: 'panel', 'aria-labelledby': 'h-topag' },
            h('div', { class: 'panel-head' }, h('h2', { id: 'h-topag', text: t('panel.topAgencies') })), this.topAgencies),
          h('section', { class: 'panel', 'aria-labelledby': 'h-topsite' },
            h('div', { class: 'panel-head' }, h('h2', { id: 'h-topsite', text: t('panel.topSites') })), this.topSites),
          // Blocked attempts name client addresses: not on the viewer's wall.
          this.showBlocked ? h('section', { class: 'panel blocked-wall-panel', 'aria-labelledby': 'h-blocked', 'data-testid': 'blocked-wall-panel' },
            h('div', { class: 'panel-head' }, h('h2', { id: 'h-blocked', text: t('panel.blocked') }), this.blockedNote,
              h('a', { class: 'panel-link', href: '#/blocked', 'data-testid': 'blocked-details-link', text: t('blocked.details') })),
            this.blockedList) : null)),
    );
    if (state.overview) this.update();
    else this.agencyList.replaceChildren(h('li', { class: 'empty', text: t('loading') }));
    if (this.showBlocked && cache.has(WALL_BLOCKED)) this.renderBlocked(cache.get(WALL_BLOCKED));
    if (cache.has(WALL_INCIDENTS)) this.renderAlerts(cache.get(WALL_INCIDENTS));
    if (this.showBlocked) {
      this.loadBlocked();
      this.timer = setInterval(() => this.loadBlocked(), BLOCKED_REFRESH_MS);
    }
    this.loadAlerts();
    this.alertTimer = setInterval(() => this.loadAlerts(), INCIDENTS_REFRESH_MS);
  }

  async loadAlerts() {
    try {
      const d = await getJSON(WALL_INCIDENTS, { signal: this.ctl.signal });
      cache.set(WALL_INCIDENTS, d);
      this.renderAlerts(d);
    } catch (e) {
      if (e.name !== 'AbortError' && !cache.has(WALL_INCIDENTS)) {
        this.alertList.replaceChildren(h('li', { class: 'empty', text: loadError(e) }));
      }
    }
  }

  /**
   * Open incidents as alarms: unacknowledged first, then by severity and
   * newest; unreachable nodes under the outage that cut them off.
   */
  renderAlerts(list) {
    const top = alarms(list || []);
    const unacked = top.filter((i) => i.acked_ms == null).length;
    this.alertPanel.dataset.level = unacked ? (top.some((i) => i.acked_ms == null && i.severity === 'critical') ? 'crit' : 'warn') : top.length ? 'acked' : 'ok';
    setText(this.alertNote, top.length ? tn('alerts.count', top.length, { n: fmtInt(top.length), u: fmtInt(unacked) }) : '');
    this.alertNote.dataset.value = String(top.length);
    this.alertNote.dataset.unacked = String(unacked);
    const key = top.map((i) => `${i.id}:${i.under.length}`).join('|');
    if (key !== this.alertKey) { this.alertKey = key; this.needsFit = true; }
    this.alerts = top;
    this.alertsNamed = !!state.overview; // agency names come with the overview
    this.alertTiles = new Map();
    this.alertList.replaceChildren(...(top.length ? top.map((i) => this.alertRow(i))
      : [h('li', { class: 'empty ok', 'data-testid': 'alerts-none', text: t('alerts.none') })]));
    this.tickAlerts();
    // The alarms take what they need above the agencies; the rows adapt.
    if (this.needsFit && state.overview) this.fit();
    else { this.clipAlerts(); this.clipRanks(); }
  }

  alertRow(i) {
    const since = h('span', { class: 'alert-since', 'data-testid': `alert-since-${i.id}`, title: fmtDateTime(i.started_ms) });
    const li = h('li', {
      class: 'alert', 'data-testid': `alert-${i.id}`, 'data-id': String(i.id), 'data-node': i.node_id,
      'data-kind': i.kind, 'data-severity': i.severity, 'data-acked': String(i.acked_ms != null),
    },
    h('span', { class: `sev sev-${i.severity}`, text: t(`sev.${i.severity}`) }),
    kindBadge(i),
    h('span', { class: 'alert-who' },
      h('a', { class: 'alert-node', href: `#/agency/${encodeURIComponent(i.agency)}`, text: i.node_id }),
      h('span', { class: 'alert-agency', text: agencyName(i.agency) })),
    since,
    ackCell(i, (updated) => {
      const idx = this.alerts.findIndex((x) => x.id === updated.id);
      if (idx >= 0) this.alerts[idx] = { ...this.alerts[idx], ...updated };
      li.dataset.acked = 'true';
      const cached = cache.get(WALL_INCIDENTS);
      if (Array.isArray(cached)) cache.set(WALL_INCIDENTS, cached.map((x) => (x.id === updated.id ? updated : x)));
    }),
    i.under.length ? h('div', { class: 'alert-children', 'data-testid': `alert-children-${i.id}` },
      h('span', { class: 'under-label', text: t('inc.under') }),
      ...i.under.map((c) => h('span', { class: 'child', 'data-node': c, text: c }))) : null);
    this.alertTiles.set(i.id, { since, inc: i });
    return li;
  }

  tickAlerts() {
    if (!this.alertTiles) return;
    const now = serverNow();
    for (const { since, inc } of this.alertTiles.values()) setText(since, fmtAgo(now - inc.started_ms));
  }

  /** Wall mode: the alarms that do not fit are hidden behind "+N lainnya". */
  clipAlerts() {
    const items = [...this.alertList.children];
    items.forEach((li) => { li.hidden = false; });
    let hidden = 0;
    if (this.wall.classList.contains('fixed')) {
      const bottom = this.alertList.getBoundingClientRect().bottom;
      items.forEach((li, i) => {
        li.hidden = i > 0 && li.getBoundingClientRect().bottom > bottom + 0.5;
        if (li.hidden) hidden++;
      });
    }
    this.alertMore.hidden = hidden === 0;
    setText(this.alertMore, hidden ? t('alerts.more', { n: fmtInt(hidden) }) : '');
  }

  async loadBlocked() {
    try {
      const d = await getJSON(WALL_BLOCKED, { signal: this.ctl.signal });
      cache.set(WALL_BLOCKED, d);
      this.renderBlocked(d);
    } catch (e) {
      if (e.name !== 'AbortError' && !cache.has(WALL_BLOCKED)) {
        this.blockedList.replaceChildren(h('li', { class: 'empty', text: loadError(e) }));
      }
    }
  }

  /** Top blocked targets of the last 15 min, ranked like the other top lists. */
  renderBlocked(d) {
    const list = (d.targets || []).slice(0, 10);
    const max = Math.max(1, ...list.map((x) => x.attempts));
    setText(this.blockedNote, tn('blocked.count', d.attempts, { n: fmtInt(d.attempts ?? 0) }));
    this.blockedNote.dataset.value = String(d.attempts ?? 0);
    this.blockedList.replaceChildren(...(list.length ? list.map((x, i) => h('li', {
      class: 'rank', 'data-testid': `blocked-wall-${i + 1}`, 'data-value': String(x.attempts), 'data-target': x.target,
      style: `--share:${((x.attempts / max) * 100).toFixed(1)}%`,
      title: `${x.rule} · ${x.list}`,
    },
    h('span', { class: 'rank-n', text: String(i + 1) }),
    h('span', { class: 'rank-name site', text: x.target }),
    h('span', { class: 'rank-val', text: fmtInt(x.attempts) }),
    h('span', { class: 'rank-sub' }, methodBadge(x.method)),
    )) : [h('li', { class: 'empty', text: t('blocked.none') })]));
    this.clipRanks();
  }

  update() {
    const ov = state.overview;
    if (!ov) return;
    this.root.dataset.ts = ov.ts;
    // Alarms drawn before the first overview named agencies by code: now by name.
    if (!this.alertsNamed && cache.has(WALL_INCIDENTS)) this.renderAlerts(cache.get(WALL_INCIDENTS));
    this.updateKpis(ov);
    this.updateAgencies(ov);
    this.updateNodes(ov.nodes || []);
    this.updateTops(ov);
    const bannerShown = !els.banner.hidden;
    if (bannerShown !== this.bannerShown) { this.bannerShown = bannerShown; this.needsFit = true; }
    if (this.needsFit) this.fit();
    else { this.clipAlerts(); this.clipRanks(); }
  }

  /**
   * Wall mode (wide screen): the overview fills exactly one screen. Agency rows
   * go to one line each when they would not fit; the top lists show as many
   * entries as fit. Narrower screens scroll normally.
   */
  fit() {
    this.needsFit = false;
    const { wall, agencyList: list } = this;
    list.classList.remove('fit-roomy', 'fit-compact', 'fit-dense');
    wall.classList.remove('fixed');
    wall.style.removeProperty('--wall-h');
    const top = wall.getBoundingClientRect().top + window.scrollY;
    const pad = parseFloat(getComputedStyle(this.root).paddingBottom) || 0;
    const avail = Math.floor(window.innerHeight - top - pad);
    if (window.innerWidth >= 1500 && avail >= 480) {
      wall.style.setProperty('--wall-h', `${avail}px`);
      wall.classList.add('fixed');
      // Largest row style that fits: roomy, normal, compact, one line.
      const overflows = () => this.agPanel.scrollHeight > this.agPanel.clientHeight + 1;
      for (const cls of ['fit-roomy', null, 'fit-compact', 'fit-dense']) {
        list.classList.remove('fit-roomy', 'fit-compact', 'fit-dense');
        if (cls) list.classList.add(cls);
        if (!overflows()) break;
      }
    }
    this.clipAlerts();
    this.clipRanks();
  }

  clipRanks() {
    const fixed = this.wall.classList.contains('fixed');
    for (const ol of [this.topAgencies, this.topSites, this.showBlocked ? this.blockedList : null].filter(Boolean)) {
      const items = [...ol.children];
      // Wall mode: the lists share the height left under the nodes by entry count.
      ol.parentElement.style.flexGrow = String(items.length + 2);
      items.forEach((li) => { li.hidden = false; });
      if (!fixed) continue;
      const bottom = ol.getBoundingClientRect().bottom;
      items.forEach((li, i) => { li.hidden = i > 0 && li.getBoundingClientRect().bottom > bottom + 0.5; });
    }
  }

  updateKpis(ov) {
    const k = this.k;
    const nodes = ov.nodes || [];
    const count = (s) => nodes.filter((n) => nodeState(n) === s).length;
    const up = count('up');
    const active = nodes.length - count('revoked');
    setText(k.nodesUp, fmtInt(up));
    k.nodesUp.dataset.value = String(up);
    setText(k.nodesTotal, ` / ${fmtInt(active)}`);
    // "1 putus · 1 tak terjangkau · …": down always, the rest when there are any.
    const parts = ['down', 'unreachable', 'flapping', 'unknown', 'never', 'revoked']
      .filter((st) => st === 'down' || count(st) > 0)
      .map((st) => t(`kpi.nodes.${st}`, { n: fmtInt(count(st)) }));
    setText(k.nodesDetail, parts.join(' · '));
    const bad = count('down') + count('unreachable') + count('flapping');
    k.nodesUp.closest('.kpi').dataset.level = bad > 0 ? 'crit' : count('never') + count('unknown') > 0 ? 'warn' : 'ok';

    const u = ov.uplink || {};
    const rin = ratioOf(u.in_bps, u.capacity_down_bps);
    const rout = ratioOf(u.out_bps, u.capacity_up_bps);
    setBigBps(k.upIn, u.in_bps);
    setBigBps(k.upOut, u.out_bps);
    setText(k.upInPct, fmtPct(rin)); k.upInPct.dataset.level = level(rin);
    setText(k.upOutPct, fmtPct(rout)); k.upOutPct.dataset.level = level(rout);
    setBar(k.upInBar, rin, t('kpi.uplinkIn'));
    setBar(k.upOutBar, rout, t('kpi.uplinkOut'));
    setText(k.upInNote, t('kpi.of', { cap: fmtCap(u.capacity_down_bps) }));
    setText(k.upOutNote, t('kpi.of', { cap: fmtCap(u.capacity_up_bps) }));

    const over = (ov.agencies || []).filter((a) => Math.max(ratioOf(a.in_bps, a.alloc_down_bps) ?? 0, ratioOf(a.out_bps, a.alloc_up_bps) ?? 0) >= CRIT);
    setText(k.over, fmtInt(over.length));
    k.over.dataset.value = String(over.length);
    k.over.closest('.kpi').dataset.level = over.length ? 'crit' : 'ok';
    setText(k.overList, over.length ? over.map((a) => a.name).join(' · ') : t('kpi.over.none'));
  }

  updateAgencies(ov) {
    const list = [...(ov.agencies || [])].sort((a, b) => a.name.localeCompare(b.name, 'id'));
    setText(this.agencyNote, t('panel.agencies.note', { n: ov.window_secs ?? 5 }));
    const key = list.map((a) => a.code).join('|');
    if (key !== this.agencyKey) {
      this.agencyKey = key;
      this.rows = new Map();
      this.agencyList.className = `agency-list${list.length > 9 ? ' dense' : ''}${list.length > 18 ? ' two-col' : ''}`;
      if (!list.length) this.agencyList.replaceChildren(h('li', { class: 'empty', text: t('empty') }));
      else this.agencyList.replaceChildren(...list.map((a) => this.agencyRow(a)));
      this.needsFit = true;
    }
    for (const a of list) {
      const r = this.rows.get(a.code);
      setText(r.name, a.name);
      r.name.title = a.name;
      setText(r.nodes, t('nodes.count', { up: a.nodes_up, total: a.nodes_total }));
      r.nodes.dataset.level = a.nodes_total === 0 ? 'none' : a.nodes_up < a.nodes_total ? 'crit' : 'ok';
      const rin = ratioOf(a.in_bps, a.alloc_down_bps);
      const rout = ratioOf(a.out_bps, a.alloc_up_bps);
      this.setDir(r.in, a.in_bps, a.alloc_down_bps, rin, `${a.name} ${t('dir.in')}`);
      this.setDir(r.out, a.out_bps, a.alloc_up_bps, rout, `${a.name} ${t('dir.out')}`);
      r.li.dataset.level = level(Math.max(rin ?? 0, rout ?? 0));
      drawSpark(r.spark, a.code, Math.max(a.alloc_down_bps || 0, a.alloc_up_bps || 0));
    }
  }

  agencyRow(a) {
    const dir = (d, arrow) => {
      const val = h('span', { class: 'val', 'data-testid': `agency-${d}-bps-${a.code}` });
      const pct = h('span', { class: 'pct', 'data-testid': `agency-${d}-pct-${a.code}` });
      const alloc = h('span', { class: 'alloc' });
      const b = bar();
      const cell = h('div', { class: `dir dir-${d}` },
        h('div', { class: 'dir-line' }, h('span', { class: 'arrow', 'aria-hidden': 'true', text: arrow }), val, alloc, pct), b);
      return { cell, val, pct, alloc, bar: b };
    };
    const name = h('a', { class: 'agency-name', href: `#/agency/${encodeURIComponent(a.code)}` });
    const nodes = h('span', { class: 'nodes-badge' });
    const din = dir('in', '↓');
    const dout = dir('out', '↑');
    const spark = h('canvas', { 'aria-hidden': 'true', 'data-testid': `agency-spark-${a.code}` });
    const li = h('li', { class: 'agency', 'data-testid': `agency-row-${a.code}`, 'data-code': a.code },
      h('div', { class: 'agency-id' }, name, h('span', { class: 'code', text: a.code }), nodes),
      din.cell, dout.cell, h('div', { class: 'spark' }, spark));
    this.rows.set(a.code, { li, name, nodes, in: din, out: dout, spark });
    return li;
  }

  setDir(d, v, alloc, ratio, label) {
    d.val.dataset.value = String(v);
    setText(d.val, fmtBps(v));
    setText(d.alloc, alloc > 0 ? `/ ${fmtCap(alloc)}` : t('alloc.none'));
    d.alloc.title = `${t('alloc')} ${alloc > 0 ? fmtCap(alloc) : '—'}`;
    d.pct.dataset.value = ratio == null ? '' : String(ratio);
    setText(d.pct, ratio == null ? '' : fmtPct(ratio));
    d.pct.dataset.level = level(ratio);
    d.cell.dataset.level = level(ratio);
    setBar(d.bar, ratio, label);
  }

  updateNodes(nodes) {
    const list = [...nodes].sort((a, b) => (STATUS_ORDER[nodeState(a)] ?? 9) - (STATUS_ORDER[nodeState(b)] ?? 9) || a.node_id.localeCompare(b.node_id));
    const key = list.map((n) => `${n.node_id}:${nodeState(n)}:${policyTrouble(n) || ''}`).join('|');
    if (key !== this.nodeKey) {
      this.nodeKey = key;
      this.tiles = new Map();
      this.nodeGrid.className = `node-grid${list.length > 16 ? ' dense' : ''}`;
      if (!list.length) this.nodeGrid.replaceChildren(h('li', { class: 'empty', text: t('empty') }));
      else this.nodeGrid.replaceChildren(...list.map((n) => this.nodeTile(n)));
    }
    this.nodes = list;
    this.tick();
  }

  nodeTile(n) {
    const seen = h('span', { class: 'node-seen', 'data-testid': `node-last-seen-${n.node_id}` });
    const st = nodeState(n);
    const showSeen = st !== 'never' && st !== 'revoked' && n.last_seen;
    // A policy the node refused or could not apply is shown on the wall:
    // the node enforces its previous version, not what the NOC saved.
    const trouble = policyTrouble(n);
    const li = h('li', {
      class: 'node', 'data-testid': `node-status-${n.node_id}`, 'data-status': st, 'data-liveness': n.liveness || null,
      'data-policy': trouble,
      title: [n.hostname, n.address, n.agent_version && `v${n.agent_version}`].filter(Boolean).join(' · '),
    },
    h('span', { class: 'node-dot', 'aria-hidden': 'true' }),
    h('a', { class: 'node-id', href: `#/node/${encodeURIComponent(n.node_id)}`, text: n.node_id }),
    h('span', { class: 'node-line' }, h('span', { class: 'node-state', text: statusLabel(st) }), showSeen ? ' · ' : null, showSeen ? seen : null),
    trouble ? h('span', {
      class: 'node-policy', 'data-testid': `node-policy-${n.node_id}`,
      title: n.policy.error || (n.policy.problems || []).map((p) => `${p.place}: ${p.message}`).join('; ') || null,
      text: t(`wall.policy.${trouble}`, { v: n.policy.pending_version ?? '' }),
    }) : null);
    this.tiles.set(n.node_id, { li, seen });
    return li;
  }

  /** Every second: relative "last seen" and "since" times. */
  tick() {
    this.tickAlerts();
    if (!this.nodes) return;
    const now = serverNow();
    for (const n of this.nodes) {
      const tile = this.tiles.get(n.node_id);
      if (!tile) continue;
      const seen = n.last_seen ? Date.parse(n.last_seen) : null;
      setText(tile.seen, seen == null ? t('seen.never') : fmtAgo(now - seen));
      if (seen != null) tile.seen.title = fmtDateTime(seen);
    }
  }

  updateTops(ov) {
    const ags = (ov.top_agencies || []).slice(0, 10);
    const maxA = Math.max(1, ...ags.map((a) => a.bytes));
    this.topAgencies.replaceChildren(...(ags.length ? ags.map((a, i) => h('li', {
      class: 'rank', 'data-testid': `top-agency-${i + 1}`, 'data-value': String(a.bytes), 'data-code': a.code,
      style: `--share:${((a.bytes / maxA) * 100).toFixed(1)}%`,
    },
    h('span', { class: 'rank-n', text: String(i + 1) }),
    h('a', { class: 'rank-name', href: `#/agency/${encodeURIComponent(a.code)}`, text: agencyName(a.code), title: agencyName(a.code) }),
    h('span', { class: 'rank-val', text: fmtBytes(a.bytes) }),
    )) : [h('li', { class: 'empty', text: t('empty') })]));

    const sites = (ov.top_sites || []).slice(0, 10);
    const maxS = Math.max(1, ...sites.map((s) => s.bytes));
    this.topSites.replaceChildren(...(sites.length ? sites.map((s, i) => h('li', {
      class: 'rank', 'data-testid': `top-site-${i + 1}`, 'data-value': String(s.bytes), 'data-site': s.site,
      style: `--share:${((s.bytes / maxS) * 100).toFixed(1)}%`,
    },
    h('span', { class: 'rank-n', text: String(i + 1) }),
    h('span', { class: 'rank-name site', text: s.site || t('site.unknown'), title: s.site }),
    h('span', { class: 'rank-val', text: fmtBytes(s.bytes) }),
    h('span', { class: 'rank-sub', text: t('flows.n', { n: fmtInt(s.flows) }) }),
    )) : [h('li', { class: 'empty', text: t('empty') })]));
  }

  destroy() {
    clearInterval(this.timer);
    clearInterval(this.alertTimer);
    this.ctl.abort();
  }
}
