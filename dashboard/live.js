// The live feed: WebSocket /api/v1/live (a snapshot, then every second a
// patch of what changed), reconnect with exponential backoff, and polling of
// /api/v1/overview while the WebSocket is down. The patches are applied here:
// handlers get whole overviews, as from the API. A patch that does not follow
// on from the state held (a skipped second) means a new snapshot: reconnect. URLs are relative to the page so a reverse proxy may
// serve the dashboard under a prefix. The socket carries the session cookie
// (same origin); the server closes it with code 4401 when the session ends.
import { getJSON } from './api.js';

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
export const POLL_MS = 2000;
const SILENCE_MS = 10000; // an open socket with no message this long is dead
const SESSION_ENDED = 4401; // close code: the session behind the socket ended

/**
 * state: 'connecting' (first attempt), 'live' (WebSocket delivering),
 * 'polling' (WebSocket down, HTTP polling works), 'down' (nothing works),
 * 'paused' (a page without live data is shown: nothing is open).
 * Handlers: onSnapshot(msg), onTick(msg), onOverview(overview) for polled data,
 * onState(state, info), onSessionEnded() (close code 4401). A polled
 * overview answering 401 is noticed by api.js like any other call.
 */
export class LiveFeed {
  constructor(handlers) {
    this.h = handlers;
    this.wsSupported = typeof WebSocket === 'function';
    this.running = false;
    this.watchdog = null;
    this.retryTimer = null;
    this.pollTimer = null;
    this.reset();
  }

  reset() {
    this.state = 'connecting';
    this.ws = null;
    this.failures = 0;
    this.retryAt = null;
    this.pollOk = false;
    this.wsLastAt = 0;
    this.seq = null; // number of the state held
    this.ov = null; // the overview the patches apply to
  }

  /** Start (again, after a login): the feed follows whatever session the cookie holds. */
  start() {
    this.stop();
    this.reset();
    this.running = true;
    this.watchdog = setInterval(() => this.checkSilence(), 1000);
    if (this.wsSupported) this.connect();
    else this.startPolling();
  }

  /** Stop everything (logout, session ended): no socket, no timer, no polling. */
  stop() {
    this.running = false;
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
    this.watchdog = null;
    this.retryTimer = null;
    this.stopPolling();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try { ws.close(); } catch (_) { /* already closing */ }
    }
  }

  /** A page without live data: no socket, no polling (the connection chip says so). */
  pause() {
    if (this.state === 'paused' && !this.running) return;
    this.stop();
    this.state = 'paused';
    this.h.onState?.('paused', {});
  }

  /** A page with live data: the feed runs, kept open from one such page to the next. */
  resume() {
    if (!this.running) this.start();
  }

  setState(s) {
    if (s !== this.state) { this.state = s; }
    this.h.onState?.(this.state, { retryAt: this.retryAt, pollMs: POLL_MS });
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
    const url = new URL('api/v1/live', document.baseURI);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try { ws = new WebSocket(url.href); } catch (_) { this.onDrop(); return; }
    this.ws = ws;
    this.wsLastAt = Date.now(); // also bounds how long CONNECTING may take
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      this.wsLastAt = Date.now();
      if (msg.type === 'snapshot') {
        this.failures = 0;
        this.seq = msg.seq;
        this.ov = msg.overview;
        this.stopPolling();
        this.h.onSnapshot?.(msg);
        this.setState('live');
      } else if (msg.type === 'delta') {
        if (this.ov == null || msg.base !== this.seq) { this.resync(); return; }
        this.ov = applyRates(applyPatch(this.ov, msg.o), msg.r);
        this.seq = msg.seq;
        this.h.onTick?.({ type: 'tick', overview: this.ov, points: pointsOf(this.ov, msg.p) });
        if (this.state !== 'live') this.setState('live');
      }
    };
    // Opened but silent (no snapshot) also counts as dead after SILENCE_MS.
    ws.onopen = () => { this.wsLastAt = Date.now(); };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      if (ev.code === SESSION_ENDED) {
        this.stop();
        this.h.onSessionEnded?.();
        return;
      }
      this.onDrop();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  /** A skipped second: a new snapshot now (once; again and again means backoff). */
  resync() {
    const ws = this.ws;
    this.ws = null;
    this.ov = null;
    try { ws?.close(); } catch (_) { /* already closing */ }
    this.failures += 1;
    if (this.failures === 1) this.connect();
    else { this.failures -= 1; this.onDrop(); }
  }

  onDrop() {
    if (!this.running) return;
    this.ws = null;
    this.failures += 1;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.failures - 1));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.startPolling();
    this.setState(this.pollOk ? 'polling' : 'down');
  }

  checkSilence() {
    const ws = this.ws;
    const alive = ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING);
    if (alive && Date.now() - this.wsLastAt > SILENCE_MS) {
      this.ws = null;
      try { ws.close(); } catch (_) { /* already closing */ }
      this.onDrop();
    } else if (this.state === 'down' || this.state === 'polling') {
      this.h.onState?.(this.state, { retryAt: this.retryAt, pollMs: POLL_MS });
    }
  }

  startPolling() {
    if (this.pollTimer) return;
    const poll = async () => {
      try {
        const ov = await getJSON('api/v1/overview');
        if (!this.pollTimer) return; // the WebSocket came back meanwhile, or the feed stopped
        this.pollOk = true;
        this.h.onOverview?.(ov);
        if (this.state !== 'live') this.setState('polling');
      } catch (_) {
        if (!this.pollTimer) return;
        this.pollOk = false;
        if (this.state !== 'live') this.setState('down');
      }
      if (this.pollTimer) this.pollTimer = setTimeout(poll, POLL_MS);
    };
    this.pollTimer = setTimeout(poll, 0);
  }

  stopPolling() {
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }
}

/**
 * A patch from the server applied to `cur`, as a new value (what did not
 * change is shared): a scalar or an array replaces; {"=": v} replaces with
 * the object v; {"@": {i: p}} patches element i; any other object patches
 * key by key.
 */
export function applyPatch(cur, p) {
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return p;
  if (Object.prototype.hasOwnProperty.call(p, '=')) return p['='];
  if (Array.isArray(cur) && Object.prototype.hasOwnProperty.call(p, '@')) {
    const out = cur.slice();
    for (const [i, ip] of Object.entries(p['@'])) {
      const k = Number(i);
      if (Number.isInteger(k) && k >= 0 && k < out.length) out[k] = applyPatch(out[k], ip);
    }
    return out;
  }
  if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return p;
  const out = { ...cur };
  for (const [k, v] of Object.entries(p)) out[k] = applyPatch(cur[k], v);
  return out;
}

/** The agency fields of `r`, in its order (after the agency's index). */
const RATES = ['in_bps', 'out_bps', 'internet_in_bps', 'internet_out_bps', 'intranet_in_bps', 'intranet_out_bps'];

/** Agencies' rates that changed: flat [index, ...RATES] per agency. */
export function applyRates(ov, r) {
  if (!Array.isArray(r) || !r.length || !Array.isArray(ov.agencies)) return ov;
  const agencies = ov.agencies.slice();
  const n = RATES.length + 1;
  for (let j = 0; j + n <= r.length; j += n) {
    const i = r[j];
    if (!Number.isInteger(i) || i < 0 || i >= agencies.length) continue;
    const a = { ...agencies[i] };
    RATES.forEach((f, k) => { a[f] = r[j + 1 + k]; });
    agencies[i] = a;
  }
  return { ...ov, agencies };
}

/** The newest complete second per agency: flat in/out pairs in the overview's agency order. */
function pointsOf(ov, flat) {
  const points = {};
  if (!Array.isArray(flat)) return points;
  const ts = new Date(Date.parse(ov.ts) - 1000).toISOString();
  (ov.agencies || []).forEach((a, i) => {
    if (2 * i + 1 < flat.length) points[a.code] = { ts, in_bps: flat[2 * i], out_bps: flat[2 * i + 1] };
  });
  return points;
}
