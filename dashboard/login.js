// The login screen. The password is read from its field when the form is
// sent, the field is emptied at once, and it is kept nowhere else (no
// storage, no state): only the session cookie (HttpOnly) outlives the call.
import { t, fmtInt } from './i18n.js';
import { h, setText } from './dom.js';
import { login } from './session.js';

export class LoginView {
  /**
   * notice: why the screen is shown (session ended, logged out, kiosk
   * token refused), with the server's reason; onLogin(me) after a login.
   */
  constructor({ notice = null, onLogin }) {
    this.notice = notice;
    this.onLogin = onLogin;
    this.username = '';
    this.lockedUntil = 0; // throttled: no attempt before this (ms)
    this.timer = null;
  }

  mount(root) {
    document.title = `${t('login.title')} · Simpul NOC`;
    const user = h('input', {
      type: 'text', id: 'login-username', name: 'username', autocomplete: 'username', required: true, maxlength: '64',
      autocapitalize: 'none', spellcheck: 'false', value: this.username, 'data-testid': 'login-username',
    });
    const pw = h('input', {
      type: 'password', id: 'login-password', name: 'password', autocomplete: 'current-password', required: true,
      maxlength: '256', 'data-testid': 'login-password',
    });
    const btn = h('button', { type: 'submit', class: 'btn primary login-submit', 'data-testid': 'login-submit', text: t('login.submit') });
    this.errorText = h('span', { class: 'strong', 'data-testid': 'login-error-text' });
    // The server's own sentence ("wrong username or password", "… try again in 30 s").
    this.errorServer = h('span', { class: 'sub', 'data-testid': 'login-error-server' });
    this.error = h('p', { class: 'login-error', role: 'alert', 'data-testid': 'login-error', hidden: true }, this.errorText, this.errorServer);
    this.btn = btn;
    user.addEventListener('input', () => { this.username = user.value; });
    const form = h('form', { class: 'login-form', 'data-testid': 'login-form', 'aria-labelledby': 'login-title', novalidate: true },
      h('h2', { id: 'login-title', text: t('login.title') }),
      h('p', { class: 'login-lead', text: t('login.lead') }),
      this.notice ? h('p', { class: 'login-notice', role: 'status', 'data-testid': 'login-notice' },
        h('span', { class: 'strong', text: t(`login.notice.${this.notice.kind}`) }),
        this.notice.reason ? h('span', { class: 'sub', text: this.notice.reason }) : null) : null,
      h('div', { class: 'field' }, h('label', { for: 'login-username', text: t('login.username') }), user),
      h('div', { class: 'field' }, h('label', { for: 'login-password', text: t('login.password') }), pw),
      this.error,
      btn);
    form.addEventListener('submit', (e) => { e.preventDefault(); this.submit(user, pw); });
    root.replaceChildren(h('div', { class: 'login-page', 'data-testid': 'login-page' }, form));
    this.countdown();
    (user.value ? pw : user).focus();
  }

  /**
   * The error line; `kind` (data-kind) says which: missing, wrong,
   * throttled, failed; `server`: the server's sentence, shown beneath.
   */
  say(text, kind = null, server = undefined) {
    setText(this.errorText, text);
    if (server !== undefined) setText(this.errorServer, server || '');
    if (!text) setText(this.errorServer, '');
    this.errorServer.hidden = !this.errorServer.textContent;
    this.error.hidden = !text;
    if (kind) this.error.dataset.kind = kind; else delete this.error.dataset.kind;
  }

  async submit(user, pw) {
    const username = user.value.trim();
    const password = pw.value;
    if (Date.now() < this.lockedUntil) return;
    if (!username || !password) {
      this.say(t('login.missing'), 'missing');
      (username ? pw : user).focus();
      return;
    }
    pw.value = '';
    this.btn.disabled = true;
    this.say('');
    try {
      const me = await login(username, password);
      this.onLogin(me);
    } catch (e) {
      this.btn.disabled = false;
      if (e.status === 401) this.say(t('login.wrong'), 'wrong', e.message);
      else if (e.status === 429) {
        // Retry-After, else the seconds in the server's sentence.
        const secs = e.retryAfter || Number(/(\d+)\s*s\b/.exec(e.message)?.[1]) || 30;
        this.lockedUntil = Date.now() + secs * 1000;
        this.serverSays = e.message;
        this.countdown();
      } else this.say(t('login.failed', { e: e.message }), 'failed', '');
      pw.focus();
    }
  }

  /** While throttled: the seconds left, counting down, and no submitting. */
  countdown() {
    clearInterval(this.timer);
    const show = () => {
      const left = Math.ceil((this.lockedUntil - Date.now()) / 1000);
      if (left > 0) {
        this.btn.disabled = true;
        this.say(t('login.throttled', { s: fmtInt(left) }), 'throttled', this.serverSays || '');
      } else {
        clearInterval(this.timer);
        if (this.error.dataset.kind === 'throttled') this.say('');
        this.btn.disabled = false;
      }
    };
    if (this.lockedUntil > Date.now()) {
      show();
      this.timer = setInterval(show, 1000);
    }
  }

  update() {}

  destroy() { clearInterval(this.timer); }
}
