// Admin screens (#/admin/users, /tokens, /audit, /sessions): operator
// accounts, API and kiosk tokens, the audit log, open sessions. Only an
// admin gets here (the router checks; the server refuses anyone else).
// Passwords typed here go to the server and the fields are emptied; a new
// token is shown once, then only its hash exists.
import { t, tn, fmtDateTime, fmtAgo, fmtInt } from './i18n.js';
import { h, showTableMessage, formMessage, field, inputMs } from './dom.js';
import { renderTable } from './table.js';
import { getJSON, postJSON, patchJSON, deleteJSON, apiUrl } from './api.js';
import * as paths from './paths.js';
import { loadError } from './errors.js';
import { current } from './session.js';
import { confirmDialog, openDialog, secretBox } from './dialogs.js';

export const ADMIN_TABS = ['users', 'tokens', 'audit', 'sessions'];
const ROLES = ['admin', 'operator', 'agency', 'viewer'];
const MIN_PASSWORD = 10;

/** "Operator", "Petugas instansi · Dinas Kesehatan", … */
function roleText(role, agency, agencyLabel) {
  return agency ? `${t(`role.${role}`)} · ${agencyLabel(agency)}` : t(`role.${role}`);
}

function roleSelect(id, testid) {
  return h('select', { id, 'data-testid': testid }, ...ROLES.map((r) => h('option', { value: r, selected: r === 'operator', text: t(`role.${r}`) })));
}

/** The agency select of a form, shown only while the role is "agency". */
function agencyPicker(id, testid, roleSel) {
  const sel = h('select', { id, 'data-testid': testid });
  const wrap = field('admin.agency', id, sel);
  const sync = () => { wrap.hidden = roleSel.value !== 'agency'; };
  roleSel.addEventListener('change', sync);
  sync();
  return { sel, wrap, sync };
}

/** Unix seconds from a datetime-local value (the NOC's zone), or null when empty. */
function secsOf(v) {
  if (!v) return null;
  const ms = inputMs(v);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
}

export class AdminView {
  /** ctx: { serverNow, agencyLabel(code), agencies(signal) → the agencies (fetched once) } */
  constructor(tab, ctx) {
    this.tab = ADMIN_TABS.includes(tab) ? tab : 'users';
    this.ctx = ctx;
    this.ctl = new AbortController();
    this.timers = [];
  }

  mount(root) {
    document.title = `${t(`admin.${this.tab}`)} · ${t('nav.admin')} · Simpul NOC`;
    const Part = { users: UsersPart, tokens: TokensPart, audit: AuditPart, sessions: SessionsPart }[this.tab];
    this.part = new Part({ ...this.ctx, signal: this.ctl.signal, every: (ms, fn) => this.timers.push(setInterval(fn, ms)) });
    const tab = (name) => h('a', {
      class: 'tab', href: `#/admin/${name}`, 'data-testid': `admin-tab-${name}`, 'aria-current': name === this.tab ? 'page' : null, text: t(`admin.${name}`),
    });
    root.replaceChildren(h('div', { class: 'agency-page admin-page', 'data-testid': `admin-${this.tab}` },
      h('nav', { class: 'crumbs tabs', 'aria-label': t('nav.admin') }, h('a', { href: '#/', text: t('nav.back') }), ...ADMIN_TABS.map(tab)),
      ...this.part.elements()));
    this.part.load();
  }

  update() {}

  tick() { this.part?.tick?.(); }

  destroy() {
    this.timers.forEach(clearInterval);
    this.ctl.abort();
  }
}

// ---- users -------------------------------------------------------------------

class UsersPart {
  constructor(ctx) {
    this.ctx = ctx;
    this.table = h('table', { class: 'data', 'data-testid': 'users-table' });
    this.message = formMessage('user-message');
  }

  elements() {
    const f = this.f = {
      username: h('input', { type: 'text', id: 'user-username', required: true, maxlength: '64', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'user-username' }),
      display: h('input', { type: 'text', id: 'user-display', maxlength: '80', autocomplete: 'off', 'data-testid': 'user-display' }),
      role: roleSelect('user-add-role', 'user-add-role'),
      password: h('input', { type: 'password', id: 'user-password', required: true, minlength: String(MIN_PASSWORD), maxlength: '256', autocomplete: 'new-password', 'data-testid': 'user-password' }),
    };
    this.agency = agencyPicker('user-agency', 'user-agency', f.role);
    const form = h('form', { class: 'inline-form', 'data-testid': 'user-form', 'aria-labelledby': 'h-user-add', novalidate: true },
      field('admin.username', 'user-username', f.username),
      field('admin.displayName', 'user-display', f.display),
      field('admin.role', 'user-add-role', f.role),
      this.agency.wrap,
      field('admin.password', 'user-password', f.password),
      h('div', { class: 'field submit' }, h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'user-submit', text: t('users.add') })),
      h('p', { class: 'note form-note', text: t('users.passwordRule', { n: MIN_PASSWORD }) }),
      this.message);
    form.addEventListener('submit', (e) => { e.preventDefault(); this.add(form); });
    return [
      h('section', { class: 'panel', 'aria-labelledby': 'h-users' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-users', text: t('admin.users') })),
        h('div', { class: 'table-wrap' }, this.table)),
      h('section', { class: 'panel', 'aria-labelledby': 'h-user-add' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-user-add', text: t('users.add.title') })), form),
    ];
  }

  async load() {
    try {
      const ags = await this.ctx.agencies(this.ctx.signal);
      this.agency.sel.replaceChildren(...ags.map((a) => h('option', { value: a.code, text: a.name })));
      this.render(await getJSON(paths.users(), { signal: this.ctx.signal }));
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.table, loadError(e));
    }
  }

  render(users) {
    const me = current()?.username;
    renderTable(this.table, [
      { h: 'col.username', cell: (u) => h('span', { class: 'mono strong', text: u.username }) },
      { h: 'col.displayName', cell: (u) => u.display_name },
      { h: 'col.role', cell: (u) => roleText(u.role, u.agency, this.ctx.agencyLabel) },
      { h: 'col.state', cell: (u) => h('span', { class: `badge acct-${u.disabled ? 'disabled' : 'active'}`, text: t(u.disabled ? 'users.disabled' : 'users.active') }) },
      { h: 'col.created', cell: (u) => fmtDateTime(u.created_ms), cls: 'num', sortValue: (u) => u.created_ms },
      { h: 'col.passwordChanged', cell: (u) => fmtDateTime(u.password_changed_ms), cls: 'num', sortValue: (u) => u.password_changed_ms },
      {
        h: 'col.actions',
        sort: false,
        cell: (u) => h('span', { class: 'row-actions' },
          h('button', { type: 'button', class: 'btn', 'data-testid': `user-password-${u.username}`, text: t('users.setPassword'), onclick: () => this.setPassword(u) }),
          // Nor take the admin role from themselves (refused by the server too).
          u.username === me ? null : h('button', { type: 'button', class: 'btn', 'data-testid': `user-role-${u.username}`, text: t('users.setRole'), onclick: () => this.setRole(u) }),
          // An admin cannot lock themselves out (the server refuses it too).
          u.username === me ? null : h('button', {
            type: 'button', class: `btn ${u.disabled ? '' : 'danger'}`, 'data-testid': `user-toggle-${u.username}`,
            text: t(u.disabled ? 'users.enable' : 'users.disable'), onclick: () => this.toggle(u),
          })),
      },
    ], users, (u) => `user-row-${u.username}`, { rowData: (u) => ({ disabled: String(!!u.disabled) }) });
  }

  async add(form) {
    const f = this.f;
    const username = f.username.value.trim();
    const password = f.password.value;
    if (!username) { this.message.say('error', t('users.noUsername')); f.username.focus(); return; }
    if (password.length < MIN_PASSWORD) { this.message.say('error', t('users.passwordRule', { n: MIN_PASSWORD })); f.password.focus(); return; }
    const body = { username, role: f.role.value, password };
    if (f.display.value.trim()) body.display_name = f.display.value.trim();
    if (f.role.value === 'agency') body.agency = this.agency.sel.value;
    f.password.value = '';
    try {
      const u = await postJSON(paths.users(), body, { signal: this.ctx.signal });
      form.reset();
      this.agency.sync();
      this.message.say('ok', t('users.added', { name: u.username }));
      this.load();
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('admin.error', { e: e.message }));
    }
  }

  async setPassword(u) {
    const pw = h('input', { type: 'password', id: 'user-new-password', minlength: String(MIN_PASSWORD), maxlength: '256', autocomplete: 'new-password', 'data-testid': 'user-new-password' });
    const done = await openDialog({
      title: t('users.setPassword.title', { name: u.username }),
      testid: 'password-dialog',
      ok: t('users.setPassword'),
      content: [field('admin.newPassword', 'user-new-password', pw), h('p', { class: 'note', text: t('users.setPassword.note', { n: MIN_PASSWORD }) })],
      submit: async () => {
        const password = pw.value;
        if (password.length < MIN_PASSWORD) throw new Error(t('users.passwordRule', { n: MIN_PASSWORD }));
        pw.value = '';
        return patchJSON(paths.user(u.username), { password }, { signal: this.ctx.signal });
      },
    });
    if (done) {
      this.message.say('ok', t('users.passwordSet', { name: u.username }));
      this.load();
    }
  }

  async setRole(u) {
    const role = roleSelect('user-new-role', 'user-new-role');
    role.value = u.role;
    const agency = agencyPicker('user-new-agency', 'user-new-agency', role);
    const ags = await this.ctx.agencies(this.ctx.signal);
    agency.sel.replaceChildren(...ags.map((a) => h('option', { value: a.code, text: a.name, selected: a.code === u.agency })));
    agency.sync();
    const done = await openDialog({
      title: t('users.setRole.title', { name: u.username }),
      testid: 'role-dialog',
      ok: t('users.setRole'),
      content: [field('admin.role', 'user-new-role', role), agency.wrap, h('p', { class: 'note', text: t('users.setRole.note') })],
      submit: async () => {
        const body = { role: role.value };
        if (role.value === 'agency') body.agency = agency.sel.value;
        return patchJSON(paths.user(u.username), body, { signal: this.ctx.signal });
      },
    });
    if (done) {
      this.message.say('ok', t('users.roleSet', { name: u.username }));
      this.load();
    }
  }

  async toggle(u) {
    const disable = !u.disabled;
    if (disable && !(await confirmDialog({ title: t('users.disable.title', { name: u.username }), text: t('users.disable.confirm'), ok: t('users.disable') }))) return;
    try {
      await patchJSON(paths.user(u.username), { disabled: disable }, { signal: this.ctx.signal });
      this.message.say('ok', t(disable ? 'users.disabledMsg' : 'users.enabledMsg', { name: u.username }));
      this.load();
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('admin.error', { e: e.message }));
    }
  }
}

// ---- tokens ------------------------------------------------------------------

function tokenState(tk, now) {
  if (tk.revoked_ms != null) return 'revoked';
  if (tk.expires_ms != null && tk.expires_ms <= now) return 'expired';
  return 'active';
}

/** The wall's address for a kiosk token: this dashboard with ?kiosk=. */
function kioskUrl(token) {
  const u = new URL('./', document.baseURI);
  u.search = `?kiosk=${encodeURIComponent(token)}`;
  return u.href;
}

class TokensPart {
  constructor(ctx) {
    this.ctx = ctx;
    this.table = h('table', { class: 'data', 'data-testid': 'tokens-table' });
    this.message = formMessage('token-message');
    this.created = h('div', { class: 'created-secret', 'data-testid': 'token-created', hidden: true });
  }

  elements() {
    const f = this.f = {
      name: h('input', { type: 'text', id: 'token-name', required: true, maxlength: '80', autocomplete: 'off', 'data-testid': 'token-name' }),
      role: roleSelect('token-role', 'token-role'),
      expires: h('input', { type: 'number', id: 'token-expires', min: '1', max: '3660', step: '1', inputmode: 'numeric', placeholder: t('tokens.noExpiry'), 'data-testid': 'token-expires' }),
      kiosk: h('input', { type: 'checkbox', id: 'token-kiosk', 'data-testid': 'token-kiosk' }),
    };
    this.agency = agencyPicker('token-agency', 'token-agency', f.role);
    // A kiosk token opens the read-only wall: its role is viewer, always.
    f.kiosk.addEventListener('change', () => {
      if (f.kiosk.checked) f.role.value = 'viewer';
      f.role.disabled = f.kiosk.checked;
      this.agency.sync();
    });
    const form = h('form', { class: 'inline-form', 'data-testid': 'token-form', 'aria-labelledby': 'h-token-add', novalidate: true },
      field('tokens.name', 'token-name', f.name),
      h('div', { class: 'field check' }, h('label', { class: 'radio', for: 'token-kiosk' }, f.kiosk, ` ${t('tokens.kiosk')}`)),
      field('admin.role', 'token-role', f.role),
      this.agency.wrap,
      field('tokens.expires', 'token-expires', f.expires),
      h('div', { class: 'field submit' }, h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'token-submit', text: t('tokens.create') })),
      this.message);
    form.addEventListener('submit', (e) => { e.preventDefault(); this.create(form); });
    return [
      h('section', { class: 'panel', 'aria-labelledby': 'h-token-add' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-token-add', text: t('tokens.create.title') })), form, this.created),
      h('section', { class: 'panel', 'aria-labelledby': 'h-tokens' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-tokens', text: t('admin.tokens') })),
        h('div', { class: 'table-wrap' }, this.table)),
    ];
  }

  async load() {
    try {
      const ags = await this.ctx.agencies(this.ctx.signal);
      this.agency.sel.replaceChildren(...ags.map((a) => h('option', { value: a.code, text: a.name })));
      this.render(await getJSON(paths.tokens(), { signal: this.ctx.signal }));
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.table, loadError(e));
    }
  }

  render(tokens) {
    const now = this.ctx.serverNow();
    const rows = [...tokens].sort((a, b) => b.created_ms - a.created_ms);
    renderTable(this.table, [
      { h: 'tokens.name', cell: (tk) => h('span', { class: 'strong', text: tk.name }) },
      { h: 'col.id', cell: (tk) => tk.id, cls: 'mono' },
      { h: 'col.role', cell: (tk) => roleText(tk.role, tk.agency, this.ctx.agencyLabel) },
      { h: 'col.kind', cell: (tk) => t(tk.kiosk ? 'tokens.kind.kiosk' : 'tokens.kind.api') },
      { h: 'col.created', cell: (tk) => `${fmtDateTime(tk.created_ms)} · ${tk.created_by}`, sortValue: (tk) => tk.created_ms },
      // Never expiring: after every date.
      { h: 'col.expires', cell: (tk) => (tk.expires_ms == null ? t('tokens.never') : fmtDateTime(tk.expires_ms)), cls: 'num', sortValue: (tk) => tk.expires_ms ?? Infinity },
      { h: 'col.lastUsed', cell: (tk) => (tk.last_used_ms == null ? t('tokens.unused') : fmtAgo(now - tk.last_used_ms)), cls: 'num', sortValue: (tk) => tk.last_used_ms },
      { h: 'col.state', cell: (tk) => h('span', { class: `badge tok-${tokenState(tk, now)}`, text: t(`tokens.state.${tokenState(tk, now)}`) }) },
      {
        h: 'col.actions',
        sort: false,
        cell: (tk) => (tokenState(tk, now) === 'active' ? h('button', {
          type: 'button', class: 'btn danger', 'data-testid': `token-revoke-${tk.id}`, text: t('tokens.revoke'), onclick: () => this.revoke(tk),
        }) : '—'),
      },
    ], rows, (tk) => `token-row-${tk.id}`, { rowData: (tk) => ({ state: tokenState(tk, now) }) });
  }

  async create(form) {
    const f = this.f;
    const name = f.name.value.trim();
    if (!name) { this.message.say('error', t('tokens.noName')); f.name.focus(); return; }
    const kiosk = f.kiosk.checked;
    const body = { name, role: kiosk ? 'viewer' : f.role.value, kiosk };
    if (body.role === 'agency') body.agency = this.agency.sel.value;
    if (f.expires.value) body.expires_days = Number(f.expires.value);
    try {
      const made = await postJSON(paths.tokens(), body, { signal: this.ctx.signal });
      form.reset();
      f.role.disabled = false;
      this.agency.sync();
      this.message.say('ok', t('tokens.created', { name: made.name }));
      this.showCreated(made);
      this.load();
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('admin.error', { e: e.message }));
    }
  }

  /** The new token, once: copy it now, it cannot be shown again. */
  showCreated(made) {
    // replaceChildren prints a null as the text "null": leave the wall URL out instead.
    const parts = [
      h('h3', { class: 'part-title', text: t('tokens.once.title', { name: made.name }) }),
      h('p', { class: 'note warn-note', text: t('tokens.once') }),
      secretBox(t('tokens.token'), made.token, 'token-value'),
    ];
    if (made.kiosk) parts.push(secretBox(t('tokens.wallUrl'), kioskUrl(made.token), 'token-url'));
    this.created.replaceChildren(...parts,
      h('button', { type: 'button', class: 'btn', 'data-testid': 'token-dismiss', text: t('tokens.dismiss'), onclick: () => { this.created.replaceChildren(); this.created.hidden = true; } }));
    this.created.dataset.id = made.id;
    this.created.hidden = false;
    this.created.querySelector('input')?.focus();
  }

  async revoke(tk) {
    const ok = await confirmDialog({
      title: t('tokens.revoke.title', { name: tk.name }), text: t(tk.kiosk ? 'tokens.revoke.kiosk' : 'tokens.revoke.confirm'), ok: t('tokens.revoke'),
    });
    if (!ok) return;
    try {
      await deleteJSON(paths.token(tk.id), { signal: this.ctx.signal });
      this.message.say('ok', t('tokens.revoked', { name: tk.name }));
      this.load();
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('admin.error', { e: e.message }));
    }
  }
}

// ---- audit -------------------------------------------------------------------

const AUDIT_ACTIONS = ['auth.', 'auth.login', 'auth.logout', 'auth.kiosk', 'auth.session_revoke', 'user.', 'user.add', 'user.password',
  'user.disable', 'user.enable', 'token.', 'token.create', 'token.revoke', 'incident.ack', 'maintenance.', 'node.', 'policy.'];
const AUDIT_LIMITS = [100, 500, 2000];

class AuditPart {
  constructor(ctx) {
    this.ctx = ctx;
    this.table = h('table', { class: 'data audit-table', 'data-testid': 'audit-table' });
    this.count = h('span', { class: 'panel-note', 'data-testid': 'audit-count' });
    this.message = formMessage('audit-message');
  }

  elements() {
    const f = this.f = {
      actor: h('input', { type: 'text', id: 'audit-actor', maxlength: '120', autocomplete: 'off', spellcheck: 'false', placeholder: t('audit.actor.ph'), 'data-testid': 'audit-actor' }),
      action: h('input', { type: 'text', id: 'audit-action', maxlength: '64', autocomplete: 'off', spellcheck: 'false', list: 'audit-actions', placeholder: t('audit.action.ph'), 'data-testid': 'audit-action' }),
      from: h('input', { type: 'datetime-local', id: 'audit-from', 'data-testid': 'audit-from' }),
      to: h('input', { type: 'datetime-local', id: 'audit-to', 'data-testid': 'audit-to' }),
      limit: h('select', { id: 'audit-limit', 'data-testid': 'audit-limit' }, ...AUDIT_LIMITS.map((n) => h('option', { value: String(n), selected: n === 500, text: fmtInt(n) }))),
    };
    this.exportLink = h('a', { class: 'btn', 'data-testid': 'audit-export', download: 'simpul-audit.csv', text: t('audit.export') });
    const form = h('form', { class: 'inline-form', 'data-testid': 'audit-form', 'aria-labelledby': 'h-audit', novalidate: true },
      field('audit.actor', 'audit-actor', f.actor),
      field('audit.action', 'audit-action', f.action, h('datalist', { id: 'audit-actions' }, ...AUDIT_ACTIONS.map((a) => h('option', { value: a })))),
      field('audit.from', 'audit-from', f.from),
      field('audit.to', 'audit-to', f.to),
      field('audit.limit', 'audit-limit', f.limit),
      h('div', { class: 'field submit' }, h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'audit-apply', text: t('audit.apply') })),
      h('div', { class: 'field submit' }, this.exportLink),
      this.message);
    form.addEventListener('submit', (e) => { e.preventDefault(); this.load(); });
    // The export follows the filters as they are typed, before "apply".
    form.addEventListener('input', () => this.syncExport());
    this.syncExport();
    return [h('section', { class: 'panel', 'aria-labelledby': 'h-audit' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'h-audit', text: t('admin.audit') }), this.count, h('span', { class: 'panel-note', text: t('audit.note') })),
      form,
      h('div', { class: 'table-wrap' }, this.table))];
  }

  /** The query of the filters (the server's default: the last 7 days). */
  query() {
    const f = this.f;
    const q = new URLSearchParams();
    if (f.actor.value.trim()) q.set('actor', f.actor.value.trim());
    if (f.action.value.trim()) q.set('action', f.action.value.trim());
    const from = secsOf(f.from.value);
    const to = secsOf(f.to.value);
    if (from != null) q.set('from', String(from));
    if (to != null) q.set('to', String(to));
    q.set('limit', f.limit.value);
    return q;
  }

  syncExport() {
    const q = this.query();
    q.set('format', 'csv');
    // A plain link: the browser sends the session cookie with it.
    this.exportLink.href = apiUrl(paths.audit(q));
  }

  async load() {
    this.syncExport();
    this.message.clear();
    try {
      this.render(await getJSON(paths.audit(this.query()), { signal: this.ctx.signal }));
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('admin.error', { e: e.message }));
    }
  }

  render(rows) {
    this.count.textContent = tn('audit.count', rows.length, { n: fmtInt(rows.length) });
    this.count.dataset.value = String(rows.length);
    renderTable(this.table, [
      { h: 'col.at', cell: (r) => fmtDateTime(r.at_ms), cls: 'num', sortValue: (r) => r.at_ms },
      { h: 'col.actor', cell: (r) => r.actor, cls: 'mono' },
      { h: 'col.address', cell: (r) => r.address, cls: 'mono' },
      { h: 'col.action', cell: (r) => r.action, cls: 'mono' },
      { h: 'col.target', cell: (r) => r.target || '—', cls: 'mono site', title: (r) => r.target },
      { h: 'col.outcome', cell: (r) => h('span', { class: `badge out-${r.outcome}`, text: t(`audit.outcome.${r.outcome}`) }) },
      { h: 'col.detail', cell: (r) => (r.detail && r.detail !== '{}' ? r.detail : '—'), cls: 'mono detail', title: (r) => r.detail },
    ], rows, (r) => `audit-row-${r.seq}`, { rowData: (r) => ({ action: r.action, actor: r.actor, target: r.target, outcome: r.outcome }) });
  }
}

// ---- sessions ----------------------------------------------------------------

const SESSIONS_REFRESH_MS = 15000;

/** When a session ends: its absolute end, or earlier if idle that long. */
function sessionEnd(s) {
  return s.idle_ms == null ? s.expires_ms : Math.min(s.expires_ms, s.last_seen_ms + s.idle_ms);
}

class SessionsPart {
  constructor(ctx) {
    this.ctx = ctx;
    this.table = h('table', { class: 'data', 'data-testid': 'sessions-table' });
    this.message = formMessage('session-message');
    this.count = h('span', { class: 'panel-note', 'data-testid': 'sessions-count' });
  }

  elements() {
    return [h('section', { class: 'panel', 'aria-labelledby': 'h-sessions' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'h-sessions', text: t('admin.sessions') }), this.count),
      this.message,
      h('div', { class: 'table-wrap' }, this.table))];
  }

  load() {
    this.refresh();
    this.ctx.every(SESSIONS_REFRESH_MS, () => this.refresh());
  }

  async refresh() {
    try {
      this.render(await getJSON(paths.authSessions(), { signal: this.ctx.signal }));
    } catch (e) {
      if (e.name !== 'AbortError' && !this.rows) showTableMessage(this.table, loadError(e));
    }
  }

  render(list) {
    const mine = current()?.session_id;
    const now = this.ctx.serverNow();
    const rows = [...list].sort((a, b) => b.last_seen_ms - a.last_seen_ms);
    this.rows = rows;
    this.count.textContent = tn('sessions.count', rows.length, { n: fmtInt(rows.length) });
    renderTable(this.table, [
      { h: 'col.user', cell: (s) => h('span', null, h('span', { class: 'strong', text: s.username }), s.id === mine ? h('span', { class: 'badge this-session', text: t('sessions.this') }) : null), sortValue: (s) => s.username },
      { h: 'col.kind', cell: (s) => t(s.token_id ? 'sessions.kiosk' : 'sessions.password') },
      { h: 'col.address', cell: (s) => s.address, cls: 'mono' },
      { h: 'col.browser', cell: (s) => s.user_agent || '—', cls: 'site', title: (s) => s.user_agent },
      { h: 'col.loggedIn', cell: (s) => fmtDateTime(s.created_ms), cls: 'num', sortValue: (s) => s.created_ms },
      { h: 'col.lastActive', cell: (s) => fmtAgo(now - s.last_seen_ms), cls: 'num', title: (s) => fmtDateTime(s.last_seen_ms), sortValue: (s) => s.last_seen_ms },
      { h: 'col.ends', cell: (s) => fmtDateTime(sessionEnd(s)), cls: 'num', sortValue: sessionEnd },
      {
        h: 'col.actions',
        sort: false,
        // This session ends with "Keluar" (logout), not from here.
        cell: (s) => (s.id === mine ? '—' : h('button', {
          type: 'button', class: 'btn danger', 'data-testid': `session-end-${s.id}`, text: t('sessions.end'), onclick: () => this.end(s),
        })),
      },
    ], rows, (s) => `session-row-${s.id}`, { rowData: (s) => ({ user: s.username }) });
  }

  async end(s) {
    const ok = await confirmDialog({ title: t('sessions.end.title', { name: s.username }), text: t('sessions.end.confirm'), ok: t('sessions.end') });
    if (!ok) return;
    try {
      await deleteJSON(paths.authSession(s.id), { signal: this.ctx.signal });
      this.message.say('ok', t('sessions.ended', { name: s.username }));
      this.refresh();
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('admin.error', { e: e.message }));
    }
  }
}
