// Nodes: what a tile or a row shows for a node, and #/nodes, the list of
// every node (an agency officer's own only; the server filters) with, for
// an admin, a new enrollment token and revocation, each confirmed first.
import { t, fmtAgo, fmtDateTime, fmtInt } from './i18n.js';
import { h, renderTable, showTableMessage, formMessage } from './dom.js';
import { getJSON, postJSON } from './api.js';
import { can } from './session.js';
import { confirmDialog, openDialog, secretBox } from './dialogs.js';

export function statusLabel(s) { return t(`status.${s}`) || s; }

/**
 * What a node tile shows: the outage detector's liveness (up, down,
 * unreachable, flapping) where it has one, else the registry's status
 * (never connected, revoked).
 */
export function nodeState(n) {
  if (n.status === 'revoked') return 'revoked';
  const l = n.liveness;
  if (l === 'up' || l === 'down' || l === 'unreachable' || l === 'flapping') return l;
  if (l === 'unknown') return n.status === 'never' ? 'never' : 'unknown';
  return n.status;
}

export function statusCell(n) {
  const st = nodeState(n);
  return h('span', { class: 'node status-cell', 'data-status': st }, h('span', { class: 'node-dot', 'aria-hidden': 'true' }), statusLabel(st));
}

const REFRESH_MS = 10000;

/** #/nodes */
export class NodesView {
  /**
   * serverNow(): the collector's clock; agencyLabel(code): its name, once
   * agencies(signal) has fetched the list.
   */
  constructor({ serverNow, agencyLabel, agencies }) {
    this.serverNow = serverNow;
    this.agencyLabel = agencyLabel;
    this.agencies = agencies;
    this.ctl = new AbortController();
  }

  mount(root) {
    document.title = `${t('nodes.title')} · Simpul NOC`;
    this.table = h('table', { class: 'data', 'data-testid': 'node-list-table' });
    this.message = formMessage('node-message');
    this.count = h('span', { class: 'panel-note', 'data-testid': 'node-count' });
    root.replaceChildren(h('div', { class: 'agency-page nodes-page', 'data-testid': 'nodes-page' },
      h('nav', { class: 'crumbs', 'aria-label': 'breadcrumb' }, h('a', { href: '#/', text: t('nav.back') })),
      h('section', { class: 'panel', 'aria-labelledby': 'h-node-list' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-node-list', text: t('nodes.title') }), this.count,
          can.admin() ? h('span', { class: 'panel-note', text: t('nodes.adminNote') }) : null),
        this.message,
        h('div', { class: 'table-wrap' }, this.table))));
    this.load();
    this.timer = setInterval(() => this.load(), REFRESH_MS);
  }

  update() {}

  destroy() {
    clearInterval(this.timer);
    this.ctl.abort();
  }

  async load() {
    try {
      await this.agencies(this.ctl.signal);
      this.render(await getJSON('api/v1/nodes', { signal: this.ctl.signal }));
    } catch (e) {
      if (e.name !== 'AbortError' && !this.nodes) showTableMessage(this.table, t('error', { e: e.message }));
    }
  }

  render(nodes) {
    this.nodes = nodes;
    const now = this.serverNow();
    const rows = [...nodes].sort((a, b) => a.agency.localeCompare(b.agency) || a.node_id.localeCompare(b.node_id));
    this.count.textContent = t('nodes.count', { n: fmtInt(rows.length) });
    const cols = [
      { h: 'col.node', cell: (n) => h('span', { class: 'strong', text: n.node_id }) },
      { h: 'col.agency', cell: (n) => h('a', { href: `#/agency/${encodeURIComponent(n.agency)}`, text: this.agencyLabel(n.agency) }) },
      { h: 'col.status', cell: (n) => statusCell(n) },
      { h: 'col.lastSeen', cell: (n) => (n.last_seen ? fmtAgo(now - Date.parse(n.last_seen)) : t('seen.never')), title: (n) => (n.last_seen ? fmtDateTime(Date.parse(n.last_seen)) : null) },
      { h: 'col.address', cell: (n) => n.address || '—', cls: 'mono' },
      { h: 'col.version', cell: (n) => n.agent_version || n.health?.agent_version || '—' },
      { h: 'col.policy', cell: (n) => policyCell(n.policy) },
    ];
    if (can.admin()) cols.push({ h: 'col.actions', cell: (n) => this.actions(n) });
    renderTable(this.table, cols, rows, (n) => `node-row-${n.node_id}`);
    this.table.querySelectorAll('tbody tr[data-testid]').forEach((tr, i) => { tr.dataset.status = nodeState(rows[i]); });
  }

  actions(n) {
    return h('span', { class: 'row-actions' },
      h('button', { type: 'button', class: 'btn', 'data-testid': `node-enroll-${n.node_id}`, text: t('nodes.enroll'), onclick: () => this.enroll(n) }),
      n.status === 'revoked' ? null : h('button', {
        type: 'button', class: 'btn danger', 'data-testid': `node-revoke-${n.node_id}`, text: t('nodes.revoke'), onclick: () => this.revoke(n),
      }));
  }

  async enroll(n) {
    const ok = await confirmDialog({
      title: t('nodes.enroll.title', { node: n.node_id }), text: t('nodes.enroll.confirm', { node: n.node_id }),
      ok: t('nodes.enroll.ok'), danger: false,
    });
    if (!ok) return;
    this.message.clear();
    let issued;
    try {
      issued = await postJSON(`api/v1/nodes/${encodeURIComponent(n.node_id)}/enrollment-token`, undefined, { signal: this.ctl.signal });
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('nodes.error', { e: e.message }));
      return;
    }
    // Shown once, in a dialog of its own: only its hash stays on the server.
    await openDialog({
      title: t('nodes.enroll.issued', { node: issued.node_id }),
      testid: 'enroll-dialog',
      content: [
        secretBox(t('nodes.enroll.token'), issued.token, 'enroll-token'),
        h('p', { class: 'note', text: t('nodes.enroll.note', { t: fmtDateTime(issued.expires_ms) }) }),
      ],
      ok: t('dlg.done'),
      cancel: t('dlg.close'),
    });
  }

  async revoke(n) {
    const ok = await confirmDialog({
      title: t('nodes.revoke.title', { node: n.node_id }), text: t('nodes.revoke.confirm', { node: n.node_id }), ok: t('nodes.revoke'),
    });
    if (!ok) return;
    try {
      await postJSON(`api/v1/nodes/${encodeURIComponent(n.node_id)}/revoke`, undefined, { signal: this.ctl.signal });
      this.message.say('ok', t('nodes.revoked', { node: n.node_id }));
      this.load();
    } catch (e) {
      if (e.name !== 'AbortError') this.message.say('error', t('nodes.error', { e: e.message }));
    }
  }
}

function policyCell(p) {
  if (!p || p.state === 'none') return '—';
  const label = `${t(`policy.${p.state}`)}${p.version ? ` · v${p.version}` : ''}`;
  return h('span', { class: `badge policy-${p.state}`, 'data-state': p.state, title: p.error || null, text: label });
}
