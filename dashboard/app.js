// Simpul NOC dashboard: hash routes "#/" (overview, the wall),
// "#/agency/<code>" (one agency), "#/policy" and "#/policy/<code>" (an
// agency's policy), "#/blocked" (blocked attempts of every
// agency), "#/incidents" (node outages), "#/availability" (availability
// and maintenance windows), "#/nodes" (every node) and "#/admin/<tab>"
// (users, tokens, audit, sessions). Nothing shows before a login (or a
// kiosk token traded for a session); what a role may not use is not
// offered. Plain ES modules, no build step.
import {
  t, tn, lang, setLang, onLangChange, bpsParts, fmtBps, fmtCap, fmtBytes, fmtPct, fmtInt, fmtNum,
  fmtTime, fmtDate, fmtDateTime, fmtAgo, fmtDuration, fmtSpan, fmtDay, fmtTimeHM, zoneLabel,
} from './i18n.js';
import { getJSON, postJSON, onSessionEnded, ApiError } from './api.js';
import { LiveFeed, POLL_MS } from './live.js';
import { RateChart } from './charts.js';
import { h, setText, renderTable, showTableMessage, when } from './dom.js';
import * as session from './session.js';
import { can, ownAgency } from './session.js';
import { LoginView } from './login.js';
import { NodesView, NodeView, nodeState, statusLabel, statusCell } from './nodes.js';
import { MaintenancePanel, windowCovers } from './maintenance.js';
import { AdminView, ADMIN_TABS } from './admin.js';
import { PolicyView, PolicyIndexView, DefaultPolicyView } from './policy.js';
import { ListsView } from './lists.js';

const SERIES_SPAN = 900; // seconds of per-second history kept per agency
const STALE_MS = 5000; // no data this long while "live" → show "delayed"
const CRIT = 0.95;
const WARN = 0.8;
const STATUS_ORDER = { down: 0, flapping: 1, unreachable: 2, unknown: 3, never: 4, up: 5, revoked: 6 };
const BLOCKED_REFRESH_MS = 5000; // blocked attempts are polled (the live feed carries the overview only)

// ---- state -----------------------------------------------------------------

const state = {
  overview: null, // last overview (snapshot, tick or poll)
  source: null, // 'ws' | 'poll'
  receivedAt: 0, // browser time of the last overview
  clockOffset: 0, // collector clock − browser clock (ms), only when large
  series: new Map(), // agency code → { t: [sec], in: [bps], out: [bps] }
  zeroUntil: -Infinity, // up to this second a missing series point means zero traffic
  feed: 'connecting',
  feedInfo: {},
};

const cache = new Map(); // API path → last response, so re-renders need no refetch

function serverNow() { return Date.now() + state.clockOffset; }

function acceptOverview(ov, source) {
  if (!ov || typeof ov !== 'object') return;
  state.overview = ov;
  state.source = source;
  state.receivedAt = Date.now();
  const ts = Date.parse(ov.ts);
  if (Number.isFinite(ts)) {
    const off = ts - Date.now();
    state.clockOffset = Math.abs(off) > 5000 ? off : 0;
  }
}

function seriesFor(code) {
  let s = state.series.get(code);
  if (!s) { s = { t: [], in: [], out: [] }; state.series.set(code, s); }
  return s;
}

function pushPoint(code, p) {
  const sec = Date.parse(p.ts) / 1000;
  if (!Number.isFinite(sec)) return;
  const s = seriesFor(code);
  const n = s.t.length;
  if (n && sec <= s.t[n - 1]) {
    // Same second again (or out of order): replace in place.
    const i = s.t.lastIndexOf(sec);
    if (i >= 0) { s.in[i] = p.in_bps; s.out[i] = p.out_bps; }
    return;
  }
  s.t.push(sec); s.in.push(p.in_bps); s.out.push(p.out_bps);
  const cut = sec - SERIES_SPAN;
  let k = 0;
  while (k < s.t.length && s.t[k] <= cut) k++;
  if (k) { s.t.splice(0, k); s.in.splice(0, k); s.out.splice(0, k); }
}

/**
 * The last 15 min ending at `end` (Unix s), one value per second. Up to the
 * snapshot's end a missing second had no traffic (zero); after it, ticks carry
 * every agency each second, so a missing second is a skipped tick (null: the
 * charts bridge it).
 */
function denseSeries(code, end) {
  const s = state.series.get(code) || { t: [], in: [], out: [] };
  if (!Number.isFinite(end)) end = s.t.length ? s.t[s.t.length - 1] : NaN;
  if (!Number.isFinite(end)) return null;
  const start = end - SERIES_SPAN + 1;
  const xs = []; const ins = []; const outs = [];
  let j = 0;
  while (j < s.t.length && s.t[j] < start) j++;
  for (let x = start; x <= end; x++) {
    xs.push(x);
    if (j < s.t.length && s.t[j] === x) { ins.push(s.in[j]); outs.push(s.out[j]); j++; } else {
      const v = x <= state.zeroUntil ? 0 : null;
      ins.push(v); outs.push(v);
    }
  }
  return { xs, ins, outs, known: s.t.length };
}

/** End of the live charts: the newer of the last overview and the last point. */
function liveEnd(code) {
  const s = state.series.get(code);
  const ov = state.overview ? Math.floor(Date.parse(state.overview.ts) / 1000) : -Infinity;
  const last = s && s.t.length ? s.t[s.t.length - 1] : -Infinity;
  const end = Math.max(Number.isFinite(ov) ? ov : -Infinity, last);
  return Number.isFinite(end) ? end : NaN;
}

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

function replaceSeries(code, points) {
  state.series.delete(code);
  const sorted = [...points].sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts));
  for (const p of sorted) pushPoint(code, p);
}

// ---- DOM helpers -----------------------------------------------------------

/** A big rate: number and unit in separate spans, raw bps in data-value. */
function bigBps(testid) {
  return h('span', { class: 'big-rate', 'data-testid': testid },
    h('span', { class: 'num' }), ' ', h('span', { class: 'unit' }));
}
function setBigBps(el, v) {
  const [n, u] = bpsParts(v);
  el.dataset.value = String(v);
  setText(el.firstChild, n);
  setText(el.lastChild, u);
}

function level(ratio) {
  if (ratio == null || !Number.isFinite(ratio)) return 'none';
  return ratio >= CRIT ? 'crit' : ratio >= WARN ? 'warn' : 'ok';
}
function ratioOf(v, cap) { return cap > 0 && Number.isFinite(v) ? v / cap : null; }

function bar(extraClass) {
  return h('div', { class: `bar ${extraClass || ''}`, role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': '100' },
    h('div', { class: 'fill' }), h('div', { class: 'mark95', title: '95%' }));
}
function setBar(el, ratio, label) {
  const lv = level(ratio);
  el.dataset.level = lv;
  const pct = ratio == null ? 0 : Math.min(100, ratio * 100);
  el.firstChild.style.width = `${pct.toFixed(2)}%`;
  el.setAttribute('aria-valuenow', ratio == null ? '0' : (ratio * 100).toFixed(1));
  el.setAttribute('aria-label', label);
}

function agencyName(code) {
  const a = state.overview?.agencies?.find((x) => x.code === code);
  return a ? a.name : code;
}

// ---- header, clock, connection banner ----------------------------------------

const els = {
  subtitle: document.getElementById('subtitle'),
  clockTime: document.getElementById('clock-time'),
  clockZone: document.getElementById('clock-zone'),
  clockDate: document.getElementById('clock-date'),
  conn: document.getElementById('conn'),
  connLabel: document.getElementById('conn-label'),
  updated: document.getElementById('updated'),
  lang: document.getElementById('lang'),
  banner: document.getElementById('banner'),
  view: document.getElementById('view'),
  nav: document.getElementById('mainnav'),
  navLinks: document.getElementById('nav-links'),
  userName: document.getElementById('user-name'),
  userRole: document.getElementById('user-role'),
  logout: document.getElementById('logout'),
  logoutError: document.getElementById('logout-error'),
};

function renderChrome() {
  setText(els.subtitle, t('app.subtitle'));
  setText(els.lang, t('lang.switch'));
  els.lang.setAttribute('aria-label', t('lang.switch.label'));
  els.lang.title = t('lang.switch.label');
  renderUser();
  renderClock();
  renderConn();
}

/**
 * A blocking rule as a reader says it: "domain judi.example (daftar
 * instansi)", "slot.example · kategori judi", "QUIC ditutup (UDP 443)" —
 * not the matcher's "quic · quic".
 */
function ruleText(r) {
  switch (r.list) {
    case 'domains': return t('rule.domain', { rule: r.rule });
    case 'cidrs': return t('rule.cidr', { rule: r.rule });
    case 'ports': return t('rule.port', { rule: r.rule });
    case 'doh': return t('rule.doh', { rule: r.rule });
    case 'dot': return t('rule.dot');
    case 'quic': return t('rule.quic');
    default: return r.list ? t('rule.category', { rule: r.rule, list: r.list }) : r.rule || '—';
  }
}

/** 'failed' or 'rejected' when the node did not take the newest policy. */
function policyTrouble(n) {
  const st = n.policy?.state;
  return st === 'failed' || st === 'rejected' ? st : null;
}

/** The pages a role is offered (the router refuses the others the same way). */
function navItems() {
  const own = ownAgency();
  return [
    { href: '#/', key: 'nav.overview', route: 'overview' },
    own ? { href: `#/agency/${encodeURIComponent(own)}`, text: agencyLabel(own), route: 'agency' } : null,
    { href: '#/incidents', key: 'nav.incidents', route: 'incidents' },
    { href: '#/availability', key: 'nav.availabilityShort', route: 'availability' },
    can.read() ? { href: '#/blocked', key: 'blocked.title', route: 'blocked' } : null,
    { href: '#/nodes', key: 'nav.nodes', route: 'nodes' },
    can.read() ? { href: own ? `#/policy/${encodeURIComponent(own)}` : '#/policy', key: 'nav.policy', route: 'policy' } : null,
    can.read() ? { href: '#/lists', key: 'nav.lists', route: 'lists' } : null,
    can.admin() ? { href: '#/admin/users', key: 'nav.admin', route: 'admin' } : null,
  ].filter(Boolean);
}

/** Who is logged in (name, role, agency), the pages they may open, and "Keluar". */
function renderUser() {
  const me = session.current();
  els.nav.hidden = !me;
  document.body.dataset.auth = me ? 'in' : 'out';
  if (!me) {
    els.navLinks.replaceChildren();
    delete document.body.dataset.role;
    delete document.body.dataset.kiosk;
    return;
  }
  document.body.dataset.role = me.role;
  document.body.dataset.kiosk = String(!!me.kiosk);
  els.nav.setAttribute('aria-label', t('nav.label'));
  const current = els.view.dataset.route;
  els.navLinks.replaceChildren(...navItems().map((i) => h('li', null, h('a', {
    href: i.href, 'data-testid': `nav-${i.route}`, 'aria-current': i.route === current ? 'page' : null, text: i.text || t(i.key),
  }))));
  setText(els.userName, me.display_name);
  els.userName.title = me.username;
  const role = t(`role.${me.role}`);
  setText(els.userRole, me.kiosk ? t('role.kiosk') : me.agency ? `${role} · ${agencyLabel(me.agency)}` : role);
  els.userRole.dataset.role = me.role;
  // A kiosk session may not POST, logout included: the wall stays until its token is revoked.
  els.logout.hidden = !can.logout();
  setText(els.logout, t('logout'));
}

function renderClock() {
  const now = serverNow();
  setText(els.clockTime, fmtTime(now));
  setText(els.clockZone, zoneLabel());
  setText(els.clockDate, fmtDate(now));
}

function renderConn() {
  if (!session.current()) { els.banner.hidden = true; return; }
  let s = state.feed;
  const stale = state.receivedAt && Date.now() - state.receivedAt > STALE_MS;
  if (s === 'live' && stale) s = 'stale';
  els.conn.dataset.state = s;
  document.body.dataset.conn = s; // style.css greys out figures that are no longer current
  setText(els.connLabel, t(`conn.${s}`));
  const ov = state.overview;
  if (ov) {
    els.updated.dataset.ts = ov.ts;
    els.updated.dataset.source = state.source;
    setText(els.updated, t('updated', { t: fmtTime(Date.parse(ov.ts)) }));
  }
  let msg = null;
  const last = state.receivedAt ? fmtTime(Date.parse(ov?.ts) || state.receivedAt) : null;
  if (s === 'down') {
    const secs = Math.max(0, Math.ceil(((state.feedInfo.retryAt || Date.now()) - Date.now()) / 1000));
    msg = last ? t('banner.down', { s: secs, t: last }) : t('banner.downNever', { s: secs });
  } else if (s === 'polling') {
    msg = t('banner.polling', { s: Math.round(POLL_MS / 1000) });
  } else if (s === 'stale') {
    msg = t('banner.stale', { t: last });
  }
  els.banner.dataset.state = s;
  if (msg) { setText(els.banner, msg); els.banner.hidden = false; } else { els.banner.hidden = true; setText(els.banner, ''); }
}

els.lang.addEventListener('click', () => setLang(lang() === 'id' ? 'en' : 'id'));
els.logout.addEventListener('click', () => logOut());

// ---- overview (the wall) ---------------------------------------------------

class OverviewView {
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
        this.alertList.replaceChildren(h('li', { class: 'empty', text: t('error', { e: e.message }) }));
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
        this.blockedList.replaceChildren(h('li', { class: 'empty', text: t('error', { e: e.message }) }));
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

const WALL_BLOCKED = 'api/v1/blocked/summary?limit=10';
const WALL_INCIDENTS = 'api/v1/incidents?open=true&limit=500';
const INCIDENTS_REFRESH_MS = 5000; // incidents are polled like the blocked attempts

// ---- blocked attempts ----------------------------------------------------------

function methodBadge(m) {
  return m ? h('span', { class: `badge method m-${m}`, 'data-method': m, text: t(`method.${m}`) }) : '—';
}

/** Unit name from the agencies list (fetched once), else its code. */
function unitLabel(agency, unit) {
  const ags = cache.get('api/v1/agencies');
  const a = Array.isArray(ags) ? ags.find((x) => x.code === agency) : null;
  const u = a?.units?.find((x) => x.code === unit);
  if (u) return u.name;
  return unit === 'unknown' ? t('unit.unknown') : unit;
}

/**
 * The "Upaya akses diblokir" panel: attempts per agency (all agencies only),
 * top targets and clients of the last 15 min, and the newest attempts, for
 * one agency (its page) or all (#/blocked). Polled every 5 s by its view.
 */
/** The blocked panel's time ranges (seconds back from now). */
const BLOCKED_RANGES = { '15m': 900, '1h': 3600, '24h': 86400, '7d': 7 * 86400 };

class BlockedPanel {
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
    this.q = agency ? `agency=${encodeURIComponent(agency)}&` : '';
    this.setPaths();
  }

  /** Cache keys per range; the last 15 min is the API's default window. */
  setPaths() {
    const r = this.range === '15m' ? '' : `#${this.range}`;
    this.paths = { summary: `api/v1/blocked/summary?${this.q}limit=10${r}`, recent: `api/v1/blocked?${this.q}limit=50${r}` };
  }

  /** The URL of a cache key: `from` for the ranges beyond the default. */
  url(key) {
    const [path] = key.split('#');
    if (this.range === '15m') return path;
    return `${path}&from=${Math.floor(serverNow() / 1000) - BLOCKED_RANGES[this.range]}`;
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
    if (cache.has(this.paths.summary)) this.renderSummary(cache.get(this.paths.summary));
    if (cache.has(this.paths.recent)) this.renderRecent(cache.get(this.paths.recent));
  }

  async load() {
    if (!cache.has('api/v1/agencies')) {
      try { cache.set('api/v1/agencies', await getJSON('api/v1/agencies', { signal: this.signal })); } catch (e) {
        if (e.name === 'AbortError') return;
      }
    }
    const jobs = [
      [this.paths.summary, (d) => this.renderSummary(d), [this.c.targets, this.c.clients]],
      [this.paths.recent, (d) => this.renderRecent(d), [this.c.recent]],
    ];
    await Promise.all(jobs.map(async ([path, render, tables]) => {
      try {
        const range = this.range;
        const d = await getJSON(this.url(path), { signal: this.signal });
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
class BlockedView {
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

// ---- incidents ---------------------------------------------------------------

const SEVERITIES = ['critical', 'major', 'minor', 'info'];
const OUTAGE_KINDS = new Set(['down', 'group_down', 'unreachable', 'flapping']);
const SEV_RANK = { critical: 0, major: 1, minor: 2, info: 3 };

/**
 * Open incidents as alarms (copies, each with `under`: the nodes cut off by
 * it). An unreachable node is not an alarm of its own: it is listed under
 * its root's open incident (the root's `children` and the unreachable
 * incidents naming it as `root_cause`); only when the root has no open
 * incident does it stand alone. Unacknowledged first, then by severity,
 * then newest.
 */
function alarms(list) {
  const open = list.filter((i) => i.resolved_ms == null);
  const roots = new Map(open.filter((i) => i.kind !== 'unreachable').map((i) => [i.node_id, i]));
  const under = new Map();
  const top = [];
  for (const i of open) {
    const root = i.kind === 'unreachable' && i.root_cause ? roots.get(i.root_cause) : null;
    if (root) {
      if (!under.has(root.id)) under.set(root.id, []);
      under.get(root.id).push(i.node_id);
    } else top.push({ ...i });
  }
  for (const i of top) i.under = [...new Set([...(i.children || []), ...(under.get(i.id) || [])])].sort();
  return top.sort((a, b) => (a.acked_ms == null ? 0 : 1) - (b.acked_ms == null ? 0 : 1)
    || (SEV_RANK[a.severity] ?? 9) - (SEV_RANK[b.severity] ?? 9)
    || b.started_ms - a.started_ms || b.id - a.id);
}

function kindBadge(i) {
  const extra = i.kind === 'group_down' && i.children?.length ? ` +${i.children.length}` : '';
  return h('span', { class: `kind kind-${i.kind}`, 'data-kind': i.kind, 'data-testid': `kind-${i.id}`, text: t(`kind.${i.kind}`) + extra });
}

function sevBadge(sev) {
  return h('span', { class: `sev sev-${sev}`, 'data-severity': sev, text: t(`sev.${sev}`) });
}

/**
 * The "acknowledged" cell of an incident: who and when, or (open and not
 * acknowledged) the button that POSTs the acknowledgement (the server
 * records the logged-in account's display name) and shows its answer;
 * `onDone(incident)` after. Roles that may not acknowledge see
 * "belum diterima" instead of the button.
 */
function ackCell(inc, onDone) {
  const cell = h('span', { class: 'ack-cell' });
  const show = (i) => {
    if (i.acked_ms != null) {
      cell.replaceChildren(h('span', {
        class: 'acked', 'data-testid': `acked-${i.id}`, 'data-by': i.acked_by, title: fmtDateTime(i.acked_ms),
        text: t('ack.by', { by: i.acked_by, t: fmtTime(i.acked_ms) }),
      }));
    } else if (i.resolved_ms == null && !can.operate()) {
      cell.replaceChildren(h('span', { class: 'unacked', 'data-testid': `unacked-${i.id}`, text: t('ack.none') }));
    } else if (i.resolved_ms == null) {
      const btn = h('button', {
        type: 'button', class: 'btn ack', 'data-testid': `ack-${i.id}`, 'aria-label': t('ack.button.label', { node: i.node_id }), text: t('ack.button'),
      });
      const err = h('span', { class: 'form-error', role: 'alert', 'data-testid': `ack-error-${i.id}`, hidden: true });
      btn.addEventListener('click', async () => {
        btn.disabled = true;
        err.hidden = true;
        try {
          const updated = await postJSON(`api/v1/incidents/${encodeURIComponent(i.id)}/ack`, undefined);
          show(updated);
          onDone?.(updated);
        } catch (e) {
          btn.disabled = false;
          err.textContent = t('ack.error', { e: e.message });
          err.hidden = false;
        }
      });
      cell.replaceChildren(btn, err);
    } else {
      cell.replaceChildren('—');
    }
  };
  show(inc);
  return cell;
}

/** Agency names when the overview has not arrived (pages opened directly). */
function agencyLabel(code) {
  const ags = cache.get('api/v1/agencies');
  const a = Array.isArray(ags) ? ags.find((x) => x.code === code) : null;
  return a ? a.name : agencyName(code);
}

/** Links between the outage pages. */
function outageTabs(current) {
  const tab = (route, key) => h('a', {
    class: 'tab', href: `#/${route}`, 'data-testid': `tab-${route}`, 'aria-current': current === route ? 'page' : null, text: t(key),
  });
  return h('nav', { class: 'crumbs tabs', 'aria-label': t('nav.incidents') },
    h('a', { href: '#/', text: t('nav.back') }), tab('incidents', 'nav.incidents'), tab('availability', 'nav.availability'));
}

const TL_RANGES = { '24h': 86400, '7d': 7 * 86400 };
const incFilter = { open: true, agency: '' }; // reset at every login
let timelineRange = '24h';

/** #/incidents: list with filters, a timeline per node, response times by severity. */
class IncidentsView {
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
    const tlBtn = (r) => h('button', {
      type: 'button', class: 'range', 'data-testid': `tl-range-${r}`, 'aria-pressed': String(r === timelineRange), text: t(`inc.range.${r}`),
      onclick: (e) => {
        timelineRange = r;
        e.target.parentElement.querySelectorAll('button').forEach((b) => b.setAttribute('aria-pressed', String(b === e.target)));
        this.loadTimeline();
      },
    });
    const legend = h('span', { class: 'legend' }, ...['down', 'unreachable', 'flapping', 'maintenance'].map((k) => h('span', { class: `lg lg-${k}`, text: t(`tl.${k}`) })));
    const panel = (id, title, extra, ...body) => h('section', { class: 'panel', 'aria-labelledby': id },
      h('div', { class: 'panel-head' }, h('h3', { id, text: title }), extra), ...body);
    root.replaceChildren(h('div', { class: 'agency-page incidents-page', 'data-testid': 'incidents-page' },
      outageTabs('incidents'),
      h('div', { class: 'page-head' }, h('h2', { class: 'agency-title', text: t('inc.title') })),
      panel('h-inc-list', t('inc.list'), h('div', { class: 'head-tools' }, c.count,
        h('div', { class: 'range-group', role: 'group', 'aria-label': t('inc.list') }, toggle(true, 'inc.filter.open'), toggle(false, 'inc.filter.all')),
        // An agency officer sees one agency: no picker listing the others.
        ownAgency() ? null : h('label', { class: 'select-label', for: 'inc-agency' }, t('inc.filter.agency'), ' ', c.agency)),
      h('div', { class: 'table-wrap' }, c.table)),
      panel('h-inc-tl', t('inc.timeline'), h('div', { class: 'head-tools' }, legend,
        h('div', { class: 'range-group', role: 'group', 'aria-label': t('inc.timeline') }, tlBtn('24h'), tlBtn('7d'))), c.timeline),
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

  q() { return incFilter.agency ? `&agency=${encodeURIComponent(incFilter.agency)}` : ''; }

  async fetch(path) {
    const d = await getJSON(path, { signal: this.ctl.signal });
    cache.set(path, d);
    return d;
  }

  async fillAgencies() {
    let ags = cache.get('api/v1/agencies');
    if (!Array.isArray(ags)) {
      try { ags = await this.fetch('api/v1/agencies'); } catch (e) { if (e.name === 'AbortError') return; ags = []; }
    }
    this.c.agency.replaceChildren(h('option', { value: '', text: t('inc.filter.allAgencies') }),
      ...ags.map((a) => h('option', { value: a.code, selected: a.code === incFilter.agency, text: a.name })));
  }

  async loadList() {
    const path = `api/v1/incidents?limit=500${incFilter.open ? '&open=true' : ''}${this.q()}`;
    this.listPath = path;
    try {
      const d = await this.fetch(path);
      if (this.listPath === path) { this.list = d; this.renderList(d); }
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.c.table, t('error', { e: e.message }));
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
      { h: 'col.severity', cell: (r) => sevBadge(r.severity) },
      {
        h: 'col.kind',
        cell: (r) => {
          const under = [...(nested.get(r.id) || new Set(r.children || []))].sort();
          return h('span', { class: 'kind-cell' }, kindBadge(r),
            r.maintenance ? h('span', { class: 'badge maint', text: t('inc.maintenance') }) : null,
            r.kind === 'unreachable' && r.root_cause ? h('span', { class: 'sub', text: t('inc.because', { root: r.root_cause }) }) : null,
            under.length ? h('span', { class: 'sub children', 'data-testid': `incident-children-${r.id}` }, `${t('inc.under')} ${under.join(', ')}`) : null);
        },
      },
      { h: 'col.nodeAgency', cell: (r) => h('span', null, h('a', { href: `#/agency/${encodeURIComponent(r.agency)}`, class: 'strong', text: r.node_id }), h('span', { class: 'sub', text: agencyLabel(r.agency) })) },
      { h: 'col.started', cell: (r) => when(r.started_ms), cls: 'num', title: (r) => fmtDateTime(r.started_ms) },
      {
        h: 'col.duration',
        cell: (r) => (r.resolved_ms == null
          ? h('span', { class: 'dur', 'data-start': String(r.started_ms), text: `${fmtSpan(now - r.started_ms)} · ${t('inc.ongoing')}` })
          : fmtSpan(r.resolved_ms - r.started_ms)),
        cls: 'num',
      },
      { h: 'col.acked', cell: (r) => ackCell(r, () => this.loadList()) },
      { h: 'col.resolved', cell: (r) => (r.resolved_ms == null ? '—' : when(r.resolved_ms)), cls: 'num' },
    ], rows, (r) => `incident-row-${r.id}`);
    const trs = this.c.table.querySelectorAll('tbody tr[data-testid]');
    rows.forEach((r, k) => {
      const tr = trs[k];
      if (!tr) return;
      tr.dataset.state = r.resolved_ms == null ? 'open' : 'resolved';
      tr.dataset.acked = String(r.acked_ms != null);
      tr.dataset.severity = r.severity;
      tr.dataset.kind = r.kind;
      tr.dataset.node = r.node_id;
    });
  }

  async loadStats() {
    const path = `api/v1/incidents/stats?${this.q().slice(1)}`;
    try {
      this.renderStats(await this.fetch(path));
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.c.stats, t('error', { e: e.message }));
    }
  }

  renderStats(d) {
    const rows = SEVERITIES.filter((s) => d && d[s]).map((s) => ({ sev: s, ...d[s] }));
    const secs = (v) => (v == null ? '—' : fmtSpan(v * 1000));
    renderTable(this.c.stats, [
      { h: 'col.severity', cell: (r) => sevBadge(r.sev) },
      { h: 'col.incidents', cell: (r) => fmtInt(r.incidents), cls: 'num' },
      { h: 'col.ackedN', cell: (r) => fmtInt(r.acknowledged), cls: 'num' },
      { h: 'col.resolvedN', cell: (r) => fmtInt(r.resolved), cls: 'num' },
      { h: 'col.meanAck', cell: (r) => secs(r.mean_ack_secs), cls: 'num' },
      { h: 'col.maxAck', cell: (r) => secs(r.max_ack_secs), cls: 'num' },
      { h: 'col.meanResolve', cell: (r) => secs(r.mean_resolve_secs), cls: 'num' },
      { h: 'col.maxResolve', cell: (r) => secs(r.max_resolve_secs), cls: 'num' },
    ], rows, (r) => `incident-stats-${r.sev}`);
    if (!rows.length) showTableMessage(this.c.stats, t('inc.stats.none'));
  }

  async loadTimeline() {
    const range = timelineRange;
    const end = serverNow();
    const start = end - TL_RANGES[range] * 1000;
    try {
      const [nodes, incidents, windows] = await Promise.all([
        this.fetch('api/v1/nodes'),
        this.fetch(`api/v1/incidents?from=${Math.floor(start / 1000)}&limit=10000${this.q()}`),
        this.fetch('api/v1/maintenance'),
      ]);
      if (range === timelineRange) this.renderTimeline(range, start, end, nodes, incidents, windows);
    } catch (e) {
      if (e.name !== 'AbortError') this.c.timeline.replaceChildren(h('p', { class: 'empty', text: t('error', { e: e.message }) }));
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
    // Time axis: every 3 h (24 h) or every day (7 d), in the browser's zone.
    const ticks = [];
    const step = range === '24h' ? 3 * 3600e3 : 86400e3;
    const first = new Date(start);
    if (range === '24h') first.setMinutes(0, 0, 0); else first.setHours(0, 0, 0, 0);
    for (let x = first.getTime(); x <= end; x += step) {
      if (x < start) continue;
      if (range === '24h' && new Date(x).getHours() % 3) continue;
      ticks.push(h('span', { class: 'tick', style: `left:${pct(x)}`, text: range === '24h' ? fmtTimeHM(x) : fmtDay(x) }));
    }
    const axis = h('div', { class: 'tl-row tl-axis', 'aria-hidden': 'true' }, h('div', { class: 'tl-label' }), h('div', { class: 'axis' }, ...ticks));
    this.c.timeline.dataset.range = range;
    this.c.timeline.dataset.rows = String(rows.length);
    this.c.timeline.replaceChildren(...(rows.length ? [...rows, axis] : [h('p', { class: 'empty', text: t('empty') })]));
  }
}

function pctLevel(p) { return p >= 99.9 ? 'ok' : p >= 99 ? 'warn' : 'crit'; }

/** #/availability: availability per node today and this month; maintenance windows and the form to add one. */
class AvailabilityView {
  constructor() {
    this.ctl = new AbortController();
    this.timers = [];
  }

  mount(root) {
    document.title = `${t('nav.availability')} · Simpul NOC`;
    const c = this.c = {
      table: h('table', { class: 'data availability-table', 'data-testid': 'availability-table' }),
    };
    this.maintenance = new MaintenancePanel({
      signal: this.ctl.signal, serverNow, agencyLabel, onChange: () => this.loadAvailability(),
    });
    root.replaceChildren(h('div', { class: 'agency-page availability-page', 'data-testid': 'availability-page' },
      outageTabs('availability'),
      h('section', { class: 'panel', 'aria-labelledby': 'h-av' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-av', text: t('av.title') }), h('span', { class: 'panel-note', text: t('av.note') })),
        h('div', { class: 'table-wrap' }, c.table)),
      this.maintenance.element()));
    this.loadAvailability();
    this.maintenance.load();
    this.every(30000, () => { this.loadAvailability(); this.maintenance.loadWindows(); });
  }

  every(ms, fn) { this.timers.push(setInterval(fn, ms)); }

  destroy() {
    this.timers.forEach(clearInterval);
    this.ctl.abort();
  }

  update() {}

  async fetch(path) {
    const d = await getJSON(path, { signal: this.ctl.signal });
    cache.set(path, d);
    return d;
  }

  /** Local midnight today and on the 1st of this month, in Unix seconds. */
  periods() {
    const d = new Date(serverNow());
    d.setHours(0, 0, 0, 0);
    const month = new Date(d.getFullYear(), d.getMonth(), 1);
    return { today: Math.floor(d.getTime() / 1000), month: Math.floor(month.getTime() / 1000) };
  }

  async loadAvailability() {
    const p = this.periods();
    try {
      if (!cache.has('api/v1/agencies')) await this.fetch('api/v1/agencies');
      const [today, month] = await Promise.all([
        this.fetch(`api/v1/availability?from=${p.today}`),
        this.fetch(`api/v1/availability?from=${p.month}`),
      ]);
      this.renderAvailability(today, month);
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.c.table, t('error', { e: e.message }));
    }
  }

  renderAvailability(today, month) {
    const byNode = new Map(month.map((m) => [m.node_id, m]));
    const rows = today.map((d) => ({ node_id: d.node_id, agency: d.agency, d, m: byNode.get(d.node_id) }))
      .sort((a, b) => a.agency.localeCompare(b.agency) || a.node_id.localeCompare(b.node_id));
    // Truncated, not rounded: 99.998 % with 48 s down is not "100,00%".
    const pctCell = (x) => (x ? h('span', {
      class: 'pct-cell', 'data-level': pctLevel(x.availability_pct), text: `${fmtNum(Math.floor(x.availability_pct * 100) / 100, 2)}%`,
    }) : '—');
    const ms = (v) => (v ? fmtSpan(v) : '—');
    const table = this.c.table;
    const head = h('thead', null,
      h('tr', null, h('th'), h('th', { colspan: '4', class: 'group', scope: 'colgroup', text: t('av.today') }),
        h('th', { colspan: '5', class: 'group', scope: 'colgroup', text: t('av.month') })),
      h('tr', null, ...['col.nodeAgency', 'col.availability', 'col.downtime', 'col.unreachable', 'col.maintenance',
        'col.availability', 'col.downtime', 'col.unreachable', 'col.maintenance', 'col.incidents']
        .map((k, i) => h('th', { scope: 'col', class: i >= 1 ? `num${i === 1 || i === 5 ? ' group-start' : ''}` : null, text: t(k) }))));
    const body = h('tbody', null, ...(rows.length ? rows.map((r) => h('tr', {
      'data-testid': `availability-row-${r.node_id}`, 'data-node': r.node_id,
      'data-today-pct': String(r.d.availability_pct), 'data-month-pct': r.m ? String(r.m.availability_pct) : null,
    },
    h('td', null, h('span', { class: 'strong', text: r.node_id }), h('span', { class: 'sub', text: agencyLabel(r.agency) })),
    h('td', { class: 'num group-start' }, pctCell(r.d)), h('td', { class: 'num', text: ms(r.d.down_ms) }),
    h('td', { class: 'num', text: ms(r.d.unreachable_ms) }), h('td', { class: 'num', text: ms(r.d.maintenance_ms) }),
    h('td', { class: 'num group-start' }, pctCell(r.m)), h('td', { class: 'num', text: ms(r.m?.down_ms) }),
    h('td', { class: 'num', text: ms(r.m?.unreachable_ms) }), h('td', { class: 'num', text: ms(r.m?.maintenance_ms) }),
    h('td', { class: 'num', text: fmtInt(r.m?.incidents ?? 0) })))
      : [h('tr', { class: 'empty-row' }, h('td', { class: 'empty', colspan: '10', text: t('empty') }))]));
    table.replaceChildren(head, body);
    table.dataset.rows = String(rows.length);
  }
}

// ---- agency page -------------------------------------------------------------

const RANGES = {
  '24h': { secs: 86400, step: '1m', stepSecs: 60 },
  '7d': { secs: 7 * 86400, step: '1h', stepSecs: 3600 },
};
let historyRange = '24h';

class AgencyView {
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
      hosts: h('table', { class: 'data', 'data-testid': 'top-hosts-table' }),
      sites: h('table', { class: 'data', 'data-testid': 'top-sites-table' }),
      nodes: h('table', { class: 'data', 'data-testid': 'nodes-table' }),
      flows: h('table', { class: 'data', 'data-testid': 'flows-table' }),
    };
    this.blocked = this.detail ? new BlockedPanel(code, this.ctl.signal) : null;
    const rangeBtn = (r) => h('button', {
      type: 'button', class: 'range', 'data-testid': `range-${r}`, 'aria-pressed': String(r === historyRange),
      onclick: () => this.setRange(r), text: t(`agency.range.${r}`),
    });
    this.rangeBtns = [rangeBtn('24h'), rangeBtn('7d')];
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
        panel('h-live', t('agency.live'), null, c.liveChart),
        panel('h-hist', t('agency.history'), h('div', { class: 'head-tools' }, c.totals,
          h('div', { class: 'range-group', role: 'group', 'aria-label': t('agency.history') }, ...this.rangeBtns)), c.histChart),
        this.detail ? h('div', { class: 'two' },
          panel('h-hosts', t('agency.topHosts'), null, h('div', { class: 'table-wrap' }, c.hosts)),
          panel('h-sites', t('agency.topSites'), null, h('div', { class: 'table-wrap' }, c.sites)))
          : panel('h-sites', t('agency.topSites'), null, h('div', { class: 'table-wrap' }, c.sites)),
        this.detail ? panel('h-flows', t('agency.flows'), null, h('div', { class: 'table-wrap' }, c.flows)) : null,
        this.blocked?.element('h3'),
        panel('h-nodes', t('agency.nodes'), null, h('div', { class: 'table-wrap' }, c.nodes)),
      ),
    );
    const alloc = () => {
      const a = state.overview?.agencies?.find((x) => x.code === code);
      return a ? { down: a.alloc_down_bps, up: a.alloc_up_bps } : null;
    };
    this.live = new RateChart(c.liveChart, { height: 300, live: true, span: SERIES_SPAN, alloc });
    this.hist = new RateChart(c.histChart, { height: 260, live: false, alloc });
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

  historyKey() { return `history:${this.code}:${historyRange}`; }

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
    renderTable(this.c.nodes, [
      { h: 'col.node', cell: (n) => h('a', { class: 'strong', href: `#/node/${encodeURIComponent(n.node_id)}`, text: n.node_id }) },
      { h: 'col.status', cell: (n) => statusCell(n) },
      { h: 'col.lastSeen', cell: (n) => (n.last_seen ? fmtAgo(now - Date.parse(n.last_seen)) : t('seen.never')) },
      { h: 'col.address', cell: (n) => n.address || '—', cls: 'mono' },
      { h: 'col.version', cell: (n) => n.agent_version || n.health?.agent_version || '—' },
      { h: 'col.uptime', cell: (n) => (n.health ? fmtDuration(n.health.uptime_secs) : '—'), cls: 'num' },
      { h: 'col.cpu', cell: (n) => (n.health ? `${fmtNum(n.health.cpu_percent, 1)}%` : '—'), cls: 'num' },
      { h: 'col.drops', cell: (n) => (n.health ? fmtInt((n.health.interfaces || []).reduce((s, i) => s + (i.kernel_drops || 0) + (i.queue_drops || 0), 0)) : '—'), cls: 'num' },
      { h: 'col.lostRecords', cell: (n) => fmtInt(n.dropped_records ?? 0), cls: 'num', title: () => t('node.dropped.help') },
    ], this.nodeList || [], (n) => `agency-node-row-${n.node_id}`);
  }

  paths() {
    const q = encodeURIComponent(this.code);
    return {
      hosts: `api/v1/top/hosts?agency=${q}&limit=10`,
      sites: `api/v1/top/sites?agency=${q}&limit=10`,
      flows: `api/v1/flows?agency=${q}&limit=50`,
      units: 'api/v1/agencies',
    };
  }

  renderCached() {
    const p = this.paths();
    if (cache.has(p.hosts)) this.renderHosts(cache.get(p.hosts));
    if (cache.has(p.sites)) this.renderSites(cache.get(p.sites));
    if (cache.has(p.flows)) this.renderFlows(cache.get(p.flows));
    if (cache.has(this.historyKey())) this.renderHistory(cache.get(this.historyKey()));
    this.blocked?.renderCached();
  }

  unitName(code) {
    const ags = cache.get('api/v1/agencies');
    const a = Array.isArray(ags) ? ags.find((x) => x.code === this.code) : null;
    const u = a?.units?.find((x) => x.code === code);
    if (u) return u.name;
    return code === 'unknown' ? t('unit.unknown') : code;
  }

  async loadTables() {
    const p = this.paths();
    // Unit names first, so the tables show names rather than codes.
    if (!cache.has(p.units)) {
      try { await this.fetchCached(p.units); } catch (e) { if (e.name === 'AbortError') return; }
    }
    const jobs = this.detail ? [
      [p.hosts, (d) => this.renderHosts(d)],
      [p.sites, (d) => this.renderSites(d)],
      [p.flows, (d) => this.renderFlows(d)],
    ] : [[p.sites, (d) => this.renderSites(d)]];
    await Promise.all(jobs.map(async ([path, render]) => {
      try { render(await this.fetchCached(path)); } catch (e) {
        if (e.name === 'AbortError') return;
        const table = { [p.hosts]: this.c.hosts, [p.sites]: this.c.sites, [p.flows]: this.c.flows }[path];
        if (table && !cache.has(path)) showTableMessage(table, t('error', { e: e.message }));
      }
    }));
  }

  renderHosts(rows) {
    renderTable(this.c.hosts, [
      { h: 'col.host', cell: (r) => r.host, cls: 'mono' },
      { h: 'col.unit', cell: (r) => this.unitName(r.unit) },
      { h: 'col.down', cell: (r) => fmtBytes(r.bytes_down), cls: 'num' },
      { h: 'col.up', cell: (r) => fmtBytes(r.bytes_up), cls: 'num' },
      { h: 'col.flows', cell: (r) => fmtInt(r.flows), cls: 'num' },
    ], rows, (r, i) => `agency-top-host-${i + 1}`);
  }

  renderSites(rows) {
    renderTable(this.c.sites, [
      { h: 'col.site', cell: (r) => r.site || t('site.unknown'), cls: 'site' },
      { h: 'col.source', cell: (r) => sourceBadge(r.site_source) },
      { h: 'col.bytes', cell: (r) => fmtBytes(r.bytes), cls: 'num' },
      { h: 'col.flows', cell: (r) => fmtInt(r.flows), cls: 'num' },
    ], rows, (r, i) => `agency-top-site-${i + 1}`);
  }

  renderFlows(rows) {
    renderTable(this.c.flows, [
      { h: 'col.time', cell: (r) => when(r.last_seen), cls: 'num' },
      { h: 'col.unit', cell: (r) => this.unitName(r.unit) },
      { h: 'col.src', cell: (r) => endpoint(r.src_ip, r.src_port), cls: 'mono' },
      { h: 'col.dst', cell: (r) => endpoint(r.dst_ip, r.dst_port), cls: 'mono' },
      { h: 'col.site', cell: (r) => r.site || '—', cls: 'site' },
      { h: 'col.source', cell: (r) => sourceBadge(r.site_source) },
      { h: 'col.proto', cell: (r) => protoName(r.proto) + (r.kind === 'interim' ? ` · ${t('kind.interim')}` : '') },
      { h: 'col.scope', cell: (r) => (r.scope ? t(`scope.${r.scope}`) : '—') },
      { h: 'col.bytesUp', cell: (r) => fmtBytes(r.bytes_up), cls: 'num' },
      { h: 'col.bytesDown', cell: (r) => fmtBytes(r.bytes_down), cls: 'num' },
    ], rows, (r, i) => `flow-row-${i + 1}`);
  }

  setRange(r) {
    if (!RANGES[r] || r === historyRange) return;
    historyRange = r;
    this.rangeBtns.forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.testid === `range-${r}`)));
    this.loadHistory();
  }

  async loadHistory() {
    const r = RANGES[historyRange];
    const to = Math.floor(serverNow() / 1000);
    // Start on a step boundary so every bucket is whole.
    const from = Math.floor((to - r.secs) / r.stepSecs) * r.stepSecs;
    const path = `api/v1/agencies/${encodeURIComponent(this.code)}/usage?from=${from}&step=${r.step}`;
    this.historyPath = path;
    try {
      const d = await this.fetchCached(path, this.historyKey());
      if (this.historyPath === path) this.renderHistory(d, from, to);
    } catch (e) {
      if (e.name !== 'AbortError') setText(this.c.totals, t('error', { e: e.message }));
    }
  }

  renderHistory(d, from, to) {
    const step = d.step_secs || RANGES[historyRange].stepSecs;
    const f = from ?? Math.floor(Date.parse(d.from) / 1000);
    const e = to ?? Math.floor(Date.parse(d.to) / 1000);
    // Points with no traffic are omitted: a gap means zero.
    const byTs = new Map((d.points || []).map((p) => [Math.floor(Date.parse(p.ts) / 1000), p]));
    const xs = []; const ins = []; const outs = [];
    for (let x = Math.floor(f / step) * step; x < e; x += step) {
      const p = byTs.get(x);
      xs.push(x); ins.push(p ? p.in_bps : 0); outs.push(p ? p.out_bps : 0);
    }
    this.hist.setAllocRuns((d.allocation || []).map((r) => ({
      x: Math.floor(Date.parse(r.from) / 1000), down: r.download?.rate_bps || 0, up: r.upload?.rate_bps || 0,
    })));
    this.hist.setData(xs, ins, outs);
    this.c.histChart.dataset.range = historyRange; // set once drawn, so tests wait for the drawing
    this.c.histChart.dataset.nonzero = String((d.points || []).length);
    setText(this.c.totals, t('agency.total', { in: fmtBytes(d.total_bytes_in), out: fmtBytes(d.total_bytes_out) }));
  }

  /** Polling fallback: the last 15 min per second from the usage API. */
  async loadSeries() {
    const from = Math.floor(serverNow() / 1000) - SERIES_SPAN;
    try {
      const d = await getJSON(`api/v1/agencies/${encodeURIComponent(this.code)}/usage?from=${from}&step=1s`, { signal: this.ctl.signal });
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

function endpoint(ip, port) {
  if (ip == null) return '—';
  const a = String(ip).includes(':') ? `[${ip}]` : ip;
  return port ? `${a}:${port}` : String(ip);
}

const PROTOS = { tcp: 'TCP', udp: 'UDP', icmp: 'ICMP', icmpv6: 'ICMPv6' };
function protoName(p) { return PROTOS[p] || String(p ?? '—'); }

function sourceBadge(src) {
  return src ? h('span', { class: `badge src-${src}`, text: src.toUpperCase() }) : '—';
}

// ---- router and wiring -------------------------------------------------------

let view = null;

const PAGES = { blocked: BlockedView, incidents: IncidentsView, availability: AvailabilityView };

/** The agencies (GET /api/v1/agencies, fetched once per session; an agency officer gets its own only). */
async function agencies(signal) {
  let ags = cache.get('api/v1/agencies');
  if (!Array.isArray(ags)) {
    ags = await getJSON('api/v1/agencies', { signal });
    cache.set('api/v1/agencies', ags);
    renderUser(); // the officer's agency link takes the agency's name
  }
  return ags;
}

/** "#/agency/dinkes" → { name: 'agency', arg: 'dinkes' }; unknown hashes are the wall. */
function parseHash() {
  const hash = decodeURIComponent(location.hash.replace(/^#/, '')) || '/';
  let m = hash.match(/^\/agency\/([A-Za-z0-9_-]{1,64})\/?$/);
  if (m) return { name: 'agency', arg: m[1] };
  m = hash.match(/^\/policy(?:\/([A-Za-z0-9_-]{1,64}))?\/?$/);
  if (m) return { name: 'policy', arg: m[1] || null };
  if (/^\/policy-default\/?$/.test(hash)) return { name: 'policy-default', arg: null };
  m = hash.match(/^\/node\/([A-Za-z0-9_-]{1,64})\/?$/);
  if (m) return { name: 'node', arg: m[1] };
  m = hash.match(/^\/admin(?:\/([a-z]+))?\/?$/);
  if (m) return { name: 'admin', arg: m[1] || 'users' };
  const page = hash.match(/^\/(blocked|incidents|availability|nodes|lists)\/?$/)?.[1];
  return { name: page || 'overview', arg: null };
}

/**
 * Where a role may not go, the router sends it elsewhere (the server would
 * answer 403 anyway): an agency officer to its own agency, the rest to the wall.
 */
function redirectFor(r) {
  const own = ownAgency();
  if (r.name === 'agency' && own && r.arg !== own) return `#/agency/${encodeURIComponent(own)}`;
  if (r.name === 'blocked' && !can.read()) return '#/';
  if (r.name === 'lists' && !can.read()) return '#/';
  // Policies: admins, operators and an agency's own officer (its own only).
  if (r.name === 'policy' && !can.read()) return '#/';
  if (r.name === 'policy' && own && r.arg !== own) return `#/policy/${encodeURIComponent(own)}`;
  if (r.name === 'policy-default' && (!can.read() || own)) return own ? `#/policy/${encodeURIComponent(own)}` : '#/';
  if (r.name === 'admin' && (!can.admin() || !ADMIN_TABS.includes(r.arg))) return can.admin() ? '#/admin/users' : '#/';
  return null;
}

function route() {
  if (!session.current()) return; // the login screen is up
  const r = parseHash();
  const to = redirectFor(r);
  if (to) { location.replace(to); return; } // hashchange routes again
  view?.destroy();
  const ctx = { serverNow, agencyLabel, agencies, overview: () => state.overview };
  if (r.name === 'agency') view = new AgencyView(r.arg);
  else if (r.name === 'policy') view = r.arg ? new PolicyView(r.arg, ctx) : new PolicyIndexView(ctx);
  else if (r.name === 'policy-default') view = new DefaultPolicyView(ctx);
  else if (r.name === 'node') view = new NodeView(r.arg, ctx);
  else if (r.name === 'nodes') view = new NodesView(ctx);
  else if (r.name === 'lists') view = new ListsView(ctx);
  else if (r.name === 'admin') view = new AdminView(r.arg, ctx);
  else if (PAGES[r.name]) view = new PAGES[r.name]();
  else view = new OverviewView();
  els.view.dataset.route = r.name;
  renderUser();
  view.mount(els.view);
}

function refresh() {
  renderConn();
  view?.update();
}

const feed = new LiveFeed({
  onSnapshot(msg) {
    acceptOverview(msg.overview, 'ws');
    state.series = new Map();
    for (const [code, pts] of Object.entries(msg.series || {})) replaceSeries(code, pts || []);
    let end = Math.floor(Date.parse(msg.overview?.ts) / 1000);
    for (const s of state.series.values()) if (s.t.length) end = Math.max(Number.isFinite(end) ? end : -Infinity, s.t[s.t.length - 1]);
    state.zeroUntil = Number.isFinite(end) ? end : -Infinity;
    refresh();
  },
  onTick(msg) {
    acceptOverview(msg.overview, 'ws');
    for (const [code, p] of Object.entries(msg.points || {})) if (p) pushPoint(code, p);
    refresh();
  },
  onOverview(ov) {
    acceptOverview(ov, 'poll');
    refresh();
  },
  onState(s, info) {
    state.feed = s;
    state.feedInfo = info || {};
    renderConn();
  },
  // Close code 4401: the session behind the socket ended (revoked, expired, logged out elsewhere).
  onSessionEnded() { sessionEnded(null); },
});

// ---- logging in and out ------------------------------------------------------

/** Forget everything the previous session saw: the next one may see less. */
function resetData() {
  cache.clear();
  Object.assign(state, {
    overview: null, source: null, receivedAt: 0, clockOffset: 0, series: new Map(), zeroUntil: -Infinity, feed: 'connecting', feedInfo: {},
  });
  incFilter.open = true;
  incFilter.agency = '';
  delete els.updated.dataset.ts;
  delete els.updated.dataset.source;
  setText(els.updated, '');
}

/**
 * The login screen. notice: { kind: 'expired' | 'loggedOut' | 'kiosk' |
 * 'unreachable', reason? } says why it is shown.
 */
function showLogin(notice = null) {
  feed.stop();
  view?.destroy();
  resetData();
  renderChrome();
  els.view.dataset.route = 'login';
  view = new LoginView({ notice, onLogin: () => enter() });
  view.mount(els.view);
}

/** After a login (or a kiosk token, or a session resumed): the dashboard. */
function enter() {
  clearTimeout(bootRetry);
  view?.destroy();
  view = null;
  resetData();
  renderChrome();
  route();
  feed.start();
  // Own agency's name for the officer's link (and unit names later).
  agencies().catch(() => {});
}

/** The server ended the session (401 or close code 4401): back to the login screen, saying why. */
function sessionEnded(reason) {
  if (!session.current()) return;
  session.forget();
  showLogin({ kind: 'expired', reason });
}

async function logOut() {
  els.logout.disabled = true;
  els.logoutError.hidden = true;
  try {
    await session.logout();
    showLogin({ kind: 'loggedOut' });
  } catch (e) {
    // 401: it had ended already (sessionEnded took over).
    if (!(e instanceof ApiError && e.status === 401)) {
      setText(els.logoutError, t('logout.error', { e: e.message }));
      els.logoutError.hidden = false;
    }
  } finally {
    els.logout.disabled = false;
  }
}

onSessionEnded((reason) => sessionEnded(reason));

let bootRetry = null;

/**
 * A wall must come back by itself: when the collector cannot be reached (or
 * throttles), try again after `secs` while nobody has logged in meanwhile.
 */
function retryLater(secs, fn) {
  clearTimeout(bootRetry);
  bootRetry = setTimeout(() => { if (!session.current()) fn(); }, secs * 1000);
}

/** Seconds before trying again after `e`, or null when trying again is pointless (a refused token). */
function retryAfter(e) {
  if (!(e instanceof ApiError)) return 10; // network: the collector is away
  if (e.status === 429) return e.retryAfter || 30;
  return e.status >= 500 ? 10 : null;
}

/** Trade a kiosk token for a read-only session (the token stays in memory only). */
async function tradeKiosk(token) {
  try {
    await session.kiosk(token);
    enter();
  } catch (e) {
    showLogin({ kind: 'kiosk', reason: e.message });
    const secs = retryAfter(e);
    if (secs) retryLater(secs, () => tradeKiosk(token));
  }
}

/** Resume the session the cookie holds, if any; otherwise the login screen. */
async function resume() {
  try {
    if (await session.resume()) enter(); else if (!(view instanceof LoginView)) showLogin();
  } catch (e) {
    if (!(view instanceof LoginView)) showLogin({ kind: 'unreachable', reason: e.message });
    retryLater(retryAfter(e) || 10, resume);
  }
}

/**
 * Start: a kiosk token in the address (`/?kiosk=TOKEN`, the wall) is traded
 * for a read-only session and taken out of the address bar; otherwise the
 * session the cookie holds, if any; otherwise the login screen.
 */
function boot() {
  renderChrome();
  const params = new URLSearchParams(location.search);
  const token = params.get('kiosk');
  if (token == null) { resume(); return; }
  params.delete('kiosk');
  const q = params.toString();
  history.replaceState(null, '', `${location.pathname}${q ? `?${q}` : ''}${location.hash}`);
  tradeKiosk(token);
}

onLangChange(() => {
  renderChrome();
  if (session.current()) route(); else view?.mount(els.view);
});
let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (view) { view.needsFit = true; view.update(); } }, 200);
});
window.addEventListener('hashchange', () => {
  if (!session.current()) return;
  route();
  els.view.focus({ preventScroll: true });
  window.scrollTo(0, 0);
});
setInterval(() => { renderClock(); renderConn(); view?.tick?.(); }, 1000);

boot();
