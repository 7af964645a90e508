// #/availability: availability per node over the page's range (the picker of
// the other pages, kept in the address; "today" and "this month" are the
// NOC's calendar day and month), computed by the server: the downtime that
// counts against it, and the unreachable, maintenance and unmonitored
// (before enrollment) time apart; the CSV is the server's, for the same
// range. The maintenance windows below.
import { t, fmtInt, fmtNum, fmtSpan } from '../i18n.js';
import { getJSON } from '../api.js';
import * as paths from '../paths.js';
import { loadError } from '../errors.js';
import { h, setText, showTableMessage } from '../dom.js';
import { renderTable } from '../table.js';
import { MaintenancePanel } from '../maintenance.js';
import { serverNow, agencyLabel, agencies } from '../state.js';
import { pctLevel, zoneParts, zoneTime } from '../format.js';
import { RangePicker, rangeFromHash, rangeLabel, bounds, HISTORY_PRESETS } from '../timerange.js';
import { outageTabs } from './incidents.js';
import { serverCsv, markCsv } from './blocked.js';

/**
 * The NOC's calendar day and month holding `nowMs`, as custom ranges (Unix
 * s) that end at the next midnight / the next 1st: the server counts up to
 * now only, so the range stays right all day and shares as an address.
 */
export function calendarRanges(nowMs) {
  const p = zoneParts(nowMs);
  const s = (ms) => Math.floor(ms / 1000);
  return {
    today: { key: 'custom', from: s(zoneTime(p.y, p.m, p.d)), to: s(zoneTime(p.y, p.m, p.d + 1)) },
    month: { key: 'custom', from: s(zoneTime(p.y, p.m, 1)), to: s(zoneTime(p.y, p.m + 1, 1)) },
  };
}

/** #/availability: availability per node over a range; maintenance windows and the form to add one. */
export class AvailabilityView {
  constructor() {
    this.ctl = new AbortController();
    this.timers = [];
  }

  mount(root) {
    document.title = `${t('nav.availability')} · Simpul NOC`;
    this.range = rangeFromHash(HISTORY_PRESETS, '24h');
    this.picker = new RangePicker({
      presets: HISTORY_PRESETS, value: this.range, testid: 'av-range-', serverNow, onChange: (r) => this.setRange(r),
    });
    const c = this.c = {
      table: h('table', { class: 'data availability-table', 'data-testid': 'availability-table' }),
      period: h('span', { class: 'panel-note', 'data-testid': 'availability-period' }),
      today: this.calendarButton('today', 'av.today'),
      month: this.calendarButton('month', 'av.month'),
    };
    // The table's CSV button downloads the server's answer for this range.
    serverCsv(c.table, () => this.path('csv'));
    this.maintenance = new MaintenancePanel({
      signal: this.ctl.signal, serverNow, agencyLabel, onChange: () => this.loadAvailability(),
    });
    root.replaceChildren(h('div', { class: 'agency-page availability-page', 'data-testid': 'availability-page' },
      outageTabs('availability'),
      h('div', { class: 'page-head' }, h('h2', { class: 'agency-title', text: t('nav.availability') }),
        h('div', { class: 'head-tools' }, this.picker.element(),
          h('div', { class: 'range-group', role: 'group', 'aria-label': t('av.calendar') }, c.today, c.month))),
      h('section', { class: 'panel', 'aria-labelledby': 'h-av' },
        h('div', { class: 'panel-head' }, h('h3', { id: 'h-av', text: t('av.title') }), c.period),
        h('p', { class: 'panel-note', text: t('av.note') }),
        h('div', { class: 'table-wrap' }, c.table)),
      this.maintenance.element()));
    this.showRange();
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

  calendarButton(which, key) {
    return h('button', {
      type: 'button', class: 'range', 'data-testid': `av-${which}`, text: t(key),
      onclick: () => this.picker.set(calendarRanges(serverNow())[which]),
    });
  }

  setRange(r) {
    this.range = r;
    this.showRange();
    this.loadAvailability();
  }

  /** The range in words, and which calendar button (if any) it is. */
  showRange() {
    const cal = calendarRanges(serverNow());
    const r = this.range;
    for (const which of ['today', 'month']) {
      const on = r.key === 'custom' && r.from === cal[which].from && r.to === cal[which].to;
      this.c[which].setAttribute('aria-pressed', String(on));
    }
    setText(this.c.period, rangeLabel(r));
  }

  /** The API path of the range: JSON, or `format` 'csv'. */
  path(format = null) {
    const b = bounds(this.range, serverNow());
    return paths.availability({ from: b.from, to: b.to, format });
  }

  async loadAvailability() {
    const range = this.range;
    const path = this.path();
    try {
      await agencies(this.ctl.signal);
      // Not cached: a preset's path moves with the clock (a key every 30 s).
      const d = await getJSON(path, { signal: this.ctl.signal });
      if (range === this.range) this.renderAvailability(d);
    } catch (e) {
      if (e.name !== 'AbortError' && range === this.range) showTableMessage(this.c.table, loadError(e));
    }
  }

  renderAvailability(list) {
    const rows = [...list].sort((a, b) => a.agency.localeCompare(b.agency) || a.node_id.localeCompare(b.node_id));
    // Truncated, not rounded: 99.998 % with 48 s down is not "100,00%".
    // null: the node was enrolled after the range ended (nothing measured).
    const pctCell = (x) => (x.availability_pct != null ? h('span', {
      class: 'pct-cell', 'data-level': pctLevel(x.availability_pct), text: `${fmtNum(Math.floor(x.availability_pct * 100) / 100, 2)}%`,
    }) : '—');
    const span = (key, title) => ({ key, h: title, cell: (r) => (r[key] ? fmtSpan(r[key]) : '—'), cls: 'num', sortValue: (r) => r[key] });
    renderTable(this.c.table, [
      {
        key: 'node', h: 'col.nodeAgency', sortValue: (r) => r.node_id,
        cell: (r) => h('span', null, h('span', { class: 'strong', text: r.node_id }), h('span', { class: 'sub', text: agencyLabel(r.agency) })),
      },
      { key: 'availability', h: 'col.availability', cell: pctCell, cls: 'num', sortValue: (r) => r.availability_pct },
      span('down_ms', 'col.downtime'),
      span('unreachable_ms', 'col.unreachable'),
      span('maintenance_ms', 'col.maintenance'),
      span('unmonitored_ms', 'col.unmonitored'),
      { key: 'incidents', h: 'col.incidents', cell: (r) => fmtInt(r.incidents ?? 0), cls: 'num', sortValue: (r) => r.incidents },
    ], rows, (r) => `availability-row-${r.node_id}`, {
      rowData: (r) => ({ node: r.node_id, pct: String(r.availability_pct) }),
    });
    markCsv(this.c.table);
  }
}
