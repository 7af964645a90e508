// Browser tests of investigation against the real collector in demo mode:
// search from the navigation bar, drill down agency → unit → host → flows,
// sort and filter a table, page the flows through the API's cursor, and
// download a table as CSV and read the file back against what the table
// shows (and the server's CSV against the API's JSON).
//   cargo build -p simpul-demo && node --test tests/browser/search.test.js
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  SHOTS, apiLogin, apiFetch, getJSON, launchBrowser, loginPage, startCollector, waitFor, watchPage,
  stepWithShots, parseCsv,
} from './helpers.js';

describe('Simpul NOC dashboard: search, drill-down, tables and CSV (collector demo)', { timeout: 900000 }, () => {
  let collector;
  let browser;
  let page;
  let watch;
  let api;
  const get = (p) => getJSON(collector.url, p, api);

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    collector = await startCollector();
    const creds = collector.credentials();
    api = await apiLogin(collector.url, creds.admin);
    browser = await launchBrowser();
    const context = await browser.newContext({
      viewport: { width: 1920, height: 1080 }, timezoneId: 'Asia/Jakarta', locale: 'id-ID', acceptDownloads: true,
    });
    page = await context.newPage();
    watch = await watchPage(page);
    await loginPage(page, collector.url, creds.operator);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
  });

  const assertClean = () => {
    assert.deepEqual(watch.errors, [], 'no uncaught page errors');
    assert.deepEqual(watch.csp, [], 'no Content-Security-Policy violations');
  };

  const step = stepWithShots('search', () => page, () => collector);

  const rows = (id) => page.locator(`[data-testid="${id}-table"] tbody tr[data-testid]`);
  const column = (id, n) => page.evaluate(([tid, i]) => [...document.querySelectorAll(`[data-testid="${tid}-table"] tbody tr[data-testid]`)]
    .map((tr) => tr.children[i].textContent), [id, n]);

  /** An agency of the demo with flows, one of its units with hosts, one host. */
  let code; let unit; let host;
  const pick = async () => {
    const ov = await get('api/v1/overview');
    for (const a of [...ov.agencies].sort((x, y) => (y.in_bps + y.out_bps) - (x.in_bps + x.out_bps))) {
      const hosts = await get(`api/v1/top/hosts?agency=${a.code}&limit=50&from=0`);
      const h = hosts.find((x) => x.unit && x.unit !== 'unknown');
      if (h) { code = a.code; unit = h.unit; host = h.host; return true; }
    }
    return false;
  };

  step('search from the navigation bar: an address shows its unit, flows, peers and sites as the API says', async () => {
    await waitFor(pick, { timeout: 90000, message: 'a demo host in a unit' });
    const box = page.getByTestId('search-input');
    await box.waitFor();
    await box.fill(host);
    await page.getByTestId('search-submit').click();
    await waitFor(async () => (await page.getByTestId('search-kind').getAttribute('data-kind')) === 'address', { message: 'address results' });
    const hash = new URL(page.url()).hash;
    assert.match(hash, /^#\/search\?/);
    assert.equal(new URLSearchParams(hash.split('?')[1]).get('q'), host);
    assert.equal(await page.getByTestId('search-title').textContent(), `Pencarian: ${host}`);
    // Breadcrumbs: the agency and the unit that own the address.
    assert.equal(await page.getByTestId('crumb-unit').count(), 1, 'the unit holding the address');
    assert.equal(await page.getByTestId('crumb-host').textContent(), host);
    await waitFor(async () => (await rows('search-flows').count()) > 0, { message: 'flows of the address' });
    assert.ok((await rows('search-peers').count()) > 0, 'peers of the address');
    // The same figures as the API over the same range.
    const hq = new URLSearchParams(hash.split('?')[1]);
    const from = Math.floor(Date.now() / 1000) - 86400;
    const d = await get(`api/v1/search?q=${encodeURIComponent(hq.get('q'))}&from=${from}`);
    assert.equal(d.kind, 'address');
    const shown = Number((await page.getByTestId('search-kpi-flows').textContent()).replace(/\D/g, ''));
    assert.ok(shown > 0 && shown <= d.summary.flows, `flows shown ${shown}, API ${d.summary.flows} a moment later`);
    // Every flow row involves the address.
    const src = await column('search-flows', 3);
    const dst = await column('search-flows', 4);
    assert.ok(src.every((s, i) => s.startsWith(host) || dst[i].startsWith(host)), 'every flow has the address on one side');
    await page.screenshot({ path: path.join(SHOTS, 'search-address.png'), fullPage: true });
    assertClean();
  });

  step('drill down: agency → unit → host → flows, and the flows page on through the cursor', async () => {
    await page.goto(`${collector.url}#/agency/${code}`);
    await waitFor(async () => (await rows('units').count()) > 0, { timeout: 60000, message: 'units of the agency' });
    await page.getByTestId(`unit-link-${unit}`).click();
    await waitFor(async () => (await page.getByTestId('search-kind').getAttribute('data-kind')) === 'unit', { message: 'unit results' });
    assert.equal(await page.getByTestId('crumb-agency').count(), 1);
    await waitFor(async () => (await rows('search-hosts').count()) > 0, { message: 'hosts of the unit' });
    // Every host listed belongs to the unit.
    const units = await column('search-hosts', 2);
    assert.ok(units.every((u) => u === unit), `hosts of unit ${unit}: ${units}`);
    const first = page.locator('[data-testid="search-hosts-table"] tbody tr[data-testid] td a').first();
    const ip = await first.textContent();
    await first.click();
    await waitFor(async () => (await page.getByTestId('search-kind').getAttribute('data-kind')) === 'address'
      && (await page.getByTestId('crumb-host').textContent()) === ip, { message: `host ${ip}` });
    await waitFor(async () => (await rows('search-flows').count()) > 0, { message: 'flows of the host' });

    // The unit's flows, paged: "more" adds the next page, no row twice.
    // Counted before the page loads: the demo only adds flows, so the page sees at least as many.
    const total = (await get(`api/v1/search?q=${encodeURIComponent(`${code}/${unit}`)}`)).summary.flows;
    await page.goto(`${collector.url}#/search?q=${encodeURIComponent(`${code}/${unit}`)}&range=24h`);
    await waitFor(async () => (await rows('search-flows').count()) > 0, { message: 'unit flows' });
    const more = page.getByTestId('search-flows-more');
    if (total > 50) {
      await waitFor(() => more.isVisible(), { message: `${total} flows: a "more" button after the first 50` });
      assert.equal(await rows('search-flows').count(), 50);
      await more.click();
      await waitFor(async () => (await rows('search-flows').count()) > 50, { message: 'a second page' });
      assert.ok((await rows('search-flows').count()) <= 150, 'one more page of at most 100');
    } else if (!(await more.isVisible())) {
      assert.ok((await rows('search-flows').count()) <= 50, 'no "more" when everything is shown');
    }
    assertClean();
  });

  step('a table sorts by a header (again: reversed) and filters by a word', async () => {
    await page.goto(`${collector.url}#/agency/${code}`);
    await waitFor(async () => (await rows('top-hosts').count()) > 1, { timeout: 60000, message: 'top hosts' });
    await page.getByTestId('top-hosts-sort-host').click();
    const cmp = (a, b) => a.localeCompare(b, 'id', { numeric: true, sensitivity: 'base' });
    let hosts = await column('top-hosts', 0);
    assert.deepEqual(hosts, [...hosts].sort(cmp), 'A to Z');
    assert.equal(await page.locator('[data-testid="top-hosts-table"] th[aria-sort="ascending"]').count(), 1);
    await page.getByTestId('top-hosts-sort-host').click();
    hosts = await column('top-hosts', 0);
    assert.deepEqual(hosts, [...hosts].sort(cmp).reverse(), 'Z to A');
    // Filter: only rows holding the word, and the count says so.
    const word = hosts[0];
    await page.getByTestId('top-hosts-filter').fill(word);
    const left = await column('top-hosts', 0);
    assert.ok(left.length >= 1 && left.every((x) => x.includes(word)), `filtered on ${word}: ${left}`);
    assert.match(await page.getByTestId('top-hosts-count').textContent(), /dari/);
    await page.getByTestId('top-hosts-filter').fill('');
    assertClean();
  });

  step('CSV: a downloaded table holds what the table shows; the server CSV matches the API', async () => {
    await page.goto(`${collector.url}#/agency/${code}`);
    await waitFor(async () => (await rows('flows').count()) > 0, { timeout: 60000, message: 'flows' });
    await page.getByTestId('flows-sort-bytes_down').click();
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('flows-csv').click()]);
    assert.match(download.suggestedFilename(), /^simpul-flows-.*\.csv$/);
    const csv = parseCsv(readFileSync(await download.path(), 'utf8'));
    const shown = await page.evaluate(() => [...document.querySelectorAll('[data-testid="flows-table"] tbody tr[data-testid]')]
      .map((tr) => [...tr.children].map((td) => td.textContent)));
    const heads = await page.evaluate(() => [...document.querySelectorAll('[data-testid="flows-table"] thead th')]
      .map((th) => th.textContent.replace(/[ ▲▼]+$/, '')));
    assert.deepEqual(csv[0], heads, "the table's column titles");
    assert.equal(csv.length - 1, shown.length, 'one line per row shown');
    // Source and destination as on screen; bytes as plain numbers, most first.
    for (let i = 0; i < shown.length; i++) {
      assert.equal(csv[i + 1][2], shown[i][2], `row ${i + 1} source`);
      assert.equal(csv[i + 1][3], shown[i][3], `row ${i + 1} destination`);
    }
    const down = csv.slice(1).map((r) => Number(r[9]));
    assert.ok(down.every((v) => Number.isInteger(v)), 'bytes as integers');
    assert.deepEqual(down, [...down].sort((a, b) => b - a), 'in the order of the table (bytes ↓, most first)');

    // Any other table (dom.js renderTable): its CSV holds the cells shown.
    await waitFor(async () => (await page.locator('[data-testid="nodes-table"] tbody tr[data-testid]').count()) > 0, { message: 'nodes table' });
    const [nodesFile] = await Promise.all([page.waitForEvent('download'), page.getByTestId('nodes-table-csv').click()]);
    const ncsv = parseCsv(readFileSync(await nodesFile.path(), 'utf8'));
    const nodeCells = await page.evaluate(() => [...document.querySelectorAll('[data-testid="nodes-table"] tbody tr[data-testid]')]
      .map((tr) => [...tr.children].map((td) => td.textContent)));
    assert.equal(ncsv.length - 1, nodeCells.length);
    // (Relative times such as "8 dtk lalu" move on between the two reads.)
    const fixed = (cells) => cells.filter((c) => !/lalu|ago/.test(c));
    nodeCells.forEach((cells, i) => {
      assert.equal(ncsv[i + 1].length, cells.length, `node row ${i + 1}: every column`);
      assert.deepEqual(fixed(ncsv[i + 1]), fixed(cells), `node row ${i + 1}`);
    });

    // The history chart's data as CSV.
    await waitFor(async () => (await page.getByTestId('history-chart').getAttribute('data-range')) !== null, { message: 'history drawn' });
    const [hist] = await Promise.all([page.waitForEvent('download'), page.getByTestId('history-csv').click()]);
    const hcsv = parseCsv(readFileSync(await hist.path(), 'utf8'));
    assert.deepEqual(hcsv[0].slice(0, 3), ['ts', 'bytes_in', 'bytes_out']);
    assert.ok(hcsv.length > 1, 'points of the chart');
    // The live chart's seconds (15 min).
    const [live] = await Promise.all([page.waitForEvent('download'), page.getByTestId('live-csv').click()]);
    const lcsv = parseCsv(readFileSync(await live.path(), 'utf8'));
    assert.deepEqual(lcsv[0], ['ts', 'in_bps', 'out_bps']);
    assert.equal(lcsv.length - 1, 900, 'one line per second of the live chart');
    assert.ok(lcsv.slice(1).some((r) => Number(r[1]) > 0), 'traffic in the live chart');

    // The server's CSV of the flows: every row of the API's JSON pages, in order.
    const to = Math.floor(Date.now() / 1000) - 5;
    const q = `agency=${code}&from=${to - 3600}&to=${to}`;
    const res = await apiFetch(collector.url, api, 'GET', `api/v1/flows?${q}&format=csv`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/csv/);
    // (Response.text() would drop the BOM, as the WHATWG decoder does.)
    const server = parseCsv(new TextDecoder('utf-8', { ignoreBOM: true }).decode(await res.arrayBuffer()));
    const json = [];
    let cursor = null;
    do {
      const r = await apiFetch(collector.url, api, 'GET', `api/v1/flows?${q}&limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
      json.push(...await r.json());
      cursor = r.headers.get('x-next-cursor');
    } while (cursor);
    assert.equal(server.length - 1, json.length);
    const col = (n) => server[0].indexOf(n);
    json.forEach((f, i) => {
      assert.equal(server[i + 1][col('flow_id')], String(f.flow_id));
      assert.equal(server[i + 1][col('bytes_down')], String(f.bytes_down));
    });
    assertClean();
  });

  step('a phone: the search page does not scroll sideways', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${collector.url}#/search?q=${encodeURIComponent(host)}`);
    await waitFor(async () => (await rows('search-flows').count()) > 0, { message: 'results on a phone' });
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `page width ${width} px on a 390 px screen`);
    await page.screenshot({ path: path.join(SHOTS, 'search-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1920, height: 1080 });
    assertClean();
  });
});
