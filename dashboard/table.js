// A table the NOC can work with: click a header to sort (again to reverse),
// a filter box over every column, a CSV download of what it shows (sorted and
// filtered, as the cells' plain values), and "more" for tables that page
// through the API (the flows' cursor).
import { t, fmtInt } from './i18n.js';
import { h, setText } from './dom.js';
import { downloadCsv, csvName } from './csv.js';

const collator = new Intl.Collator('id', { numeric: true, sensitivity: 'base' });

function compare(a, b) {
  if (a == null || a === '') return b == null || b === '' ? 0 : 1; // blanks last
  if (b == null || b === '') return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return collator.compare(String(a), String(b));
}

export class DataTable {
  /**
   * opts: id (test ids: `${id}-table`, `${id}-filter`, `${id}-csv`,
   * `${id}-more`, `${id}-sort-${key}`, rows `${id}-row-${n}`); columns
   * [{ key, h: i18n key, cell: row → text | Node, value: row → number |
   * text (sort, filter, CSV), cls, sort: false to keep a column unsorted }];
   * csv: () => file name parts; sort: { key, dir: 'asc' | 'desc' } at first;
   * more: async () => ({ rows, more }) for the next page (none: no button).
   */
  constructor(opts) {
    this.o = opts;
    this.rows = [];
    this.sort = opts.sort || null;
    this.filter = '';
    this.hasMore = false;
    this.busy = false;
    const id = opts.id;
    this.table = h('table', { class: 'data', 'data-testid': `${id}-table` });
    this.input = h('input', {
      type: 'search', class: 'table-filter', 'data-testid': `${id}-filter`,
      placeholder: t('table.filter'), 'aria-label': t('table.filter'),
      oninput: () => { this.filter = this.input.value.trim().toLowerCase(); this.render(); },
    });
    this.count = h('span', { class: 'panel-note', 'data-testid': `${id}-count` });
    this.csvButton = h('button', {
      type: 'button', class: 'btn small', 'data-testid': `${id}-csv`, text: t('table.csv'),
      title: t('table.csv.help'), onclick: () => this.downloadCsv(),
    });
    this.moreButton = h('button', {
      type: 'button', class: 'btn small', 'data-testid': `${id}-more`, text: t('table.more'), hidden: true,
      onclick: () => this.loadMore(),
    });
    this.error = h('span', { class: 'form-error', role: 'alert', hidden: true });
    this.el = h('div', { class: 'data-table', 'data-testid': id },
      h('div', { class: 'table-tools' }, this.input, this.count, this.csvButton),
      h('div', { class: 'table-wrap' }, this.table),
      h('div', { class: 'table-foot' }, this.moreButton, this.error));
  }

  element() { return this.el; }

  /** Replace the rows; `more`: the API has another page. */
  setRows(rows, more = false) {
    this.rows = rows || [];
    this.hasMore = !!more;
    this.render();
  }

  /** A message instead of rows (loading failed). */
  message(text) {
    this.rows = [];
    this.hasMore = false;
    this.table.replaceChildren(h('tbody', null, h('tr', null, h('td', { class: 'empty', text }))));
    this.table.dataset.rows = '0';
    setText(this.count, '');
    this.moreButton.hidden = true;
  }

  async loadMore() {
    if (!this.o.more || this.busy) return;
    this.busy = true;
    this.moreButton.disabled = true;
    this.error.hidden = true;
    try {
      const page = await this.o.more();
      if (!page) return;
      this.rows = this.rows.concat(page.rows || []);
      this.hasMore = !!page.more;
      this.render();
    } catch (e) {
      if (e.name === 'AbortError') return;
      setText(this.error, e.message);
      this.error.hidden = false;
    } finally {
      this.busy = false;
      this.moreButton.disabled = false;
    }
  }

  value(c, r) { return c.value ? c.value(r) : null; }

  /** The rows on screen: filtered, then sorted. */
  shown() {
    const cols = this.o.columns;
    let rows = this.rows;
    if (this.filter) {
      rows = rows.filter((r) => cols.some((c) => {
        const v = this.value(c, r);
        return v != null && String(v).toLowerCase().includes(this.filter);
      }));
    }
    const s = this.sort;
    const col = s && cols.find((c) => c.key === s.key);
    if (col) {
      const sign = s.dir === 'desc' ? -1 : 1;
      // Blanks stay last whichever the direction.
      rows = rows.map((r, i) => [r, i]).sort(([a, i], [b, j]) => {
        const va = this.value(col, a); const vb = this.value(col, b);
        const blank = (v) => v == null || v === '';
        if (blank(va) || blank(vb)) return compare(va, vb) || i - j;
        return sign * compare(va, vb) || i - j;
      }).map(([r]) => r);
    }
    return rows;
  }

  toggleSort(key) {
    const s = this.sort;
    this.sort = { key, dir: s && s.key === key && s.dir === 'asc' ? 'desc' : s && s.key === key ? 'asc' : this.firstDir(key) };
    this.render();
  }

  /** Numbers start largest first, text A to Z. */
  firstDir(key) {
    const col = this.o.columns.find((c) => c.key === key);
    const sample = this.rows.map((r) => this.value(col, r)).find((v) => v != null && v !== '');
    return typeof sample === 'number' ? 'desc' : 'asc';
  }

  render() {
    const { id, columns } = this.o;
    const rows = this.shown();
    const head = h('tr', null, ...columns.map((c) => {
      const sorted = this.sort?.key === c.key ? this.sort.dir : null;
      const label = t(c.h);
      const th = h('th', {
        scope: 'col', class: c.cls, 'aria-sort': sorted ? (sorted === 'asc' ? 'ascending' : 'descending') : null,
      });
      if (c.sort === false || !c.value) th.textContent = label;
      else {
        th.append(h('button', {
          type: 'button', class: 'sort', 'data-testid': `${id}-sort-${c.key}`, 'data-dir': sorted,
          title: t('table.sort'), onclick: () => this.toggleSort(c.key),
        }, label, h('span', { class: 'sort-mark', 'aria-hidden': 'true', text: sorted === 'asc' ? ' ▲' : sorted === 'desc' ? ' ▼' : '' })));
      }
      return th;
    }));
    const body = h('tbody');
    if (!rows.length) {
      body.append(h('tr', { class: 'empty-row' }, h('td', {
        class: 'empty', colspan: String(columns.length), text: this.rows.length ? t('table.noMatch') : t('empty'),
      })));
    }
    rows.forEach((r, i) => body.append(h('tr', { 'data-testid': `${id}-row-${i + 1}` },
      ...columns.map((c) => h('td', { class: c.cls }, c.cell(r))))));
    this.table.replaceChildren(h('thead', null, head), body);
    this.table.dataset.rows = String(rows.length);
    setText(this.count, this.filter
      ? t('table.countOf', { n: fmtInt(rows.length), of: fmtInt(this.rows.length) })
      : t('table.count', { n: fmtInt(rows.length) }));
    this.moreButton.hidden = !(this.o.more && this.hasMore);
  }

  /** What the table shows, as CSV: the column titles and each cell's plain value. */
  downloadCsv() {
    const cols = this.o.columns.filter((c) => c.value);
    downloadCsv(csvName(...(this.o.csv ? this.o.csv() : [this.o.id])),
      cols.map((c) => ({ title: t(c.h), value: (r) => this.value(c, r) })), this.shown());
  }
}
