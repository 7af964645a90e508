// The time-range picker of the pages that show history (1 h … 1 y, or a
// custom from/to), kept in the address: "#/agency/dinkes?range=7d" or
// "?from=1796400000&to=1796486400" (Unix seconds), so a view can be shared
// and a reload shows the same range. A chart's drag-zoom sets a custom range
// the same way.
import { t, fmtDateTime } from './i18n.js';
import { h, setText, localInput, inputMs } from './dom.js';

/** Seconds back from now of each preset. */
export const PRESETS = {
  '15m': 900, '1h': 3600, '6h': 6 * 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400, '1y': 365 * 86400,
};
export const HISTORY_PRESETS = ['1h', '6h', '24h', '7d', '30d', '1y'];
/** A custom range longer than this is refused (the API answers at most 20 000 steps of an hour). */
export const MAX_CUSTOM_SECS = 2 * 365 * 86400;

/** The query part of the address's hash ("#/x?range=7d" → range=7d). */
export function hashParams() {
  const hash = location.hash;
  const i = hash.indexOf('?');
  return new URLSearchParams(i >= 0 ? hash.slice(i + 1) : '');
}

/**
 * Write `params` (name → value; null removes) into the hash's query, without
 * routing again: pushState fires no hashchange. Back restores the previous
 * range (that one does route again, from the address).
 */
export function setHashParams(params) {
  const hash = location.hash || '#/';
  const i = hash.indexOf('?');
  const path = i >= 0 ? hash.slice(0, i) : hash;
  const q = hashParams();
  for (const [k, v] of Object.entries(params)) {
    if (v == null) q.delete(k); else q.set(k, String(v));
  }
  const s = q.toString();
  const next = `${path}${s ? `?${s}` : ''}`;
  if (next !== hash) history.pushState(null, '', `${location.pathname}${location.search}${next}`);
}

/**
 * The range the address asks for: { key } for a preset among `allowed`, or
 * { from, to } (Unix s, from < to, at most MAX_CUSTOM_SECS); else the default.
 */
export function rangeFromHash(allowed, fallback) {
  const q = hashParams();
  const key = q.get('range');
  if (key && allowed.includes(key)) return { key };
  const from = Number(q.get('from'));
  const to = Number(q.get('to'));
  if (q.has('from') && q.has('to') && Number.isInteger(from) && Number.isInteger(to) && from > 0 && from < to && to - from <= MAX_CUSTOM_SECS) {
    return { key: 'custom', from, to };
  }
  return { key: fallback };
}

/** Unix seconds { from, to } of a range at `nowMs`. */
export function bounds(r, nowMs) {
  if (r.key === 'custom') return { from: r.from, to: r.to };
  const to = Math.floor(nowMs / 1000);
  return { from: to - PRESETS[r.key], to };
}

/** "24 jam", "7 hari", or "4 Des 10:00:00 – 4 Des 12:00:00". */
export function rangeLabel(r) {
  if (r.key === 'custom') return `${fmtDateTime(r.from * 1000)} – ${fmtDateTime(r.to * 1000)}`;
  return t(`range.${r.key}`);
}

function sameRange(a, b) {
  return a.key === b.key && (a.key !== 'custom' || (a.from === b.from && a.to === b.to));
}

/**
 * The buttons and the custom from/to form. opts: presets (keys of PRESETS),
 * value (a range), testid (prefix of the buttons' test ids: `${testid}24h`,
 * `${testid}custom`, `${testid}from`, `${testid}to`, `${testid}apply`),
 * onChange(range). `url: false` leaves the address alone (a picker inside a
 * page whose own picker owns the address).
 */
export class RangePicker {
  constructor({ presets, value, testid, onChange, url = true, serverNow = () => Date.now() }) {
    this.presets = presets;
    this.value = value;
    this.testid = testid;
    this.onChange = onChange;
    this.url = url;
    this.serverNow = serverNow;
  }

  element() {
    const id = `${this.testid}form`;
    this.btns = [...this.presets, 'custom'].map((k) => h('button', {
      type: 'button', class: 'range', 'data-testid': `${this.testid}${k}`, 'data-range': k,
      'aria-pressed': String(k === this.value.key),
      'aria-controls': k === 'custom' ? id : null,
      onclick: () => (k === 'custom' ? this.toggleForm() : this.set({ key: k })),
      text: k === 'custom' ? t('range.custom') : t(`range.${k}`),
    }));
    this.from = h('input', { type: 'datetime-local', id: `${id}-from`, 'data-testid': `${this.testid}from`, required: true });
    this.to = h('input', { type: 'datetime-local', id: `${id}-to`, 'data-testid': `${this.testid}to`, required: true });
    this.error = h('span', { class: 'form-error', role: 'alert', 'data-testid': `${this.testid}error`, hidden: true });
    this.label = h('span', { class: 'range-label', 'data-testid': `${this.testid}label` });
    this.form = h('form', { class: 'range-form', id, hidden: true, onsubmit: (e) => { e.preventDefault(); this.applyForm(); } },
      h('label', { for: `${id}-from`, text: t('range.from') }), this.from,
      h('label', { for: `${id}-to`, text: t('range.to') }), this.to,
      h('button', { type: 'submit', class: 'btn', 'data-testid': `${this.testid}apply`, text: t('range.apply') }), this.error);
    this.render();
    return h('div', { class: 'range-picker' },
      h('div', { class: 'range-group', role: 'group', 'aria-label': t('range.label') }, ...this.btns),
      this.label, this.form);
  }

  render() {
    this.btns.forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.range === this.value.key)));
    setText(this.label, this.value.key === 'custom' ? rangeLabel(this.value) : '');
  }

  toggleForm() {
    const show = this.form.hidden;
    this.form.hidden = !show;
    this.btns.at(-1).setAttribute('aria-expanded', String(show));
    if (show) {
      const b = bounds(this.value, this.serverNow());
      this.from.value = localInput(b.from * 1000);
      this.to.value = localInput(b.to * 1000);
      this.from.focus();
    }
  }

  applyForm() {
    const from = Math.floor(inputMs(this.from.value) / 1000);
    const to = Math.floor(inputMs(this.to.value) / 1000);
    let problem = null;
    if (!Number.isFinite(from) || !Number.isFinite(to)) problem = 'range.err.missing';
    else if (from >= to) problem = 'range.err.order';
    else if (to - from > MAX_CUSTOM_SECS) problem = 'range.err.long';
    this.error.hidden = !problem;
    if (problem) { setText(this.error, t(problem)); return; }
    this.form.hidden = true;
    this.set({ key: 'custom', from, to });
  }

  /** Choose a range (a button, the form, a chart's drag-zoom): the address follows. */
  set(r) {
    if (sameRange(r, this.value)) return;
    this.value = r;
    if (this.url) {
      setHashParams(r.key === 'custom' ? { range: null, from: r.from, to: r.to } : { range: r.key, from: null, to: null });
    }
    this.render();
    this.onChange(r);
  }
}
