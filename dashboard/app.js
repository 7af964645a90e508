// Simpul NOC dashboard: start (kiosk token, session restore, login screen),
// the live feed, and which view is on screen. Nothing shows before a login
// (or a kiosk token traded for a session); what a role may not use is not
// offered. The views are in views/ and the modules beside this one; routes
// in router.js. Plain ES modules, no build step.
import { t, lang, setLang, onLangChange } from './i18n.js';
import { onSessionEnded, ApiError, getJSON } from './api.js';
import { overview as overviewPath } from './paths.js';
import { LiveFeed } from './live.js';
import { startAlarmFeed, stopAlarmFeed } from './alarmfeed.js';
import { setText } from './dom.js';
import * as session from './session.js';
import { LoginView } from './login.js';
import { NodesView, NodeView } from './nodes.js';
import { AdminView } from './admin.js';
import { PolicyView, PolicyIndexView, DefaultPolicyView } from './policy.js';
import { ListsView } from './lists.js';
import {
  state, resetState, serverNow, acceptOverview, pushPoint, replaceSeries, agencyLabel, agencies, onAgencies,
} from './state.js';
import { els, renderChrome, renderUser, renderClock, renderConn, setMenuOpen } from './chrome.js';
import { parseHash, redirectFor } from './router.js';
import { OverviewView } from './views/wall.js';
import { AgencyView } from './views/agency.js';
import { BlockedView } from './views/blocked.js';
import { IncidentsView } from './views/incidents.js';
import { AvailabilityView } from './views/availability.js';
import { NotFoundView } from './views/notfound.js';
import { SearchView } from './views/search.js';
import { ReportsView } from './reports.js';

let view = null;

/** Routes whose views show the live feed's data (the wall, an agency). */
const LIVE_PAGES = new Set(['overview', 'agency']);

const PAGES = {
  blocked: BlockedView, incidents: IncidentsView, availability: AvailabilityView, notfound: NotFoundView,
  search: SearchView, reports: ReportsView,
};

// The officer's agency link takes the agency's name once the list arrives.
onAgencies(() => renderUser());

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
  setMenuOpen(false);
  renderUser();
  view.mount(els.view);
  // Only the pages that show live data keep the live feed open; the others
  // that read the last overview (the policy pages: the uplink) get one once.
  if (LIVE_PAGES.has(r.name)) {
    feed.resume();
  } else {
    feed.pause();
    if (!state.overview) {
      getJSON(overviewPath()).then((ov) => {
        if (state.overview || feed.running) return;
        acceptOverview(ov, 'poll');
        refresh();
      }).catch(() => { /* the page does without */ });
    }
  }
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
  resetState();
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
  stopAlarmFeed();
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
  route(); // opens the live feed when the page shows live data
  startAlarmFeed(); // the alarms (title count, announcements) on every page
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

els.lang.addEventListener('click', () => setLang(lang() === 'id' ? 'en' : 'id'));
els.logout.addEventListener('click', () => logOut());

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
