// Browser test of the history's peaks against the real collector in demo
// mode: the chart draws each step's highest one-second rate beside its
// average, the summary under it says the range's peak, p95 and the time above
// 95 % of the allocation as the API computed them, and the 7-day axis names
// each day once (12-hour ticks labelled every day twice).
//   cargo build -p simpul-demo && node --test tests/browser/peaks.test.js
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  SHOTS, apiLogin, getJSON, launchBrowser, loginPage, startCollector, waitFor, watchPage,
  stepWithShots,
} from './helpers.js';

const isUsage = (code) => (r) => r.url().includes(`/api/v1/agencies/${code}/usage?`) && !/step=1s/.test(r.url());
const ticks = async (page) => (await page.getByTestId('history-chart').getAttribute('data-x-ticks') || '')
  .split(' | ').filter(Boolean);

describe('Simpul NOC dashboard: peaks in the history (collector demo)', { timeout: 900000 }, () => {
  let collector;
  let browser;
  let page;
  let watch;
  let api;
  let code;

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    collector = await startCollector();
    const creds = collector.credentials();
    api = await apiLogin(collector.url, creds.admin);
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1920, height: 1080 }, timezoneId: 'Asia/Jakarta', locale: 'id-ID' });
    page = await context.newPage();
    watch = await watchPage(page);
    await loginPage(page, collector.url, creds.operator);
    // The busiest agency: it has history to draw.
    await waitFor(async () => {
      const ov = await getJSON(collector.url, 'api/v1/overview', api);
      code = [...ov.agencies].sort((a, b) => (b.in_bps + b.out_bps) - (a.in_bps + a.out_bps))[0];
      code = code && code.in_bps + code.out_bps > 0 ? code.code : null;
      return code;
    }, { timeout: 120000, message: 'demo traffic' });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
  });

  const step = stepWithShots('peaks', () => page, () => collector);

  step('the history shows each step\'s peak beside its average, and the range\'s peak and p95', async () => {
    const chart = page.getByTestId('history-chart');
    const summary = page.getByTestId('history-peaks');
    // Wait until a minute with traffic is over: its peak is then whole.
    let usage;
    await waitFor(async () => {
      const answer = page.waitForResponse(isUsage(code));
      await page.goto(`${collector.url}#/agency/${code}?range=1h`);
      usage = await (await answer).json();
      return (usage.points || []).length >= 2;
    }, { timeout: 180000, interval: 5000, message: 'two minutes of history' });
    await waitFor(async () => (await chart.getAttribute('data-range')) === '1h'
      && (await summary.getAttribute('data-peak-in')) !== null, { message: '1 h history drawn' });
    // What the API says: every step's peak at least its average, the range's
    // peak the highest of them, the p95 no higher.
    assert.ok(usage.points.every((p) => p.peak_in_bps >= Math.floor(p.in_bps) && p.peak_out_bps >= Math.floor(p.out_bps)),
      JSON.stringify(usage.points.slice(0, 3)));
    assert.equal(usage.peak_in_bps, Math.max(...usage.points.map((p) => p.peak_in_bps)));
    assert.ok(usage.peak_in_bps > 0 && usage.p95_in_bps <= usage.peak_in_bps, JSON.stringify(usage));
    assert.equal(usage.steps_without_peaks, 0);
    // The page says the same figures.
    assert.equal(await summary.getAttribute('data-peak-in'), String(usage.peak_in_bps));
    assert.equal(await summary.getAttribute('data-p95-in'), String(usage.p95_in_bps));
    const text = await summary.textContent();
    assert.match(text, /^Puncak: unduh \S+ \S+ · unggah \S+ \S+ — p95: unduh \S+ \S+ · unggah \S+ \S+/);
    if (usage.hours_above_95) assert.match(text, /Di atas 95 % alokasi: unduh .+ · unggah .+/);
    // The legend names the peak lines.
    const legend = await page.locator('[data-testid="history-chart"] .u-legend').textContent();
    assert.match(legend, /Puncak unduh/);
    assert.match(legend, /Puncak unggah/);
    assert.deepEqual(watch.errors, [], 'no uncaught page errors');
  });

  step('the 7-day axis names each day once, on the wall and on a phone', async () => {
    const chart = page.getByTestId('history-chart');
    await page.getByTestId('range-7d').click();
    await waitFor(async () => (await chart.getAttribute('data-range')) === '7d' && (await ticks(page)).length > 0,
      { message: '7 day history drawn' });
    let labels = await ticks(page);
    assert.ok(labels.length >= 5, `a label for most days: ${labels}`);
    assert.equal(new Set(labels).size, labels.length, `no day twice: ${labels}`);
    assert.ok(labels.every((l) => !/\d{2}[:.]\d{2}/.test(l)), `days, not times: ${labels}`);
    // A wall screen wide enough for 12-hour ticks still gets one per day.
    await page.setViewportSize({ width: 2560, height: 1440 });
    await waitFor(async () => (await ticks(page)).join() !== labels.join()
      || (await chart.boundingBox()).width > 2400, { message: 'axis redrawn wider' });
    await waitFor(async () => (await ticks(page)).length >= 7, { message: 'a tick per day' });
    labels = await ticks(page);
    assert.equal(new Set(labels).size, labels.length, `no day twice on a wide wall: ${labels}`);
    await page.setViewportSize({ width: 390, height: 844 });
    await waitFor(async () => (await ticks(page)).join() !== labels.join(), { message: 'axis redrawn narrower' });
    labels = await ticks(page);
    assert.ok(labels.length >= 1, `${labels}`);
    assert.equal(new Set(labels).size, labels.length, `no day twice on a phone: ${labels}`);
    await page.setViewportSize({ width: 1920, height: 1080 });
    // A day or less keeps clock times, each once.
    await page.getByTestId('range-24h').click();
    await waitFor(async () => (await chart.getAttribute('data-range')) === '24h', { message: '24 h history drawn' });
    await waitFor(async () => (await ticks(page)).every((l) => /\d{2}[:.]\d{2}/.test(l)), { message: 'clock labels' });
    labels = await ticks(page);
    assert.equal(new Set(labels).size, labels.length, `${labels}`);
    assert.deepEqual(watch.errors, [], 'no uncaught page errors');
  });
});
