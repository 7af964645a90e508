// Small display pieces the views share: big rates, allocation bars, badges.
import { t, bpsParts } from './i18n.js';
import { h, setText } from './dom.js';
import { level } from './format.js';

/** A big rate: number and unit in separate spans, raw bps in data-value. */
export function bigBps(testid) {
  return h('span', { class: 'big-rate', 'data-testid': testid },
    h('span', { class: 'num' }), ' ', h('span', { class: 'unit' }));
}

export function setBigBps(el, v) {
  const [n, u] = bpsParts(v);
  el.dataset.value = String(v);
  setText(el.firstChild, n);
  setText(el.lastChild, u);
}

/** A bar of how full an allocation is, with a mark at 95 %. */
export function bar(extraClass) {
  return h('div', { class: `bar ${extraClass || ''}`, role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': '100' },
    h('div', { class: 'fill' }), h('div', { class: 'mark95', title: '95%' }));
}

export function setBar(el, ratio, label) {
  const lv = level(ratio);
  el.dataset.level = lv;
  const pct = ratio == null ? 0 : Math.min(100, ratio * 100);
  el.firstChild.style.width = `${pct.toFixed(2)}%`;
  el.setAttribute('aria-valuenow', ratio == null ? '0' : (ratio * 100).toFixed(1));
  el.setAttribute('aria-label', label);
}

/** How a blocked attempt was stopped (DNS, SNI, …). */
export function methodBadge(m) {
  return m ? h('span', { class: `badge method m-${m}`, 'data-method': m, text: t(`method.${m}`) }) : '—';
}

/** Where a flow's site name came from (DNS, SNI, …). */
export function sourceBadge(src) {
  return src ? h('span', { class: `badge src-${src}`, text: src.toUpperCase() }) : '—';
}

/**
 * Where a flow came from: an agent, or an exporter with its protocol and the
 * sampling rate its counts were multiplied by ("NetFlow v9 · 1:100
 * (dikalikan)"); rows of older collectors have no origin.
 */
export function originBadge(r) {
  if (!r.origin) return '—';
  const proto = t(`origin.${r.origin}`) || r.origin;
  const n = r.sampling_interval;
  let text = proto;
  let title = null;
  if (r.origin !== 'agent') {
    if (n == null) {
      text = t('origin.rateUnknown', { proto });
      title = t('origin.rateUnknown.help');
    } else if (n > 1) {
      text = t('origin.sampled', { proto, n });
      title = t('origin.sampled.help', { n });
    }
  }
  return h('span', {
    class: `badge origin origin-${r.origin}`, 'data-testid': 'flow-origin', 'data-origin': r.origin,
    'data-sampling': n == null ? '' : String(n), title, text,
  });
}

export function sevBadge(sev) {
  return h('span', { class: `sev sev-${sev}`, 'data-severity': sev, text: t(`sev.${sev}`) });
}

/** An incident's kind (PADAM, TIDAK TERJANGKAU, …); a group outage with how many nodes it took along. */
export function kindBadge(i) {
  const extra = i.kind === 'group_down' && i.children?.length ? ` +${i.children.length}` : '';
  return h('span', { class: `kind kind-${i.kind}`, 'data-kind': i.kind, 'data-testid': `kind-${i.id}`, text: t(`kind.${i.kind}`) + extra });
}
