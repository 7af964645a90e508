// The page's frame around the views: title bar (clock, connection state,
// language), the navigation with who is logged in, and the disconnect banner.
import { t, fmtTime, fmtDate, zoneLabel } from './i18n.js';
import { POLL_MS } from './live.js';
import { h, setText } from './dom.js';
import * as session from './session.js';
import { can, ownAgency } from './session.js';
import { state, serverNow, agencyLabel } from './state.js';
import { renderSearchBox } from './searchbox.js';

const STALE_MS = 5000; // no data this long while "live" → show "delayed"

export const els = {
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
  navToggle: document.getElementById('nav-toggle'),
  navToggleLabel: document.getElementById('nav-toggle-label'),
  userName: document.getElementById('user-name'),
  userRole: document.getElementById('user-role'),
  logout: document.getElementById('logout'),
  logoutError: document.getElementById('logout-error'),
};

export function renderChrome() {
  setText(els.subtitle, t('app.subtitle'));
  setText(els.lang, t('lang.switch'));
  els.lang.setAttribute('aria-label', t('lang.switch.label'));
  els.lang.title = t('lang.switch.label');
  renderUser();
  renderClock();
  renderConn();
}

/** Routes shown under another one's navigation entry. */
const NAV_OF = { 'policy-default': 'policy', node: 'nodes' };

/** On a phone the navigation folds behind "Menu"; choosing a page folds it again. */
export function setMenuOpen(open) {
  els.nav.dataset.open = String(open);
  els.navToggle.setAttribute('aria-expanded', String(open));
}
els.navToggle.addEventListener('click', () => setMenuOpen(els.nav.dataset.open !== 'true'));

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
    can.read() ? { href: '#/reports', key: 'nav.reports', route: 'reports' } : null,
    can.admin() ? { href: '#/admin/users', key: 'nav.admin', route: 'admin' } : null,
  ].filter(Boolean);
}

/** Who is logged in (name, role, agency), the pages they may open, and "Keluar". */
export function renderUser() {
  renderSearchBox();
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
  const current = NAV_OF[els.view.dataset.route] || els.view.dataset.route;
  els.navLinks.replaceChildren(...navItems().map((i) => h('li', null, h('a', {
    href: i.href, 'data-testid': `nav-${i.route}`, 'aria-current': i.route === current ? 'page' : null, text: i.text || t(i.key),
  }))));
  setText(els.navToggleLabel, t('nav.menu'));
  setText(els.userName, me.display_name);
  els.userName.title = me.username;
  const role = t(`role.${me.role}`);
  setText(els.userRole, me.kiosk ? t('role.kiosk') : me.agency ? `${role} · ${agencyLabel(me.agency)}` : role);
  els.userRole.dataset.role = me.role;
  // A kiosk session may not POST, logout included: the wall stays until its token is revoked.
  els.logout.hidden = !can.logout();
  setText(els.logout, t('logout'));
}

export function renderClock() {
  const now = serverNow();
  setText(els.clockTime, fmtTime(now));
  setText(els.clockZone, zoneLabel());
  setText(els.clockDate, fmtDate(now));
}

export function renderConn() {
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
