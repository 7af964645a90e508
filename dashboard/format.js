// Shared formatting of the views' figures as text and levels (no DOM): how
// full an allocation is, a blocking rule as a reader says it, an endpoint,
// a protocol. Numbers, rates, times and durations themselves are i18n.js's.
import { t } from './i18n.js';

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
