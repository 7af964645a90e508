// Every collector API path the dashboard uses, in one place: a route renamed
// on the server is renamed here once. Paths are relative (no leading slash)
// so a reverse proxy may serve the dashboard under a prefix; api.js resolves
// them against the page. A path is also the key of what views keep in the
// cache (state.js), so the same question is always spelled the same way.

const enc = encodeURIComponent;

/**
 * "?a=1&b=x" from { a: 1, b: 'x' } in the caller's order; null, undefined,
 * false and '' are left out (true is written as "true"). "" when nothing is left.
 */
export function qs(params = {}) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    if (v == null || v === false || v === '') continue;
    parts.push(`${enc(k)}=${enc(String(v))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

const V1 = 'api/v1';

// Session
export const authMe = () => `${V1}/auth/me`;
export const authLogin = () => `${V1}/auth/login`;
export const authKiosk = () => `${V1}/auth/kiosk`;
export const authLogout = () => `${V1}/auth/logout`;
export const authSessions = () => `${V1}/auth/sessions`;
export const authSession = (id) => `${V1}/auth/sessions/${enc(id)}`;

// Live data
export const overview = () => `${V1}/overview`;
export const live = () => `${V1}/live`;

// Agencies and their traffic
export const agencies = () => `${V1}/agencies`;
/** Usage of one agency: { from (Unix s), to?, step ('1s' | '1m' | '1h' …) }. */
export const agencyUsage = (code, params) => `${V1}/agencies/${enc(code)}/usage${qs(params)}`;
export const agencyPolicy = (code, rest = '') => `${V1}/agencies/${enc(code)}/policy${rest}`;
export const defaultPolicy = (rest = '') => `${V1}/policy/default${rest}`;
/** { agency, limit, from, to } */
export const topHosts = (params) => `${V1}/top/hosts${qs(params)}`;
export const topSites = (params) => `${V1}/top/sites${qs(params)}`;
/** { agency, unit, host, peer, site, proto, sort, cursor, limit, from, to, format } */
export const flows = (params) => `${V1}/flows${qs(params)}`;
/** { q, from, to, limit, format ('csv' with part: units | hosts | peers | sites | blocked), part } */
export const search = (params) => `${V1}/search${qs(params)}`;
/** Bytes per unit: { from, to, format } */
export const agencyUnits = (code, params) => `${V1}/agencies/${enc(code)}/units${qs(params)}`;

// Blocked attempts: { agency, limit, from, to, format ('csv': the list only) }
export const blocked = (params) => `${V1}/blocked${qs(params)}`;
export const blockedSummary = (params) => `${V1}/blocked/summary${qs(params)}`;

// Nodes
/** { agency } */
export const nodes = (params) => `${V1}/nodes${qs(params)}`;
/** This collector, who leads outage detection, every lease (NOC roles). */
export const collectors = () => `${V1}/collectors`;
export const netflowExporters = (params) => `${V1}/netflow/exporters${qs(params)}`;
export const nodeEnrollmentToken = (id) => `${V1}/nodes/${enc(id)}/enrollment-token`;
export const nodeRevoke = (id) => `${V1}/nodes/${enc(id)}/revoke`;

// Incidents and availability
/** { open, node, agency, from, to, limit } */
export const incidents = (params) => `${V1}/incidents${qs(params)}`;
export const incidentAck = (id) => `${V1}/incidents/${enc(id)}/ack`;
/** { agency } */
export const incidentStats = (params) => `${V1}/incidents/stats${qs(params)}`;
/** { from, to (Unix s; at most a year apart), agency, node, format ('csv') } */
export const availability = (params) => `${V1}/availability${qs(params)}`;
export const maintenance = () => `${V1}/maintenance`;
export const maintenanceWindow = (id, rest = '') => `${V1}/maintenance/${enc(id)}${rest}`;

// Block lists
export const lists = () => `${V1}/lists`;
export const list = (name, rest = '') => `${V1}/lists/${enc(name)}${rest}`;

// Monthly reports: { month ('2026-11'), agency, format ('pdf' | 'csv'; JSON without), lang }
export const reportMonthly = (params) => `${V1}/reports/monthly${qs(params)}`;

// Administration
export const users = () => `${V1}/users`;
export const user = (name) => `${V1}/users/${enc(name)}`;
export const tokens = () => `${V1}/tokens`;
export const token = (id) => `${V1}/tokens/${enc(id)}`;
/** The audit log; `query` is a ready "a=1&b=2" string (the form's filters). */
export const audit = (query = '') => `${V1}/audit${query ? `?${query}` : ''}`;
