// The search box in the navigation bar: an address, a network, a site, an
// agency or a unit → #/search?q=… (the page's range kept). Only for roles
// that may read client details (the server refuses the others anyway).
import { t } from './i18n.js';
import { h } from './dom.js';
import { can } from './session.js';
import { searchHref } from './views/search.js';
import { hashParams } from './timerange.js';

const form = document.getElementById('nav-search');
let input = null;

function build() {
  input = h('input', {
    type: 'search', id: 'search-input', name: 'q', 'data-testid': 'search-input', maxlength: '253',
    autocomplete: 'off', spellcheck: 'false',
  });
  const button = h('button', { type: 'submit', class: 'btn', 'data-testid': 'search-submit' });
  form.replaceChildren(h('label', { for: 'search-input', class: 'sr-only' }), input, button);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = input.value.trim();
    if (q) location.hash = searchHref(q);
  });
}

/** Show or hide the box for the session's role, in the page's language. */
export function renderSearchBox() {
  if (!form) return;
  if (!input) build();
  form.hidden = !can.read();
  form.querySelector('label').textContent = t('search.label');
  input.placeholder = t('search.placeholder');
  form.querySelector('button').textContent = t('search.submit');
  if (location.hash.startsWith('#/search') && document.activeElement !== input) input.value = hashParams().get('q') || '';
}
