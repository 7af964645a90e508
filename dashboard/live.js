// The live feed: WebSocket /api/v1/live (snapshot, then a tick every second),
// reconnect with exponential backoff, and polling of /api/v1/overview while
// the WebSocket is down. URLs are relative to the page so a reverse proxy may
// serve the dashboard under a prefix.

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
export const POLL_MS = 2000;
const SILENCE_MS = 10000; // an open socket with no message this long is dead

export function apiUrl(path) { return new URL(path, document.baseURI).href; }

export async function getJSON(path, { signal } = {}) {
  const res = await fetch(apiUrl(path), { signal, headers: { accept: 'application/json' }, cache: 'no-store' });
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) throw new Error((body && body.error) || `HTTP ${res.status}`);
  return body;
}

/** POST a JSON body; the answer's JSON, or an Error with the API's message. */
export async function postJSON(path, data, { signal } = {}) {
  const res = await fetch(apiUrl(path), {
    method: 'POST',
    signal,
    headers: { accept: 'application/json', 'content-type': 'application/json' },
    body: JSON.stringify(data),
    cache: 'no-store',
  });
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) throw new Error((body && body.error) || `HTTP ${res.status}`);
  return body;
}

/**
 * state: 'connecting' (first attempt), 'live' (WebSocket delivering),
 * 'polling' (WebSocket down, HTTP polling works), 'down' (nothing works).
 * Handlers: onSnapshot(msg), onTick(msg), onOverview(overview) for polled data,
 * onState(state, info).
 */
export class LiveFeed {
  constructor(handlers) {
    this.h = handlers;
    this.state = 'connecting';
    this.ws = null;
    this.failures = 0;
    this.retryAt = null;
    this.retryTimer = null;
    this.pollTimer = null;
    this.pollOk = false;
    this.wsLastAt = 0;
    this.watchdog = setInterval(() => this.checkSilence(), 1000);
    this.wsSupported = typeof WebSocket === 'function';
  }

  start() {
    if (this.wsSupported) this.connect();
    else this.startPolling();
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
        this.stopPolling();
        this.h.onSnapshot?.(msg);
        this.setState('live');
      } else if (msg.type === 'tick') {
        this.h.onTick?.(msg);
        if (this.state !== 'live') this.setState('live');
      }
    };
    // Opened but silent (no snapshot) also counts as dead after SILENCE_MS.
    ws.onopen = () => { this.wsLastAt = Date.now(); };
    ws.onclose = () => { if (this.ws === ws) this.onDrop(); };
    ws.onerror = () => { /* onclose follows */ };
  }

  onDrop() {
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
        if (!this.pollTimer) return; // the WebSocket came back meanwhile
        this.pollOk = true;
        this.h.onOverview?.(ov);
        if (this.state !== 'live') this.setState('polling');
      } catch (_) {
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
