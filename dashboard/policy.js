// Policies: #/policy (the agencies, for admins and operators) and
// #/policy/<code>, one agency's policy: the version in force (who, when,
// why), the effective allocation with its sums, blocking, suspension, the
// policy state of each node of the agency (polled every 2 s), and the
// version history. An admin also gets the edit form (preview, save with the
// version it started from: 409 when someone saved first, 422 with every
// problem and its place) and a rollback per older version. The form starts
// from the agency's own document and overwrites only what it edits.
import { t, fmtDateTime, fmtCap, fmtPct, fmtInt } from './i18n.js';
import { h, setText, showTableMessage, formMessage, localInput, inputMs, when } from './dom.js';
import { renderTable } from './table.js';
import { getJSON, postJSON, request, ApiError } from './api.js';
import * as paths from './paths.js';
import { loadError } from './errors.js';
import { can, ownAgency } from './session.js';
import { openDialog } from './dialogs.js';
import { statusCell } from './nodes.js';

const NODES_MS = 2000;
const DIRS = ['download', 'upload'];
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const KINDS = ['rate_bps', 'ceil_bps'];

const enc = encodeURIComponent;
const policyPath = paths.agencyPolicy;

/** bps → "3" / "2.5" (Mbit/s, for an input). */
function toMbit(bps) { return bps == null ? '' : String(Math.round(bps / 1000) / 1000); }

/** An input's Mbit/s → bps; null when empty; NaN when not a number ≥ 0. */
function fromMbit(v) {
  const s = String(v ?? '').trim().replace(',', '.');
  if (!s) return null;
  const n = Number(s);
  return Number.isFinite(n) && n >= 0 ? Math.round(n * 1e6) : NaN;
}

function lines(text) { return String(text || '').split('\n').map((s) => s.trim()).filter(Boolean); }
const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

function getPath(obj, path) { return path.reduce((o, k) => (o == null ? undefined : o[k]), obj); }
function setPath(obj, path, v) {
  let o = obj;
  for (const k of path.slice(0, -1)) { if (o[k] == null || typeof o[k] !== 'object') o[k] = {}; o = o[k]; }
  o[path[path.length - 1]] = v;
}
function deletePath(obj, path) {
  const parent = getPath(obj, path.slice(0, -1));
  if (parent && typeof parent === 'object') delete parent[path[path.length - 1]];
}

/** A short text for a value in the changes list. */
function short(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return v;
  const s = JSON.stringify(v);
  return s.length > 160 ? `${s.slice(0, 157)}…` : s;
}

/** "3 Mbps / 6 Mbps" (rate / ceil). */
function rates(r) { return r ? `${fmtCap(r.rate_bps)} / ${fmtCap(r.ceil_bps)}` : '—'; }

export function policyBadge(p) {
  if (!p || p.state === 'none') return h('span', { class: 'badge', 'data-state': 'none', text: t('policy.none') });
  const label = `${t(`policy.${p.state}`)}${p.version ? ` · v${p.version}` : ''}`;
  return h('span', { class: `badge policy-${p.state}`, 'data-state': p.state, title: p.error || null, text: label });
}

/** #/policy: every agency, with the version in force. */
export class PolicyIndexView {
  constructor({ agencies }) {
    this.agencies = agencies;
    this.ctl = new AbortController();
  }

  mount(root) {
    document.title = `${t('pol.title')} · Simpul NOC`;
    this.table = h('table', { class: 'data', 'data-testid': 'policy-index-table' });
    root.replaceChildren(h('div', { class: 'agency-page', 'data-testid': 'policy-index' },
      h('nav', { class: 'crumbs', 'aria-label': 'breadcrumb' }, h('a', { href: '#/', text: t('nav.back') })),
      h('section', { class: 'panel', 'aria-labelledby': 'h-pol-index' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-pol-index', text: t('pol.title') }),
          h('span', { class: 'panel-note', text: t('pol.index.note') }),
          h('a', { class: 'panel-link', href: '#/policy-default', 'data-testid': 'policy-default-link', text: t('pol.default.link') })),
        h('div', { class: 'table-wrap' }, this.table))));
    this.load();
  }

  update() {}

  destroy() { this.ctl.abort(); }

  async load() {
    const signal = this.ctl.signal;
    try {
      const ags = await this.agencies(signal);
      const pols = await Promise.all(ags.map((a) => getJSON(policyPath(a.code), { signal }).catch((e) => {
        if (e.name === 'AbortError') throw e;
        return null;
      })));
      const rows = ags.map((a, i) => ({ a, p: pols[i] }));
      renderTable(this.table, [
        { h: 'col.agency', cell: (r) => h('a', { class: 'strong', href: `#/policy/${enc(r.a.code)}`, 'data-testid': `policy-link-${r.a.code}`, text: r.a.name }) },
        { h: 'pol.col.version', cell: (r) => (r.p ? `v${r.p.version}` : '—'), cls: 'num', sortValue: (r) => r.p?.version },
        { h: 'pol.alloc.down', cell: (r) => rates(r.p?.effective?.allocation?.download), sortValue: (r) => r.p?.effective?.allocation?.download?.rate_bps },
        { h: 'pol.alloc.up', cell: (r) => rates(r.p?.effective?.allocation?.upload), sortValue: (r) => r.p?.effective?.allocation?.upload?.rate_bps },
        { h: 'pol.col.when', cell: (r) => (r.p?.created_ms ? when(r.p.created_ms) : '—'), sortValue: (r) => r.p?.created_ms },
        { h: 'col.by', cell: (r) => r.p?.created_by || '—' },
      ], rows, (r) => `policy-index-${r.a.code}`);
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.table, loadError(e));
    }
  }
}

/** #/policy/<code> */
export class PolicyView {
  /** overview(): the last overview (for the uplink), or null. */
  constructor(code, { agencies, agencyLabel, overview }) {
    this.code = code;
    this.agencies = agencies;
    this.agencyLabel = agencyLabel;
    this.overview = overview;
    this.ctl = new AbortController();
    this.admin = can.admin();
    this.isDefault = false;
  }

  mount(root) {
    const code = this.code;
    document.title = `${t('pol.title')} · ${this.agencyLabel(code)} · Simpul NOC`;
    const c = this.c = this.elements(`${t('pol.title')} · ${this.agencyLabel(code)}`);
    root.replaceChildren(h('div', { class: 'agency-page policy-page', 'data-testid': 'policy-page', 'data-code': code },
      h('nav', { class: 'crumbs tabs', 'aria-label': 'breadcrumb' },
        h('a', { href: '#/', text: t('nav.back') }),
        h('a', { class: 'tab', href: `#/agency/${enc(code)}`, 'data-testid': 'policy-agency-link', text: this.agencyLabel(code) }),
        can.read() && !this.ownOnly() ? h('a', { class: 'tab', href: '#/policy', text: t('pol.all') }) : null),
      h('div', { class: 'hero-id pol-hero' }, c.title,
        h('div', { class: 'pol-version-line' }, h('span', { class: 'kpi-label', text: t('pol.inForce') }), c.version), c.meta, c.follows, c.message,
        this.admin ? null : h('p', { class: 'panel-note', 'data-testid': 'policy-readonly', text: t('pol.readonly') })),
      h('div', { class: 'two' },
        panel('h-pol-alloc', t('pol.alloc'), h('div', { class: 'table-wrap' }, c.alloc), c.sums),
        panel('h-pol-nodes', t('pol.nodes'), h('div', { class: 'table-wrap' }, c.nodes))),
      h('div', { class: 'two' },
        panel('h-pol-block', t('pol.blocking'), c.blocking),
        panel('h-pol-susp', t('pol.suspension'), c.suspension)),
      this.admin ? panel('h-pol-edit', t('pol.edit'), c.formBox) : null,
      panel('h-pol-hist', t('pol.history'), c.historyMessage, h('div', { class: 'table-wrap' }, c.versions))));
    this.load();
    this.loadNodes();
    this.timer = setInterval(() => this.loadNodes(), NODES_MS);
  }

  ownOnly() { return !!ownAgency(); }

  /** The page's parts (the default's page shows no nodes nor suspension). */
  elements(title) {
    return {
      title: h('h2', { class: 'agency-title', text: title }),
      version: h('span', { class: 'pol-version', 'data-testid': 'policy-version' }),
      meta: h('p', { class: 'pol-meta', 'data-testid': 'policy-meta' }),
      follows: h('p', { class: 'panel-note', 'data-testid': 'policy-follows' }),
      message: formMessage('policy-load-message'),
      alloc: h('table', { class: 'data', 'data-testid': 'policy-alloc' }),
      sums: h('ul', { class: 'pol-sums', 'data-testid': 'policy-alloc-sums' }),
      blocking: h('dl', { class: 'facts', 'data-testid': 'policy-blocking' }),
      suspension: h('dl', { class: 'facts', 'data-testid': 'policy-suspension' }),
      nodes: h('table', { class: 'data', 'data-testid': 'policy-nodes-table' }),
      versions: h('table', { class: 'data', 'data-testid': 'policy-versions-table' }),
      historyMessage: formMessage('policy-history-message'),
      formBox: h('div', { class: 'pol-form-box' }),
    };
  }

  /** The admin's form, once the named lists a category may switch on are known. */
  async showForm(signal) {
    this.lists = await getJSON(paths.lists(), { signal }).catch((e) => {
      if (e.name === 'AbortError') throw e;
      return [];
    });
    this.buildForm();
  }

  /** The API path of this page's policy. */
  path(rest = '') { return policyPath(this.code, rest); }

  /** A saved or loaded answer, as the page reads it. */
  accept(r) { return r; }

  update() {
    if (this.data) this.renderSums();
  }

  destroy() {
    clearInterval(this.timer);
    this.ctl.abort();
  }

  /** The policy, the agency (units) and the versions; the form starts again from what came. */
  async load() {
    const signal = this.ctl.signal;
    try {
      const [ags, data] = await Promise.all([this.agencies(signal), getJSON(this.path(), { signal })]);
      this.agency = ags.find((a) => a.code === this.code) || { code: this.code, units: [], nodes: [] };
      this.data = this.accept(data);
      this.c.message.clear();
      this.render();
      if (this.admin) await this.showForm(signal);
    } catch (e) {
      if (e.name !== 'AbortError') this.c.message.say('error', loadError(e));
    }
    this.loadVersions();
  }

  async loadVersions() {
    try {
      this.renderVersions(await getJSON(this.path('/versions?limit=50'), { signal: this.ctl.signal }));
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.c.versions, loadError(e));
    }
  }

  async loadNodes() {
    try {
      const nodes = await getJSON(paths.nodes({ agency: this.code }), { signal: this.ctl.signal });
      this.renderNodes(nodes.filter((n) => n.agency === this.code));
    } catch (e) {
      if (e.name !== 'AbortError' && !this.nodesShown) showTableMessage(this.c.nodes, loadError(e));
    }
  }

  unitName(u) { return this.agency?.units?.find((x) => x.code === u)?.name || u; }

  render() {
    const c = this.c;
    const d = this.data;
    const root = c.title.closest('[data-testid="policy-page"]');
    root.dataset.version = String(d.version);
    c.version.dataset.value = String(d.version);
    setText(c.version, `v${d.version}`);
    setText(c.meta, d.version ? t('pol.meta', { by: d.created_by || '—', t: fmtDateTime(d.created_ms), c: d.comment || '—' }) : t('pol.meta.none'));
    setText(c.follows, d.follows_default ? t('pol.follows', { v: d.default_version ?? 0 }) : t('pol.ownWhole'));
    const eff = d.effective || {};
    const al = eff.allocation || {};
    const rows = [{ key: 'agency', name: t('pol.agencyRow'), r: al }];
    for (const [u, r] of Object.entries(al.units || {})) rows.push({ key: `unit-${u}`, name: this.unitName(u), r });
    renderTable(c.alloc, [
      { h: 'pol.col.who', cell: (x) => x.name, cls: 'strong' },
      { h: 'pol.alloc.down', cell: (x) => rates(x.r.download), cls: 'num', sortValue: (x) => x.r.download?.rate_bps },
      { h: 'pol.alloc.up', cell: (x) => rates(x.r.upload), cls: 'num', sortValue: (x) => x.r.upload?.rate_bps },
    ], rows, (x) => `policy-alloc-${x.key}`, {
      rowData: ({ r }) => ({
        downRate: String(r.download?.rate_bps ?? ''), downCeil: String(r.download?.ceil_bps ?? ''),
        upRate: String(r.upload?.rate_bps ?? ''), upCeil: String(r.upload?.ceil_bps ?? ''),
      }),
    });
    this.renderSums();
    const sched = eff.schedules || [];
    if (!c.schedules) {
      c.schedules = h('ul', { class: 'pol-sums', 'data-testid': 'policy-schedules' });
      c.sums.after(c.schedules);
    }
    c.schedules.replaceChildren(...(sched.length ? sched.map((w) => h('li', { 'data-name': w.name },
      `${t('pol.sched.window')} ${w.name}: ${(w.days || []).map((d) => t(`day.${d}`)).join(', ')} ${w.start}–${w.end}`
      + `${w.download ? ` · ↓ ${rates(w.download)}` : ''}${w.upload ? ` · ↑ ${rates(w.upload)}` : ''}`))
      : [h('li', { class: 'muted', text: t('pol.sched.none') })]));
    const b = eff.blocking || {};
    const list = (testid, items) => (items && items.length
      ? h('ul', { class: 'pol-list', 'data-testid': testid }, ...items.map((x) => h('li', { 'data-item': x, text: x })))
      : h('span', { class: 'muted', 'data-testid': testid, text: t('pol.none') }));
    const onOff = (testid, v) => h('span', { class: `badge ${v ? 'pol-on' : ''}`, 'data-testid': testid, 'data-value': String(!!v), text: v ? t('pol.on') : t('pol.off') });
    factsList(c.blocking, [
      ['pol.domains', list('policy-domains', b.domains)],
      ['pol.allow', list('policy-allow', b.allow_domains)],
      ['pol.categories', list('policy-categories', (b.enabled_categories || []).map((k) => `${k} (${fmtInt(b.categories?.[k]?.length ?? b.lists?.[k]?.domains ?? 0)})`))],
      ['pol.cidrs', list('policy-cidrs', b.cidrs)],
      ['pol.ports', list('policy-ports', (b.ports || []).map((p) => `${p.proto}/${p.port}`))],
      ['pol.dot', onOff('policy-dot', b.block_dot)],
      ['pol.doh', (b.block_doh || []).length ? list('policy-doh', b.block_doh) : onOff('policy-doh', false)],
      ['pol.quic', onOff('policy-quic', b.block_quic)],
    ]);
    const s = eff.suspension || {};
    const active = !!s.agency || (s.units || []).length > 0;
    c.suspension.dataset.active = String(active);
    factsList(c.suspension, [
      ['pol.susp.agency', onOff('policy-susp-agency', s.agency)],
      ['pol.susp.units', list('policy-susp-units', (s.units || []).map((u) => this.unitName(u)))],
      ['pol.susp.until', h('span', { 'data-testid': 'policy-susp-until', text: s.until ? fmtDateTime(Date.parse(s.until)) : (active ? t('pol.susp.untilLifted') : '—') })],
      ['pol.susp.reason', h('span', { 'data-testid': 'policy-susp-reason', text: s.reason || '—' })],
    ]);
  }

  /** Units against the agency, the agency against the uplink (the overview's, when known). */
  renderSums() {
    const al = this.data?.effective?.allocation;
    if (!al) { this.c.sums.replaceChildren(); return; }
    const up = this.overview()?.uplink;
    const items = [];
    for (const dir of DIRS) {
      const units = Object.values(al.units || {});
      const agencyRate = al[dir]?.rate_bps;
      if (units.length) {
        const sum = units.reduce((s, u) => s + (u[dir]?.rate_bps || 0), 0);
        const ratio = agencyRate > 0 ? sum / agencyRate : null;
        items.push(h('li', { 'data-testid': `policy-sum-units-${dir}`, 'data-value': String(sum), 'data-level': ratio > 1 ? 'crit' : 'ok' },
          t(`pol.sum.units.${dir}`, { sum: fmtCap(sum), of: fmtCap(agencyRate), pct: fmtPct(ratio) })));
      }
      const cap = dir === 'download' ? up?.capacity_down_bps : up?.capacity_up_bps;
      if (cap > 0) {
        const ratio = agencyRate / cap;
        items.push(h('li', { 'data-testid': `policy-sum-uplink-${dir}`, 'data-value': String(agencyRate), 'data-level': ratio > 1 ? 'crit' : 'ok' },
          t(`pol.sum.uplink.${dir}`, { rate: fmtCap(agencyRate), cap: fmtCap(cap), pct: fmtPct(ratio) })));
      }
    }
    if (!items.length) items.push(h('li', { class: 'muted', text: t('pol.sum.none') }));
    this.c.sums.replaceChildren(...items);
  }

  renderNodes(nodes) {
    this.nodesShown = true;
    renderTable(this.c.nodes, [
      { h: 'col.node', cell: (n) => h('a', { class: 'strong', href: `#/node/${enc(n.node_id)}`, text: n.node_id }) },
      { h: 'col.status', cell: (n) => statusCell(n) },
      { h: 'col.policy', cell: (n) => policyBadge(n.policy) },
      { h: 'pol.col.pending', cell: (n) => (n.policy?.pending_version ? `v${n.policy.pending_version}` : '—'), cls: 'num', sortValue: (n) => n.policy?.pending_version },
      { h: 'pol.col.error', cell: (n) => nodeError(n.policy), cls: 'detail' },
      {
        h: 'pol.col.applied', cell: (n) => (n.policy?.applied_at ? when(n.policy.applied_at) : '—'),
        sortValue: (n) => (n.policy?.applied_at ? new Date(n.policy.applied_at) : null),
      },
    ], nodes, (n) => `policy-node-${n.node_id}`, {
      rowData: (n) => ({ state: n.policy?.state || 'none', version: String(n.policy?.version ?? 0) }),
    });
  }

  renderVersions(list) {
    const current = this.data?.version;
    const cols = [
      { h: 'pol.col.version', cell: (v) => h('span', { class: 'strong' }, `v${v.version}`, v.version === current ? h('span', { class: 'badge this-session', text: t('pol.current') }) : null), sortValue: (v) => v.version },
      { h: 'pol.col.when', cell: (v) => when(v.created_ms), title: (v) => fmtDateTime(v.created_ms), sortValue: (v) => v.created_ms },
      { h: 'col.by', cell: (v) => v.created_by || '—' },
      { h: 'pol.col.comment', cell: (v) => v.comment || '—', cls: 'detail', title: (v) => v.comment },
      this.isDefault ? null : { h: 'pol.col.follows', cell: (v) => (v.follows_default ? t('pol.yes', { v: v.default_version ?? 0 }) : t('pol.no')) },
      this.isDefault ? null : {
        h: 'pol.col.diff',
        sort: false,
        cell: (v) => (v.version > 1 ? h('button', {
          type: 'button', class: 'btn', 'data-testid': `policy-diff-${v.version}`, text: t('pol.diff', { v: v.version - 1 }), onclick: () => this.compare(v.version),
        }) : '—'),
      },
    ].filter(Boolean);
    if (this.admin) {
      cols.push({
        h: 'col.actions',
        sort: false,
        cell: (v) => (v.version === current ? '—' : h('button', {
          type: 'button', class: 'btn', 'data-testid': `policy-rollback-${v.version}`, text: t('pol.rollback'), onclick: () => this.rollback(v),
        })),
      });
    }
    renderTable(this.c.versions, cols, list, (v) => `policy-version-${v.version}`);
  }

  // ---- the form (admins) ----------------------------------------------------------

  buildForm() {
    const d = this.data;
    const eff = d.effective || {};
    const own = d.policy || {};
    const units = this.agency.units || [];
    const num = (id, value) => h('input', {
      type: 'text', inputmode: 'decimal', id, class: 'rate-input', value, 'data-testid': id, autocomplete: 'off', 'aria-describedby': 'pf-unit-note',
    });
    const f = this.f = { inputs: {}, places: [] };
    // place prefix → the inputs it points at (longest prefix wins).
    const place = (prefix, el) => f.places.push([prefix, el]);
    const rateRow = (label, key, base, get) => h('tr', null, h('th', { scope: 'row', text: label }),
      ...DIRS.flatMap((dir) => KINDS.map((k) => {
        const id = `pf-${key}-${dir === 'download' ? 'down' : 'up'}-${k === 'rate_bps' ? 'rate' : 'ceil'}`;
        const el = num(id, toMbit(get(dir, k)));
        el.setAttribute('aria-label', `${label} · ${t(dir === 'download' ? 'pol.alloc.down' : 'pol.alloc.up')} · ${t(k === 'rate_bps' ? 'pol.rate' : 'pol.ceil')}`);
        f.inputs[id] = el;
        place(`${base}.${dir}.${k}`, el);
        return h('td', null, el);
      })));
    const allocRows = [rateRow(t('pol.agencyRow'), 'agency', 'allocation', (dir, k) => eff.allocation?.[dir]?.[k])];
    for (const dir of DIRS) place(`allocation.${dir}`, null);
    for (const u of units) {
      allocRows.push(rateRow(u.name, `unit-${u.code}`, `allocation.units.${u.code}`, (dir, k) => own.allocation?.units?.[u.code]?.[dir]?.[k] ?? eff.allocation?.units?.[u.code]?.[dir]?.[k]));
    }
    const head = h('tr', null, h('th', null), ...DIRS.flatMap((dir) => KINDS.map((k) => h('th', { scope: 'col', text: `${t(dir === 'download' ? 'pol.alloc.down' : 'pol.alloc.up')} ${t(k === 'rate_bps' ? 'pol.rate' : 'pol.ceil')}` }))));
    const b = eff.blocking || {};
    const s = eff.suspension || {};
    f.domains = h('textarea', { id: 'pf-domains', rows: '6', 'data-testid': 'pf-domains', spellcheck: 'false' });
    f.domains.value = (b.domains || []).join('\n');
    f.allow = h('textarea', { id: 'pf-allow', rows: '6', 'data-testid': 'pf-allow', spellcheck: 'false' });
    f.allow.value = (b.allow_domains || []).join('\n');
    place('blocking.domains', f.domains);
    place('blocking.allow_domains', f.allow);
    // Categories: the named lists held at the collector and the policy's
    // own inline categories, each a checkbox.
    const catNames = [...new Set([...(this.lists || []).filter((l) => l.current).map((l) => l.name),
      ...Object.keys(b.categories || {}), ...(b.enabled_categories || [])])].sort();
    const catSize = (n) => b.categories?.[n]?.length ?? (this.lists || []).find((l) => l.name === n)?.current?.domains;
    f.cats = catNames.map((n) => h('input', { type: 'checkbox', value: n, id: `pf-cat-${n}`, 'data-testid': `pf-cat-${n}`, checked: (b.enabled_categories || []).includes(n) }));
    const area = (id, rows, value) => {
      const el = h('textarea', { id, rows: String(rows), 'data-testid': id, spellcheck: 'false' });
      el.value = value;
      return el;
    };
    f.cidrs = area('pf-cidrs', 3, (b.cidrs || []).join('\n'));
    f.doh = area('pf-doh', 3, (b.block_doh || []).join('\n'));
    f.ports = area('pf-ports', 3, (b.ports || []).map((p) => `${p.proto}/${p.port}`).join('\n'));
    place('blocking.cidrs', f.cidrs);
    place('blocking.block_doh', f.doh);
    place('blocking.ports', f.ports);
    f.dot = h('input', { type: 'checkbox', id: 'pf-dot', 'data-testid': 'pf-dot', checked: !!b.block_dot });
    f.quic = h('input', { type: 'checkbox', id: 'pf-quic', 'data-testid': 'pf-quic', checked: !!b.block_quic });
    place('blocking.enabled_categories', f.cats[0] || null);
    place('blocking.block_dot', f.dot);
    place('blocking.block_quic', f.quic);
    f.suspAgency = h('input', { type: 'checkbox', id: 'pf-susp-agency', 'data-testid': 'pf-susp-agency', checked: !!s.agency });
    f.suspUnits = units.map((u) => h('input', { type: 'checkbox', value: u.code, id: `pf-susp-unit-${u.code}`, 'data-testid': `pf-susp-unit-${u.code}`, checked: (s.units || []).includes(u.code) }));
    f.until = h('input', { type: 'datetime-local', id: 'pf-susp-until', 'data-testid': 'pf-susp-until', value: s.until && Number.isFinite(Date.parse(s.until)) ? localInput(Date.parse(s.until)) : '' });
    f.reason = h('input', { type: 'text', id: 'pf-susp-reason', 'data-testid': 'pf-susp-reason', maxlength: '300', value: s.reason || '', placeholder: t('pol.susp.reason.ph') });
    place('suspension.agency', f.suspAgency);
    place('suspension.until', f.until);
    place('suspension.reason', f.reason);
    place('suspension', null);
    f.comment = h('input', { type: 'text', id: 'pf-comment', 'data-testid': 'pf-comment', required: true, maxlength: '500', placeholder: t('pol.comment.ph') });
    f.message = formMessage('policy-form-message');
    f.problems = h('ul', { class: 'pol-problems', 'data-testid': 'policy-problems', role: 'alert', hidden: true });
    f.changes = h('div', { class: 'pol-changes', 'data-testid': 'policy-changes-box', hidden: true });
    f.reload = h('button', { type: 'button', class: 'btn', 'data-testid': 'pf-reload', text: t('pol.reload'), hidden: true, onclick: () => this.load() });
    f.previewBtn = h('button', { type: 'button', class: 'btn', 'data-testid': 'pf-preview', text: t('pol.preview'), onclick: () => this.preview() });
    f.saveBtn = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'pf-save', text: t('pol.save') });
    const lbl = (id, key) => h('label', { for: id, text: t(key) });
    const form = h('form', { class: 'pol-form', 'data-testid': 'policy-form', 'data-base': String(d.version), novalidate: true },
      h('p', { class: 'form-note', text: t('pol.form.base', { v: d.version }) }),
      h('fieldset', null, h('legend', { text: t('pol.alloc') }),
        h('p', { class: 'form-note', id: 'pf-unit-note', text: t('pol.form.mbit') }),
        h('div', { class: 'table-wrap' }, h('table', { class: 'data pol-rates' }, h('thead', null, head), h('tbody', null, ...allocRows))),
        this.scheduleEditor(eff.schedules || [])),
      h('fieldset', null, h('legend', { text: t('pol.blocking') }),
        h('div', { class: 'two' },
          h('div', { class: 'field' }, lbl('pf-domains', 'pol.domains'), f.domains, h('span', { class: 'form-note', text: t('pol.form.perLine') })),
          h('div', { class: 'field' }, lbl('pf-allow', 'pol.allow'), f.allow, h('span', { class: 'form-note', text: t('pol.form.perLine') }))),
        h('div', { class: 'pol-susp-row', 'data-testid': 'pf-categories' },
          h('span', { class: 'form-note', text: t('pol.categories') }),
          f.cats.length ? f.cats.map((el) => h('label', { class: 'radio' }, el, ` ${el.value}${catSize(el.value) != null ? ` (${fmtInt(catSize(el.value))})` : ''}`))
            : h('a', { href: '#/lists', text: t('pol.form.noLists') })),
        h('div', { class: 'two' },
          h('div', { class: 'field' }, lbl('pf-cidrs', 'pol.cidrs'), f.cidrs, h('span', { class: 'form-note', text: t('pol.form.cidrs') })),
          h('div', { class: 'field' }, lbl('pf-ports', 'pol.ports'), f.ports, h('span', { class: 'form-note', text: t('pol.form.ports') }))),
        h('div', { class: 'two' },
          h('div', { class: 'field' }, lbl('pf-doh', 'pol.doh'), f.doh, h('span', { class: 'form-note', text: t('pol.form.doh') })),
          h('div', { class: 'pol-susp-row' },
            h('label', { class: 'radio' }, f.dot, ` ${t('pol.dot')}`),
            h('label', { class: 'radio' }, f.quic, ` ${t('pol.quic')}`)))),
      this.isDefault ? null : h('fieldset', null, h('legend', { text: t('pol.suspension') }),
        h('div', { class: 'pol-susp-row' },
          h('label', { class: 'radio' }, f.suspAgency, ` ${t('pol.susp.agency')}`),
          ...f.suspUnits.map((el, i) => h('label', { class: 'radio' }, el, ` ${units[i].name}`))),
        h('div', { class: 'pol-susp-row' },
          h('div', { class: 'field' }, lbl('pf-susp-until', 'pol.susp.until'), f.until),
          h('div', { class: 'field grow' }, lbl('pf-susp-reason', 'pol.susp.reason'), f.reason))),
      h('div', { class: 'pol-submit' },
        h('div', { class: 'field grow' }, lbl('pf-comment', 'pol.comment'), f.comment),
        this.isDefault ? null : f.previewBtn, f.saveBtn, f.reload),
      f.message, f.problems, f.changes);
    form.addEventListener('submit', (e) => { e.preventDefault(); this.save(); });
    this.c.formBox.replaceChildren(form);
  }

  /** Schedule windows: a row each (name, days, times, the agency's rates in it). */
  scheduleEditor(list) {
    const f = this.f;
    const body = h('tbody');
    f.sched = [];
    const addRow = (w = {}) => {
      const i = f.sched.length;
      const row = {
        w,
        name: h('input', { type: 'text', class: 'sched-name', value: w.name || '', 'data-testid': `pf-sched-${i}-name`, 'aria-label': t('pol.sched.name') }),
        days: DAYS.map((d) => h('input', { type: 'checkbox', value: d, checked: (w.days || []).includes(d), 'data-testid': `pf-sched-${i}-${d}`, 'aria-label': t(`day.${d}`) })),
        start: h('input', { type: 'time', value: w.start || '', 'data-testid': `pf-sched-${i}-start`, 'aria-label': t('pol.sched.start') }),
        end: h('input', { type: 'time', value: w.end || '', 'data-testid': `pf-sched-${i}-end`, 'aria-label': t('pol.sched.end') }),
        rates: {},
      };
      for (const dir of DIRS) {
        for (const k of KINDS) {
          row.rates[`${dir}.${k}`] = h('input', {
            type: 'text', inputmode: 'decimal', class: 'rate-input', value: toMbit(w[dir]?.[k]),
            'data-testid': `pf-sched-${i}-${dir === 'download' ? 'down' : 'up'}-${k === 'rate_bps' ? 'rate' : 'ceil'}`,
            'aria-label': `${t(dir === 'download' ? 'pol.alloc.down' : 'pol.alloc.up')} ${t(k === 'rate_bps' ? 'pol.rate' : 'pol.ceil')}`,
          });
        }
      }
      const tr = h('tr', { 'data-testid': `pf-sched-${i}` },
        h('td', null, row.name),
        h('td', { class: 'sched-days' }, ...row.days.map((el) => h('label', { class: 'radio' }, el, t(`day.${el.value}`)))),
        h('td', null, row.start, ' – ', row.end),
        ...DIRS.flatMap((dir) => KINDS.map((k) => h('td', null, row.rates[`${dir}.${k}`]))),
        h('td', null, h('button', { type: 'button', class: 'btn', 'data-testid': `pf-sched-${i}-remove`, text: t('pol.sched.remove'), onclick: () => { row.removed = true; tr.remove(); } })));
      f.sched.push(row);
      this.f.places.push([`schedules[${i}]`, row.name]);
      body.append(tr);
    };
    list.forEach((w) => addRow(w));
    const head = h('tr', null, h('th', { text: t('pol.sched.name') }), h('th', { text: t('pol.sched.days') }), h('th', { text: t('pol.sched.time') }),
      ...DIRS.flatMap((dir) => KINDS.map((k) => h('th', { text: `${t(dir === 'download' ? 'pol.alloc.down' : 'pol.alloc.up')} ${t(k === 'rate_bps' ? 'pol.rate' : 'pol.ceil')}` }))), h('th'));
    return h('div', { class: 'pol-sched', 'data-testid': 'pf-schedules' },
      h('p', { class: 'form-note', text: t('pol.sched.note') }),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data pol-rates' }, h('thead', null, head), body)),
      h('button', { type: 'button', class: 'btn', 'data-testid': 'pf-sched-add', text: t('pol.sched.add'), onclick: () => addRow() }));
  }

  /** The schedule rows as the policy writes them (units kept from the loaded window). */
  schedulesFromForm(problems) {
    const out = [];
    this.f.sched.forEach((row, i) => {
      if (row.removed) return;
      const w = { name: row.name.value.trim(), days: row.days.filter((el) => el.checked).map((el) => el.value), start: row.start.value, end: row.end.value };
      if (!w.name) problems.push({ place: `schedules[${i}].name`, message: t('pol.sched.needName') });
      if (!w.days.length) problems.push({ place: `schedules[${i}].days`, message: t('pol.sched.needDays') });
      for (const dir of DIRS) {
        const r = {};
        let filled = 0;
        for (const k of KINDS) {
          const v = fromMbit(row.rates[`${dir}.${k}`].value);
          if (Number.isNaN(v)) problems.push({ place: `schedules[${i}].${dir}.${k}`, message: t('pol.form.badNumber') });
          else if (v !== null) { r[k] = v; filled++; }
        }
        if (filled === 2) w[dir] = r;
        else if (filled === 1) problems.push({ place: `schedules[${i}].${dir}`, message: t('pol.sched.both') });
      }
      if (row.w.units && Object.keys(row.w.units).length) w.units = row.w.units;
      out.push(w);
    });
    return out;
  }

  /**
   * The document to send: the loaded own document with what the form
   * edits written over it. A field is written when the document had it or
   * its value differs from the policy in force, so what the agency follows
   * from the default keeps following it. → { doc, problems }.
   */
  buildDoc() {
    const f = this.f;
    const own = this.data.policy || {};
    const eff = this.data.effective || {};
    const doc = structuredClone(own);
    const problems = [];
    const bad = (p) => problems.push({ place: p, message: t('pol.form.badNumber') });
    for (const dir of DIRS) {
      for (const k of KINDS) {
        const id = `pf-agency-${dir === 'download' ? 'down' : 'up'}-${k === 'rate_bps' ? 'rate' : 'ceil'}`;
        const path = ['allocation', dir, k];
        const v = fromMbit(f.inputs[id].value);
        if (Number.isNaN(v)) { bad(path.join('.')); continue; }
        const had = getPath(own, path) !== undefined;
        if (v === null) { if (had) deletePath(doc, path); continue; }
        if (had || v !== getPath(eff, path)) setPath(doc, path, v);
      }
    }
    for (const u of this.agency.units || []) {
      const vals = {};
      let filled = 0;
      let broken = false;
      for (const dir of DIRS) {
        for (const k of KINDS) {
          const id = `pf-unit-${u.code}-${dir === 'download' ? 'down' : 'up'}-${k === 'rate_bps' ? 'rate' : 'ceil'}`;
          const v = fromMbit(f.inputs[id].value);
          if (Number.isNaN(v)) { bad(`allocation.units.${u.code}.${dir}.${k}`); broken = true; } else if (v !== null) filled++;
          setPath(vals, [dir, k], v);
        }
      }
      if (broken) continue;
      const path = ['allocation', 'units', u.code];
      if (filled === 0) {
        if (getPath(doc, path) !== undefined) deletePath(doc, path);
        if (doc.allocation?.units && !Object.keys(doc.allocation.units).length) delete doc.allocation.units;
      } else if (filled < 4) {
        problems.push({ place: `allocation.units.${u.code}`, message: t('pol.form.unitAll') });
      } else if (getPath(own, path) !== undefined || !same(vals, getPath(eff, path))) {
        setPath(doc, path, vals);
      }
    }
    const listField = (el, key) => {
      const v = lines(el.value);
      const path = ['blocking', key];
      if (getPath(own, path) !== undefined || !same(v, getPath(eff, path) || [])) setPath(doc, path, v);
    };
    listField(f.domains, 'domains');
    listField(f.allow, 'allow_domains');
    const sched = this.schedulesFromForm(problems);
    if (own.schedules !== undefined || !same(sched, eff.schedules || [])) doc.schedules = sched;
    listField(f.cidrs, 'cidrs');
    listField(f.doh, 'block_doh');
    // Ports: "tcp/25", "udp/6881-6889" a line; the server checks the ranges.
    const ports = [];
    for (const line of lines(f.ports.value)) {
      const m = line.toLowerCase().match(/^(tcp|udp)\s*\/\s*(\d+(?:\s*-\s*\d+)?)$/);
      if (!m) { problems.push({ place: 'blocking.ports', message: t('pol.form.badPort', { line }) }); continue; }
      const port = m[2].replace(/\s+/g, '');
      ports.push({ proto: m[1], port: /^\d+$/.test(port) ? Number(port) : port });
    }
    const portPath = ['blocking', 'ports'];
    if (getPath(own, portPath) !== undefined || !same(ports, getPath(eff, portPath) || [])) setPath(doc, portPath, ports);
    const cats = f.cats.filter((el) => el.checked).map((el) => el.value);
    const catPath = ['blocking', 'enabled_categories'];
    if (getPath(own, catPath) !== undefined || !same(cats, getPath(eff, catPath) || [])) setPath(doc, catPath, cats);
    for (const [key, el] of [['block_dot', f.dot], ['block_quic', f.quic]]) {
      const path = ['blocking', key];
      if (getPath(own, path) !== undefined || el.checked !== !!getPath(eff, path)) setPath(doc, path, el.checked);
    }
    const s = eff.suspension || {};
    const field = (key, v, cur) => {
      const path = ['suspension', key];
      const had = getPath(own, path) !== undefined;
      if (v === null) { if (had) deletePath(doc, path); return; }
      if (had || !same(v, cur)) setPath(doc, path, v);
    };
    if (this.isDefault) return { doc, problems };
    field('agency', f.suspAgency.checked, !!s.agency);
    field('units', f.suspUnits.filter((el) => el.checked).map((el) => el.value), s.units || []);
    let until = null;
    if (f.until.value) {
      const ms = inputMs(f.until.value);
      if (Number.isFinite(ms)) until = new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
      else problems.push({ place: 'suspension.until', message: t('pol.form.badTime') });
    }
    field('until', until, s.until ?? null);
    field('reason', f.reason.value.trim() || null, s.reason ?? null);
    return { doc, problems };
  }

  clearResults() {
    const f = this.f;
    f.message.clear();
    delete f.message.dataset.kind;
    f.problems.hidden = true;
    f.problems.replaceChildren();
    f.changes.hidden = true;
    f.changes.replaceChildren();
    f.reload.hidden = true;
    for (const [, el] of f.places) if (el) { el.removeAttribute('aria-invalid'); el.title = ''; }
  }

  /** Every problem with its place; the field it points at is marked. */
  showProblems(problems) {
    const f = this.f;
    f.problems.replaceChildren(h('li', { class: 'pol-problems-head', text: t('pol.problems', { n: problems.length }) }),
      ...problems.map((p, i) => h('li', { 'data-testid': `policy-problem-${i}`, 'data-place': p.place },
        h('code', { class: 'pol-place', text: p.place }), ' ', h('span', { text: p.message }))));
    f.problems.hidden = false;
    const mark = (el, msg) => { el.setAttribute('aria-invalid', 'true'); el.title = msg; };
    for (const p of problems) {
      // The field the place is in (longest prefix), else every field under the place.
      let best = null;
      for (const [prefix, el] of f.places) {
        if (el && (p.place === prefix || p.place.startsWith(`${prefix}.`) || p.place.startsWith(`${prefix}[`)) && (!best || prefix.length > best[0].length)) best = [prefix, el];
      }
      if (best) { mark(best[1], p.message); continue; }
      const under = f.places.filter(([prefix, el]) => el && prefix.startsWith(`${p.place}.`));
      for (const [, el] of under) mark(el, p.message);
      if (p.place === 'comment') mark(f.comment, p.message);
    }
  }

  /** Run before preview and save: the form's own checks (numbers, the comment). */
  prepare({ needComment }) {
    this.clearResults();
    const { doc, problems } = this.buildDoc();
    if (needComment) {
      const cm = this.f.comment.value.trim();
      if (cm.length < 3) problems.push({ place: 'comment', message: t('pol.form.comment') });
    }
    if (problems.length) {
      this.f.message.say('error', t('pol.refused'));
      this.showProblems(problems);
      if (needComment && problems.some((p) => p.place === 'comment')) this.f.comment.setAttribute('aria-invalid', 'true');
      return null;
    }
    this.f.comment.removeAttribute('aria-invalid');
    return doc;
  }

  async preview() {
    const doc = this.prepare({ needComment: false });
    if (!doc) return;
    const f = this.f;
    f.previewBtn.disabled = true;
    try {
      const node = this.agency.nodes?.[0];
      const r = await postJSON(this.path('/preview'), { policy: doc, ...(node ? { node } : {}) }, { signal: this.ctl.signal });
      if (r.problems?.length) {
        f.message.say('error', t('pol.refused'));
        this.showProblems(r.problems);
      } else {
        f.message.say('ok', t('pol.previewOk', { n: r.changes?.length ?? 0 }));
      }
      this.showChanges(r.changes || [], r.plan);
    } catch (e) {
      if (e.name !== 'AbortError') this.apiError(e);
    } finally {
      f.previewBtn.disabled = false;
    }
  }

  showChanges(changes, plan) {
    const f = this.f;
    const visible = changes.filter((c) => c.path !== 'version');
    f.changes.replaceChildren(
      h('h4', { class: 'part-title', text: t('pol.changes', { n: visible.length }) }),
      visible.length ? h('ul', { class: 'pol-change-list', 'data-testid': 'policy-changes' },
        ...visible.map((c) => h('li', { 'data-path': c.path },
          h('code', { class: 'pol-place', text: c.path }), ' ',
          h('span', { class: 'pol-before', text: short(c.before) }), ' → ',
          h('span', { class: 'pol-after', text: short(c.after) }))))
        : h('p', { class: 'muted', 'data-testid': 'policy-changes', text: t('pol.noChanges') }),
      plan ? h('details', { class: 'pol-plan', 'data-testid': 'policy-plan' },
        h('summary', { text: t('pol.plan', { node: plan.node || '' }) }),
        h('pre', { text: `# tc\n${plan.tc || ''}\n\n# nft\n${plan.nft || ''}` })) : null);
    f.changes.hidden = false;
  }

  /** 409 and 422 as the brief says; the rest as the server words it. */
  apiError(e) {
    const f = this.f;
    if (e instanceof ApiError && e.status === 409) {
      f.message.say('error', t('pol.conflict', { v: e.data?.current_version ?? '?' }));
      f.message.dataset.kind = 'conflict';
      f.reload.hidden = false;
    } else if (e instanceof ApiError && e.status === 422 && Array.isArray(e.data?.problems)) {
      f.message.say('error', t('pol.refused'));
      f.message.dataset.kind = 'invalid';
      this.showProblems(e.data.problems);
    } else {
      f.message.say('error', t('pol.error', { e: e.message }));
    }
  }

  async save() {
    const doc = this.prepare({ needComment: true });
    if (!doc) return;
    const f = this.f;
    f.saveBtn.disabled = true;
    delete f.message.dataset.kind;
    try {
      const r = await request('PUT', this.path(), {
        body: { base_version: this.data.version, policy: doc, comment: f.comment.value.trim() }, signal: this.ctl.signal,
      });
      const changed = r.changed !== false;
      this.data = this.accept(r);
      this.render();
      this.buildForm();
      this.f.message.say('ok', changed ? t('pol.saved', { v: r.version }) : t('pol.unchanged', { v: r.version }));
      this.f.message.dataset.kind = changed ? 'saved' : 'unchanged';
      this.loadVersions();
      this.loadNodes();
    } catch (e) {
      if (e.name !== 'AbortError') this.apiError(e);
    } finally {
      f.saveBtn.disabled = false;
    }
  }

  /** What version `n` changed against the one before it, in a dialog. */
  async compare(n) {
    let r;
    try {
      r = await getJSON(this.path(`/versions/${n}?against=${n - 1}`), { signal: this.ctl.signal });
    } catch (e) {
      if (e.name !== 'AbortError') this.c.historyMessage.say('error', loadError(e));
      return;
    }
    const visible = (r.changes || []).filter((c) => c.path !== 'version');
    await openDialog({
      title: t('pol.diff.title', { from: n - 1, to: n }),
      testid: 'policy-diff-dialog',
      content: [
        h('p', { class: 'dlg-text', text: `${r.created_by || '—'} · ${fmtDateTime(r.created_ms)} · ${r.comment || '—'}` }),
        visible.length ? h('ul', { class: 'pol-change-list', 'data-testid': 'policy-diff-changes' },
          ...visible.map((c) => h('li', { 'data-path': c.path },
            h('code', { class: 'pol-place', text: c.path }), ' ',
            h('span', { class: 'pol-before', text: short(c.before) }), ' → ',
            h('span', { class: 'pol-after', text: short(c.after) }))))
          : h('p', { class: 'muted', 'data-testid': 'policy-diff-changes', text: t('pol.noChanges') }),
      ],
      ok: t('dlg.ok'),
      cancel: t('dlg.close'),
    });
  }

  async rollback(v) {
    const comment = h('input', { type: 'text', id: 'rb-comment', 'data-testid': 'rollback-comment', maxlength: '500', required: true });
    const base = this.data.version;
    const r = await openDialog({
      title: t('pol.rollback.title', { v: v.version }),
      testid: 'rollback-dialog',
      content: [h('p', { class: 'dlg-text', text: t('pol.rollback.text', { v: v.version, cur: base }) }),
        h('div', { class: 'field' }, h('label', { for: 'rb-comment', text: t('pol.comment') }), comment)],
      ok: t('pol.rollback'),
      submit: async () => {
        if (comment.value.trim().length < 3) throw new Error(t('pol.form.comment'));
        try {
          return await postJSON(this.path('/rollback'), { version: v.version, base_version: base, comment: comment.value.trim() }, { signal: this.ctl.signal });
        } catch (e) {
          if (e instanceof ApiError && e.status === 409) throw new Error(t('pol.conflict', { v: e.data?.current_version ?? '?' }));
          throw e;
        }
      },
    });
    if (!r || r === true) return;
    this.c.historyMessage.say('ok', t('pol.rolledBack', { from: v.version, v: r.version }));
    await this.load();
    this.loadNodes();
  }
}

/** A titled panel of the policy pages. */
function panel(id, title, ...body) {
  return h('section', { class: 'panel', 'aria-labelledby': id },
    h('div', { class: 'panel-head' }, h('h3', { id, text: title })), ...body);
}

function nodeError(p) {
  if (!p) return '—';
  const parts = [];
  if (p.error) parts.push(p.error);
  for (const x of p.problems || []) parts.push(`${x.place}: ${x.message}`);
  return parts.length ? h('span', { class: 'pol-node-error', 'data-testid': 'policy-node-error', title: parts.join('\n'), text: parts.join('; ') }) : '—';
}

function factsList(dl, rows) {
  dl.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', { text: t(k) }), h('dd', null, v)]));
}

/**
 * #/policy-default: the province-wide default every agency inherits. The
 * agency page's parts without units, nodes and suspension (the default may
 * not name them); a save gives every agency that follows it a new version
 * where its merged policy changes, and is refused whole when one of them
 * would be invalid (422 with the agency in each place).
 */
export class DefaultPolicyView extends PolicyView {
  constructor(ctx) {
    super('', ctx);
    this.isDefault = true;
    this.agency = { code: '', units: [], nodes: [] };
  }

  path(rest = '') { return paths.defaultPolicy(rest); }

  accept(r) { return { ...r, effective: r.policy || {}, follows_default: false }; }

  mount(root) {
    document.title = `${t('pol.default.title')} · Simpul NOC`;
    const c = this.c = this.elements(t('pol.default.title'));
    root.replaceChildren(h('div', { class: 'agency-page policy-page', 'data-testid': 'policy-page', 'data-code': 'default' },
      h('nav', { class: 'crumbs tabs', 'aria-label': 'breadcrumb' },
        h('a', { href: '#/', text: t('nav.back') }),
        h('a', { class: 'tab', href: '#/policy', text: t('pol.all') })),
      h('div', { class: 'hero-id pol-hero' }, c.title,
        h('div', { class: 'pol-version-line' }, h('span', { class: 'kpi-label', text: t('pol.inForce') }), c.version), c.meta, c.follows, c.message,
        this.admin ? null : h('p', { class: 'panel-note', 'data-testid': 'policy-readonly', text: t('pol.readonly') })),
      h('div', { class: 'two' },
        panel('h-pol-alloc', t('pol.alloc'), h('div', { class: 'table-wrap' }, c.alloc), c.sums),
        panel('h-pol-block', t('pol.blocking'), c.blocking)),
      this.admin ? panel('h-pol-edit', t('pol.edit'), c.formBox) : null,
      panel('h-pol-hist', t('pol.history'), c.historyMessage, h('div', { class: 'table-wrap' }, c.versions))));
    this.load();
  }

  async load() {
    const signal = this.ctl.signal;
    try {
      this.data = this.accept(await getJSON(this.path(), { signal }));
      this.c.message.clear();
      this.render();
      setText(this.c.follows, t('pol.default.note'));
      if (this.admin) await this.showForm(signal);
    } catch (e) {
      if (e.name !== 'AbortError') this.c.message.say('error', loadError(e));
    }
    this.loadVersions();
  }

  loadNodes() {}

  async save() {
    await super.save();
    setText(this.c.follows, t('pol.default.note'));
  }
}
