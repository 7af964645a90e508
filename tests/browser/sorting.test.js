// Every table sorts by a click on its header and filters with the box above
// it, and keeps both while the page redraws it. First how rows compare
// (dashboard/sorting.js, in node), then the real dashboard against the demo:
// the report's top sites by bytes ("20,1 MB" after "470,9 KB"), the blocked
// attempts by count while #/blocked refreshes every 5 s, the API tokens by
// expiry date (dates whose text sorts otherwise), and a phone.
//   cargo build -p simpul-demo && node --test tests/browser/sorting.test.js
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  SHOTS, apiLogin, apiFetch, getJSON, launchBrowser, loginPage, startCollector, waitFor, pageKit,
} from './helpers.js';
import {
  compareKeys, sortRows, isBlank, filterWords, matchesWords, firstDir, nextSort, rankOf,
} from '../../dashboard/sorting.js';

describe('sorting.js: what rows sort and filter on', () => {
  it('bytes, times and durations sort by value, whatever their text', () => {
    // What the tables show for 1.2 MB, 900 kB and 5 kB; sorted by their text they would be 1,2 < 5 < 900.
    const rows = [{ b: 1_200_000, t: '1,2 MB' }, { b: 900_000, t: '900 KB' }, { b: 5_000, t: '5 KB' }];
    assert.deepEqual(sortRows(rows, (r) => r.b, 'asc').map((r) => r.t), ['5 KB', '900 KB', '1,2 MB']);
    assert.deepEqual(sortRows(rows, (r) => r.b, 'desc').map((r) => r.t), ['1,2 MB', '900 KB', '5 KB']);
    assert.deepEqual(sortRows(rows, (r) => r.t, 'asc').map((r) => r.t), ['1,2 MB', '5 KB', '900 KB'], 'the text alone sorts wrong');
    // Times: a Date compares as its timestamp; "45 dtk" (45 000 ms) before "2 mnt" (120 000 ms).
    assert.ok(compareKeys(new Date(Date.UTC(2026, 11, 1)), new Date(Date.UTC(2026, 10, 30))) > 0);
    assert.ok(compareKeys(45_000, 120_000) < 0);
    assert.ok(compareKeys(Infinity, Date.now()) > 0, 'never expiring: after every date');
  });

  it('blanks go last in both directions; equal keys keep the page\'s order', () => {
    const rows = [{ id: 'a', v: null }, { id: 'b', v: 3 }, { id: 'c', v: '—' }, { id: 'd', v: 1 }, { id: 'e', v: 3 }, { id: 'f', v: NaN }];
    assert.deepEqual(sortRows(rows, (r) => r.v, 'asc').map((r) => r.id), ['d', 'b', 'e', 'a', 'c', 'f']);
    assert.deepEqual(sortRows(rows, (r) => r.v, 'desc').map((r) => r.id), ['b', 'e', 'd', 'a', 'c', 'f']);
    for (const v of [null, undefined, '', '—', NaN, '  ']) assert.ok(isBlank(typeof v === 'string' ? v.trim() : v), JSON.stringify(v));
    assert.ok(!isBlank(0) && !isBlank('0'), 'zero is a value');
  });

  it('text in Indonesian order with digit runs as numbers, any case; numbers before text in a mixed column', () => {
    const names = ['node-10', 'Node-2', 'node-1', 'bappeda-02', 'Dinkes'];
    assert.deepEqual(sortRows(names, (s) => s, 'asc'), ['bappeda-02', 'Dinkes', 'node-1', 'Node-2', 'node-10']);
    assert.deepEqual(sortRows(['10.0.0.12', '10.0.0.9', '10.0.1.1'], (s) => s, 'asc'), ['10.0.0.9', '10.0.0.12', '10.0.1.1']);
    assert.deepEqual(sortRows(['v2', 7, 'abc', 3], (s) => s, 'asc'), [3, 7, 'abc', 'v2']);
    assert.equal(compareKeys(true, false), 1);
  });

  it('a ranked list (severities) sorts worst first, largest first', () => {
    const sev = ['critical', 'major', 'minor', 'info'];
    const rows = ['minor', 'critical', 'bogus', 'info', 'major'];
    assert.deepEqual(sortRows(rows, (s) => rankOf(sev, s), firstDir(rows.map((s) => rankOf(sev, s)))), ['critical', 'major', 'minor', 'info', 'bogus']);
  });

  it('a filter keeps rows holding every word, in any case', () => {
    assert.deepEqual(filterWords('  Dinkes   GIZI '), ['dinkes', 'gizi']);
    assert.deepEqual(filterWords(''), []);
    assert.ok(matchesWords('dinkes-01\nDinas Kesehatan · gizi', filterWords('gizi DINKES')));
    assert.ok(!matchesWords('dinkes-01\nDinas Kesehatan', filterWords('dinkes gizi')), 'every word, not any');
    assert.ok(matchesWords('anything', []), 'no words: every row');
  });

  it('numbers start with the largest, text from A; a second click reverses', () => {
    assert.equal(firstDir([null, '—', 12, 3]), 'desc');
    assert.equal(firstDir(['b', 'a']), 'asc');
    assert.equal(firstDir([new Date()]), 'desc');
    assert.deepEqual(nextSort(null, 'bytes', 'desc'), { key: 'bytes', dir: 'desc' });
    assert.deepEqual(nextSort({ key: 'bytes', dir: 'desc' }, 'bytes', 'desc'), { key: 'bytes', dir: 'asc' });
    assert.deepEqual(nextSort({ key: 'bytes', dir: 'asc' }, 'bytes', 'desc'), { key: 'bytes', dir: 'desc' });
    assert.deepEqual(nextSort({ key: 'bytes', dir: 'asc' }, 'site', 'asc'), { key: 'site', dir: 'asc' });
  });
});

/** "2026-12": this month at UTC+7 (the demo's NOC zone). */
const thisMonth = () => new Date(Date.now() + 7 * 3600 * 1000).toISOString().slice(0, 7);

/** "1.234" (Indonesian) → 1234. */
const parseCount = (s) => Number(s.trim().replace(/\./g, ''));
const UNITS = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };
/** "20,1 MB" (Indonesian) → 20 100 000. */
function parseBytes(s) {
  const m = s.trim().match(/^([\d.]+(?:,\d+)?) (B|KB|MB|GB|TB)$/);
  assert.ok(m, `bytes as the page shows them: ${JSON.stringify(s)}`);
  return Number(m[1].replace(/\./g, '').replace(',', '.')) * UNITS[m[2]];
}
const SPAN = { hari: 86400, jam: 3600, mnt: 60, dtk: 1 };
/** "3 mnt 20 dtk · berlangsung" → 200 (seconds). */
function parseSpan(s) {
  const parts = [...s.matchAll(/(\d+) (hari|jam|mnt|dtk)/g)];
  assert.ok(parts.length, `a duration as the page shows it: ${JSON.stringify(s)}`);
  return parts.reduce((sum, m) => sum + Number(m[1]) * SPAN[m[2]], 0);
}
const textCollator = new Intl.Collator('id', { numeric: true, sensitivity: 'base' });
const ascending = (xs) => xs.every((x, i) => i === 0 || xs[i - 1] <= x);
const descending = (xs) => xs.every((x, i) => i === 0 || xs[i - 1] >= x);

describe('Simpul NOC dashboard: tables sort and filter (collector demo)', { timeout: 900000 }, () => {
  let collector;
  let browser;
  let creds;
  let api;

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    collector = await startCollector();
    creds = collector.credentials();
    api = await apiLogin(collector.url, creds.admin);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
  });

  const kit = pageKit('sorting', () => ({ browser, collector }));

  /** What a table shows in one go: the header's sort, the rows' testids and cells, the filter and count. */
  const read = (page, id) => page.evaluate((tid) => {
    const table = document.querySelector(`[data-testid="${tid}"]`);
    const sorted = table.querySelector('thead th[aria-sort]');
    return {
      sortKey: sorted?.querySelector('button.sort')?.dataset.key ?? null,
      ariaSort: sorted?.getAttribute('aria-sort') ?? null,
      mark: sorted?.querySelector('.sort-mark')?.textContent.trim() ?? null,
      heads: [...table.querySelectorAll('thead th')].map((th) => th.querySelector('button.sort')?.dataset.key ?? null),
      rows: [...table.querySelectorAll('tbody > tr:not(.empty-row)')].map((tr) => ({
        id: tr.dataset.testid ?? null, cells: [...tr.children].map((td) => td.textContent),
      })),
      filter: table.querySelector('caption .table-filter')?.value ?? null,
      filterShown: !!table.querySelector('caption .table-filter:not([hidden])'),
      count: table.querySelector('caption .table-count')?.textContent ?? null,
      focused: document.activeElement?.dataset?.testid ?? null,
    };
  }, id);

  /** Mark the table's body; resolves once the page has drawn a new one (its refresh). */
  async function redrawn(page, id, message) {
    await page.evaluate((tid) => { document.querySelector(`[data-testid="${tid}"] tbody`).dataset.old = '1'; }, id);
    return waitFor(() => page.evaluate((tid) => !document.querySelector(`[data-testid="${tid}"] tbody`).dataset.old, id),
      { timeout: 60000, message });
  }

  const column = (shown, key) => shown.heads.indexOf(key);
  const countRe = /^(\d+) dari (\d+) baris$/;

  kit.step('#/reports: the top sites sort by their bytes, not by the text "20,1 MB"; a filter; both kept when the report is drawn again', async () => {
    const { page, watch } = await kit.newPage();
    await loginPage(page, collector.url, creds.operator, { hash: '#/reports' });
    const month = page.getByTestId('report-month');
    await waitFor(async () => /^\d{4}-\d{2}$/.test(await month.inputValue()), { message: 'the default month' });
    await month.fill(thisMonth());
    // The demo's sites reach the month's sums within seconds: wait for a list
    // whose text order is not its order by bytes, or the test proves nothing.
    let shown;
    await waitFor(async () => {
      await month.dispatchEvent('change');
      await waitFor(async () => (await page.getByTestId('report-status').getAttribute('data-state')) === 'ok', { message: 'the report loaded' });
      shown = await read(page, 'report-sites');
      const k = column(shown, 'bytes');
      if (shown.rows.length < 6) return false;
      const texts = shown.rows.map((r) => r.cells[k]);
      const byText = [...texts].sort(textCollator.compare);
      const byValue = [...texts].sort((a, b) => parseBytes(a) - parseBytes(b));
      return byText.join('|') !== byValue.join('|');
    }, { timeout: 120000, interval: 3000, message: 'six or more top sites whose bytes sort otherwise as text' });
    const k = column(shown, 'bytes');
    assert.ok(k > 0, `a bytes column: ${shown.heads}`);
    assert.ok(shown.filterShown, 'a filter box over a table of six or more rows');
    assert.equal(shown.count, `${shown.rows.length} baris`);

    await page.getByTestId('report-sites-sort-bytes').click();
    shown = await read(page, 'report-sites');
    assert.equal(shown.sortKey, 'bytes');
    assert.equal(shown.ariaSort, 'descending', 'numbers start with the largest');
    assert.equal(shown.mark, '▼');
    let bytes = shown.rows.map((r) => parseBytes(r.cells[k]));
    assert.ok(descending(bytes), `most bytes first: ${shown.rows.map((r) => r.cells[k])}`);
    await page.getByTestId('report-sites-sort-bytes').click();
    shown = await read(page, 'report-sites');
    assert.equal(shown.ariaSort, 'ascending');
    assert.equal(shown.mark, '▲');
    bytes = shown.rows.map((r) => parseBytes(r.cells[k]));
    assert.ok(ascending(bytes), `fewest bytes first: ${shown.rows.map((r) => r.cells[k])}`);

    // Filter on a piece of the sites' names that some hold and some not, typed in capitals.
    const sites = shown.rows.map((r) => r.cells[0].toLowerCase());
    const word = [...new Set(sites.flatMap((s) => s.split('.')))].find((w) => {
      const n = sites.filter((s) => s.includes(w)).length;
      return w.length >= 3 && /[a-z]/.test(w) && n > 0 && n < sites.length;
    });
    assert.ok(word, `a word that some sites hold: ${sites}`);
    const expect = sites.filter((s) => s.includes(word)).length;
    await page.getByTestId('report-sites-filter').fill(word.toUpperCase());
    shown = await read(page, 'report-sites');
    assert.equal(shown.rows.length, expect, `rows holding "${word}"`);
    assert.ok(shown.rows.every((r) => r.cells[0].toLowerCase().includes(word)));
    assert.equal(shown.count, `${expect} dari ${sites.length} baris`);
    assert.ok(ascending(shown.rows.map((r) => parseBytes(r.cells[k]))), 'still sorted');

    // The page draws the report again (the same month asked again): the choice stays.
    const done = redrawn(page, 'report-sites', 'the report drawn again');
    await month.dispatchEvent('change');
    await done;
    shown = await read(page, 'report-sites');
    assert.equal(shown.sortKey, 'bytes');
    assert.equal(shown.ariaSort, 'ascending');
    assert.equal(shown.filter, word.toUpperCase(), 'the filter box keeps the words');
    // The demo's traffic goes on, so the month's top sites may change between the draws:
    // what is shown is filtered by the same words, and the count says so.
    assert.ok(shown.rows.every((r) => r.cells[0].toLowerCase().includes(word)), 'still filtered');
    assert.match(shown.count ?? '', new RegExp(`^${shown.rows.length} dari \\d+ baris$`), 'the count of the filtered rows');
    assert.ok(ascending(shown.rows.map((r) => parseBytes(r.cells[k]))), 'still sorted by bytes');
    assert.match(shown.count, countRe);
    kit.assertClean(watch, 'reports');
  });

  kit.step('#/blocked: the newest attempts sort by count and filter, and keep both while the page refreshes every 5 s; the keyboard sorts too', async () => {
    const { page, watch } = await kit.newPage();
    await loginPage(page, collector.url, creds.operator, { hash: '#/blocked?range=24h' });
    const id = 'blocked-recent-table';
    let shown;
    await waitFor(async () => {
      shown = await read(page, id);
      return shown.rows.length >= 6 && new Set(shown.rows.map((r) => r.cells[1])).size > 1;
    }, { timeout: 120000, message: 'six or more blocked attempts from more than one place' });
    const k = column(shown, 'attempts');
    assert.ok(k > 0, `an attempts column: ${shown.heads}`);
    await page.getByTestId(`${id}-sort-attempts`).click();
    shown = await read(page, id);
    assert.equal(shown.ariaSort, 'descending');
    assert.ok(descending(shown.rows.map((r) => parseCount(r.cells[k]))), `most attempts first: ${shown.rows.map((r) => r.cells[k])}`);
    await page.getByTestId(`${id}-sort-attempts`).click();
    shown = await read(page, id);
    assert.equal(shown.ariaSort, 'ascending');
    assert.ok(ascending(shown.rows.map((r) => parseCount(r.cells[k]))), `fewest attempts first: ${shown.rows.map((r) => r.cells[k])}`);

    // Filter on where the first row came from (its agency · unit column): not every row.
    const where = shown.rows[0].cells[1];
    const word = where.split(/\s+/).find((w) => w.length >= 3 && shown.rows.some((r) => !r.cells.join(' ').toLowerCase().includes(w.toLowerCase())));
    assert.ok(word, `a word of "${where}" that not every row holds`);
    const input = page.getByTestId(`${id}-filter`);
    await input.fill(word);
    shown = await read(page, id);
    const check = (s, what) => {
      assert.ok(s.rows.length > 0 && s.rows.every((r) => r.cells.join(' ').toLowerCase().includes(word.toLowerCase())), `${what}: only rows holding "${word}"`);
      const m = s.count.match(countRe);
      assert.ok(m, `${what}: the count says "n dari m": ${s.count}`);
      assert.equal(Number(m[1]), s.rows.length, `${what}: n is the rows shown`);
      assert.ok(Number(m[2]) > Number(m[1]), `${what}: m counts every row`);
      assert.equal(s.ariaSort, 'ascending', `${what}: sorted as chosen`);
      assert.equal(s.sortKey, 'attempts');
      assert.ok(ascending(s.rows.map((r) => parseCount(r.cells[k]))), `${what}: by attempts`);
    };
    check(shown, 'filtered');
    assert.equal(shown.focused, `${id}-filter`);

    // The page's refresh (every 5 s) draws new rows: sort, filter and the focus in the box stay.
    await redrawn(page, id, 'the 5 s refresh');
    shown = await read(page, id);
    check(shown, 'after a refresh');
    assert.equal(shown.filter, word);
    assert.equal(shown.focused, `${id}-filter`, 'typing goes on in the filter box');
    await input.pressSequentially('zzz-tidak-ada');
    shown = await read(page, id);
    assert.equal(shown.rows.length, 0);
    assert.match(await page.locator(`[data-testid="${id}"] tbody td.empty`).textContent(), /Tidak ada baris yang cocok/);
    await input.fill('');
    shown = await read(page, id);
    assert.match(shown.count, /^\d+ baris$/, 'no filter: the count of every row');

    // The keyboard: Tab reaches a header's button, Enter sorts; the focus stays on it when the page refreshes.
    const time = page.getByTestId(`${id}-sort-time`);
    await time.focus();
    await page.keyboard.press('Enter');
    shown = await read(page, id);
    assert.equal(shown.sortKey, 'time');
    assert.equal(shown.ariaSort, 'descending', 'times: the newest first');
    await redrawn(page, id, 'a refresh with the focus on a header');
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.key), 'time');
    await page.keyboard.press('Enter');
    assert.equal((await read(page, id)).ariaSort, 'ascending');
    kit.assertClean(watch, 'blocked');
  });

  kit.step('#/incidents: a short table sorts by duration ("45 dtk" before "3 mnt …"), has no filter box, and keeps the sort while the page refreshes', async () => {
    const { page, watch } = await kit.newPage();
    await loginPage(page, collector.url, creds.operator, { hash: '#/incidents' });
    await page.getByTestId('inc-filter-all').click();
    const id = 'incidents-table';
    // The demo's switched-off node is down for minutes; its rural link's cut of 45 s has ended.
    let shown;
    await waitFor(async () => {
      shown = await read(page, id);
      const k = column(shown, 'duration');
      if (k < 0 || shown.rows.length < 2) return false;
      const texts = shown.rows.map((r) => r.cells[k]);
      return [...texts].sort(textCollator.compare).join('|') !== [...texts].sort((a, b) => parseSpan(a) - parseSpan(b)).join('|');
    }, { timeout: 180000, interval: 1000, message: 'incidents whose durations sort otherwise as text' });
    const k = column(shown, 'duration');
    assert.ok(shown.rows.length < 6 && !shown.filterShown, `no filter box over ${shown.rows.length} rows`);
    const spans = (s) => s.rows.map((r) => parseSpan(r.cells[k]));
    await page.getByTestId(`${id}-sort-duration`).click();
    shown = await read(page, id);
    assert.equal(shown.ariaSort, 'descending');
    assert.ok(descending(spans(shown)), `longest first: ${shown.rows.map((r) => r.cells[k])}`);
    await page.getByTestId(`${id}-sort-duration`).click();
    shown = await read(page, id);
    assert.equal(shown.ariaSort, 'ascending');
    assert.ok(ascending(spans(shown)), `shortest first: ${shown.rows.map((r) => r.cells[k])}`);
    // The rows keep what the page marks on them (state, node) wherever they are sorted to.
    const marks = await page.evaluate((tid) => [...document.querySelectorAll(`[data-testid="${tid}"] tbody tr[data-testid]`)]
      .map((tr) => [tr.dataset.node, tr.children[2].textContent]), id);
    assert.ok(marks.every(([node, cell]) => node && cell.startsWith(node)), `data-node follows its row: ${JSON.stringify(marks)}`);
    await redrawn(page, id, 'the 5 s refresh');
    shown = await read(page, id);
    assert.equal(shown.sortKey, 'duration');
    assert.equal(shown.ariaSort, 'ascending');
    assert.ok(ascending(spans(shown)), `still shortest first: ${shown.rows.map((r) => r.cells[k])}`);
    kit.assertClean(watch, 'incidents');
  });

  kit.step('#/admin/tokens: tokens sort by their expiry date (not the text "7 Des …"), filter, and keep both when the list is loaded again', async () => {
    // Expiry dates over a year: some day-of-month order differs from the dates' order.
    const made = [];
    for (const days of [1, 10, 20, 30, 45, 60, 100, 400, null]) {
      const res = await apiFetch(collector.url, api, 'POST', 'api/v1/tokens',
        { name: `urut-${days ?? 'selamanya'}`, role: 'viewer', ...(days ? { expires_days: days } : {}) });
      const body = await res.text();
      assert.equal(res.status, 201, body);
      made.push(JSON.parse(body));
    }
    const expiry = async () => new Map((await getJSON(collector.url, 'api/v1/tokens', api)).map((tk) => [`token-row-${tk.id}`, tk.expires_ms ?? Infinity]));
    let expires = await expiry();
    const { page, watch } = await kit.newPage();
    await loginPage(page, collector.url, creds.admin, { hash: '#/admin/tokens' });
    const id = 'tokens-table';
    await waitFor(async () => (await read(page, id)).rows.length === expires.size, { message: 'every token listed' });
    let shown = await read(page, id);
    const k = column(shown, 'expires');
    assert.ok(k > 0, `an expiry column: ${shown.heads}`);
    assert.equal(column(shown, 'actions'), -1, 'the actions column does not sort');
    const dated = shown.rows.filter((r) => Number.isFinite(expires.get(r.id))).map((r) => ({ text: r.cells[k], ms: expires.get(r.id) }));
    assert.notDeepEqual([...dated].sort((a, b) => textCollator.compare(a.text, b.text)).map((d) => d.text),
      [...dated].sort((a, b) => a.ms - b.ms).map((d) => d.text), `the dates' text sorts otherwise than the dates: ${dated.map((d) => d.text)}`);

    const values = (s) => s.rows.map((r) => expires.get(r.id));
    await page.getByTestId(`${id}-sort-expires`).click();
    shown = await read(page, id);
    assert.equal(shown.ariaSort, 'descending');
    assert.ok(descending(values(shown)), `latest expiry first (never first of all): ${shown.rows.map((r) => r.cells[k])}`);
    assert.equal(shown.rows[0].cells[k], 'tanpa batas', 'a token that never expires before every date');
    await page.getByTestId(`${id}-sort-expires`).click();
    shown = await read(page, id);
    assert.equal(shown.ariaSort, 'ascending');
    assert.ok(ascending(values(shown)), `soonest expiry first: ${shown.rows.map((r) => r.cells[k])}`);

    await page.getByTestId(`${id}-filter`).fill('URUT');
    shown = await read(page, id);
    assert.equal(shown.rows.length, made.length);
    assert.equal(shown.count, `${made.length} dari ${expires.size} baris`);

    // A token made from the page: the list is loaded and drawn again, sorted and filtered as chosen.
    await page.getByTestId('token-name').fill('urut-baru');
    await page.getByTestId('token-expires').fill('5');
    await page.getByTestId('token-submit').click();
    await waitFor(async () => (await read(page, id)).rows.length === made.length + 1, { message: 'the new token in the filtered list' });
    expires = await expiry();
    shown = await read(page, id);
    assert.equal(shown.sortKey, 'expires');
    assert.equal(shown.ariaSort, 'ascending');
    assert.equal(shown.filter, 'URUT');
    assert.equal(shown.count, `${made.length + 1} dari ${expires.size} baris`);
    assert.ok(ascending(values(shown)), `the new token in its place by date: ${shown.rows.map((r) => r.cells[k])}`);
    assert.ok(shown.rows.every((r) => r.cells[0].startsWith('urut-')));
    await page.screenshot({ path: path.join(SHOTS, 'sorting-tokens.png'), fullPage: true });
    kit.assertClean(watch, 'tokens');
  });

  kit.step('a phone (390×844): the filter box and sort buttons fit, nothing scrolls sideways', async () => {
    const { page, watch } = await kit.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    await loginPage(page, collector.url, creds.admin, { hash: '#/admin/audit' });
    await waitFor(async () => (await read(page, 'audit-table')).filterShown, { message: 'the audit log with its filter box' });
    for (const hash of ['#/admin/audit', '#/admin/tokens', '#/admin/sessions', '#/blocked?range=24h', '#/nodes']) {
      await page.goto(`${collector.url}${hash}`);
      await page.locator('table.data thead th').first().waitFor();
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `${hash}: page width ${width} px on a 390 px screen`);
      const box = await page.locator('table.data caption .table-filter:not([hidden])').first().boundingBox().catch(() => null);
      if (box) assert.ok(box.x >= 0 && box.x + box.width <= 390, `${hash}: the filter box on screen (${JSON.stringify(box)})`);
    }
    await page.screenshot({ path: path.join(SHOTS, 'sorting-phone.png'), fullPage: true });
    kit.assertClean(watch, 'phone');
  });
});
