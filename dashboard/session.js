// Who is logged in and what their role may use. The server enforces every
// rule; these only decide what the page offers, so nobody clicks into a 403.
import { getJSON, postJSON, useSession, ApiError } from './api.js';
import * as paths from './paths.js';
import { setZone } from './format.js';

let me = null;

/** The logged-in account (GET /api/v1/auth/me), or null. */
export function current() { return me; }

function set(m) {
  me = m ? { ...m, agency: m.agency ?? null } : null;
  useSession(me);
  setZone(me?.zone); // every time on the page is in the NOC's zone
  return me;
}

export const can = {
  /** Client addresses: top hosts, flows, blocked attempts (all but the wall's viewer). */
  read: () => !!me && me.role !== 'viewer',
  /** The NOC's actions: acknowledgements, maintenance windows. A kiosk never changes anything. */
  operate: () => !!me && !me.kiosk && (me.role === 'admin' || me.role === 'operator'),
  /** Users, tokens, audit, sessions, enrolment and revocation. */
  admin: () => !!me && !me.kiosk && me.role === 'admin',
  /** Logging out is a POST, which a kiosk session may not make. */
  logout: () => !!me && !me.kiosk,
};

/** The one agency an agency officer sees (null: every agency). */
export function ownAgency() { return me?.role === 'agency' ? me.agency : null; }

/**
 * Resume the session the cookie holds: the account, or null when there is
 * none (401). Other failures (collector unreachable) reject.
 */
export async function resume() {
  try {
    return set(await getJSON(paths.authMe(), { auth: false }));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return set(null);
    throw e;
  }
}

/** Log in; the password goes to the server and nowhere else. */
export async function login(username, password) {
  return set(await postJSON(paths.authLogin(), { username, password }, { auth: false }));
}

/** Trade a kiosk token (the wall's URL) for a read-only session. */
export async function kiosk(token) {
  return set(await postJSON(paths.authKiosk(), { token }, { auth: false }));
}

export async function logout() {
  await postJSON(paths.authLogout(), undefined);
  set(null);
}

/** Forget the session locally (the server already ended it). */
export function forget() { set(null); }
