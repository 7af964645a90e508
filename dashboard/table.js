// The dashboard's tables, one implementation for all of them: click a header
// to sort (again to reverse), a filter box, a CSV download of what the table
// shows (sorted and filtered). `renderTable` redraws a page's <table> in
// place (the tables most pages refresh every few seconds); `DataTable` is a
// table with its tools around it and "more" for tables that page through the
// API (the flows' cursor). How rows compare and match: sorting.js.
import { t, fmtInt } from './i18n.js';
import { h, setText } from './dom.js';
import { downloadCsv, csvName } from './csv.js';
import { onReset } from './state.js';
import { sortRows, filterWords, matchesWords, firstDir, nextSort } from './sorting.js';

/** A table with fewer rows has no filter box (it still sorts). */
const FILTER_MIN = 6;

// The sort and filter chosen per table (its test id). Kept here, not in the
// DOM: pages redraw their tables every few seconds and on live patches, and
// a view built again (leaving the page and coming back) finds them too.
// Forgotten at every login, like the rest of what the page knows.
const chosen = new Map();
const unnamed = new WeakMap(); // tables without a test id: per element
onReset(() => chosen.clear());

function viewOf(table, id, initial = null) {
  let v = id ? chosen.get(id) : unnamed.get(table);
  if (!v) {
    v = { sort: initial, filter: '' };
    if (id) chosen.set(id, v); else unnamed.set(table, v);
  }
  return v;
}

/** Each column with a key (its own, else its title's last word; made unique). */
function keyed(cols) {
  const seen = new Set();
  return cols.filter(Boolean).map((c, i) => {
    let key = c.key || String(c.h).split('.').pop();
    if (seen.has(key)) key = `${key}-${i + 1}`;
    seen.add(key);
    return c.key === key ? c : { ...c, key };
  });
}

const textOf = (v) => (v instanceof Node ? v.textContent : v == null ? '' : String(v));

/** What a column sorts a row on: `sortValue`, else `value`, else the text shown. */
function keyOf(c, r, cell) {
  if (c.sortValue) return c.sortValue(r);
  if (c.value) return c.value(r);
  return textOf(cell === undefined ? c.cell(r) : cell);
}

/** The rows to show, filtered then sorted: [{ r, i (place in `rows`), cells }]. */
function arrange(view, cols, rows) {
  let items = rows.map((r, i) => ({ r, i, cells: cols.map((c) => c.cell(r)) }));
  const words = filterWords(view.filter);
  if (words.length) {
    // A column of controls (sort: false) is not part of a row's text.
    items = items.filter((it) => matchesWords(cols.map((c, k) => (c.sort === false ? '' : textOf(it.cells[k]))).join('\n'), words));
  }
  const k = view.sort ? cols.findIndex((c) => c.key === view.sort.key && c.sort !== false) : -1;
  return k < 0 ? items : sortRows(items, (it) => keyOf(cols[k], it.r, it.cells[k]), view.sort.dir);
}

function toggleSort(view, cols, rows, key) {
  const col = cols.find((c) => c.key === key);
  view.sort = nextSort(view.sort, key, firstDir(rows.map((r) => keyOf(col, r))));
}

function countText(view, shown, total) {
  return filterWords(view.filter).length
    ? t('table.countOf', { n: fmtInt(shown), of: fmtInt(total) })
    : t('table.count', { n: fmtInt(total) });
}

/**
 * Head and body of `table` (a caption stays): sort buttons with test ids
 * `${prefix}-sort-${key}`, rows with testid(row, index in rows, place shown)
 * and rowData(row) as data-* attributes. Returns the rows shown.
 */
function draw(table, { prefix, cols, rows, view, testid, rowData, onSort }) {
  // The header is rebuilt: a keyboard user's focus stays on their column.
  const active = document.activeElement;
  const focusKey = active && table.contains(active) && active.classList.contains('sort') ? active.dataset.key : null;
  const items = arrange(view, cols, rows);
  const head = h('tr', null, ...cols.map((c) => {
    const dir = view.sort && view.sort.key === c.key ? view.sort.dir : null;
    const th = h('th', { scope: 'col', class: c.cls, 'aria-sort': dir ? (dir === 'asc' ? 'ascending' : 'descending') : null });
    if (c.sort === false) {
      th.textContent = t(c.h);
      return th;
    }
    th.append(h('button', {
      type: 'button', class: 'sort', 'data-testid': prefix ? `${prefix}-sort-${c.key}` : null, 'data-key': c.key, 'data-dir': dir,
      title: t('table.sort'), onclick: () => onSort(c.key),
    }, t(c.h), h('span', { class: 'sort-mark', 'aria-hidden': 'true', text: dir === 'asc' ? ' ▲' : dir === 'desc' ? ' ▼' : '' })));
    return th;
  }));
  const body = h('tbody');
  if (!items.length) {
    body.append(h('tr', { class: 'empty-row' }, h('td', {
      class: 'empty', colspan: String(cols.length), text: rows.length ? t('table.noMatch') : t('empty'),
    })));
  }
  items.forEach((it, pos) => {
    const tr = h('tr', { 'data-testid': testid ? testid(it.r, it.i, pos) : null },
      ...cols.map((c, k) => h('td', { class: c.cls, title: c.title ? c.title(it.r) : null }, it.cells[k])));
    if (rowData) Object.assign(tr.dataset, rowData(it.r));
    body.append(tr);
  });
  for (const el of [...table.children]) if (el.tagName !== 'CAPTION') el.remove();
  table.append(h('thead', null, head), body);
  table.dataset.rows = String(items.length);
  if (focusKey) table.querySelector(`button.sort[data-key="${CSS.escape(focusKey)}"]`)?.focus();
  return items.map((it) => it.r);
}

function filterInput(testid, onInput) {
  const input = h('input', {
    type: 'search', class: 'table-filter', 'data-testid': testid, placeholder: t('table.filter'), 'aria-label': t('table.filter'),
  });
  input.addEventListener('input', () => onInput(input.value));
  return input;
}

/** A cell's plain value for CSV: `csv(row)` when the column has one, else the text shown. */
function plain(c, r) {
  return c.csv ? c.csv(r) : textOf(c.cell(r));
}

// The caption of each table renderTable drew: kept across redraws so that
// typing in its filter box keeps the focus while the page refreshes.
const tools = new WeakMap();

function captionOf(table, id) {
  let tl = tools.get(table);
  if (!tl) {
    tl = {};
    tl.input = filterInput(id ? `${id}-filter` : null, (v) => {
      viewOf(table, id).filter = v;
      tl.redraw();
    });
    tl.count = h('span', { class: 'panel-note table-count', 'data-testid': id ? `${id}-count` : null, 'aria-live': 'polite' });
    tl.csv = id ? h('button', {
      type: 'button', class: 'btn small table-csv-button', 'data-testid': `${id}-csv`, text: t('table.csv'), title: t('table.csv.help'),
      onclick: () => tl.download(),
    }) : null;
    tl.caption = h('caption', { class: 'table-caption' }, h('div', { class: 'table-tools' }, tl.input, tl.count, tl.csv));
    tools.set(table, tl);
  }
  // After showTableMessage (or a first draw) the caption is put back in front.
  if (table.firstElementChild !== tl.caption) table.prepend(tl.caption);
  return tl;
}

/**
 * Redraw a page's table: columns [{h: i18n key, cell: row → text | Node,
 * cls, title?: row → tooltip, sortValue?: row → number | text (what the
 * column sorts on when the text shown is formatted: bytes, times,
 * durations), csv?: row → plain value, sort: false (a column of controls:
 * neither sorted nor searched), key?}]. Every column sorts from its header
 * (test id `${id}-sort-${key}`, key: the title's last word, e.g. `lastSeen`
 * for 'col.lastSeen'); from FILTER_MIN rows a filter box (`${id}-filter`,
 * with the count `${id}-count`); a table with a test id gets a CSV button
 * (`${id}-csv`) that downloads its rows as shown. The sort and filter chosen
 * survive redraws. opts.rowData: row → { data-* attributes of its <tr> }.
 */
export function renderTable(table, cols, rows, testid, opts = {}) {
  const id = table.dataset.testid || null;
  const kc = keyed(cols);
  const list = rows || [];
  const view = viewOf(table, id);
  const tl = captionOf(table, id);
  tl.redraw = () => renderTable(table, cols, rows, testid, opts);
  const shown = draw(table, {
    prefix: id, cols: kc, rows: list, view, testid, rowData: opts.rowData,
    onSort: (key) => { toggleSort(view, kc, list, key); tl.redraw(); },
  });
  const withFilter = list.length >= FILTER_MIN || view.filter !== '' || document.activeElement === tl.input;
  tl.input.hidden = !withFilter;
  tl.count.hidden = !withFilter;
  if (tl.input.value !== view.filter) tl.input.value = view.filter;
  setText(tl.count, withFilter ? countText(view, shown.length, list.length) : '');
  tl.caption.hidden = !withFilter && !tl.csv;
  tl.download = () => {
    const out = kc.filter((c) => c.sort !== false);
    downloadCsv(csvName(id.replace(/-table$/, '')), out.map((c) => ({ title: t(c.h), value: (r) => plain(c, r) })), shown);
  };
}

export class DataTable {
  /**
   * opts: id (test ids: `${id}-table`, `${id}-filter`, `${id}-csv`,
   * `${id}-more`, `${id}-sort-${key}`, rows `${id}-row-${n}` in the order
   * shown); columns [{ key, h: i18n key, cell: row → text | Node, value:
   * row → number | text (sort and CSV), sortValue?, cls, sort: false to
   * keep a column unsorted }]; csv: () => file name parts; sort: { key,
   * dir: 'asc' | 'desc' } at first; more: async () => ({ rows, more }) for
   * the next page (none: no button).
   */
  constructor(opts) {
    this.o = opts;
    this.cols = keyed(opts.columns);
    this.rows = [];
    this.hasMore = false;
    this.busy = false;
    const id = opts.id;
    this.table = h('table', { class: 'data', 'data-testid': `${id}-table` });
    this.input = filterInput(`${id}-filter`, (v) => { this.view().filter = v; this.render(); });
    this.input.value = this.view().filter;
    this.count = h('span', { class: 'panel-note table-count', 'data-testid': `${id}-count`, 'aria-live': 'polite' });
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

  view() { return viewOf(this.table, `${this.o.id}-table`, this.o.sort || null); }

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

  /** The rows on screen: filtered, then sorted. */
  shown() { return arrange(this.view(), this.cols, this.rows).map((it) => it.r); }

  render() {
    const { id } = this.o;
    const view = this.view();
    const shown = draw(this.table, {
      prefix: id, cols: this.cols, rows: this.rows, view, testid: (r, i, pos) => `${id}-row-${pos + 1}`,
      onSort: (key) => { toggleSort(view, this.cols, this.rows, key); this.render(); },
    });
    setText(this.count, countText(view, shown.length, this.rows.length));
    this.moreButton.hidden = !(this.o.more && this.hasMore);
  }

  /** What the table shows, as CSV: the column titles and each cell's plain value. */
  downloadCsv() {
    const cols = this.cols.filter((c) => c.value);
    downloadCsv(csvName(...(this.o.csv ? this.o.csv() : [this.o.id])),
      cols.map((c) => ({ title: t(c.h), value: (r) => c.value(r) })), this.shown());
  }
}
