// The hash routes: "#/" (overview, the wall), "#/agency/<code>",
// "#/policy" and "#/policy/<code>", "#/policy-default", "#/blocked",
// "#/incidents", "#/availability", "#/nodes", "#/node/<id>", "#/lists",
// "#/search?q=…", "#/reports" and "#/admin/<tab>"; and where a role may not go.
import { can, ownAgency } from './session.js';
import { ADMIN_TABS } from './admin.js';

/**
 * "#/agency/dinkes?range=7d" → { name: 'agency', arg: 'dinkes' } (the query
 * is the page's own: timerange.js); an address matching no page is
 * { name: 'notfound' }, which says so.
 */
export function parseHash() {
  let hash;
  try { hash = decodeURIComponent(location.hash.replace(/^#/, '').split('?')[0]) || '/'; } catch (_) { return { name: 'notfound', arg: null }; }
  let m = hash.match(/^\/agency\/([A-Za-z0-9_-]{1,64})\/?$/);
  if (m) return { name: 'agency', arg: m[1] };
  m = hash.match(/^\/policy(?:\/([A-Za-z0-9_-]{1,64}))?\/?$/);
  if (m) return { name: 'policy', arg: m[1] || null };
  if (/^\/policy-default\/?$/.test(hash)) return { name: 'policy-default', arg: null };
  m = hash.match(/^\/node\/([A-Za-z0-9_-]{1,64})\/?$/);
  if (m) return { name: 'node', arg: m[1] };
  m = hash.match(/^\/admin(?:\/([a-z]+))?\/?$/);
  if (m) return { name: 'admin', arg: m[1] || 'users' };
  if (hash === '/') return { name: 'overview', arg: null };
  if (/^\/search\/?$/.test(hash)) return { name: 'search', arg: null };
  const page = hash.match(/^\/(blocked|incidents|availability|nodes|lists|reports)\/?$/)?.[1];
  return { name: page || 'notfound', arg: null };
}

/**
 * Where a role may not go, the router sends it elsewhere (the server would
 * answer 403 anyway): an agency officer to its own agency, the rest to the wall.
 */
export function redirectFor(r) {
  const own = ownAgency();
  if (r.name === 'agency' && own && r.arg !== own) return `#/agency/${encodeURIComponent(own)}`;
  if (r.name === 'blocked' && !can.read()) return '#/';
  if (r.name === 'lists' && !can.read()) return '#/';
  if (r.name === 'search' && !can.read()) return '#/';
  if (r.name === 'reports' && !can.read()) return '#/';
  // Policies: admins, operators and an agency's own officer (its own only).
  if (r.name === 'policy' && !can.read()) return '#/';
  if (r.name === 'policy' && own && r.arg !== own) return `#/policy/${encodeURIComponent(own)}`;
  if (r.name === 'policy-default' && (!can.read() || own)) return own ? `#/policy/${encodeURIComponent(own)}` : '#/';
  if (r.name === 'admin' && (!can.admin() || !ADMIN_TABS.includes(r.arg))) return can.admin() ? '#/admin/users' : '#/';
  return null;
}
