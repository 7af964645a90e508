// Several collectors on one PostgreSQL control store take turns through
// leases: which one leads outage detection (and so alerts), which mails a
// month's reports. Every role sees who leads and which collector serves
// this page (GET /api/v1/collectors) on the wall, as a line under the node
// tiles; the NOC (admins, operators) also on #/nodes with every lease. Nobody leading
// means nobody opens incidents or sends alerts, so that is shown as an alarm.
import { t, fmtDateTime } from './i18n.js';
import { getJSON } from './api.js';
import * as paths from './paths.js';
import { h, setText, showTableMessage } from './dom.js';
import { loadError } from './errors.js';
import { renderTable } from './table.js';

/** The lease is renewed every third of its life (seconds): this follows a takeover soon enough. */
export const COLLECTORS_REFRESH_MS = 10000;

/** "Outage detection led by …" and "This page is served by …", polled while mounted. */
export class CollectorsLine {
  /** withTable: also every lease (the #/nodes page). */
  constructor({ withTable = false } = {}) {
    this.leader = h('span', { class: 'collectors-leader', 'data-testid': 'collectors-leader' });
    this.self = h('span', { class: 'collectors-self', 'data-testid': 'collectors-self' });
    this.el = h('div', { class: 'collectors', 'data-testid': 'collectors', 'data-state': 'loading', role: 'status' },
      this.leader, this.self);
    if (withTable) {
      this.table = h('table', { class: 'data', 'data-testid': 'leases-table' });
      this.el.append(h('div', { class: 'table-wrap' }, this.table));
    }
    setText(this.leader, t('loading'));
    this.ctl = new AbortController();
    this.load();
    this.timer = setInterval(() => this.load(), COLLECTORS_REFRESH_MS);
  }

  destroy() {
    clearInterval(this.timer);
    this.ctl.abort();
  }

  async load() {
    try {
      this.render(await getJSON(paths.collectors(), { signal: this.ctl.signal }));
    } catch (e) {
      if (e.name === 'AbortError') return;
      this.el.dataset.state = 'error';
      setText(this.leader, loadError(e));
      setText(this.self, '');
      if (this.table) showTableMessage(this.table, loadError(e));
    }
  }

  render(c) {
    const l = c.outage_leader;
    const d = this.el.dataset;
    d.state = l ? 'led' : 'none';
    d.leader = l ? l.collector_id : '';
    d.self = c.this_collector;
    this.el.classList.toggle('crit', !l);
    setText(this.leader, l
      ? t(l.this_collector ? 'collectors.ledByThis' : 'collectors.ledBy', { id: l.collector_id })
      : t('collectors.none'));
    setText(this.self, t('collectors.self', { id: c.this_collector }));
    if (this.table) this.renderLeases(c.leases || []);
  }

  renderLeases(leases) {
    renderTable(this.table, [
      { h: 'lease.purpose', cell: (x) => t(`lease.${x.purpose}`, { m: x.month || x.name }) },
      { h: 'lease.holder', cell: (x) => h('span', { title: x.holder, text: x.this_collector ? t('lease.thisHolder', { id: x.collector_id }) : x.collector_id }) },
      {
        h: 'lease.state',
        cell: (x) => h('span', { class: `badge lease-${x.live ? 'live' : 'expired'}`, 'data-live': String(x.live), text: t(x.live ? 'lease.live' : 'lease.expired') }),
        sortValue: (x) => (x.live ? 1 : 0),
      },
      { h: 'lease.until', cell: (x) => fmtDateTime(x.expires_ms), cls: 'num', sortValue: (x) => x.expires_ms },
    ], leases, (x) => `lease-row-${x.name}`, { rowData: (x) => ({ purpose: x.purpose, live: String(x.live) }) });
  }
}
