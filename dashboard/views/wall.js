// The wall (#/): KPIs, active alarms, agencies against their allocation
// (worst first), node tiles (problem nodes first; at province scale the
// healthy rest as counts per agency, expandable), top lists and blocked
// targets, each showing what fits and "+N lagi". At 1500 px wide and more it
// fills exactly one screen (fit()); narrower screens scroll. The alarms come
// from alarmfeed.js (shared with the title count and the announcements); an
// outage inside a maintenance window shows as maintenance.
import { t, tn, fmtBps, fmtCap, fmtBytes, fmtPct, fmtInt, fmtDateTime, fmtTimeHM, fmtAgo } from '../i18n.js';
import { getJSON, postJSON } from '../api.js';
import * as paths from '../paths.js';
import { loadError, errorText } from '../errors.js';
import { h, setText } from '../dom.js';
import { can } from '../session.js';
import { nodeState, statusLabel } from '../nodes.js';
import { state, cache, serverNow, denseSeries, liveEnd, agencyName } from '../state.js';
import { CRIT, level, ratioOf, policyTrouble } from '../format.js';
import { bigBps, setBigBps, bar, setBar, methodBadge, kindBadge } from '../widgets.js';
import { ackCell } from '../alarms.js';
import {
  onAlarms, refreshAlarms, maintenanceOf, soundOn, setSound, beepCount, notifyState, toggleNotify,
} from '../alarmfeed.js';
import { maintenanceScope } from '../maintenance.js';
import { confirmDialog } from '../dialogs.js';
import { els } from '../chrome.js';
import { BLOCKED_REFRESH_MS } from './blocked.js';
import { CollectorsLine } from '../collectors.js';

const STATUS_ORDER = { down: 0, flapping: 1, unreachable: 2, unknown: 3, never: 4, up: 5, revoked: 6 };
const WALL_BLOCKED = paths.blockedSummary({ limit: 10 });
const LEVEL_RANK = { crit: 2, warn: 1 };
/** Agencies keep their places this long unless their problems or levels change: rows must not dance. */
const REORDER_MS = 15000;
/** Narrower than the wall, node tiles give way to per-agency counts from this many nodes. */
const NARROW_TILES = 24;

/**
 * What a tile shows and whether it needs one: a node down, flapping,
 * unreachable, not heard from or never connected, a policy in trouble, or
 * in a maintenance window; up and revoked nodes are "healthy" (counted per
 * agency when the tiles do not all fit).
 */
function tileOf(n) {
  const st = nodeState(n);
  const mw = st === 'revoked' ? null : maintenanceOf(n.node_id, n.agency);
  const trouble = policyTrouble(n);
  return { n, st, mw, trouble, problem: (st !== 'up' && st !== 'revoked') || !!trouble || !!mw };
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

export class OverviewView {
  mount(root) {
    this.root = root;
    this.agencyKey = null;
    this.nodeKey = null;
    this.expanded = new Set(); // agencies whose healthy nodes are shown as tiles
    this.top = []; // the alarms on screen
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
    this.nodeNote = h('span', { class: 'panel-note', 'data-testid': 'node-grid-note' });
    this.ranks = {
      agencies: this.rankPanel('top-agencies', 'h-topag', t('panel.topAgencies')),
      sites: this.rankPanel('top-sites', 'h-topsite', t('panel.topSites')),
    };
    this.showBlocked = can.read();
    if (this.showBlocked) this.ranks.blocked = this.rankPanel('blocked-wall', 'h-blocked', t('panel.blocked'), '#/blocked');
    this.blockedNote = h('span', { class: 'panel-note', 'data-testid': 'blocked-wall-total' });
    this.alertList = h('ul', { class: 'alert-list', 'data-testid': 'alerts' });
    this.alertNote = h('span', { class: 'panel-note', 'data-testid': 'alerts-count' });
    this.alertMore = h('a', { class: 'alerts-more', href: '#/incidents', 'data-testid': 'alerts-more', hidden: true });
    this.ctl = new AbortController();
    this.agencyNote = h('span', { class: 'panel-note' });
    this.agencyMore = h('span', { class: 'panel-note agency-more', 'data-testid': 'agency-more', hidden: true });
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
              this.announceControls(),
              h('a', { class: 'panel-link', href: '#/incidents', 'data-testid': 'incidents-link', text: t('alerts.link') })),
            this.alertList, this.alertMore),
          this.agPanel = h('section', { class: 'panel agencies-panel', 'aria-labelledby': 'h-agencies' },
            h('div', { class: 'panel-head' }, h('h2', { id: 'h-agencies', text: t('panel.agencies') }), this.agencyNote, this.agencyMore,
              h('span', { class: 'legend' },
                h('span', { class: 'lg lg-ok' }, '< 80%'), h('span', { class: 'lg lg-warn' }, '≥ 80%'), h('span', { class: 'lg lg-crit' }, '≥ 95%'))),
            this.agencyList)),
        this.side = h('div', { class: 'side' },
          this.nodePanel = h('section', { class: 'panel nodes-panel', 'aria-labelledby': 'h-nodes' },
            h('div', { class: 'panel-head' }, h('h2', { id: 'h-nodes', text: t('panel.nodes') }), this.nodeNote), this.nodeGrid,
            // Who alerts, for every role: a wall kiosk (viewer) is where the
            // NOC would first see that no collector is alerting.
            (this.collectors = new CollectorsLine()).el),
          // Top agencies and sites side by side: each list gets the height, not a third of it.
          this.rankPair = h('div', { class: 'rank-pair', 'data-testid': 'rank-pair' }, this.ranks.agencies.section, this.ranks.sites.section),
          // Blocked attempts name client addresses: not on the viewer's wall.
          this.ranks.blocked ? this.ranks.blocked.section : null)),
    );
    if (this.ranks.blocked) {
      this.ranks.blocked.section.classList.add('blocked-wall-panel');
      this.ranks.blocked.section.dataset.testid = 'blocked-wall-panel';
      this.ranks.blocked.head.insertBefore(this.blockedNote, this.ranks.blocked.more);
      this.ranks.blocked.head.append(h('a', { class: 'panel-link', href: '#/blocked', 'data-testid': 'blocked-details-link', text: t('blocked.details') }));
    }
    if (state.overview) this.update();
    else this.agencyList.replaceChildren(h('li', { class: 'empty', text: t('loading') }));
    if (this.showBlocked && cache.has(WALL_BLOCKED)) this.renderBlocked(cache.get(WALL_BLOCKED));
    if (this.showBlocked) {
      this.loadBlocked();
      this.timer = setInterval(() => this.loadBlocked(), BLOCKED_REFRESH_MS);
    }
    this.unsubscribe = onAlarms((d) => this.alarmsArrived(d));
  }

  /**
   * A top list's panel: its heading, the list, and "+N lagi" for what does
   * not fit — a link to the full list (`href`), else a dialog with it.
   */
  rankPanel(testid, hid, title, href = null) {
    const list = h('ol', { class: 'rank-list', 'data-testid': testid });
    const more = href
      ? h('a', { class: 'rank-more', href, 'data-testid': `${testid}-more`, hidden: true })
      : h('button', { type: 'button', class: 'rank-more', 'data-testid': `${testid}-more`, hidden: true });
    const head = h('div', { class: 'panel-head' }, h('h2', { id: hid, text: title, title }), more);
    const section = h('section', { class: 'panel rank-panel', 'aria-labelledby': hid }, head, list);
    const r = { list, more, head, section, title, testid };
    if (!href) more.addEventListener('click', () => this.showFullList(r));
    return r;
  }

  /** The whole list (what the wall has) in a dialog. */
  showFullList(r) {
    const dlg = h('dialog', { class: 'dlg rank-dialog', 'data-testid': `${r.testid}-dialog`, 'aria-labelledby': `${r.testid}-dlg-h` },
      h('h2', { id: `${r.testid}-dlg-h`, text: r.title }),
      h('ol', { class: 'rank-list' }, ...[...r.list.children].map((li) => {
        const c = li.cloneNode(true);
        c.hidden = false;
        c.removeAttribute('data-testid');
        return c;
      })),
      h('div', { class: 'dialog-buttons' }, h('button', {
        type: 'button', class: 'btn primary', 'data-testid': `${r.testid}-dialog-close`, text: t('dlg.close'), onclick: () => dlg.close(),
      })));
    dlg.addEventListener('close', () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  /** Sound and browser-notification switches of the alarm announcements. */
  announceControls() {
    const sound = h('button', { type: 'button', class: 'btn small announce', 'data-testid': 'alarm-sound' });
    const notif = h('button', { type: 'button', class: 'btn small announce', 'data-testid': 'alarm-notify' });
    const show = () => {
      const on = soundOn();
      sound.setAttribute('aria-pressed', String(on));
      sound.dataset.beeps = String(beepCount());
      setText(sound, t(on ? 'announce.sound.on' : 'announce.sound.off'));
      sound.title = t('announce.sound.title');
      const st = notifyState();
      notif.dataset.state = st;
      notif.setAttribute('aria-pressed', String(st === 'on'));
      notif.disabled = st === 'unsupported' || st === 'denied';
      setText(notif, t(`announce.notify.${st}`));
      notif.title = t('announce.notify.title');
    };
    sound.addEventListener('click', () => { setSound(!soundOn()); show(); });
    notif.addEventListener('click', async () => { await toggleNotify(); show(); });
    this.showAnnounce = show;
    show();
    return h('span', { class: 'announce-controls' }, sound, notif);
  }

  alarmsArrived(d) {
    if (d.top) this.renderAlerts(d.top);
    else if (d.error) this.alertList.replaceChildren(h('li', { class: 'empty', text: loadError(d.error) }));
    this.showAnnounce?.();
    // Tiles follow the windows in force.
    if (state.overview) this.updateNodes(state.overview.nodes || []);
  }

  /**
   * Open incidents as alarms: unacknowledged first, then by severity and
   * newest; unreachable nodes under the outage that cut them off; outages in
   * a maintenance window last, as maintenance.
   */
  renderAlerts(top) {
    const live = top.filter((i) => !i.inMaint);
    const unacked = live.filter((i) => i.acked_ms == null).length;
    this.alertPanel.dataset.level = unacked ? (live.some((i) => i.acked_ms == null && i.severity === 'critical') ? 'crit' : 'warn') : top.length ? 'acked' : 'ok';
    const inMaint = top.length - live.length;
    setText(this.alertNote, top.length ? [tn('alerts.count', live.length, { n: fmtInt(live.length), u: fmtInt(unacked) }),
      inMaint ? t('alerts.maint', { n: fmtInt(inMaint) }) : null].filter(Boolean).join(' · ') : '');
    this.alertNote.dataset.value = String(top.length);
    this.alertNote.dataset.unacked = String(unacked);
    this.alertNote.dataset.maintenance = String(inMaint);
    const key = top.map((i) => `${i.id}:${i.under.length}:${i.inMaint}`).join('|');
    if (key !== this.alertKey) { this.alertKey = key; this.needsFit = true; }
    this.top = top;
    this.alertsNamed = !!state.overview; // agency names come with the overview
    this.alertTiles = new Map();
    this.alertList.replaceChildren(...(top.length ? top.map((i) => this.alertRow(i))
      : [h('li', { class: 'empty ok', 'data-testid': 'alerts-none', text: t('alerts.none') })]));
    this.tickAlerts();
    if (state.overview) this.updateAgencies(state.overview);
    // The alarms take what they need above the agencies; the rows adapt.
    if (this.needsFit && state.overview) this.fit();
    else { this.clipAlerts(); this.clipRanks(); }
  }

  alertRow(i) {
    const since = h('span', { class: 'alert-since', 'data-testid': `alert-since-${i.id}`, title: fmtDateTime(i.started_ms) });
    const li = h('li', {
      class: 'alert', 'data-testid': `alert-${i.id}`, 'data-id': String(i.id), 'data-node': i.node_id,
      'data-kind': i.kind, 'data-severity': i.severity, 'data-acked': String(i.acked_ms != null),
      'data-maintenance': i.inMaint ? 'true' : null,
    },
    i.inMaint ? h('span', { class: 'badge maint', 'data-testid': `alert-maint-${i.id}`, text: t('wall.maint') })
      : h('span', { class: `sev sev-${i.severity}`, text: t(`sev.${i.severity}`) }),
    kindBadge(i),
    h('span', { class: 'alert-who' },
      h('a', { class: 'alert-node', href: `#/node/${encodeURIComponent(i.node_id)}`, text: i.node_id }),
      h('a', { class: 'alert-agency', href: `#/agency/${encodeURIComponent(i.agency)}`, text: agencyName(i.agency) })),
    since,
    i.inMaint ? this.maintCell(i) : ackCell(i, (updated) => {
      li.dataset.acked = 'true';
      const idx = this.top.findIndex((x) => x.id === updated.id);
      if (idx >= 0) this.top[idx] = { ...this.top[idx], ...updated };
      refreshAlarms();
    }),
    i.under.length ? h('div', { class: 'alert-children', 'data-testid': `alert-children-${i.id}` },
      h('span', { class: 'under-label', text: t('inc.under') }),
      ...i.under.map((c) => h('span', { class: 'child', 'data-node': c, text: c }))) : null);
    this.alertTiles.set(i.id, { since, inc: i });
    return li;
  }

  /**
   * An alarm in maintenance: until when, the way to the windows
   * (#/availability: change, end) and, for operators, ending the window here.
   */
  maintCell(i) {
    const m = i.mw;
    const cell = h('span', { class: 'ack-cell maint-cell', 'data-testid': `alert-mw-${i.id}`, 'data-window': m ? String(m.id) : null });
    if (!m) { // detected inside a window that has ended since
      cell.append(h('span', { class: 'unacked', text: t('wall.maint.over') }));
      return cell;
    }
    cell.append(
      h('span', { class: 'mw-until', title: `${maintenanceScope(m, agencyName)} · ${m.reason}`, text: t('wall.maint.until', { t: fmtTimeHM(m.ends_ms) }) }),
      h('a', { class: 'mw-link', href: '#/availability', 'data-testid': `alert-mw-link-${i.id}`, text: t(can.operate() ? 'wall.maint.change' : 'wall.maint.windows') }));
    if (can.operate()) {
      const err = h('span', { class: 'form-error', role: 'alert', 'data-testid': `alert-mw-error-${i.id}`, hidden: true });
      const btn = h('button', {
        type: 'button', class: 'btn danger small', 'data-testid': `alert-mw-end-${i.id}`, text: t('mt.end'),
        'aria-label': t('wall.maint.end.label', { scope: maintenanceScope(m, agencyName) }),
      });
      btn.addEventListener('click', async () => {
        const ok = await confirmDialog({ title: t('mt.end.title'), text: t('mt.end.confirm', { scope: maintenanceScope(m, agencyName) }), ok: t('mt.end') });
        if (!ok) return;
        btn.disabled = true;
        err.hidden = true;
        try {
          await postJSON(paths.maintenanceWindow(m.id, '/end'), undefined);
          await refreshAlarms({ windows: true });
        } catch (e) {
          btn.disabled = false;
          err.textContent = t('mt.error', { e: errorText(e) });
          err.hidden = false;
        }
      });
      cell.append(btn, err);
    }
    return cell;
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
        this.ranks.blocked.list.replaceChildren(h('li', { class: 'empty', text: loadError(e) }));
      }
    }
  }

  /** Top blocked targets of the last 15 min, ranked like the other top lists. */
  renderBlocked(d) {
    const list = (d.targets || []).slice(0, 10);
    const max = Math.max(1, ...list.map((x) => x.attempts));
    setText(this.blockedNote, tn('blocked.count', d.attempts, { n: fmtInt(d.attempts ?? 0) }));
    this.blockedNote.dataset.value = String(d.attempts ?? 0);
    this.ranks.blocked.list.replaceChildren(...(list.length ? list.map((x, i) => h('li', {
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
    if (!this.alertsNamed && this.alertTiles) this.renderAlerts(this.top);
    this.updateKpis(ov);
    this.updateAgencies(ov);
    this.updateNodes(ov.nodes || []);
    this.updateTops(ov);
    const bannerShown = !els.banner.hidden;
    if (bannerShown !== this.bannerShown) { this.bannerShown = bannerShown; this.needsFit = true; }
    // Lists that grew or shrank may sit better elsewhere (placeRanks).
    const counts = Object.values(this.ranks).map((r) => r.list.children.length).join();
    if (counts !== this.rankCounts) { this.rankCounts = counts; this.needsFit = true; }
    if (this.needsFit) this.fit();
    else { this.clipAlerts(); this.clipRanks(); }
    this.countAgenciesBelow();
  }

  /**
   * Wall mode: how many agency rows lie below the panel's edge (the least
   * loaded ones, worst first) — said in the heading, as no one scrolls a wall.
   */
  countAgenciesBelow() {
    let below = 0;
    if (this.wall.classList.contains('fixed') && this.rows) {
      const bottom = this.agPanel.getBoundingClientRect().bottom - (parseFloat(getComputedStyle(this.agPanel).paddingBottom) || 0);
      for (const r of this.rows.values()) if (r.li.getBoundingClientRect().bottom > bottom + 0.5) below++;
    }
    this.agencyMore.hidden = below === 0;
    this.agencyMore.dataset.hidden = String(below);
    setText(this.agencyMore, below ? t('wall.agencies.more', { n: fmtInt(below) }) : '');
    this.agencyMore.title = below ? t('wall.agencies.more.title') : '';
  }

  /**
   * Wall mode (wide screen): the overview fills exactly one screen. Agency rows
   * go to one line each when they would not fit; the node tiles give way to
   * counts when they do not fit; the top lists show as many entries as fit.
   * Narrower screens scroll normally.
   */
  fit() {
    this.needsFit = false;
    const { wall, agencyList: list } = this;
    list.classList.remove('fit-roomy', 'fit-compact', 'fit-dense');
    wall.classList.remove('fixed');
    wall.style.removeProperty('--wall-h');
    this.placeRanks(false);
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
      // Room left under the agencies (a few of them): the top agencies and
      // sites go there when that shows more entries than under the nodes.
      const spare = this.agPanel.getBoundingClientRect().bottom - list.getBoundingClientRect().bottom
        - (parseFloat(getComputedStyle(this.agPanel).paddingBottom) || 0);
      if (spare >= 120) {
        this.layoutNodes();
        const inSide = this.shownRanks();
        this.placeRanks(true);
        if (this.shownRanks() <= inSide || overflows()) this.placeRanks(false);
      }
    }
    this.layoutNodes();
    this.clipAlerts();
    this.clipRanks();
  }

  /** How many top-list entries the wall shows as it is laid out now. */
  shownRanks() {
    this.clipRanks();
    return Object.values(this.ranks).reduce((n, r) => n + Number(r.list.dataset.shown || 0), 0);
  }

  /** The top agencies and sites under the agencies (main) or under the nodes (side). */
  placeRanks(main) {
    this.agPanel.classList.toggle('shrink', main);
    this.rankPair.dataset.place = main ? 'main' : 'side';
    if (main) this.agPanel.after(this.rankPair);
    else this.side.insertBefore(this.rankPair, this.ranks.blocked?.section || null);
  }

  /**
   * Wall mode: each top list shows the entries that fit its panel and
   * "+N lagi" for the rest. The lists share the height left under the nodes
   * by entry count.
   */
  clipRanks() {
    const fixed = this.wall.classList.contains('fixed');
    const lists = Object.values(this.ranks).map((r) => ({ r, items: [...r.list.children].filter((li) => li.classList.contains('rank')) }));
    // Heights first (every list's share), then what fits in each.
    const grow = (items) => Math.min(items.length, 10) + 2;
    for (const { r, items } of lists) r.section.style.flexGrow = String(grow(items));
    this.rankPair.style.flexGrow = String(Math.max(...lists.filter(({ r }) => r !== this.ranks.blocked).map(({ items }) => grow(items))));
    for (const { r, items } of lists) {
      [...r.list.children].forEach((li) => { li.hidden = false; });
      let hidden = 0;
      if (fixed) {
        const bottom = r.list.getBoundingClientRect().bottom;
        items.forEach((li, i) => {
          li.hidden = i > 0 && li.getBoundingClientRect().bottom > bottom + 0.5;
          if (li.hidden) hidden++;
        });
      }
      r.more.hidden = hidden === 0;
      r.more.dataset.hidden = String(hidden);
      setText(r.more, hidden ? t('wall.more', { n: fmtInt(hidden) }) : '');
      r.list.dataset.shown = String(items.length - hidden);
      r.list.dataset.total = String(items.length);
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
    // Nodes in a maintenance window do not turn the KPI red.
    const bad = nodes.filter((n) => ['down', 'unreachable', 'flapping'].includes(nodeState(n)) && !maintenanceOf(n.node_id, n.agency)).length;
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

  /**
   * Open problems per agency: its nodes that need a tile (not in
   * maintenance) and those with a live alarm (agent health, clock).
   */
  problemsByAgency(ov) {
    const by = new Map();
    const add = (agency, node) => { if (!by.has(agency)) by.set(agency, new Set()); by.get(agency).add(node); };
    for (const n of ov.nodes || []) {
      const x = tileOf(n);
      if (x.problem && !x.mw) add(n.agency, n.node_id);
    }
    for (const i of this.top) if (!i.inMaint) add(i.agency, i.node_id);
    return by;
  }

  /**
   * Worst first: open problems, then how full the allocation is (its level,
   * then the ratio); by name among equals. A change of problems or level
   * reorders at once; the ratio alone at most every REORDER_MS.
   */
  agencyOrder(ov) {
    const problems = this.problemsByAgency(ov);
    const rows = (ov.agencies || []).map((a) => {
      const ratio = Math.max(ratioOf(a.in_bps, a.alloc_down_bps) ?? 0, ratioOf(a.out_bps, a.alloc_up_bps) ?? 0);
      return { a, problems: problems.get(a.code)?.size || 0, lv: LEVEL_RANK[level(ratio)] || 0, ratio };
    });
    const coarse = rows.map((r) => `${r.a.code}:${r.problems}:${r.lv}`).sort().join('|');
    const now = Date.now();
    if (this.order && coarse === this.coarseKey && now - this.orderedAt < REORDER_MS) {
      const byCode = new Map(rows.map((r) => [r.a.code, r]));
      const kept = this.order.map((c) => byCode.get(c)).filter(Boolean);
      if (kept.length === rows.length) return kept;
    }
    rows.sort((x, y) => y.problems - x.problems || y.lv - x.lv || y.ratio - x.ratio || x.a.name.localeCompare(y.a.name, 'id'));
    this.order = rows.map((r) => r.a.code);
    this.coarseKey = coarse;
    this.orderedAt = now;
    return rows;
  }

  updateAgencies(ov) {
    const rows = this.agencyOrder(ov);
    const list = rows.map((r) => r.a);
    setText(this.agencyNote, t('panel.agencies.note', { n: ov.window_secs ?? 5 }));
    const key = list.map((a) => a.code).sort().join('|');
    if (key !== this.agencyKey) {
      this.agencyKey = key;
      this.rows = new Map();
      this.agencyList.className = `agency-list${list.length > 9 ? ' dense' : ''}${list.length > 18 ? ' two-col' : ''}`;
      if (!list.length) this.agencyList.replaceChildren(h('li', { class: 'empty', text: t('empty') }));
      else this.agencyList.replaceChildren(...list.map((a) => this.agencyRow(a)));
      this.needsFit = true;
    }
    // Rows move, not rebuilt: their sparklines stay.
    const want = list.map((a) => this.rows.get(a.code).li);
    if (want.some((li, i) => this.agencyList.children[i] !== li)) this.agencyList.append(...want);
    for (const { a, problems } of rows) {
      const r = this.rows.get(a.code);
      r.li.dataset.problems = String(problems);
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
    const order = (x) => (x.mw ? 8 : STATUS_ORDER[x.st] ?? 9); // maintenance after the real problems
    const list = nodes.map(tileOf).sort((a, b) => order(a) - order(b) || a.n.node_id.localeCompare(b.n.node_id));
    const key = list.map((x) => `${x.n.node_id}:${x.st}:${x.trouble || ''}:${x.mw ? x.mw.id : ''}`).join('|');
    this.nodes = list;
    if (key !== this.nodeKey) {
      this.nodeKey = key;
      this.layoutNodes();
    }
    this.tick();
  }

  /**
   * Every node as a tile when they all fit; otherwise the problem nodes as
   * tiles and the healthy rest as counts per agency ("dinkes · 2 aktif"),
   * which a click unfolds into that agency's tiles.
   */
  layoutNodes() {
    const list = this.nodes;
    if (!list) return;
    this.renderNodes(list, false);
    const fixed = this.wall.classList.contains('fixed');
    const overflows = fixed ? this.nodePanel.scrollHeight > this.nodePanel.clientHeight + 1 : list.length > NARROW_TILES;
    if (overflows && list.some((x) => !x.problem)) this.renderNodes(list, true);
  }

  renderNodes(list, collapsed) {
    this.tiles = new Map();
    this.nodeGrid.className = `node-grid${list.length > 16 ? ' dense' : ''}`;
    this.nodeGrid.dataset.mode = collapsed ? 'problems' : 'all';
    if (!list.length) {
      this.nodeGrid.replaceChildren(h('li', { class: 'empty', text: t('empty') }));
      setText(this.nodeNote, '');
      return;
    }
    if (!collapsed) {
      this.nodeGrid.replaceChildren(...list.map((x) => this.nodeTile(x)));
      setText(this.nodeNote, '');
      return;
    }
    const problems = list.filter((x) => x.problem);
    const healthy = new Map(); // agency → its healthy tiles
    for (const x of list) {
      if (x.problem) continue;
      if (!healthy.has(x.n.agency)) healthy.set(x.n.agency, []);
      healthy.get(x.n.agency).push(x);
    }
    const groups = [...healthy.entries()].sort((a, b) => a[0].localeCompare(b[0], 'id'));
    const items = problems.map((x) => this.nodeTile(x));
    const sums = h('li', { class: 'node-sums', 'data-testid': 'node-sums' });
    const unfolded = [];
    for (const [code, xs] of groups) {
      const open = this.expanded.has(code);
      const up = xs.filter((x) => x.st === 'up').length;
      const revoked = xs.length - up;
      const label = [up ? t('wall.nodes.up', { n: fmtInt(up) }) : null, revoked ? t('wall.nodes.revoked', { n: fmtInt(revoked) }) : null].filter(Boolean).join(' · ');
      const btn = h('button', {
        type: 'button', class: 'node-sum', 'data-testid': `node-sum-${code}`, 'data-agency': code, 'data-up': String(up), 'data-revoked': String(revoked),
        'aria-expanded': String(open), title: `${agencyName(code)}: ${label}`,
        'aria-label': t(open ? 'wall.nodes.hide' : 'wall.nodes.show', { name: `${agencyName(code)} (${label})` }),
      },
      h('span', { class: 'node-sum-code', text: code }),
      h('span', { class: 'node-sum-n', text: fmtInt(up) }),
      revoked ? h('span', { class: 'node-sum-rev', text: fmtInt(revoked) }) : null);
      btn.addEventListener('click', () => {
        if (this.expanded.has(code)) this.expanded.delete(code); else this.expanded.add(code);
        this.renderNodes(this.nodes, true);
        this.tick();
        this.nodeGrid.querySelector(`[data-testid="node-sum-${CSS.escape(code)}"]`)?.focus();
      });
      sums.append(btn);
      if (open) unfolded.push(...xs.map((x) => this.nodeTile(x)));
    }
    items.push(sums, ...unfolded);
    this.nodeGrid.replaceChildren(...items);
    setText(this.nodeNote, t('wall.nodes.note', { p: fmtInt(problems.length), ok: fmtInt(list.length - problems.length) }));
  }

  nodeTile({ n, st, mw, trouble }) {
    const seen = h('span', { class: 'node-seen', 'data-testid': `node-last-seen-${n.node_id}` });
    const showSeen = st !== 'never' && st !== 'revoked' && n.last_seen;
    // A policy the node refused or could not apply is shown on the wall:
    // the node enforces its previous version, not what the NOC saved.
    const li = h('li', {
      class: 'node', 'data-testid': `node-status-${n.node_id}`, 'data-status': st, 'data-liveness': n.liveness || null,
      'data-policy': trouble, 'data-maintenance': mw ? 'true' : null, 'data-agency': n.agency,
      title: [n.hostname, n.address, n.agent_version && `v${n.agent_version}`].filter(Boolean).join(' · '),
    },
    h('span', { class: 'node-dot', 'aria-hidden': 'true' }),
    h('a', { class: 'node-id', href: `#/node/${encodeURIComponent(n.node_id)}`, text: n.node_id }),
    h('span', { class: 'node-line' }, h('span', { class: 'node-state', text: statusLabel(st) }), showSeen ? ' · ' : null, showSeen ? seen : null),
    mw ? h('span', {
      class: 'node-maint', 'data-testid': `node-maint-${n.node_id}`, title: `${maintenanceScope(mw, agencyName)} · ${mw.reason}`,
      text: t('wall.maint.tile', { t: fmtTimeHM(mw.ends_ms) }),
    }) : null,
    trouble ? h('span', {
      class: 'node-policy', 'data-testid': `node-policy-${n.node_id}`,
      title: n.policy.error || (n.policy.problems || []).map((p) => `${p.place}: ${p.message}`).join('; ') || null,
      text: t(`wall.policy.${trouble}`, { v: n.policy.pending_version ?? '' }),
    }) : null);
    this.tiles.set(n.node_id, { li, seen, n });
    // A tile rebuilt between two ticks (fit, unfold) must not show a blank "last seen".
    showLastSeen(seen, n, serverNow());
    return li;
  }

  /** Every second: relative "last seen" and "since" times. */
  tick() {
    this.tickAlerts();
    if (!this.tiles) return;
    const now = serverNow();
    for (const { seen: el, n } of this.tiles.values()) showLastSeen(el, n, now);
  }

  updateTops(ov) {
    const ags = (ov.top_agencies || []).slice(0, 10);
    const maxA = Math.max(1, ...ags.map((a) => a.bytes));
    this.ranks.agencies.list.replaceChildren(...(ags.length ? ags.map((a, i) => h('li', {
      class: 'rank', 'data-testid': `top-agency-${i + 1}`, 'data-value': String(a.bytes), 'data-code': a.code,
      style: `--share:${((a.bytes / maxA) * 100).toFixed(1)}%`,
    },
    h('span', { class: 'rank-n', text: String(i + 1) }),
    h('a', { class: 'rank-name', href: `#/agency/${encodeURIComponent(a.code)}`, text: agencyName(a.code), title: agencyName(a.code) }),
    h('span', { class: 'rank-val', text: fmtBytes(a.bytes) }),
    )) : [h('li', { class: 'empty', text: t('empty') })]));

    const sites = (ov.top_sites || []).slice(0, 10);
    const maxS = Math.max(1, ...sites.map((s) => s.bytes));
    this.ranks.sites.list.replaceChildren(...(sites.length ? sites.map((s, i) => h('li', {
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
    this.unsubscribe?.();
    this.collectors?.destroy();
    this.ctl.abort();
  }
}

/** A node's relative "last seen", with the time itself as the tooltip. */
function showLastSeen(el, n, now) {
  const seen = n.last_seen ? Date.parse(n.last_seen) : null;
  setText(el, seen == null ? t('seen.never') : fmtAgo(now - seen));
  if (seen != null) el.title = fmtDateTime(seen);
}
