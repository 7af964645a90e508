// Browser tests of the wall (#/) against the real collector in demo mode:
// times in the NOC's zone on a browser running on UTC; an outage inside a
// maintenance window shown as maintenance and the window ended from the
// wall; the title counting unacknowledged alarms and a new alarm announced
// (browser notification, beep); top lists showing what fits and "+N lagi";
// and, with the province-sized demo (`--province`: 60 agencies, 120 real
// agents), agencies worst first and node tiles for the problem nodes only,
// the healthy rest counted per agency and unfolded on click.
//   cargo build -p simpul-demo && node --test tests/browser/wall.test.js
import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  SHOTS, apiFetch, apiLogin, getJSON, launchBrowser, loginPage, pageKit, sleep, startCollector, waitFor, watchPage,
} from './helpers.js';

const WIB_MS = 7 * 3600e3;
const pad = (n) => String(n).padStart(2, '0');
/** "01.57.27": a time of day in WIB as the Indonesian dashboard writes it. */
const wibHMS = (ms) => { const d = new Date(ms + WIB_MS); return `${pad(d.getUTCHours())}.${pad(d.getUTCMinutes())}.${pad(d.getUTCSeconds())}`; };
/** Seconds since midnight of a "hh.mm.ss" text. */
const secsOf = (s) => { const [h, m, x] = s.split('.').map(Number); return h * 3600 + m * 60 + x; };
/** Distance between two times of day, across midnight. */
const dayDiff = (a, b) => { const d = Math.abs(a - b) % 86400; return Math.min(d, 86400 - d); };

/** A notification constructed by the page is recorded (and still shown) — installed before any script of the page. */
function recordNotifications() {
  window.__notes = [];
  const N = window.Notification;
  if (!N) return;
  window.Notification = class extends N {
    constructor(title, opts) {
      window.__notes.push({ title, body: opts?.body || '' });
      super(title, opts);
    }
  };
}

/** The body of a 201 answer; else fails with the server's words. */
async function created(res) {
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return JSON.parse(text);
}

/** Geometry of a top list: what is shown, hidden, and whether the first hidden entry would have fitted. */
function rankGeometry(testid) {
  const ol = document.querySelector(`[data-testid="${testid}"]`);
  const items = [...ol.querySelectorAll(':scope > li.rank')];
  const shown = items.filter((li) => !li.hidden);
  const hidden = items.filter((li) => li.hidden);
  const bottom = ol.getBoundingClientRect().bottom;
  const lastBottom = shown.length ? shown[shown.length - 1].getBoundingClientRect().bottom : ol.getBoundingClientRect().top;
  let firstHiddenHeight = null;
  if (hidden.length) {
    hidden[0].hidden = false;
    firstHiddenHeight = hidden[0].getBoundingClientRect().height;
    hidden[0].hidden = true;
  }
  const more = document.querySelector(`[data-testid="${testid}-more"]`);
  return {
    total: items.length, shown: shown.length, hidden: hidden.length, room: bottom - lastBottom, firstHiddenHeight, gap: parseFloat(getComputedStyle(ol).rowGap) || 0,
    overflow: shown.some((li) => li.getBoundingClientRect().bottom > bottom + 0.5),
    more: more && !more.hidden ? { text: more.textContent, tag: more.tagName, href: more.getAttribute('href'), n: Number(more.dataset.hidden) } : null,
  };
}

describe('the wall (default demo; the browser on UTC)', { timeout: 900000 }, () => {
  let collector;
  let browser;
  let creds;
  let admin;
  let operator;
  const kit = pageKit('wall', () => ({ browser, collector }));
  const get = (p) => getJSON(collector.url, p, admin);

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    collector = await startCollector();
    creds = collector.credentials();
    admin = await apiLogin(collector.url, creds.admin);
    operator = await apiLogin(collector.url, creds.operator);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
  });

  /** A page at 1920×1080 whose browser runs on UTC (a wall PC set to UTC), notifications allowed and recorded. */
  async function utcPage() {
    const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 }, timezoneId: 'UTC', locale: 'id-ID' });
    await ctx.grantPermissions(['notifications'], { origin: new URL(collector.url).origin });
    await ctx.addInitScript(recordNotifications);
    const page = await ctx.newPage();
    const watch = await watchPage(page);
    kit.show(page);
    return { ctx, page, watch };
  }

  kit.step('times are in the NOC\'s zone (WIB from notify.utc_offset), not the browser\'s UTC', async () => {
    const me = await (await apiFetch(collector.url, operator, 'GET', 'api/v1/auth/me')).json();
    assert.deepEqual(me.zone, { offset_secs: 25200, label: 'WIB' }, 'the session says the NOC\'s zone');
    const { ctx, page, watch } = await utcPage();
    try {
      assert.equal(await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone), 'UTC', 'the browser runs on UTC');
      await loginPage(page, collector.url, creds.operator);
      await page.locator('[data-testid="conn-status"][data-state="live"]').waitFor({ timeout: 60000 });
      assert.equal(await page.locator('#clock-zone').textContent(), 'WIB');
      const clock = await page.locator('#clock-time').textContent();
      assert.ok(dayDiff(secsOf(clock), secsOf(wibHMS(Date.now()))) <= 5, `the clock shows WIB (${clock}; WIB now ${wibHMS(Date.now())}, UTC ${new Date().toISOString()})`);

      // An alarm: "since" and its tooltip in WIB.
      const row = page.locator('[data-testid="alerts"] li.alert').first();
      await row.waitFor({ timeout: 90000 });
      const id = await row.getAttribute('data-id');
      const inc = (await get('api/v1/incidents?open=true&limit=500')).find((i) => String(i.id) === id);
      const since = await page.getByTestId(`alert-since-${id}`).getAttribute('title');
      assert.ok(since.endsWith(wibHMS(inc.started_ms)), `alarm started ${since}, WIB ${wibHMS(inc.started_ms)}`);

      // A tile's "last seen" tooltip in WIB.
      const nodes = await get('api/v1/nodes');
      const seenNode = nodes.find((n) => n.last_seen && n.status !== 'revoked');
      const seenEl = page.getByTestId(`node-last-seen-${seenNode.node_id}`);
      await waitFor(async () => (await seenEl.getAttribute('title')) !== null, { message: 'a tile with its last-seen time' });
      // Heartbeats move last_seen: the tile's may be a few beats behind the API's, never 7 h.
      const n = (await get('api/v1/nodes')).find((x) => x.node_id === seenNode.node_id);
      const seenTitle = await seenEl.getAttribute('title');
      const seenAt = /(\d{2}\.\d{2}\.\d{2})$/.exec(seenTitle)?.[1];
      assert.ok(seenAt && dayDiff(secsOf(seenAt), secsOf(wibHMS(Date.parse(n.last_seen)))) <= 60,
        `the tile's last seen ${seenTitle} is WIB (API ${n.last_seen} = ${wibHMS(Date.parse(n.last_seen))} WIB)`);

      // #/incidents: the start of an incident today, in WIB.
      await page.goto(`${collector.url}#/incidents`);
      const incRow = page.getByTestId(`incident-row-${id}`);
      await incRow.waitFor({ timeout: 30000 });
      assert.match(await incRow.textContent(), new RegExp(wibHMS(inc.started_ms).replace(/\./g, '\\.')), 'the incidents table in WIB');
      // The timeline's axis (24 h: a label every 3 h from WIB midnight) on WIB hours.
      await page.locator('[data-testid="timeline"] .axis .tick').first().waitFor({ timeout: 30000 });
      const ticks = await page.locator('[data-testid="timeline"] .axis .tick').allTextContents();
      assert.ok(ticks.length >= 4, `timeline ticks: ${ticks}`);
      for (const tk of ticks) assert.match(tk, /^(00|03|06|09|12|15|18|21)\.00$/, `timeline tick ${tk} of ${ticks}`);

      // The history chart's time axis (drawn on a canvas; the chart writes its labels to
      // data-x-ticks): 24 h ticks fall on whole WIB hours that are multiples of the step.
      // On UTC hours a 2–12 h step would give odd WIB hours (UTC 00 = WIB 07).
      const ov = await get('api/v1/overview');
      const busy = [...ov.agencies].sort((a, b) => (b.in_bps + b.out_bps) - (a.in_bps + a.out_bps))[0].code;
      await page.goto(`${collector.url}#/agency/${busy}?range=24h`);
      const hist = page.getByTestId('history-chart');
      let xticks = [];
      await waitFor(async () => {
        xticks = ((await hist.getAttribute('data-x-ticks')) || '').split(' | ').filter(Boolean);
        return xticks.length >= 3;
      }, { timeout: 60000, message: 'the 24 h chart has its axis labels' });
      const hours = xticks.map((x) => { const m = /^(\d{2})\.00$/.exec(x); assert.ok(m, `a whole-hour tick: ${x} of ${xticks}`); return Number(m[1]); });
      const stepH = (hours[1] - hours[0] + 24) % 24;
      assert.ok(stepH >= 2, `a 24 h axis steps at least 2 h: ${xticks}`);
      for (const hr of hours) assert.equal(hr % stepH, 0, `tick ${hr}.00 is on the WIB ${stepH} h grid: ${xticks}`);

      // #/blocked: the newest attempts (of the last minutes) in WIB, not 7 h off.
      await page.goto(`${collector.url}#/blocked`);
      const firstBlocked = page.locator('[data-testid="blocked-row-1"] td').first();
      await firstBlocked.waitFor({ timeout: 60000 });
      const blockedText = (await firstBlocked.textContent()).trim();
      const blockedAt = /(\d{2}\.\d{2}\.\d{2})$/.exec(blockedText)?.[1];
      assert.ok(blockedAt, `a time: ${blockedText}`);
      assert.ok(dayDiff(secsOf(blockedAt), secsOf(wibHMS(Date.now()))) <= 20 * 60, `a recent attempt at ${blockedAt}, WIB now ${wibHMS(Date.now())}`);

      // #/availability counts "today" from WIB midnight and "this month" from the 1st, 00:00 WIB.
      const froms = [];
      page.on('request', (r) => { const m = /\/api\/v1\/availability\?from=(\d+)&to=\d+$/.exec(r.url()); if (m) froms.push(Number(m[1])); });
      await page.goto(`${collector.url}#/availability`);
      await page.getByTestId('av-today').click();
      await page.getByTestId('av-month').click();
      await waitFor(() => froms.length >= 3, { timeout: 30000, message: 'today and this month asked' });
      const wib = new Date(Date.now() + WIB_MS);
      const wibMidnight = Date.UTC(wib.getUTCFullYear(), wib.getUTCMonth(), wib.getUTCDate()) / 1000 - 7 * 3600;
      const wibFirst = Date.UTC(wib.getUTCFullYear(), wib.getUTCMonth(), 1) / 1000 - 7 * 3600;
      assert.ok(froms.includes(wibMidnight) && froms.includes(wibFirst), `today from ${wibMidnight}, month from ${wibFirst}: asked ${froms}`);

      // The maintenance form reads its times in WIB too: tomorrow 10:00–12:00 WIB is stored as such.
      const day = new Date(Date.now() + WIB_MS + 86400e3);
      const ymd = `${day.getUTCFullYear()}-${pad(day.getUTCMonth() + 1)}-${pad(day.getUTCDate())}`;
      await page.getByTestId('maintenance-from').fill(`${ymd}T10:00`);
      await page.getByTestId('maintenance-to').fill(`${ymd}T12:00`);
      await page.getByTestId('maintenance-reason').fill('Uji zona waktu');
      await page.getByTestId('maintenance-submit').click();
      await waitFor(async () => (await page.getByTestId('maintenance-message').getAttribute('data-state')) === 'ok', { message: 'the window saved' });
      const saved = (await get('api/v1/maintenance')).find((m) => m.reason === 'Uji zona waktu');
      const at10 = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), 10) - WIB_MS;
      assert.equal(saved.starts_ms, at10, `10:00 WIB stored as ${new Date(saved.starts_ms).toISOString()}`);
      assert.equal(saved.ends_ms, at10 + 2 * 3600e3);
      await waitFor(async () => / 10\.00\.00/.test(await page.getByTestId(`maintenance-row-${saved.id}`).textContent()), { message: 'the table shows 10.00.00' });
      assert.equal((await apiFetch(collector.url, operator, 'DELETE', `api/v1/maintenance/${saved.id}`)).status, 204);
      kit.assertClean(watch, 'times in WIB');
    } finally {
      await ctx.close();
    }
  });

  kit.step('an outage in a maintenance window shows as maintenance; the window is ended from the wall; the title counts and a new alarm is announced', async () => {
    const { ctx, page, watch } = await utcPage();
    try {
      await loginPage(page, collector.url, creds.operator);
      // Announcements: off by default, switched on from the buttons (the permission is asked there, never on load).
      const notifyBtn = page.getByTestId('alarm-notify');
      const soundBtn = page.getByTestId('alarm-sound');
      assert.equal(await notifyBtn.getAttribute('data-state'), 'off');
      assert.equal(await soundBtn.getAttribute('aria-pressed'), 'false');
      await notifyBtn.click();
      await waitFor(async () => (await notifyBtn.getAttribute('data-state')) === 'on', { message: 'notifications on' });
      await soundBtn.click();
      assert.equal(await soundBtn.getAttribute('aria-pressed'), 'true');
      assert.equal(await page.evaluate(() => [localStorage.getItem('simpul.alarmNotify'), localStorage.getItem('simpul.alarmSound')].join()), 'on,on');

      // bappeda-02 never connects: DOWN, an unacknowledged alarm; the title counts the unacknowledged ones.
      const alarmRow = page.locator('[data-testid="alerts"] li.alert[data-node="bappeda-02"]');
      await alarmRow.waitFor({ timeout: 90000 });
      const id = await alarmRow.getAttribute('data-id');
      if ((await alarmRow.getAttribute('data-acked')) === 'true') throw new Error('bappeda-02 acknowledged already');
      const titleCount = async () => Number((/^\((\d+)\) /.exec(await page.title()) || [])[1] || 0);
      const unacked = async () => Number(await page.getByTestId('alerts-count').getAttribute('data-unacked'));
      // Alarms come and go with the demo (its rural link is cut ~20 s after the start): counted from the rows on screen.
      const liveUnacked = () => page.locator('[data-testid="alerts"] li.alert[data-acked="false"]:not([data-maintenance])').count();
      const counted = async () => { const n = await liveUnacked(); return n === (await unacked()) && n === (await titleCount()); };
      await waitFor(async () => (await counted()) && (await unacked()) >= 1, { message: 'title "(n) …" = unacknowledged alarms' });
      assert.match(await page.title(), /^\(\d+\) Simpul NOC · Ringkasan$/);
      assert.equal(await page.getByTestId('node-status-bappeda-02').getAttribute('data-maintenance'), null);

      // A window over bappeda-02 from now: the alarm turns into maintenance, the tile too; the title no longer counts it.
      const now = Math.floor(Date.now() / 1000);
      const res = await apiFetch(collector.url, operator, 'POST', 'api/v1/maintenance',
        { node: 'bappeda-02', from: String(now), to: String(now + 3600), reason: 'Ganti catu daya' });
      const win = await created(res);
      await waitFor(async () => (await alarmRow.getAttribute('data-maintenance')) === 'true', { timeout: 30000, message: 'the alarm shows as maintenance' });
      assert.equal(await page.getByTestId(`alert-maint-${id}`).textContent(), 'Pemeliharaan');
      assert.equal(await alarmRow.locator('.sev').count(), 0, 'no severity badge: not a red alarm');
      assert.equal(await page.getByTestId(`ack-${id}`).count(), 0, 'nothing to acknowledge');
      assert.equal(await page.getByTestId(`alert-mw-${id}`).getAttribute('data-window'), String(win.id));
      assert.match(await page.getByTestId(`alert-mw-${id}`).textContent(), new RegExp(`s/d ${wibHMS((now + 3600) * 1000).slice(0, 5).replace('.', '\\.')}`), 'until when, in WIB');
      assert.equal(await page.getByTestId(`alert-mw-link-${id}`).getAttribute('href'), '#/availability');
      const tile = page.getByTestId('node-status-bappeda-02');
      await waitFor(async () => (await tile.getAttribute('data-maintenance')) === 'true', { message: 'the tile shows maintenance' });
      assert.match(await page.getByTestId('node-maint-bappeda-02').textContent(), /^pemeliharaan s\/d \d{2}\.\d{2}$/);
      await waitFor(counted, { message: 'neither the count nor the title counts it' });
      assert.match(await page.getByTestId('alerts-count').textContent(), /1 dalam pemeliharaan/);
      // Live alarms first, maintenance after.
      const order = await page.locator('[data-testid="alerts"] li.alert').evaluateAll((els) => els.map((e) => e.dataset.maintenance === 'true'));
      assert.deepEqual(order, [...order].sort((a, b) => Number(a) - Number(b)), `maintenance last: ${order}`);
      await page.screenshot({ path: path.join(SHOTS, 'wall-maintenance.png') });

      // The title count follows to other pages.
      await page.getByTestId('nav-incidents').click();
      await waitFor(async () => /^\(\d+\) /.test(await page.title()) && (await page.title()).includes('Insiden'), { message: 'the count on #/incidents' });
      // There the incident links its maintenance badge to the windows (change, end).
      const incMaint = page.getByTestId(`incident-maint-${id}`);
      await incMaint.waitFor({ timeout: 20000 });
      assert.equal(await incMaint.getAttribute('href'), '#/availability');
      await page.getByTestId('nav-overview').click();
      await alarmRow.waitFor();

      // End the window from the wall: the node is still down, so the alarm is back — and it is announced.
      const notesBefore = await page.evaluate(() => window.__notes.length);
      const beepsBefore = Number(await soundBtn.getAttribute('data-beeps'));
      await page.getByTestId(`alert-mw-end-${id}`).click();
      const ended = page.waitForResponse((r) => r.url().endsWith(`/api/v1/maintenance/${win.id}/end`) && r.request().method() === 'POST');
      await page.getByTestId('confirm-ok').click();
      assert.equal((await ended).status(), 200);
      const w = (await get('api/v1/maintenance')).find((x) => x.id === win.id);
      assert.ok(w.ends_ms <= Date.now() + 1000, `the window ended: ${JSON.stringify(w)}`);
      await waitFor(async () => (await alarmRow.getAttribute('data-maintenance')) === null && (await alarmRow.getAttribute('data-acked')) === 'false',
        { timeout: 20000, message: 'a red unacknowledged alarm again' });
      await waitFor(counted, { message: 'the title counts it again' });
      await waitFor(async () => (await page.evaluate(() => window.__notes.length)) > notesBefore, { message: 'a browser notification' });
      const note = (await page.evaluate(() => window.__notes)).at(-1);
      assert.equal(note.title, 'PADAM · bappeda-02');
      assert.match(note.body, /^Badan Perencanaan Pembangunan Daerah · Mayor · sejak \d{2}\.\d{2}\.\d{2}$/);
      await waitFor(async () => Number(await soundBtn.getAttribute('data-beeps')) > beepsBefore, { message: 'a beep' });
      await waitFor(async () => (await tile.getAttribute('data-maintenance')) === null, { message: 'the tile is down again' });

      // A reload announces nothing (a wall must not ring for what it showed), and the choices are kept.
      await page.reload();
      await page.locator('[data-testid="alerts"] li.alert').first().waitFor({ timeout: 30000 });
      await sleep(6000);
      assert.deepEqual(await page.evaluate(() => window.__notes), [], 'no notification on load');
      assert.equal(await page.getByTestId('alarm-notify').getAttribute('data-state'), 'on');
      assert.equal(await page.getByTestId('alarm-sound').getAttribute('aria-pressed'), 'true');
      kit.assertClean(watch, 'maintenance and announcements');
    } finally {
      await ctx.close();
    }
  });

  kit.step('a viewer sees maintenance too, with no button to end it', async () => {
    const now = Math.floor(Date.now() / 1000);
    const res = await apiFetch(collector.url, operator, 'POST', 'api/v1/maintenance',
      { agency: 'bappeda', from: String(now), to: String(now + 1800), reason: 'Pindah rak' });
    const win = await created(res);
    const { ctx, page, watch } = await utcPage();
    try {
      await loginPage(page, collector.url, creds.viewer);
      const row = page.locator('[data-testid="alerts"] li.alert[data-node="bappeda-02"][data-maintenance="true"]');
      await row.waitFor({ timeout: 30000 });
      const id = await row.getAttribute('data-id');
      assert.equal(await page.getByTestId(`alert-mw-end-${id}`).count(), 0, 'a viewer ends nothing');
      assert.equal(await page.getByTestId(`alert-mw-link-${id}`).textContent(), 'Jadwal');
      kit.assertClean(watch, 'viewer');
    } finally {
      await ctx.close();
      await apiFetch(collector.url, operator, 'POST', `api/v1/maintenance/${win.id}/end`);
    }
  });

  kit.step('top lists show what fits and "+N lagi" for the rest (1920×1080)', async () => {
    const { ctx, page, watch } = await utcPage();
    try {
      await loginPage(page, collector.url, creds.operator);
      // Enough entries to overflow: the demo's sites and blocked targets grow with its traffic.
      await waitFor(async () => (await page.locator('[data-testid="top-sites"] > li.rank').count()) >= 6
        && (await page.locator('[data-testid="blocked-wall"] > li.rank').count()) >= 3, { timeout: 120000, message: 'top sites and blocked targets' });
      await sleep(1500);
      let clipped = 0;
      for (const testid of ['top-agencies', 'top-sites', 'blocked-wall']) {
        const g = await page.evaluate(rankGeometry, testid);
        assert.equal(g.overflow, false, `${testid}: nothing drawn past its panel ${JSON.stringify(g)}`);
        assert.equal(g.shown + g.hidden, g.total);
        assert.ok(g.shown >= 1, `${testid}: at least one entry`);
        if (g.hidden) {
          clipped++;
          assert.ok(g.firstHiddenHeight + g.gap > g.room, `${testid}: an entry is hidden only when it does not fit ${JSON.stringify(g)}`);
          assert.equal(g.more?.text, `+${g.hidden} lagi`, `${testid}: "+N lagi" ${JSON.stringify(g)}`);
        } else {
          assert.equal(g.more, null, `${testid}: no "+N lagi" when all fit`);
        }
      }
      const dims = await page.evaluate(() => ({ w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight }));
      assert.ok(dims.w <= 1920 && dims.h <= 1080, `the wall fits 1920×1080 (${dims.w}×${dims.h})`);
      await page.screenshot({ path: path.join(SHOTS, 'wall-top-lists.png') });
      assert.ok(await page.getByTestId('agency-more').isHidden(), 'the demo\'s four agencies all in view');

      // "+N lagi": sites open the whole list; blocked targets lead to #/blocked.
      const sites = await page.evaluate(rankGeometry, 'top-sites');
      if (sites.more) {
        await page.getByTestId('top-sites-more').click();
        const dlg = page.getByTestId('top-sites-dialog');
        await dlg.waitFor();
        assert.equal(await dlg.locator('li.rank').count(), sites.total, 'the whole list');
        await page.getByTestId('top-sites-dialog-close').click();
        await dlg.waitFor({ state: 'detached' });
      }
      const blocked = await page.evaluate(rankGeometry, 'blocked-wall');
      if (blocked.more) assert.equal(blocked.more.href, '#/blocked');
      assert.ok(clipped >= 1, 'at least one list had more than fits (else this test proves nothing)');
      kit.assertClean(watch, 'top lists');
    } finally {
      await ctx.close();
    }
  });
});

describe('the wall at province scale (--province: 60 agencies, 120 real agents)', { timeout: 900000 }, () => {
  let collector;
  let browser;
  let creds;
  let admin;
  const kit = pageKit('wall-province', () => ({ browser, collector }));
  const get = (p) => getJSON(collector.url, p, admin);

  before(async () => {
    collector = await startCollector({ args: ['--province'] });
    creds = collector.credentials();
    admin = await apiLogin(collector.url, creds.admin);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
  });

  kit.step('agencies worst first; problem nodes as tiles, the healthy rest counted per agency and unfolded on click; one screen', async () => {
    // Most agents connected: the province is up, with the demo's own outages.
    await waitFor(async () => {
      const nodes = await get('api/v1/nodes');
      return nodes.length >= 120 && nodes.filter((n) => n.liveness === 'up').length >= 100;
    }, { timeout: 300000, interval: 2000, message: '≥ 100 of the province\'s nodes up' });
    const ov0 = await get('api/v1/overview');
    assert.ok(ov0.agencies.length >= 60, `${ov0.agencies.length} agencies`);

    const { page, watch } = await kit.newPage();
    await loginPage(page, collector.url, creds.operator);
    await page.locator('[data-testid="conn-status"][data-state="live"]').waitFor({ timeout: 60000 });
    const grid = page.getByTestId('node-grid');
    await waitFor(async () => (await grid.getAttribute('data-mode')) === 'problems', { timeout: 30000, message: 'the tiles give way to counts' });

    // What the wall shows = the API: every problem node a tile, every healthy one counted in its agency.
    const problemStates = new Set(['down', 'unreachable', 'flapping', 'unknown', 'never']);
    const state = (n) => (n.status === 'revoked' ? 'revoked' : ['up', 'down', 'unreachable', 'flapping'].includes(n.liveness) ? n.liveness
      : n.liveness === 'unknown' ? (n.status === 'never' ? 'never' : 'unknown') : n.status);
    const policyTrouble = (n) => ['failed', 'rejected'].includes(n.policy?.state);
    let shown;
    await waitFor(async () => {
      const nodes = await get('api/v1/nodes');
      shown = await page.evaluate(() => ({
        tiles: [...document.querySelectorAll('[data-testid="node-grid"] > li.node')].map((e) => ({ id: e.dataset.testid.slice('node-status-'.length), st: e.dataset.status })),
        sums: [...document.querySelectorAll('[data-testid^="node-sum-"]')].map((e) => ({ agency: e.dataset.agency, up: Number(e.dataset.up), revoked: Number(e.dataset.revoked) })),
      }));
      const want = nodes.filter((n) => problemStates.has(state(n)) || policyTrouble(n)).map((n) => n.node_id).sort();
      const tiles = shown.tiles.map((x) => x.id).sort();
      const counted = shown.sums.reduce((s, x) => s + x.up + x.revoked, 0);
      const perAgency = new Map();
      for (const n of nodes) if (!want.includes(n.node_id)) perAgency.set(n.agency, (perAgency.get(n.agency) || 0) + 1);
      return JSON.stringify(tiles) === JSON.stringify(want) && counted + tiles.length === nodes.length
        && shown.sums.every((x) => perAgency.get(x.agency) === x.up + x.revoked);
    }, { timeout: 30000, message: 'problem tiles and per-agency counts = /api/v1/nodes' });
    assert.ok(shown.sums.length >= 50, `${shown.sums.length} agencies counted`);
    assert.ok(shown.tiles.some((x) => x.id === 'bappeda-02'), 'the switched-off node has its tile');
    assert.match(await page.getByTestId('node-sum-dinkes').getAttribute('title'), /^Dinas Kesehatan: \d+ aktif$/);

    // Unfold one agency's healthy nodes, and fold them again.
    const sum = page.getByTestId('node-sum-dinkes');
    const ups = Number(await sum.getAttribute('data-up'));
    await sum.click();
    assert.equal(await sum.getAttribute('aria-expanded'), 'true');
    const unfolded = page.locator('[data-testid="node-grid"] > li.node[data-agency="dinkes"][data-status="up"]');
    await waitFor(async () => (await unfolded.count()) === ups, { message: `dinkes' ${ups} up nodes as tiles` });
    await sum.click();
    assert.equal(await sum.getAttribute('aria-expanded'), 'false');
    await waitFor(async () => (await unfolded.count()) === 0, { message: 'folded again' });

    // Agencies worst first: open problems, then how full the allocation is.
    const rows = await page.locator('[data-testid^="agency-row-"]').evaluateAll((els) => els.map((e) => ({
      code: e.dataset.code, problems: Number(e.dataset.problems), level: e.dataset.level,
    })));
    assert.ok(rows.length >= 60);
    const rank = { crit: 2, warn: 1 };
    for (let i = 1; i < rows.length; i++) {
      const [a, b] = [rows[i - 1], rows[i]];
      assert.ok(a.problems > b.problems || (a.problems === b.problems && (rank[a.level] || 0) >= (rank[b.level] || 0)),
        `worst first at ${i}: ${JSON.stringify(a)} before ${JSON.stringify(b)}`);
    }
    assert.ok(rows[0].problems > 0, `an agency with problems on top: ${JSON.stringify(rows.slice(0, 3))}`);
    assert.ok(rows.findIndex((r) => r.code === 'bappeda') < rows.findIndex((r) => r.problems === 0), 'bappeda (a node down) above every agency without problems');
    assert.notDeepEqual(rows.map((r) => r.code), [...rows.map((r) => r.code)].sort(), 'not alphabetical');
    // More rows than fit: the heading says how many lie below the edge — the least loaded, none with problems.
    await waitFor(async () => Number(await page.getByTestId('agency-more').getAttribute('data-hidden')) > 0, { message: 'agencies below the edge counted' });
    const below = await page.evaluate(() => {
      const panel = document.querySelector('.agencies-panel');
      const edge = panel.getBoundingClientRect().bottom - parseFloat(getComputedStyle(panel).paddingBottom);
      return [...document.querySelectorAll('[data-testid^="agency-row-"]')].filter((e) => e.getBoundingClientRect().bottom > edge + 0.5)
        .map((e) => ({ code: e.dataset.code, problems: Number(e.dataset.problems) }));
    });
    const more = page.getByTestId('agency-more');
    assert.equal(Number(await more.getAttribute('data-hidden')), below.length);
    assert.equal(await more.textContent(), `+${below.length} lagi di bawah`);
    assert.ok(below.every((r) => r.problems === 0), `no agency with problems below the edge: ${JSON.stringify(below.filter((r) => r.problems))}`);

    // One screen at 1920×1080, the node panel holding its tiles and counts without scrolling.
    await sleep(1500);
    const nodePanel = await page.locator('.nodes-panel').evaluate((el) => ({ sh: el.scrollHeight, ch: el.clientHeight }));
    assert.ok(nodePanel.sh <= nodePanel.ch + 1, `every tile and count in view: ${JSON.stringify(nodePanel)}`);
    const dims = await page.evaluate(() => ({ w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight }));
    assert.ok(dims.w <= 1920 && dims.h <= 1080, `the province wall fits 1920×1080 (${dims.w}×${dims.h})`);
    await page.screenshot({ path: path.join(SHOTS, 'wall-province.png') });
    kit.assertClean(watch, 'province wall');
  });
});
