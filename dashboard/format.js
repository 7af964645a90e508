// Shared formatting of the views' figures as text and levels (no DOM): how
// full an allocation is, a blocking rule as a reader says it, an endpoint,
// a protocol; and every clock time, in the NOC's zone (below). Numbers,
// rates and durations themselves are i18n.js's.
import { t, locale } from './i18n.js';

export const CRIT = 0.95;
export const WARN = 0.8;

/** 'ok' below 80 % of the allocation, 'warn' from 80 %, 'crit' from 95 %, 'none' without one. */
export function level(ratio) {
  if (ratio == null || !Number.isFinite(ratio)) return 'none';
  return ratio >= CRIT ? 'crit' : ratio >= WARN ? 'warn' : 'ok';
}

export function ratioOf(v, cap) { return cap > 0 && Number.isFinite(v) ? v / cap : null; }

/** Availability in percent as a level: 99.9 % and more is ok, from 99 % a warning. */
export function pctLevel(p) { return p >= 99.9 ? 'ok' : p >= 99 ? 'warn' : 'crit'; }

/**
 * A blocking rule as a reader says it: "domain judi.example (daftar
 * instansi)", "slot.example · kategori judi", "QUIC ditutup (UDP 443)" —
 * not the matcher's "quic · quic".
 */
export function ruleText(r) {
  switch (r.list) {
    case 'domains': return t('rule.domain', { rule: r.rule });
    case 'cidrs': return t('rule.cidr', { rule: r.rule });
    case 'ports': return t('rule.port', { rule: r.rule });
    case 'doh': return t('rule.doh', { rule: r.rule });
    case 'dot': return t('rule.dot');
    case 'quic': return t('rule.quic');
    default: return r.list ? t('rule.category', { rule: r.rule, list: r.list }) : r.rule || '—';
  }
}

/** "10.0.0.1:443", "[2001:db8::1]:443", "10.0.0.1" without a port. */
export function endpoint(ip, port) {
  if (ip == null) return '—';
  const a = String(ip).includes(':') ? `[${ip}]` : ip;
  return port ? `${a}:${port}` : String(ip);
}

const PROTOS = { tcp: 'TCP', udp: 'UDP', icmp: 'ICMP', icmpv6: 'ICMPv6' };
export function protoName(p) { return PROTOS[p] || String(p ?? '—'); }

/** 'failed' or 'rejected' when the node did not take the newest policy. */
export function policyTrouble(n) {
  const st = n.policy?.state;
  return st === 'failed' || st === 'rejected' ? st : null;
}

// ---- times: always in the NOC's zone ---------------------------------------
// The NOC's zone comes with the session (`zone` of /api/v1/auth/me: the
// collector's notify.utc_offset), not from the browser or the collector's
// host: a wall whose PC runs on UTC still shows WIB. Indonesia has no DST, so
// a fixed offset is exact: a time is shifted by it and formatted as UTC.

const DEFAULT_ZONE = { offsetMs: 7 * 3600e3, label: 'WIB' };
let zone = DEFAULT_ZONE;

/** The session's `zone` ({ offset_secs, label }); anything else keeps WIB. */
export function setZone(z) {
  const secs = Number(z?.offset_secs);
  zone = Number.isFinite(secs) && Math.abs(secs) <= 14 * 3600
    ? { offsetMs: secs * 1000, label: String(z.label || '') } : DEFAULT_ZONE;
}

/** WIB / WITA / WIT, or "UTC+hh:mm". */
export function zoneLabel() { return zone.label; }

/** The NOC's offset from UTC in milliseconds. */
export function zoneOffsetMs() { return zone.offsetMs; }

const formats = new Map();
function dtf(opts) {
  const k = `${locale()}:${JSON.stringify(opts)}`;
  let f = formats.get(k);
  if (!f) { f = new Intl.DateTimeFormat(locale(), { ...opts, timeZone: 'UTC' }); formats.set(k, f); }
  return f;
}
const zoned = (d) => new Date(Number(d) + zone.offsetMs);

const HMS = { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
const HM = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };

/** Times (Unix ms or a Date) as the NOC reads them. */
export function fmtTime(d) { return d == null ? '—' : dtf(HMS).format(zoned(d)); }
export function fmtTimeHM(d) { return dtf(HM).format(zoned(d)); }
export function fmtDay(d) { return dtf({ day: 'numeric', month: 'short' }).format(zoned(d)); }
export function fmtMonth(d) { return dtf({ month: 'short', year: 'numeric' }).format(zoned(d)); }
export function fmtDate(d) {
  return dtf({ weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).format(zoned(d));
}
export function fmtDateTime(d) {
  if (d == null) return '—';
  return dtf({ day: 'numeric', month: 'short', ...HMS }).format(zoned(d));
}

/** The NOC's calendar fields of a time: { y, m (0-11), d, hh, mm }. */
export function zoneParts(ms) {
  const z = zoned(ms);
  return { y: z.getUTCFullYear(), m: z.getUTCMonth(), d: z.getUTCDate(), hh: z.getUTCHours(), mm: z.getUTCMinutes() };
}

/** Unix ms of a wall-clock time in the NOC's zone (month 0-11; overflowing fields roll over). */
export function zoneTime(y, m, d = 1, hh = 0, mm = 0) { return Date.UTC(y, m, d, hh, mm) - zone.offsetMs; }

/** The NOC's midnight starting the day of `ms`. */
export function zoneMidnight(ms) { const p = zoneParts(ms); return zoneTime(p.y, p.m, p.d); }

/** Whether two times fall on the same day in the NOC's zone. */
export function sameZoneDay(a, b) { return zoneMidnight(a) === zoneMidnight(b); }

/** "2026-11-27T10:15" in the NOC's zone, for datetime-local inputs. */
export function zoneInput(ms) {
  const p = zoneParts(ms);
  const z = (n) => String(n).padStart(2, '0');
  return `${p.y}-${z(p.m + 1)}-${z(p.d)}T${z(p.hh)}:${z(p.mm)}`;
}

/** Unix ms of a datetime-local value read in the NOC's zone, or NaN. */
export function parseZoneInput(v) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(String(v || ''));
  if (!m) return NaN;
  return zoneTime(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) + (m[6] ? +m[6] * 1000 : 0);
}

/** uPlot's tzDate: a Date whose local fields are the NOC's wall clock at Unix second `ts`. */
export function zoneWallDate(ts) {
  const z = zoned(ts * 1000);
  return new Date(z.getUTCFullYear(), z.getUTCMonth(), z.getUTCDate(), z.getUTCHours(), z.getUTCMinutes(), z.getUTCSeconds(), z.getUTCMilliseconds());
}
