// Browser tests of #/reports against the real collector in demo mode: an
// operator picks this month and the province, sees the figures, downloads
// the PDF and reads it back with pdftotext (poppler-utils); an agency
// officer is held to its own agency and its CSV holds nothing of another;
// no sideways scrolling on a 390×844 phone.
//   cargo build -p simpul-demo && node --test tests/browser/reports.test.js
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  SHOTS, apiLogin, getJSON, launchBrowser, loginPage, startCollector, waitFor, watchPage,
  stepWithShots,
} from './helpers.js';

const ZONE = 'Asia/Jakarta';
/** "2026-12": this month at UTC+7 (the demo's NOC zone). */
const thisMonth = () => new Date(Date.now() + 7 * 3600 * 1000).toISOString().slice(0, 7);

function pdftotext(file) {
  return execFileSync('pdftotext', ['-layout', '-enc', 'UTF-8', file, '-'], { encoding: 'utf8' });
}

describe('Simpul NOC dashboard: monthly reports (collector demo)', { timeout: 600000 }, () => {
  let collector;
  let browser;
  let creds;
  let api;
  let tmp;
  const pages = [];

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    tmp = mkdtempSync(path.join(tmpdir(), 'simpul-reports-'));
    collector = await startCollector();
    creds = collector.credentials();
    api = await apiLogin(collector.url, creds.admin);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const step = stepWithShots('reports', () => pages.at(-1), () => collector);

  async function open(who, viewport = { width: 1920, height: 1080 }) {
    const context = await browser.newContext({ viewport, timezoneId: ZONE, locale: 'id-ID', acceptDownloads: true });
    const page = await context.newPage();
    pages.push(page);
    const watch = await watchPage(page);
    await loginPage(page, collector.url, who);
    return { page, watch };
  }

  step('an operator opens Laporan from the navigation, picks this month, sees the figures and downloads the PDF, which says the same', async () => {
    const { page, watch } = await open(creds.operator);
    await page.locator('#nav-links a[href="#/reports"]').click();
    await page.getByTestId('reports-page').waitFor();
    const month = page.getByTestId('report-month');
    // By default the last whole month (the server's, in the NOC's zone); this month has the demo's traffic.
    const first = await waitFor(async () => /^\d{4}-\d{2}$/.test(await month.inputValue()) && month.inputValue(), { message: 'the default month' });
    assert.ok(first < thisMonth(), `${first} is before ${thisMonth()}`);
    assert.equal(await month.getAttribute('max'), thisMonth());
    await month.fill(thisMonth());
    await month.dispatchEvent('change');
    // The demo's traffic reaches the month's hourly sums within seconds.
    await waitFor(async () => {
      const v = Number(await page.getByTestId('report-usage').getAttribute('data-bytes-in'));
      if (v > 0) return v;
      await month.dispatchEvent('change');
      return 0;
    }, { timeout: 60000, message: 'traffic in the report' });
    // A change dispatched while waiting may still be loading: its answer settles it.
    await waitFor(async () => (await page.getByTestId('report-status').getAttribute('data-state')) === 'ok', { message: 'the report loaded' });
    // The switched-off node: never connected, 0 % — not the 97 % it had when
    // the hours before the demo counted as up.
    const off = page.getByTestId('report-node-bappeda-02');
    await off.waitFor();
    assert.match(await off.textContent(), /0,00%.*belum pernah terhubung/);
    // Every agency of the demo has a line; the demo's policy versions are listed.
    const r = await getJSON(collector.url, `api/v1/reports/monthly?month=${thisMonth()}`, api);
    for (const a of r.agencies) assert.equal(await page.getByTestId(`report-agency-${a.code}`).count(), 1, a.code);
    assert.ok(r.policy_changes.length > 0, 'the demo saved policies this month');
    assert.equal(Number(await page.getByTestId('report-policy').getAttribute('data-rows')), r.policy_changes.length);

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('report-pdf').click()]);
    assert.equal(download.suggestedFilename(), `simpul-laporan-${thisMonth()}-provinsi.pdf`);
    const file = path.join(tmp, download.suggestedFilename());
    await download.saveAs(file);
    assert.equal(readFileSync(file).subarray(0, 5).toString(), '%PDF-');
    const text = pdftotext(file);
    assert.match(text, /Laporan Bulanan Jaringan Intra/);
    assert.match(text, /Seluruh provinsi/);
    const line = text.split('\n').find((l) => l.includes('bappeda-02') && l.includes('%'));
    assert.ok(line, `bappeda-02 in the PDF's availability table:\n${text}`);
    assert.match(line, /0,00 % \(belum pernah terhubung\)/);
    for (const a of r.agencies) assert.ok(text.includes(a.code), `${a.code} in the PDF`);
    for (const p of r.policy_changes.slice(0, 3)) assert.ok(text.includes(p.by), `${p.by} (policy version ${p.version}) in the PDF`);
    // English on request.
    await page.getByTestId('report-lang').selectOption('en');
    const [en] = await Promise.all([page.waitForEvent('download'), page.getByTestId('report-pdf').click()]);
    assert.equal(en.suggestedFilename(), `simpul-report-${thisMonth()}-province.pdf`);
    const enFile = path.join(tmp, en.suggestedFilename());
    await en.saveAs(enFile);
    assert.match(pdftotext(enFile), /Monthly Intranet Report/);
    assert.deepEqual(watch.errors, [], 'no uncaught page errors');
    assert.deepEqual(watch.csp, [], 'no Content-Security-Policy violations');
  });

  step("an agency officer gets its own agency only: fixed choice, its CSV, another agency's report refused", async () => {
    const { page } = await open(creds.agency);
    await page.goto(`${collector.url}#/reports`);
    await page.getByTestId('reports-page').waitFor();
    const sel = page.getByTestId('report-agency');
    assert.equal(await sel.isDisabled(), true);
    assert.equal(await sel.inputValue(), creds.agency.code);
    // This month: the agency's one-second peak (what minute averages hide) beside the rest.
    const month = page.getByTestId('report-month');
    await waitFor(async () => /^\d{4}-\d{2}$/.test(await month.inputValue()), { message: 'the default month' });
    await month.fill(thisMonth());
    await month.dispatchEvent('change');
    const peak = await waitFor(async () => {
      const el = page.getByTestId('report-peak-1s-in');
      if (await el.count()) return el.textContent();
      await month.dispatchEvent('change');
      return null;
    }, { timeout: 60000, message: 'the one-second peak' });
    const own = await page.evaluate(async (m) => (await fetch(`api/v1/reports/monthly?month=${m}`)).json(), thisMonth());
    assert.equal(own.agency, creds.agency.code);
    assert.ok(own.usage.peak_1s_in_bps >= own.usage.peak_in_bps, 'a second is at least its minute\'s average');
    assert.match(peak, /bps/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('report-csv').click()]);
    assert.equal(download.suggestedFilename(), `simpul-laporan-${thisMonth()}-${creds.agency.code}.csv`);
    const file = path.join(tmp, 'officer.csv');
    await download.saveAs(file);
    const csv = readFileSync(file, 'utf8');
    assert.match(csv, new RegExp(`^agency,${creds.agency.code}\\r$`, 'm'));
    assert.ok(!csv.includes('bappeda'), 'no other agency in the officer\'s CSV');
    const other = await page.evaluate(async () => (await fetch('api/v1/reports/monthly?agency=bappeda')).status);
    assert.equal(other, 403);
  });

  step('on a 390×844 phone the page does not scroll sideways', async () => {
    const { page } = await open(creds.operator, { width: 390, height: 844 });
    await page.goto(`${collector.url}#/reports`);
    await page.getByTestId('reports-page').waitFor();
    await waitFor(async () => (await page.getByTestId('report-status').getAttribute('data-state')) === 'ok', { message: 'the report loaded' });
    const w = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(w <= 390, `scrollWidth ${w}`);
  });
});
