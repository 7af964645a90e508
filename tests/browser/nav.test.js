// Browser tests of the dashboard's structure and navigation against the real
// collector in demo mode: the time range kept in the address (presets, a
// custom range, drag-zoom on the history chart) and restored by a reload,
// the navigation bar per role and on a phone, an unknown address, server
// errors in the page's language, one vocabulary, and no sideways scrolling
// on a 390×844 phone.
//   cargo build -p simpul-demo && node --test tests/browser/nav.test.js
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  SHOTS, apiLogin, getJSON, launchBrowser, loginPage, startCollector, waitFor, watchPage,
} from './helpers.js';

const ZONE = 'Asia/Jakarta'; // UTC+7 all year: local times below are UTC + 7 h
const localInput = (secs) => new Date((secs + 7 * 3600) * 1000).toISOString().slice(0, 16);
const nowSecs = () => Math.floor(Date.now() / 1000);
const isUsage = (code) => (r) => r.url().includes(`/api/v1/agencies/${code}/usage?`) && !/step=1s/.test(r.url());
const params = (url) => new URL(url).searchParams;
const hashQuery = (page) => new URLSearchParams(new URL(page.url()).hash.split('?')[1] || '');

describe('Simpul NOC dashboard: navigation and time ranges (collector demo)', { timeout: 900000 }, () => {
  let collector;
  let browser;
  let context;
  let page;
  let watch;
  let creds;
  let api;
  const get = (p) => getJSON(collector.url, p, api);

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    collector = await startCollector();
    creds = collector.credentials();
    api = await apiLogin(collector.url, creds.admin);
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1920, height: 1080 }, timezoneId: ZONE, locale: 'id-ID' });
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

  const step = (name, fn) => it(name, { timeout: 240000 }, async () => {
    try {
      await fn();
    } catch (err) {
      const file = path.join(SHOTS, `failure-nav-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase().slice(0, 80)}.png`);
      await page?.screenshot({ path: file, fullPage: true }).catch(() => {});
      err.message += `\n(screenshot: ${file})\n--- collector output (tail) ---\n${collector?.logTail()}`;
      throw err;
    }
  });

  /** The busiest agency of the demo (it has history to draw). */
  const busiest = async () => {
    const ov = await get('api/v1/overview');
    return [...ov.agencies].sort((a, b) => (b.in_bps + b.out_bps) - (a.in_bps + a.out_bps))[0].code;
  };

  step('agency page: a preset range goes into the address and a reload shows it again, asking the API for the same range', async () => {
    const code = await busiest();
    await page.goto(`${collector.url}#/agency/${code}`);
    const chart = page.getByTestId('history-chart');
    await waitFor(async () => (await chart.getAttribute('data-range')) === '24h', { message: '24 h history by default' });
    for (const k of ['1h', '6h', '24h', '7d', '30d', '1y', 'custom']) {
      assert.equal(await page.getByTestId(`range-${k}`).count(), 1, `a ${k} button`);
    }

    const asked = page.waitForRequest(isUsage(code));
    await page.getByTestId('range-7d').click();
    const first = params((await asked).url());
    assert.equal(first.get('step'), '1h');
    assert.ok(Math.abs(Number(first.get('from')) - (nowSecs() - 7 * 86400)) < 3700, `from ${first.get('from')} is 7 days back`);
    assert.equal(new URL(page.url()).hash, `#/agency/${code}?range=7d`);
    await waitFor(async () => (await chart.getAttribute('data-range')) === '7d', { message: '7 day history drawn' });

    const again = page.waitForRequest(isUsage(code));
    await page.reload();
    const second = params((await again).url());
    assert.equal(second.get('step'), '1h', 'the reload asks for 7 days again');
    assert.ok(Math.abs(Number(second.get('from')) - (nowSecs() - 7 * 86400)) < 3700, `from ${second.get('from')} is 7 days back`);
    await waitFor(async () => (await chart.getAttribute('data-range')) === '7d', { message: '7 days after the reload' });
    assert.equal(await page.getByTestId('range-7d').getAttribute('aria-pressed'), 'true');
    assert.equal(await page.getByTestId('range-24h').getAttribute('aria-pressed'), 'false');
    // The blocked attempts on the page follow the page's range.
    await waitFor(async () => / 7 hari$/.test(await page.locator('#h-blocked-targets').textContent()), { message: 'blocked targets over 7 days' });
    assertClean();
  });

  step('agency page: a custom from/to and a drag across the history chart are kept in the address and survive a reload', async () => {
    const code = await busiest();
    await page.goto(`${collector.url}#/agency/${code}?range=24h`);
    const chart = page.getByTestId('history-chart');
    await waitFor(async () => (await chart.getAttribute('data-range')) === '24h', { message: '24 h history' });

    // Custom: from 3 h ago to 1 h ago, typed in the browser's zone.
    const to = Math.floor(nowSecs() / 60) * 60 - 3600;
    const from = to - 2 * 3600;
    await page.getByTestId('range-custom').click();
    await page.getByTestId('range-from').fill(localInput(from));
    await page.getByTestId('range-to').fill(localInput(to));
    const asked = page.waitForRequest(isUsage(code));
    await page.getByTestId('range-apply').click();
    const q = params((await asked).url());
    assert.deepEqual([q.get('from'), q.get('to'), q.get('step')], [String(from), String(to), '1m']);
    assert.deepEqual([hashQuery(page).get('from'), hashQuery(page).get('to'), hashQuery(page).get('range')], [String(from), String(to), null]);
    await waitFor(async () => (await chart.getAttribute('data-range')) === 'custom', { message: 'custom range drawn' });
    assert.equal(await page.getByTestId('range-custom').getAttribute('aria-pressed'), 'true');

    const again = page.waitForRequest(isUsage(code));
    await page.reload();
    const q2 = params((await again).url());
    assert.deepEqual([q2.get('from'), q2.get('to')], [String(from), String(to)], 'the reload asks for the same from/to');
    await waitFor(async () => (await chart.getAttribute('data-range')) === 'custom', { message: 'custom range after the reload' });
    assert.match(await page.getByTestId('range-label').textContent(), / – /);

    // A wrong range is refused at the form, in words.
    await page.getByTestId('range-custom').click();
    await page.getByTestId('range-from').fill(localInput(to));
    await page.getByTestId('range-to').fill(localInput(from));
    await page.getByTestId('range-apply').click();
    assert.equal(await page.getByTestId('range-error').textContent(), 'Waktu mulai harus sebelum waktu selesai.');
    assert.equal(hashQuery(page).get('from'), String(from), 'the address keeps the last good range');
    await page.getByTestId('range-custom').click();

    // Drag-zoom: the middle third of the 24 h chart becomes the range.
    await page.getByTestId('range-24h').click();
    await waitFor(async () => (await chart.getAttribute('data-range')) === '24h', { message: 'back to 24 h' });
    const over = await page.locator('[data-testid="history-chart"] .u-over').boundingBox();
    const zoomed = page.waitForRequest(isUsage(code));
    await page.mouse.move(over.x + over.width / 3, over.y + over.height / 2);
    await page.mouse.down();
    await page.mouse.move(over.x + over.width / 2, over.y + over.height / 2, { steps: 8 });
    await page.mouse.move(over.x + (2 * over.width) / 3, over.y + over.height / 2, { steps: 8 });
    await page.mouse.up();
    const z = params((await zoomed).url());
    const zf = Number(z.get('from'));
    const zt = Number(z.get('to'));
    assert.ok(zt - zf > 6 * 3600 && zt - zf < 10 * 3600, `a third of 24 h: ${zt - zf} s`);
    assert.ok(zf > nowSecs() - 86400 - 120 && zt < nowSecs(), 'inside the 24 h shown');
    assert.deepEqual([hashQuery(page).get('from'), hashQuery(page).get('to')], [String(zf), String(zt)]);
    const back = page.waitForRequest(isUsage(code));
    await page.reload();
    const zb = params((await back).url());
    assert.deepEqual([zb.get('from'), zb.get('to')], [String(zf), String(zt)], 'the zoom survives a reload');
    assertClean();
  });

  step('#/blocked and the incidents timeline keep their range in the address too', async () => {
    await page.goto(`${collector.url}#/blocked`);
    await page.getByTestId('blocked-page').waitFor();
    const asked = page.waitForRequest((r) => /\/api\/v1\/blocked\/summary\?limit=10&from=\d+$/.test(r.url()));
    await page.getByTestId('blocked-range-24h').click();
    assert.ok(Math.abs(Number(params((await asked).url()).get('from')) - (nowSecs() - 86400)) < 120);
    assert.equal(new URL(page.url()).hash, '#/blocked?range=24h');
    const again = page.waitForRequest((r) => /\/api\/v1\/blocked\/summary\?limit=10&from=\d+$/.test(r.url()));
    await page.reload();
    assert.ok(Math.abs(Number(params((await again).url()).get('from')) - (nowSecs() - 86400)) < 120, 'asked for 24 h after the reload');
    await waitFor(async () => (await page.getByTestId('blocked-range-24h').getAttribute('aria-pressed')) === 'true', { message: '24 h pressed' });
    await waitFor(async () => /dalam 24 jam$/.test(await page.getByTestId('blocked-total').textContent()), { message: 'the total names 24 h' });

    await page.goto(`${collector.url}#/incidents`);
    const timeline = page.getByTestId('timeline');
    await waitFor(async () => (await timeline.getAttribute('data-range')) === '24h', { message: '24 h timeline' });
    await page.getByTestId('tl-range-30d').click();
    assert.equal(new URL(page.url()).hash, '#/incidents?range=30d');
    await waitFor(async () => (await timeline.getAttribute('data-range')) === '30d', { message: '30 day timeline' });
    const tl = page.waitForRequest((r) => /\/api\/v1\/incidents\?from=\d+&limit=10000/.test(r.url()));
    await page.reload();
    assert.ok(Math.abs(Number(params((await tl).url()).get('from')) - (nowSecs() - 30 * 86400)) < 120, 'the timeline asks for 30 days after the reload');
    await waitFor(async () => (await timeline.getAttribute('data-range')) === '30d', { message: '30 days after the reload' });
    assert.ok(await page.locator('[data-testid="timeline"] .tick').count() >= 5, 'an axis with dates');
    assertClean();
  });

  step('an unknown address says so, in both languages, with the way home', async () => {
    for (const hash of ['#/nosuch', '#/agency/', '#/admin/users/extra', '#/incidents/x']) {
      await page.goto(`${collector.url}${hash}`);
      await page.getByTestId('notfound-page').waitFor({ timeout: 10000 });
      assert.equal(await page.locator('[data-testid="notfound-page"] h2').textContent(), 'Halaman tidak ditemukan', hash);
      assert.equal(await page.getByTestId('agency-list').count(), 0, `${hash} does not show the wall`);
    }
    assert.match(await page.getByTestId('notfound-path').textContent(), /“\/incidents\/x”/);
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.locator('[data-testid="notfound-page"] h2').textContent()) === 'Page not found', { message: 'English' });
    await page.getByTestId('lang-switch').click();
    await page.getByTestId('notfound-home').click();
    await page.getByTestId('agency-list').waitFor();
    assert.ok(['', '#/'].includes(new URL(page.url()).hash));
    assertClean();
  });

  step('server errors are said in the page\'s language, the server\'s words kept as the detail', async () => {
    await page.goto(`${collector.url}#/agency/nosuch`);
    await page.locator('[data-testid="agency-page"][data-code="nosuch"]').waitFor();
    const totals = page.getByTestId('history-totals');
    await waitFor(async () => (await totals.textContent()) !== '', { message: 'the history answered' });
    assert.equal(await totals.textContent(), 'Gagal memuat: Instansi ini tidak dikenal. (unknown agency "nosuch")');
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await totals.textContent()) === 'Failed to load: This agency is not known. (unknown agency "nosuch")',
      { message: 'in English after the switch' });
    await page.getByTestId('lang-switch').click();
    // A throttled or failing collector is said as such: the page's own fetches, answered by the browser.
    await page.route('**/api/v1/incidents/stats**', (r) => r.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"store busy"}' }));
    await page.goto(`${collector.url}#/incidents`);
    const stats = page.locator('[data-testid="incident-stats-table"] td.empty');
    await waitFor(async () => (await stats.textContent().catch(() => '')) === 'Gagal memuat: Kolektor mengalami galat; coba lagi nanti. (store busy)',
      { message: '503 in words' });
    await page.unroute('**/api/v1/incidents/stats**');
    assertClean();
  });
});
