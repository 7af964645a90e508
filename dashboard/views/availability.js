// #/availability: availability per node today and this month (from local
// midnight and the 1st), with the downtime that counts against it and the
// unreachable and maintenance time apart; the maintenance windows.
import { t, fmtInt, fmtNum, fmtSpan } from '../i18n.js';
import { getJSON } from '../api.js';
import * as paths from '../paths.js';
import { loadError } from '../errors.js';
import { h, showTableMessage } from '../dom.js';
import { MaintenancePanel } from '../maintenance.js';
import { cache, serverNow, agencyLabel, agencies } from '../state.js';
import { pctLevel, zoneMidnight, zoneParts, zoneTime } from '../format.js';
import { outageTabs } from './incidents.js';

/** #/availability: availability per node today and this month; maintenance windows and the form to add one. */
export class AvailabilityView {
  constructor() {
    this.ctl = new AbortController();
    this.timers = [];
  }

  mount(root) {
    document.title = `${t('nav.availability')} · Simpul NOC`;
    const c = this.c = {
      table: h('table', { class: 'data availability-table', 'data-testid': 'availability-table' }),
    };
    this.maintenance = new MaintenancePanel({
      signal: this.ctl.signal, serverNow, agencyLabel, onChange: () => this.loadAvailability(),
    });
    root.replaceChildren(h('div', { class: 'agency-page availability-page', 'data-testid': 'availability-page' },
      outageTabs('availability'),
      h('section', { class: 'panel', 'aria-labelledby': 'h-av' },
        h('div', { class: 'panel-head' }, h('h2', { id: 'h-av', text: t('av.title') }), h('span', { class: 'panel-note', text: t('av.note') })),
        h('div', { class: 'table-wrap' }, c.table)),
      this.maintenance.element()));
    this.loadAvailability();
    this.maintenance.load();
    this.every(30000, () => { this.loadAvailability(); this.maintenance.loadWindows(); });
  }

  every(ms, fn) { this.timers.push(setInterval(fn, ms)); }

  destroy() {
    this.timers.forEach(clearInterval);
    this.ctl.abort();
  }

  update() {}

  async fetch(path) {
    const d = await getJSON(path, { signal: this.ctl.signal });
    cache.set(path, d);
    return d;
  }

  /** The NOC's midnight today and on the 1st of this month, in Unix seconds. */
  periods() {
    const now = serverNow();
    const p = zoneParts(now);
    return { today: Math.floor(zoneMidnight(now) / 1000), month: Math.floor(zoneTime(p.y, p.m, 1) / 1000) };
  }

  async loadAvailability() {
    const p = this.periods();
    try {
      await agencies(this.ctl.signal);
      const [today, month] = await Promise.all([
        this.fetch(paths.availability({ from: p.today })),
        this.fetch(paths.availability({ from: p.month })),
      ]);
      this.renderAvailability(today, month);
    } catch (e) {
      if (e.name !== 'AbortError') showTableMessage(this.c.table, loadError(e));
    }
  }

  renderAvailability(today, month) {
    const byNode = new Map(month.map((m) => [m.node_id, m]));
    const rows = today.map((d) => ({ node_id: d.node_id, agency: d.agency, d, m: byNode.get(d.node_id) }))
      .sort((a, b) => a.agency.localeCompare(b.agency) || a.node_id.localeCompare(b.node_id));
    // Truncated, not rounded: 99.998 % with 48 s down is not "100,00%".
    // null: the node was enrolled after the period began being measured.
    const pctCell = (x) => (x && x.availability_pct != null ? h('span', {
      class: 'pct-cell', 'data-level': pctLevel(x.availability_pct), text: `${fmtNum(Math.floor(x.availability_pct * 100) / 100, 2)}%`,
    }) : '—');
    const ms = (v) => (v ? fmtSpan(v) : '—');
    const table = this.c.table;
    const head = h('thead', null,
      h('tr', null, h('th'), h('th', { colspan: '4', class: 'group', scope: 'colgroup', text: t('av.today') }),
        h('th', { colspan: '5', class: 'group', scope: 'colgroup', text: t('av.month') })),
      h('tr', null, ...['col.nodeAgency', 'col.availability', 'col.downtime', 'col.unreachable', 'col.maintenance',
        'col.availability', 'col.downtime', 'col.unreachable', 'col.maintenance', 'col.incidents']
        .map((k, i) => h('th', { scope: 'col', class: i >= 1 ? `num${i === 1 || i === 5 ? ' group-start' : ''}` : null, text: t(k) }))));
    const body = h('tbody', null, ...(rows.length ? rows.map((r) => h('tr', {
      'data-testid': `availability-row-${r.node_id}`, 'data-node': r.node_id,
      'data-today-pct': String(r.d.availability_pct), 'data-month-pct': r.m ? String(r.m.availability_pct) : null,
    },
    h('td', null, h('span', { class: 'strong', text: r.node_id }), h('span', { class: 'sub', text: agencyLabel(r.agency) })),
    h('td', { class: 'num group-start' }, pctCell(r.d)), h('td', { class: 'num', text: ms(r.d.down_ms) }),
    h('td', { class: 'num', text: ms(r.d.unreachable_ms) }), h('td', { class: 'num', text: ms(r.d.maintenance_ms) }),
    h('td', { class: 'num group-start' }, pctCell(r.m)), h('td', { class: 'num', text: ms(r.m?.down_ms) }),
    h('td', { class: 'num', text: ms(r.m?.unreachable_ms) }), h('td', { class: 'num', text: ms(r.m?.maintenance_ms) }),
    h('td', { class: 'num', text: fmtInt(r.m?.incidents ?? 0) })))
      : [h('tr', { class: 'empty-row' }, h('td', { class: 'empty', colspan: '10', text: t('empty') }))]));
    table.replaceChildren(head, body);
    table.dataset.rows = String(rows.length);
  }
}
