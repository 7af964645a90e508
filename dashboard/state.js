// What the page knows, shared by the views: the last overview (live feed or
// poll), the per-second series of the live charts, the collector's clock, and
// a cache of API answers keyed by their path so a re-render needs no refetch.
// Everything here is forgotten at every login (resetState): the next session
// may see less.
import { getJSON } from './api.js';
import { t } from './i18n.js';
import * as paths from './paths.js';

export const SERIES_SPAN = 900; // seconds of per-second history kept per agency

export const state = {
  overview: null, // last overview (snapshot, tick or poll)
  source: null, // 'ws' | 'poll'
  receivedAt: 0, // browser time of the last overview
  clockOffset: 0, // collector clock − browser clock (ms), only when large
  series: new Map(), // agency code → { t: [sec], in: [bps], out: [bps] }
  zeroUntil: -Infinity, // up to this second a missing series point means zero traffic
  feed: 'connecting',
  feedInfo: {},
};

export const cache = new Map(); // API path → last response, so re-renders need no refetch

const resetHooks = [];

/** fn() runs at every resetState (a view module's own remembered choices). */
export function onReset(fn) { resetHooks.push(fn); }

/** Forget everything the previous session saw. */
export function resetState() {
  cache.clear();
  Object.assign(state, {
    overview: null, source: null, receivedAt: 0, clockOffset: 0, series: new Map(), zeroUntil: -Infinity, feed: 'connecting', feedInfo: {},
  });
  resetHooks.forEach((fn) => fn());
}

/** Now on the collector's clock (ms), when it differs from the browser's by more than 5 s. */
export function serverNow() { return Date.now() + state.clockOffset; }

export function acceptOverview(ov, source) {
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

export function pushPoint(code, p) {
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

export function replaceSeries(code, points) {
  state.series.delete(code);
  const sorted = [...points].sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts));
  for (const p of sorted) pushPoint(code, p);
}

/**
 * The last 15 min ending at `end` (Unix s), one value per second. Up to the
 * snapshot's end a missing second had no traffic (zero); after it, ticks carry
 * every agency each second, so a missing second is a skipped tick (null: the
 * charts bridge it).
 */
export function denseSeries(code, end) {
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
export function liveEnd(code) {
  const s = state.series.get(code);
  const ov = state.overview ? Math.floor(Date.parse(state.overview.ts) / 1000) : -Infinity;
  const last = s && s.t.length ? s.t[s.t.length - 1] : -Infinity;
  const end = Math.max(Number.isFinite(ov) ? ov : -Infinity, last);
  return Number.isFinite(end) ? end : NaN;
}

/** An agency's name from the overview, else its code. */
export function agencyName(code) {
  const a = state.overview?.agencies?.find((x) => x.code === code);
  return a ? a.name : code;
}

/** Agency names when the overview has not arrived (pages opened directly). */
export function agencyLabel(code) {
  const ags = cache.get(paths.agencies());
  const a = Array.isArray(ags) ? ags.find((x) => x.code === code) : null;
  return a ? a.name : agencyName(code);
}

/** A unit's name from the agencies list (once fetched), else its code. */
export function unitLabel(agency, unit) {
  const ags = cache.get(paths.agencies());
  const a = Array.isArray(ags) ? ags.find((x) => x.code === agency) : null;
  const u = a?.units?.find((x) => x.code === unit);
  if (u) return u.name;
  return unit === 'unknown' ? t('unit.unknown') : unit;
}

const agencyHooks = [];

/** fn() runs when the agencies list first arrives (names replace codes). */
export function onAgencies(fn) { agencyHooks.push(fn); }

/** The agencies (GET /api/v1/agencies, fetched once per session; an agency officer gets its own only). */
export async function agencies(signal) {
  let ags = cache.get(paths.agencies());
  if (!Array.isArray(ags)) {
    ags = await getJSON(paths.agencies(), { signal });
    cache.set(paths.agencies(), ags);
    agencyHooks.forEach((fn) => fn(ags));
  }
  return ags;
}
