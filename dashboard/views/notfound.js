// An address that matches no page says so, with the way home, instead of
// quietly showing another page.
import { t } from '../i18n.js';
import { h } from '../dom.js';

export class NotFoundView {
  mount(root) {
    document.title = `${t('notfound.title')} · Simpul NOC`;
    const asked = location.hash.replace(/^#/, '') || '/';
    root.replaceChildren(h('div', { class: 'agency-page notfound-page', 'data-testid': 'notfound-page' },
      h('section', { class: 'panel' },
        h('h2', { class: 'agency-title', text: t('notfound.title') }),
        h('p', { class: 'sub', 'data-testid': 'notfound-path', text: t('notfound.text', { path: asked }) }),
        h('a', { class: 'btn', href: '#/', 'data-testid': 'notfound-home', text: t('notfound.home') }))));
  }

  update() {}

  destroy() {}
}
