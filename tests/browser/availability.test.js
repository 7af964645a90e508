// Browser tests of #/availability against the real collector in demo mode:
// the time-range picker of the other pages (7 d into the address, asked of
// the API, restored by a reload), the NOC's calendar day and month, and the
// CSV download — the server's export of the chosen range, read back against
// the API's JSON for the same range. Also #/blocked's CSV button: once the
// table holds as many attempts as the page asks for, it downloads the
// server's export of every attempt of the range.
//   cargo build -p simpul-demo && node --test tests/browser/availability.test.js
import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import {
  SHOTS, apiLogin, getJSON, launchBrowser, loginPage, pageKit, startCollector, waitFor, parseCsv,
} from './helpers.js';

/** What a JSON value reads as in the server's CSV. */
const cellOf = (v) => (v == null ? '' : typeof v === 'string' && /^[=+\-@]/.test(v) ? `'${v}` : String(v));
const nowSecs = () => Math.floor(Date.now() / 1000);
const hashQuery = (page) => new URLSearchParams(new URL(page.url()).hash.split('?')[1] || '');
const isAvailability = (r) => /\/api\/v1\/availability\?/.test(r.url()) && !/format=csv/.test(r.url());
const query = (r) => new URL(r.url()).searchParams;
const WIB = 7 * 3600; // the demo's NOC zone (notify.utc_offset default +07:00)

describe('Simpul NOC dashboard: availability over a range, and CSV from the server (collector demo)', { timeout: 900000 }, () => {
  let collector;
  let browser;
  let creds;
  let api;
  const get = (p) => getJSON(collector.url, p, api);
  const kit = pageKit('availability', () => ({ browser, collector }));

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

  kit.step('7 d on #/availability: in the address, asked of the API, the same after a reload; the CSV is the server\'s for that range', async () => {
    const { page, watch } = await kit.newPage();
    await loginPage(page, collector.url, creds.operator, { hash: '#/availability' });
    await page.getByTestId('availability-page').waitFor();
    const nodes = (await get('api/v1/nodes')).filter((n) => n.status !== 'revoked');
    const rows = page.locator('[data-testid="availability-table"] tbody tr[data-testid]');
    await waitFor(async () => (await rows.count()) === nodes.length, { message: 'a row per node (24 h by default)' });
    assert.equal(await page.getByTestId('av-range-24h').getAttribute('aria-pressed'), 'true');
    assert.equal(await page.getByTestId('availability-table-sort-unmonitored_ms').count(), 1, 'an unmonitored column');

    // (A 24 h refresh every 30 s may go out meanwhile: the 7 days are waited for.)
    const asked = page.waitForRequest((r) => isAvailability(r) && Number(query(r).get('to')) - Number(query(r).get('from')) === 7 * 86400);
    await page.getByTestId('av-range-7d').click();
    const q = query(await asked);
    const [from, to] = [Number(q.get('from')), Number(q.get('to'))];
    assert.equal(to - from, 7 * 86400, `7 days asked: ${q}`);
    assert.ok(Math.abs(to - nowSecs()) < 120, `up to now: ${q}`);
    assert.equal(new URL(page.url()).hash, '#/availability?range=7d');
    assert.equal(await page.getByTestId('av-range-7d').getAttribute('aria-pressed'), 'true');

    // The table shows the server's figures for that range.
    const json = await get(`api/v1/availability?from=${from}&to=${to}`);
    await waitFor(async () => {
      const shown = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('[data-testid="availability-table"] tbody tr[data-node]')]
        .map((tr) => [tr.dataset.node, tr.dataset.pct])));
      return json.every((a) => shown[a.node_id] === String(a.availability_pct));
    }, { message: 'each row\'s availability is the API\'s for the 7 days' });
    // A node of the demo connected minutes ago: nearly all of 7 days before its enrollment is unmonitored, not up.
    const young = json.find((a) => a.unmonitored_ms > 6 * 86400e3);
    assert.ok(young, `a node enrolled within the range: ${JSON.stringify(json)}`);
    const youngRow = page.getByTestId(`availability-row-${young.node_id}`);
    assert.match(await youngRow.locator('td').nth(5).textContent(), /^6 hari \d+ jam$/, 'its unmonitored time shown');

    // A reload shows 7 days again and asks the API for them.
    const again = page.waitForRequest(isAvailability);
    await page.reload();
    const q2 = query(await again);
    assert.equal(Number(q2.get('to')) - Number(q2.get('from')), 7 * 86400, `7 days asked after the reload: ${q2}`);
    assert.equal(hashQuery(page).get('range'), '7d');
    await page.getByTestId('availability-page').waitFor();
    assert.equal(await page.getByTestId('av-range-7d').getAttribute('aria-pressed'), 'true', '7 d pressed after the reload');
    await waitFor(async () => (await rows.count()) === nodes.length, { message: 'rows after the reload' });

    // The CSV: the server's, for the chosen range, the same as its JSON.
    const btn = page.getByTestId('availability-table-csv');
    assert.equal(await btn.getAttribute('data-source'), 'server');
    const csvAsked = page.waitForRequest((r) => /\/api\/v1\/availability\?.*format=csv/.test(r.url()));
    const [download] = await Promise.all([page.waitForEvent('download'), btn.click()]);
    const cq = query(await csvAsked);
    const [cf, ct] = [Number(cq.get('from')), Number(cq.get('to'))];
    assert.equal(ct - cf, 7 * 86400, `the CSV is of 7 days: ${cq}`);
    const stamp = (s) => new Date(s * 1000).toISOString().slice(0, 16).replace(/[-:]/g, '');
    assert.equal(download.suggestedFilename(), `simpul-availability-${stamp(cf)}Z-${stamp(ct)}Z.csv`);
    const csv = parseCsv(readFileSync(await download.path(), 'utf8'));
    const same = await get(`api/v1/availability?from=${cf}&to=${ct}`);
    assert.deepEqual(csv[0], ['node_id', 'agency', 'from_ms', 'to_ms', 'down_ms', 'unreachable_ms', 'maintenance_ms',
      'unmonitored_ms', 'availability_pct', 'incidents', 'never_seen']);
    assert.equal(csv.length - 1, same.length, 'a line per node');
    // Numbers compared as numbers: the server writes 100.0 where JSON.parse reads 100.
    const typed = (line, j) => line.map((v, i) => (typeof same[j]?.[csv[0][i]] === 'number' ? Number(v) : v));
    assert.deepEqual(csv.slice(1).map(typed), same.map((a) => csv[0].map((k) => (typeof a[k] === 'number' ? a[k] : cellOf(a[k])))),
      'the CSV holds the JSON of the range');
    assert.ok(csv.slice(1).every((r) => Number(r[3]) - Number(r[2]) === 7 * 86400e3), 'every row covers the 7 days');
    kit.assertClean(watch, '#/availability 7 d');
  });

  kit.step('today and this month are the NOC\'s calendar day and month (WIB), kept in the address', async () => {
    const { page, watch } = await kit.newPage();
    await loginPage(page, collector.url, creds.operator, { hash: '#/availability' });
    await page.getByTestId('availability-page').waitFor();
    const wib = new Date((nowSecs() + WIB) * 1000);
    const midnight = Date.UTC(wib.getUTCFullYear(), wib.getUTCMonth(), wib.getUTCDate()) / 1000 - WIB;
    const first = Date.UTC(wib.getUTCFullYear(), wib.getUTCMonth(), 1) / 1000 - WIB;
    const nextFirst = Date.UTC(wib.getUTCFullYear(), wib.getUTCMonth() + 1, 1) / 1000 - WIB;
    // The first answer (24 h) is in before a calendar range is asked for.
    await waitFor(async () => (await page.locator('[data-testid="availability-table"] tbody tr[data-node]').count()) > 0, { message: 'rows of 24 h' });
    const isCalendar = (r) => isAvailability(r) && Math.abs(Number(query(r).get('to')) - nowSecs()) > 5;

    let asked = page.waitForRequest(isCalendar);
    await page.getByTestId('av-today').click();
    let q = query(await asked);
    assert.deepEqual([Number(q.get('from')), Number(q.get('to'))], [midnight, midnight + 86400], `today in WIB: ${q}`);
    assert.deepEqual([hashQuery(page).get('from'), hashQuery(page).get('to')], [String(midnight), String(midnight + 86400)]);
    assert.equal(await page.getByTestId('av-today').getAttribute('aria-pressed'), 'true');

    asked = page.waitForRequest(isCalendar);
    await page.getByTestId('av-month').click();
    q = query(await asked);
    assert.deepEqual([Number(q.get('from')), Number(q.get('to'))], [first, nextFirst], `this month in WIB: ${q}`);
    asked = page.waitForRequest(isCalendar);
    await page.reload();
    q = query(await asked);
    assert.deepEqual([Number(q.get('from')), Number(q.get('to'))], [first, nextFirst], `this month after the reload: ${q}`);
    await page.getByTestId('availability-page').waitFor();
    assert.equal(await page.getByTestId('av-month').getAttribute('aria-pressed'), 'true');
    assert.equal(await page.getByTestId('av-range-custom').getAttribute('aria-pressed'), 'true', 'a custom range of the picker');
    kit.assertClean(watch, 'calendar ranges');
  });

  kit.step('#/blocked: a table as full as the page asks for downloads every attempt of the range from the server', async () => {
    const { page, watch } = await kit.newPage();
    await loginPage(page, collector.url, creds.operator, { hash: '#/blocked?range=24h' });
    await page.getByTestId('blocked-page').waitFor();
    const table = page.getByTestId('blocked-recent-table');
    await waitFor(async () => Number(await table.getAttribute('data-rows')) >= 50, { timeout: 180000, message: '50 attempts on screen (the page asks for 50)' });
    const btn = page.getByTestId('blocked-recent-table-csv');
    await waitFor(async () => (await btn.getAttribute('data-source')) === 'server', { message: 'the server\'s CSV' });
    const asked = page.waitForRequest((r) => /\/api\/v1\/blocked\?.*format=csv/.test(r.url()));
    const [download] = await Promise.all([page.waitForEvent('download'), btn.click()]);
    const q = query(await asked);
    assert.equal(q.get('limit'), null, 'as many as the API allows');
    assert.equal(Number(q.get('to')) - Number(q.get('from')), 86400, `24 h: ${q}`);
    assert.match(download.suggestedFilename(), /^simpul-blocked-\d{8}T\d{4}Z-\d{8}T\d{4}Z\.csv$/);
    const csv = parseCsv(readFileSync(await download.path(), 'utf8'));
    const json = await get(`api/v1/blocked?from=${q.get('from')}&to=${q.get('to')}&limit=1000`);
    assert.ok(csv.length - 1 > 50, `more than the 50 shown: ${csv.length - 1}`);
    // Every line is a row of the API's answer for the range (attempts sent late may add rows since).
    const key = (r) => ['node_id', 'client', 'target', 'first_seen', 'last_seen', 'attempts'].map((k) => cellOf(r[k])).join('|');
    const have = new Set(json.map(key));
    const lines = csv.slice(1).map((l) => Object.fromEntries(csv[0].map((k, i) => [k, l[i]])));
    assert.ok(lines.every((l) => have.has(key(l))), 'each line is an attempt of the range');
    assert.ok(csv.length - 1 <= json.length && json.length - (csv.length - 1) <= 20, `${csv.length - 1} lines, ${json.length} in the API now`);
    kit.assertClean(watch, '#/blocked CSV');
  });

  kit.step('#/search: a list as full as the answer holds (100 blocked attempts) downloads the server\'s CSV of the range; a shorter one its own rows', async () => {
    const { page, watch } = await kit.newPage();
    // The agency with the most attempts recorded (the demo's accumulate): more than the answer's 100.
    let code;
    await waitFor(async () => {
      const rows = await get(`api/v1/blocked?from=${nowSecs() - 86400}&limit=1000`);
      const per = new Map();
      for (const r of rows) per.set(r.agency, (per.get(r.agency) || 0) + 1);
      [code] = [...per].sort((a, b) => b[1] - a[1])[0] || [];
      return code && per.get(code) > 110;
    }, { timeout: 240000, interval: 5000, message: 'an agency with more than 110 blocked attempts' });
    await loginPage(page, collector.url, creds.operator, { hash: `#/search?q=${code}&range=24h` });
    const blocked = page.getByTestId('search-blocked-table');
    await waitFor(async () => Number(await blocked.getAttribute('data-rows')) === 100, { timeout: 60000, message: `100 blocked attempts of ${code} (as many as the answer holds)` });
    const btn = page.getByTestId('search-blocked-csv');
    assert.equal(await btn.getAttribute('data-source'), 'server');
    const asked = page.waitForRequest((r) => /\/api\/v1\/search\?.*format=csv/.test(r.url()));
    const [download] = await Promise.all([page.waitForEvent('download'), btn.click()]);
    const q = query(await asked);
    assert.deepEqual([q.get('q'), q.get('part'), q.get('limit')], [code, 'blocked', null]);
    assert.equal(Number(q.get('to')) - Number(q.get('from')), 86400, `24 h: ${q}`);
    assert.match(download.suggestedFilename(), new RegExp(`^simpul-search-blocked-${code}-\\d{8}T\\d{4}Z-\\d{8}T\\d{4}Z\\.csv$`));
    const csv = parseCsv(readFileSync(await download.path(), 'utf8'));
    assert.deepEqual(csv[0], ['node_id', 'first_seen', 'last_seen', 'client', 'agency', 'unit', 'method', 'target', 'server', 'port',
      'proto', 'rule', 'list', 'attempts']);
    assert.ok(csv.length - 1 > 100, `more than the 100 shown: ${csv.length - 1}`);
    const json = await get(`api/v1/search?q=${code}&from=${q.get('from')}&to=${q.get('to')}&limit=1000`);
    const key = (r) => ['node_id', 'client', 'target', 'first_seen', 'last_seen', 'attempts'].map((k) => cellOf(r[k])).join('|');
    const have = new Set(json.blocked.map(key));
    const lines = csv.slice(1).map((l) => Object.fromEntries(csv[0].map((k, i) => [k, l[i]])));
    assert.ok(lines.every((l) => l.agency === code && have.has(key(l))), 'each line is an attempt of the agency in the range');
    assert.ok(json.blocked.length - lines.length <= 20, `${lines.length} lines, ${json.blocked.length} in the API now`);
    // A list shorter than the answer's top 20 keeps the table's own CSV.
    const peers = Number(await page.getByTestId('search-peers-table').getAttribute('data-rows'));
    if (peers < 20) assert.equal(await page.getByTestId('search-peers-csv').getAttribute('data-source'), 'table');
    kit.assertClean(watch, '#/search CSV');
  });
});
