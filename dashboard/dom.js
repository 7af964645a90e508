// Small DOM helpers shared by the views. Event handlers are attached with
// addEventListener, never as attributes: the page's Content-Security-Policy
// allows no inline script.
import { t, fmtTime, fmtDateTime } from './i18n.js';
import { sameZoneDay, zoneInput, parseZoneInput } from './format.js';

/** h('tag', {attrs, onclick: fn, text: '…'}, ...children) → element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'style') el.setAttribute('style', v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function setText(el, s) { if (el && el.textContent !== s) el.textContent = s; }

export function showTableMessage(table, msg) {
  table.replaceChildren(h('tbody', null, h('tr', null, h('td', { class: 'empty', text: msg }))));
}

/** "10:15:03" today, "27 Nov 10:15:03" on other days, in the NOC's zone (RFC 3339 or Unix ms). */
export function when(iso) {
  const d = typeof iso === 'number' ? iso : Date.parse(iso);
  return sameZoneDay(d, Date.now()) ? fmtTime(d) : fmtDateTime(d);
}

/** "2026-11-27T10:15" in the NOC's zone (not the browser's), for datetime-local inputs. */
export function localInput(ms) { return zoneInput(ms); }

/** Unix ms of a datetime-local value, read in the NOC's zone (as localInput writes it), or NaN. */
export function inputMs(v) { return parseZoneInput(v); }

/** A form message line (role=status): kind 'ok' or 'error'. */
export function formMessage(testid) {
  const el = h('p', { class: 'form-message', role: 'status', 'data-testid': testid, hidden: true });
  el.say = (kind, text) => {
    el.dataset.state = kind;
    el.textContent = text;
    el.hidden = false;
  };
  el.clear = () => { el.hidden = true; el.textContent = ''; delete el.dataset.state; };
  return el;
}

/** A labelled form field: label above its control(s). */
export function field(labelKey, id, ...controls) {
  return h('div', { class: 'field' }, h('label', { for: id, text: t(labelKey) }), ...controls);
}
