// How table rows sort and filter, apart from the DOM so that node can test it
// (tests/browser/sorting.test.js). A row sorts on the plain value its column
// gives (bytes, milliseconds, a count), never on the text shown: "1,2 MB"
// must come after "900 kB", "2 mnt" after "45 dtk".

const collator = new Intl.Collator('id', { numeric: true, sensitivity: 'base' });

/** Nothing to sort on: such rows go last whichever the direction. */
export function isBlank(v) {
  return v == null || v === '' || v === '—' || (typeof v === 'number' && Number.isNaN(v));
}

/** A value as it compares: dates and booleans as numbers, text trimmed. */
export function sortKey(v) {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') return v.trim();
  return v;
}

/**
 * Ascending order of two keys: numbers by value, text in Indonesian order
 * with digit runs as numbers ("node-2" before "node-10"), numbers before
 * text in a mixed column, blanks after everything.
 */
export function compareKeys(a, b) {
  const x = sortKey(a);
  const y = sortKey(b);
  const bx = isBlank(x);
  const by = isBlank(y);
  if (bx || by) return bx === by ? 0 : bx ? 1 : -1;
  const nx = typeof x === 'number';
  const ny = typeof y === 'number';
  if (nx && ny) return x === y ? 0 : x < y ? -1 : 1;
  if (nx !== ny) return nx ? -1 : 1;
  return collator.compare(String(x), String(y));
}

/**
 * The rows ordered by keyOf(row) ('asc' | 'desc'); equal keys keep their
 * order (the page's own, e.g. unacknowledged first), blanks stay last.
 */
export function sortRows(rows, keyOf, dir) {
  const sign = dir === 'desc' ? -1 : 1;
  return rows.map((r, i) => [r, sortKey(keyOf(r)), i])
    .sort(([, a, i], [, b, j]) => {
      if (isBlank(a) || isBlank(b)) return compareKeys(a, b) || i - j;
      return sign * compareKeys(a, b) || i - j;
    })
    .map(([r]) => r);
}

/**
 * A value's place in a ranked list as a sort key, the list's first highest
 * (severities worst first: sorting largest first starts with the worst);
 * not in the list: blank.
 */
export function rankOf(list, v) {
  const i = list.indexOf(v);
  return i < 0 ? null : list.length - i;
}

/** The words of a filter, lower case ("" → none). */
export function filterWords(query) {
  return String(query || '').toLocaleLowerCase().split(/\s+/).filter(Boolean);
}

/** Whether a row's text holds every word (any case, anywhere). */
export function matchesWords(text, words) {
  if (!words.length) return true;
  const s = String(text).toLocaleLowerCase();
  return words.every((w) => s.includes(w));
}

/** Numbers (and times) start with the largest, text from A. */
export function firstDir(keys) {
  const sample = keys.map(sortKey).find((v) => !isBlank(v));
  return typeof sample === 'number' ? 'desc' : 'asc';
}

/** The sort after a click on `key`: the same column reverses, another starts at `first`. */
export function nextSort(cur, key, first) {
  if (cur && cur.key === key) return { key, dir: cur.dir === 'asc' ? 'desc' : 'asc' };
  return { key, dir: first };
}
