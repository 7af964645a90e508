// CSV downloads of what a table or a chart shows: RFC 4180 quoting, a
// byte-order mark so a spreadsheet opened by double-click reads the text as
// UTF-8 (Indonesian names, "—"), CRLF line ends, and a text cell that a
// spreadsheet would run as a formula defused with a leading apostrophe (a
// site name is whatever a client sent).

export const BOM = '\uFEFF';

/** One cell: numbers as they are, text quoted when needed. */
export function csvCell(v) {
  if (v == null) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  if (typeof v === 'boolean') return String(v);
  let s = String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A CSV document: header (column titles) and one line per row (arrays of values). */
export function toCsv(header, rows) {
  const line = (cells) => cells.map(csvCell).join(',');
  return BOM + [line(header), ...rows.map(line)].join('\r\n') + '\r\n';
}

/** "simpul-flows-dinkes-20261204-1830.csv" from parts, safe as a file name. */
export function csvName(...parts) {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  const stamp = `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`;
  const base = ['simpul', ...parts.filter(Boolean), stamp].join('-').replace(/[^A-Za-z0-9._-]+/g, '_');
  return `${base}.csv`;
}

/** Offer `text` as a download named `name` (a Blob URL, no server round trip). */
export function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Download a table-like set: columns [{ title, value: row → cell }], rows. */
export function downloadCsv(name, columns, rows) {
  download(name, toCsv(columns.map((c) => c.title), rows.map((r) => columns.map((c) => c.value(r)))));
}
