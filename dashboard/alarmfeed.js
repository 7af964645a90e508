// The open alarms as the NOC should see them now, on every page after a
// login: the open incidents (polled every 5 s) as alarms (alarms.js), each
// with the maintenance window in force over its node (polled every 15 s) —
// an outage inside one is maintenance, not a red unacknowledged alarm — and
// a new alarm announced: the page title counts the unacknowledged ones
// ("(2) Simpul NOC · …"), an optional beep (WebAudio, off by default) and a
// browser notification (permission asked from a button, never on load).
// The choices are kept in localStorage. The wall subscribes (onAlarms)
// instead of polling on its own.
import { t, fmtTime } from './i18n.js';
import { getJSON } from './api.js';
import * as paths from './paths.js';
import { alarms, INCIDENTS_REFRESH_MS } from './alarms.js';
import { windowCovers } from './maintenance.js';
import { serverNow, agencyName, onReset } from './state.js';

export const OPEN_INCIDENTS = paths.incidents({ open: true, limit: 500 });
const WINDOWS_REFRESH_MS = 15000;
const SOUND_KEY = 'simpul.alarmSound';
const NOTIFY_KEY = 'simpul.alarmNotify';

let timer = null;
let ctl = null;
let windows = [];
let windowsAt = 0;
let last = null; // { top, list, windows } or { error }
let known = null; // ids of the unacknowledged alarms seen so far (null: nothing polled yet)
let unacked = 0;
const listeners = new Set();

/** The window in force over a node now (its own before its agency's before everyone's), or null. */
export function windowInForce(list, node, agency, now) {
  const rank = (m) => (m.node_id ? 0 : m.agency ? 1 : 2);
  return (list || []).filter((m) => m.starts_ms <= now && now < m.ends_ms && windowCovers(m, node, agency))
    .sort((a, b) => rank(a) - rank(b) || b.ends_ms - a.ends_ms)[0] || null;
}

/**
 * Alarms (alarms.js) with `mw` (the window in force over the node) and
 * `inMaint` (in a window now, or detected inside one): live alarms first in
 * their order, then those in maintenance.
 */
export function liveAlarms(list, wins, now) {
  return alarms(list || []).map((i) => {
    const mw = windowInForce(wins, i.node_id, i.agency, now);
    return { ...i, mw, inMaint: !!mw || !!i.maintenance };
  }).sort((a, b) => Number(a.inMaint) - Number(b.inMaint));
}

/** fn({ top, list, windows } | { error }) now (when known) and after every poll; returns the unsubscribe. */
export function onAlarms(fn) {
  listeners.add(fn);
  if (last) fn(last);
  return () => listeners.delete(fn);
}

/** The nodes in a maintenance window now: node id → window (for tiles). */
export function maintenanceOf(node, agency) { return windowInForce(windows, node, agency, serverNow()); }

/** Start after a login (every page); stop at the login screen. */
export function startAlarmFeed() {
  stopAlarmFeed();
  ctl = new AbortController();
  refreshAlarms({ windows: true });
  timer = setInterval(() => refreshAlarms(), INCIDENTS_REFRESH_MS);
}

export function stopAlarmFeed() {
  clearInterval(timer);
  timer = null;
  ctl?.abort();
  ctl = null;
  forget();
}

function forget() {
  windows = []; windowsAt = 0; last = null; known = null;
  setCount(0);
}
onReset(forget);

/** Poll now (after an acknowledgement, or a window changed: { windows: true }). */
export async function refreshAlarms({ windows: reloadWindows = false } = {}) {
  if (!ctl) return;
  const { signal } = ctl;
  try {
    const wantWindows = reloadWindows || Date.now() - windowsAt >= WINDOWS_REFRESH_MS;
    const [list, wins] = await Promise.all([
      getJSON(OPEN_INCIDENTS, { signal }),
      // A role or a collector without windows still shows its alarms.
      wantWindows ? getJSON(paths.maintenance(), { signal }).catch((e) => (e.name === 'AbortError' ? Promise.reject(e) : null)) : null,
    ]);
    if (signal.aborted) return;
    if (Array.isArray(wins)) { windows = wins; windowsAt = Date.now(); }
    const top = liveAlarms(list, windows, serverNow());
    announce(top);
    publish({ top, list, windows });
  } catch (e) {
    if (e.name !== 'AbortError' && !signal.aborted) publish({ error: e, ...(last?.top ? last : {}) });
  }
}

function publish(d) {
  last = d;
  for (const fn of listeners) fn(d);
}

// ---- announcing ------------------------------------------------------------

function announce(top) {
  const live = top.filter((i) => !i.inMaint && i.acked_ms == null);
  setCount(live.length);
  // The first poll of a session announces nothing: a wall reloaded must not
  // ring for every alarm it already showed. An alarm whose window ended
  // (the node still down) counts as new.
  const fresh = known ? live.filter((i) => !known.has(i.id)) : [];
  known = new Set(live.map((i) => i.id));
  if (!fresh.length) return;
  if (soundOn()) beep();
  if (notifyState() === 'on') for (const i of fresh.slice(0, 5)) notify(i);
}

const PREFIX = /^\(\d+\) /;
function applyTitle() {
  const base = document.title.replace(PREFIX, '');
  const want = unacked ? `(${unacked}) ${base}` : base;
  if (document.title !== want) document.title = want;
}
// Views set document.title as they mount: the count is put back in front.
new MutationObserver(applyTitle).observe(document.head, { childList: true, characterData: true, subtree: true });

function setCount(n) {
  unacked = n;
  applyTitle();
}

/** How many unacknowledged alarms (outside maintenance) the title counts. */
export function unackedCount() { return unacked; }

function stored(key) { try { return localStorage.getItem(key); } catch (_) { return null; } }
function store(key, v) { try { localStorage.setItem(key, v); } catch (_) { /* storage disabled */ } }

export function soundOn() { return stored(SOUND_KEY) === 'on'; }

let audio = null;
let beeps = 0;
/** Beeps played so far (the toggle shows it as data-beeps for tests). */
export function beepCount() { return beeps; }

/** Sound on or off; switching it on (a click) lets the page play audio. */
export function setSound(on) {
  store(SOUND_KEY, on ? 'on' : 'off');
  if (on) beep();
}

function beep() {
  try {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return;
    audio ??= new AC();
    audio.resume?.();
    const t0 = audio.currentTime;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = 'square';
    osc.frequency.value = 880;
    // Two short tones, loud enough for a NOC room, no click at the edges.
    gain.gain.setValueAtTime(0.0001, t0);
    for (const s of [0, 0.3]) {
      gain.gain.exponentialRampToValueAtTime(0.25, t0 + s + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + s + 0.2);
    }
    osc.connect(gain).connect(audio.destination);
    osc.start(t0);
    osc.stop(t0 + 0.55);
    beeps++;
  } catch (_) { /* no audio here */ }
}

/** 'on', 'off', 'denied' (the browser refuses) or 'unsupported'. */
export function notifyState() {
  if (!('Notification' in window)) return 'unsupported';
  if (Notification.permission === 'denied') return 'denied';
  return Notification.permission === 'granted' && stored(NOTIFY_KEY) === 'on' ? 'on' : 'off';
}

/** The button: asks the browser's permission the first time; on ↔ off after. */
export async function toggleNotify() {
  const st = notifyState();
  if (st === 'on') store(NOTIFY_KEY, 'off');
  else if (st === 'off') {
    const p = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
    if (p === 'granted') store(NOTIFY_KEY, 'on');
  }
  return notifyState();
}

function notify(i) {
  try {
    const n = new Notification(t('announce.title', { kind: t(`kind.${i.kind}`), node: i.node_id }), {
      body: t('announce.body', { agency: agencyName(i.agency), sev: t(`sev.${i.severity}`), t: fmtTime(i.started_ms) }),
      tag: `simpul-incident-${i.id}`,
      icon: 'favicon.svg',
    });
    n.addEventListener('click', () => { window.focus(); location.hash = '#/'; n.close(); });
  } catch (_) { /* notifications unavailable */ }
}
