// Browser tests of the NOC dashboard against the real collector in demo mode.
//   cargo build -p simpul-collector && npm ci --prefix tests/browser && node --test tests/browser/
// Env: SIMPUL_COLLECTOR_BIN (default target/debug/simpul-collector), SIMPUL_CHROMIUM (default /usr/bin/chromium).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  SHOTS, getJSON, launchBrowser, parseRate, readOverview, seriesPixels, sleep, startCollector, waitFor,
} from './helpers.js';

const SERIES_COLORS = ['#38bdf8', '#f472b6']; // charts.js COLORS.in / COLORS.out
const same = (a, b) => Math.abs(a - b) <= Math.max(1, Math.abs(b) * 1e-9);

describe('Simpul NOC dashboard (collector demo)', { timeout: 600000 }, () => {
  let collector;
  let browser;
  let context;
  let page;
  const pageErrors = [];
  const ticks = new Map(); // overview.ts (ms) → overview, from the page's own WebSocket
  let liveSockets = 0;

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    for (const f of readdirSync(SHOTS)) if (f.startsWith('failure-')) rmSync(path.join(SHOTS, f));
    collector = await startCollector();
    browser = await launchBrowser();
    context = await browser.newContext({
      viewport: { width: 1920, height: 1080 }, timezoneId: 'Asia/Jakarta', locale: 'id-ID',
    });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('websocket', (ws) => {
      if (!/\/api\/v1\/live$/.test(new URL(ws.url()).pathname)) return;
      liveSockets++;
      ws.on('framereceived', ({ payload }) => {
        let msg;
        try { msg = JSON.parse(payload); } catch (_) { return; }
        if (!msg?.overview?.ts) return;
        ticks.set(Date.parse(msg.overview.ts), msg.overview);
        if (ticks.size > 300) ticks.delete(ticks.keys().next().value);
      });
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
  });

  /** Run a test body; on failure save a screenshot and attach the collector's last output. */
  const step = (name, fn) => it(name, { timeout: 180000 }, async () => {
    try {
      await fn();
    } catch (err) {
      const file = path.join(SHOTS, `failure-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`);
      await page?.screenshot({ path: file, fullPage: true }).catch(() => {});
      err.message += `\n(screenshot: ${file})\n--- collector output (tail) ---\n${collector?.logTail()}`;
      throw err;
    }
  });

  step('overview loads live with at least 2 nodes up and 2 agencies', async () => {
    await page.goto(collector.url);
    assert.equal(await page.locator('h1').textContent(), 'Simpul');
    assert.equal(await page.getAttribute('html', 'lang'), 'id');
    await page.locator('[data-testid="conn-status"][data-state="live"]').waitFor({ timeout: 30000 });
    assert.ok(liveSockets >= 1, 'the page opened the /api/v1/live WebSocket');
    assert.ok(await page.locator('[data-testid="conn-banner"]').isHidden(), 'no disconnect banner while live');

    await waitFor(async () => (await page.locator('[data-testid^="node-status-"][data-status="up"]').count()) >= 2,
      { timeout: 90000, message: '≥ 2 nodes with status "up"' });
    const agencies = await page.locator('[data-testid^="agency-row-"]').count();
    assert.ok(agencies >= 2, `≥ 2 agencies shown, got ${agencies}`);

    // Every node the API knows is on the wall with the API's status, and up nodes say when they were seen.
    const api = await getJSON(collector.url, 'api/v1/overview');
    for (const n of api.nodes) {
      const tile = page.getByTestId(`node-status-${n.node_id}`);
      await waitFor(async () => (await tile.getAttribute('data-status')) !== null, { message: `tile of ${n.node_id}` });
    }
    const upSeen = await page.locator('[data-testid^="node-status-"][data-status="up"] [data-testid^="node-last-seen-"]').allTextContents();
    for (const s of upSeen) assert.match(s, /(\d+ (dtk|mnt|jam|hari) lalu|baru saja)$/, `relative "last seen" in Indonesian: ${s}`);

    // The wall fits one 1080p screen.
    await sleep(1500);
    const dims = await page.evaluate(() => ({ w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight }));
    assert.ok(dims.w <= 1920, `no horizontal overflow at 1920 px (scrollWidth ${dims.w})`);
    assert.ok(dims.h <= 1080, `no vertical overflow at 1080 px (scrollHeight ${dims.h})`);
  });

  step('live numbers change from tick to tick', async () => {
    const first = await readOverview(page);
    const key = (o) => JSON.stringify([o.uplinkIn, o.uplinkOut, o.agencies]);
    const seenTs = new Set([first.ts]);
    const changed = await waitFor(async () => {
      const now = await readOverview(page);
      seenTs.add(now.ts);
      return key(now) !== key(first) && now.ts !== first.ts ? now : null;
    }, { timeout: 20000, interval: 300, message: 'a displayed rate to change between ticks' });
    assert.ok(changed, 'rates changed');
    assert.ok(seenTs.size >= 2, 'the tick timestamp advanced');
    assert.equal(changed.source, 'ws', 'data comes from the WebSocket');
    const all = Object.values(changed.agencies).flatMap((a) => [a.in, a.out]);
    assert.ok(all.every((v) => Number.isFinite(v) && v >= 0), `rates are non-negative numbers: ${all}`);
  });

  step('displayed rates equal the tick received and /api/v1/overview', async () => {
    // 1. The DOM shows exactly the tick it says it shows (data-ts), for every agency.
    const shown = await waitFor(async () => {
      const s = await readOverview(page);
      return ticks.has(Date.parse(s.ts)) ? s : null;
    }, { timeout: 10000, message: 'the displayed tick among the WebSocket frames' });
    const tick = ticks.get(Date.parse(shown.ts));
    assert.deepEqual(Object.keys(shown.agencies).sort(), tick.agencies.map((a) => a.code).sort(), 'every agency of the tick is displayed');
    for (const a of tick.agencies) {
      assert.equal(shown.agencies[a.code].in, a.in_bps, `${a.code} in_bps`);
      assert.equal(shown.agencies[a.code].out, a.out_bps, `${a.code} out_bps`);
      // The formatted text says the same number (3 significant figures, Indonesian format).
      for (const [text, v] of [[shown.agencies[a.code].inText, a.in_bps], [shown.agencies[a.code].outText, a.out_bps]]) {
        const parsed = parseRate(text, 'id');
        assert.ok(parsed !== null, `"${text}" is an Indonesian-formatted rate`);
        assert.ok(Math.abs(parsed - v) <= Math.max(0.5, v * 0.006), `"${text}" shows ${v} bps`);
      }
    }
    assert.equal(shown.uplinkIn, tick.uplink.in_bps, 'uplink in_bps');
    assert.equal(shown.uplinkOut, tick.uplink.out_bps, 'uplink out_bps');

    // 2. The REST overview fetched at the same moment agrees with the page within one tick:
    //    the same tick (same ts) must match exactly; otherwise each value must lie between
    //    the page's tick just before and the tick just after the request.
    const misses = [];
    let nonzero = false;
    const ok = await waitFor(async () => {
      const beforeReq = await readOverview(page);
      const api = await getJSON(collector.url, 'api/v1/overview');
      let afterReq = await readOverview(page);
      if (afterReq.ts === beforeReq.ts) {
        afterReq = await waitFor(async () => { const s = await readOverview(page); return s.ts !== beforeReq.ts ? s : null; },
          { timeout: 5000, interval: 100, message: 'the next tick' });
      }
      const exact = [beforeReq, afterReq].find((s) => Date.parse(s.ts) === Date.parse(api.ts));
      const problems = [];
      const check = (name, v, lo, hi) => {
        if (v > 0) nonzero = true;
        if (exact) { if (!same(v, exact === beforeReq ? lo : hi)) problems.push(`${name}: api ${v} ≠ page ${exact === beforeReq ? lo : hi}`); return; }
        const min = Math.min(lo, hi); const max = Math.max(lo, hi);
        const slack = Math.max(1, max * 0.005);
        if (v < min - slack || v > max + slack) problems.push(`${name}: api ${v} outside page ticks [${lo}, ${hi}]`);
      };
      for (const a of api.agencies) {
        const b = beforeReq.agencies[a.code]; const n = afterReq.agencies[a.code];
        if (!b || !n) { problems.push(`${a.code} not displayed`); continue; }
        check(`${a.code}.in`, a.in_bps, b.in, n.in);
        check(`${a.code}.out`, a.out_bps, b.out, n.out);
      }
      check('uplink.in', api.uplink.in_bps, beforeReq.uplinkIn, afterReq.uplinkIn);
      check('uplink.out', api.uplink.out_bps, beforeReq.uplinkOut, afterReq.uplinkOut);
      if (problems.length) { misses.push(`api ts ${api.ts}, page ${beforeReq.ts}→${afterReq.ts}: ${problems.join('; ')}`); return false; }
      return true;
    }, { timeout: 45000, interval: 200, message: 'page and /api/v1/overview to agree within one tick' }).catch((e) => {
      e.message += `\n${misses.slice(-5).join('\n')}`;
      throw e;
    });
    assert.ok(ok);
    assert.ok(nonzero, 'the demo carries traffic (some rate > 0)');
  });

  step('language switch to English changes labels and number format, and persists', async () => {
    // The wall after a minute of demo traffic, still one screen.
    const dims = await page.evaluate(() => ({ w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight }));
    assert.ok(dims.w <= 1920 && dims.h <= 1080, `overview fits 1920×1080 (${dims.w}×${dims.h})`);
    await page.screenshot({ path: path.join(SHOTS, 'overview.png') });

    const heading = page.locator('#h-agencies');
    assert.equal(await heading.textContent(), 'Trafik instansi saat ini');
    assert.equal(await page.getByTestId('lang-switch').textContent(), 'EN');
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === 'en', { message: 'html lang="en"' });
    assert.equal(await heading.textContent(), 'Agency traffic now');
    assert.equal(await page.locator('#h-nodes').textContent(), 'Node status');
    assert.equal(await page.getByTestId('conn-status').textContent(), 'Live');
    const up = page.locator('[data-testid^="node-status-"][data-status="up"] .node-state').first();
    assert.equal(await up.textContent(), 'Up');
    const shown = await readOverview(page);
    for (const [code, a] of Object.entries(shown.agencies)) {
      const parsed = parseRate(a.inText, 'en');
      assert.ok(parsed !== null && Math.abs(parsed - a.in) <= Math.max(0.5, a.in * 0.006), `${code}: "${a.inText}" is an English-formatted ${a.in} bps`);
    }
    await page.screenshot({ path: path.join(SHOTS, 'overview-en.png') });

    await page.reload();
    await page.locator('[data-testid="conn-status"][data-state="live"]').waitFor({ timeout: 30000 });
    assert.equal(await page.locator('#h-agencies').textContent(), 'Agency traffic now', 'English kept after reload');
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === 'id', { message: 'back to html lang="id"' });
    assert.equal(await page.locator('#h-agencies').textContent(), 'Trafik instansi saat ini');
  });

  step('agency page draws the live and history charts and fills its tables', async () => {
    // Start from a fresh overview in Indonesian, whatever the earlier tests left behind.
    await page.evaluate(() => localStorage.setItem('simpul.lang', 'id'));
    await page.goto(collector.url);
    await page.locator('[data-testid="conn-status"][data-state="live"]').waitFor({ timeout: 30000 });
    const api = await getJSON(collector.url, 'api/v1/overview');
    const busiest = [...api.agencies].sort((a, b) => (b.in_bps + b.out_bps) - (a.in_bps + a.out_bps))[0];
    const known = new Set(api.agencies.map((a) => a.code));
    const code = (api.top_agencies || []).map((a) => a.code).find((c) => known.has(c)) || busiest.code;
    await page.locator(`[data-testid="agency-row-${code}"] a.agency-name`).waitFor({ timeout: 10000 });
    await page.locator(`[data-testid="agency-row-${code}"] a.agency-name`).click();
    await page.locator(`[data-testid="agency-page"][data-code="${code}"]`).waitFor();
    assert.equal(new URL(page.url()).hash, `#/agency/${code}`);

    // Live chart: 15 min per second from the snapshot, growing with ticks.
    const chart = page.getByTestId('live-chart');
    await waitFor(async () => Number(await chart.getAttribute('data-points')) >= 2 && Number(await chart.getAttribute('data-known')) >= 1,
      { timeout: 20000, message: 'live chart data' });
    await waitFor(async () => (await seriesPixels(page, '[data-testid="live-chart"]', SERIES_COLORS)) > 50,
      { timeout: 20000, message: 'live chart lines drawn' });
    const k1 = Number(await chart.getAttribute('data-known'));
    await waitFor(async () => Number(await chart.getAttribute('data-known')) > k1 || k1 >= 900,
      { timeout: 10000, message: `live chart to take in new ticks (had ${k1} points)` });

    // History chart: 24 h at 1 min, then 7 days at 1 h.
    await waitFor(async () => (await page.getByTestId('history-chart').getAttribute('data-range')) === '24h'
      && Number(await page.getByTestId('history-chart').getAttribute('data-points')) > 0, { message: '24 h history loaded' });
    await waitFor(async () => (await seriesPixels(page, '[data-testid="history-chart"]', SERIES_COLORS)) > 50,
      { message: 'history chart lines drawn' });
    assert.match(await page.getByTestId('history-totals').textContent(), /^Total: unduh .+ · unggah .+/);
    await page.screenshot({ path: path.join(SHOTS, 'agency.png'), fullPage: true });

    const weekly = page.waitForResponse((r) => /\/usage\?.*step=1h/.test(r.url()));
    await page.getByTestId('range-7d').click();
    assert.equal((await weekly).status(), 200);
    assert.equal(await page.getByTestId('range-7d').getAttribute('aria-pressed'), 'true');
    await waitFor(async () => (await page.getByTestId('history-chart').getAttribute('data-range')) === '7d'
      && (await seriesPixels(page, '[data-testid="history-chart"]', SERIES_COLORS)) > 50, { message: '7 day history drawn' });
    await page.getByTestId('range-24h').click();

    // Tables (refreshed every 15 s by the page while the demo produces flows).
    for (const [testid, what] of [['top-hosts-table', 'top hosts'], ['top-sites-table', 'top sites'], ['flows-table', 'recent flows']]) {
      await waitFor(async () => (await page.locator(`[data-testid="${testid}"] tbody tr[data-testid]`).count()) > 0,
        { timeout: 60000, message: `${what} rows` });
      const headers = await page.locator(`[data-testid="${testid}"] thead th`).count();
      assert.ok(headers >= 4, `${what} has column headers`);
    }
    const flowCells = await page.locator('[data-testid="flows-table"] tbody tr[data-testid] td').first().locator('xpath=..').locator('td').allTextContents();
    assert.equal(flowCells.length, 10, 'flow row: time, unit, initiator, destination, site, source, proto, scope, bytes ↑, bytes ↓');
    assert.match(flowCells[6], /^(TCP|UDP|ICMP|ICMPv6|\d+)/, `protocol cell: ${flowCells[6]}`);
    assert.match(flowCells[9], /\d.*B$/, `bytes cell: ${flowCells[9]}`);
    // The same rows as the API (newest first).
    const flows = await getJSON(collector.url, `api/v1/flows?agency=${code}&limit=50`);
    assert.ok(flows.length > 0, 'the API has flows for the agency');
    assert.ok(flows.every((f) => f.agency === code), 'flows API filters by agency');

    await page.screenshot({ path: path.join(SHOTS, 'agency-tables.png'), fullPage: true });
    assert.deepEqual(pageErrors, [], 'no uncaught page errors');
  });

  step('blocked attempts: wall panel, #/blocked and the agency page, in Indonesian then English', async () => {
    // The demo agents check the replayed traffic against demo blocking policies.
    await page.evaluate(() => localStorage.setItem('simpul.lang', 'id'));
    await page.goto(collector.url);
    await page.locator('[data-testid="conn-status"][data-state="live"]').waitFor({ timeout: 30000 });
    assert.equal(await page.locator('#h-blocked').textContent(), 'Upaya akses diblokir · 15 mnt');
    const wallRows = page.locator('[data-testid="blocked-wall"] li[data-testid^="blocked-wall-"]');
    await waitFor(async () => (await wallRows.count()) > 0, { timeout: 60000, message: 'blocked targets on the wall' });
    // The wall shows the API's top targets, in its order, with their attempts.
    await waitFor(async () => {
      const api = await getJSON(collector.url, 'api/v1/blocked/summary?limit=10');
      const shown = await page.evaluate(() => [...document.querySelectorAll('[data-testid^="blocked-wall-"][data-target]')]
        .map((li) => [li.dataset.target, Number(li.dataset.value)]));
      const want = api.targets.map((x) => [x.target, x.attempts]);
      return api.targets.length > 0 && JSON.stringify(shown) === JSON.stringify(want);
    }, { timeout: 20000, message: 'wall blocked targets = /api/v1/blocked/summary' });
    assert.match(await page.getByTestId('blocked-wall-total').textContent(), /^\d[\d.]* upaya$/);
    const dims = await page.evaluate(() => ({ w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight }));
    assert.ok(dims.w <= 1920 && dims.h <= 1080, `the wall with the blocked panel fits 1920×1080 (${dims.w}×${dims.h})`);

    // #/blocked: every agency, Indonesian.
    await page.getByTestId('blocked-details-link').click();
    await page.getByTestId('blocked-page').waitFor();
    const recent = page.locator('[data-testid="blocked-recent-table"] tbody tr[data-testid]');
    await waitFor(async () => (await recent.count()) > 0, { timeout: 30000, message: 'recent blocked attempts' });
    assert.equal(await page.locator('#h-blocked-panel').textContent(), 'Upaya akses diblokir');
    assert.deepEqual(await page.locator('[data-testid="blocked-recent-table"] thead th').allTextContents(),
      ['Terakhir', 'Instansi / unit', 'Klien', 'Target', 'Metode', 'Aturan · daftar', 'Upaya']);
    assert.ok((await page.locator('[data-testid="blocked-targets-table"] tbody tr[data-testid]').count()) > 0, 'top targets rows');
    assert.ok((await page.locator('[data-testid="blocked-clients-table"] tbody tr[data-testid]').count()) > 0, 'top clients rows');
    assert.ok((await page.locator('[data-testid^="blocked-agency-"]').count()) > 0, 'attempts per agency');
    // The rows are the API's, newest first (the page refreshes every 5 s).
    const agencies = await getJSON(collector.url, 'api/v1/agencies');
    const named = (code) => agencies.find((a) => a.code === code)?.name || code;
    await waitFor(async () => {
      const api = await getJSON(collector.url, 'api/v1/blocked?limit=50');
      const cells = await page.evaluate(() => [...document.querySelectorAll('[data-testid="blocked-recent-table"] tbody tr[data-testid]')]
        .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
      if (cells.length !== api.length) return false;
      return api.every((r, i) => cells[i][1].startsWith(`${named(r.agency)} / `) && cells[i][2] === r.client
        && cells[i][3] === r.target && cells[i][5] === `${r.rule} · ${r.list}` && cells[i][6] === String(r.attempts));
    }, { timeout: 30000, message: 'recent attempts table = /api/v1/blocked' });
    const method = await page.locator('[data-testid="blocked-row-1"] [data-method]').getAttribute('data-method');
    assert.ok(['dns', 'sni', 'quic', 'http', 'address', 'port', 'dot', 'doh', 'quic_protocol'].includes(method), `method ${method}`);
    // Refreshed by itself.
    const refresh = await page.waitForResponse((r) => /\/api\/v1\/blocked\?limit=50$/.test(r.url()), { timeout: 10000 });
    assert.equal(refresh.status(), 200);
    await page.screenshot({ path: path.join(SHOTS, 'blocked.png'), fullPage: true });

    // English after switching, same rows.
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === 'en', { message: 'html lang="en"' });
    assert.equal(await page.locator('#h-blocked-panel').textContent(), 'Blocked attempts');
    assert.deepEqual(await page.locator('[data-testid="blocked-recent-table"] thead th').allTextContents(),
      ['Last seen', 'Agency / unit', 'Client', 'Target', 'Method', 'Rule · list', 'Attempts']);
    await waitFor(async () => (await recent.count()) > 0, { message: 'rows after the language switch' });
    assert.match(await page.getByTestId('blocked-total').textContent(), /^\d[\d,]* attempts? in 15 min$/);
    await page.screenshot({ path: path.join(SHOTS, 'blocked-en.png'), fullPage: true });

    // The agency page shows the same panel for its agency only (units, no agency column).
    const summary = await getJSON(collector.url, 'api/v1/blocked/summary');
    const code = summary.agencies[0].agency;
    await page.goto(`${collector.url}#/agency/${code}`);
    await page.locator(`[data-testid="agency-page"][data-code="${code}"]`).waitFor();
    await waitFor(async () => (await recent.count()) > 0, { timeout: 30000, message: `blocked attempts of ${code}` });
    assert.equal(await page.locator('#h-blocked-panel').textContent(), 'Blocked attempts');
    assert.equal((await page.locator('[data-testid="blocked-recent-table"] thead th').allTextContents())[1], 'Unit');
    const mine = await getJSON(collector.url, `api/v1/blocked?agency=${code}&limit=50`);
    assert.ok(mine.length > 0 && mine.every((r) => r.agency === code), 'the API filters by agency');
    await waitFor(async () => {
      const api = await getJSON(collector.url, `api/v1/blocked?agency=${code}&limit=50`);
      const shown = await page.evaluate(() => [...document.querySelectorAll('[data-testid="blocked-recent-table"] tbody tr[data-testid]')]
        .map((tr) => tr.querySelectorAll('td')[3].textContent));
      return JSON.stringify(shown) === JSON.stringify(api.map((r) => r.target));
    }, { timeout: 30000, message: `the agency page's rows = /api/v1/blocked?agency=${code}` });

    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === 'id', { message: 'back to html lang="id"' });
    assert.equal(await page.locator('#h-blocked-panel').textContent(), 'Upaya akses diblokir');
    assert.deepEqual(pageErrors, [], 'no uncaught page errors');
  });

  step('WebSocket failure shows the disconnect banner and falls back to polling', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 }, timezoneId: 'Asia/Jakarta' });
    try {
      const p = await ctx.newPage();
      let allowWs = false;
      await p.routeWebSocket(/\/api\/v1\/live$/, (ws) => { if (allowWs) ws.connectToServer(); else ws.close(); });
      let failOverview = false;
      await p.route(/\/api\/v1\/overview$/, (route) => (failOverview ? route.abort('connectionrefused') : route.continue()));
      await p.goto(collector.url);
      const banner = p.getByTestId('conn-banner');

      // WebSocket refused, HTTP works: polling, banner says the live feed is cut.
      await p.locator('[data-testid="conn-status"][data-state="polling"]').waitFor({ timeout: 15000 });
      assert.ok(await banner.isVisible(), 'banner visible');
      assert.equal(await banner.getAttribute('aria-live'), 'assertive');
      assert.match(await banner.textContent(), /terputus/i);
      await waitFor(async () => (await readOverview(p)).source === 'poll' && (await p.locator('[data-testid^="agency-row-"]').count()) >= 2,
        { timeout: 10000, message: 'agencies shown from polling' });

      // Nothing works: "Terputus" and the last data stays on screen.
      failOverview = true;
      await p.locator('[data-testid="conn-status"][data-state="down"]').waitFor({ timeout: 15000 });
      assert.match(await banner.textContent(), /^Terputus dari kolektor/);
      assert.ok((await p.locator('[data-testid^="agency-row-"]').count()) >= 2, 'last data still shown');
      await p.screenshot({ path: path.join(SHOTS, 'overview-disconnected.png') });

      // The collector is back: the page reconnects by itself and the banner goes away.
      failOverview = false;
      allowWs = true;
      await p.locator('[data-testid="conn-status"][data-state="live"]').waitFor({ timeout: 45000 });
      await waitFor(async () => banner.isHidden(), { message: 'banner hidden after reconnect' });
      await waitFor(async () => (await readOverview(p)).source === 'ws', { message: 'WebSocket data after reconnect' });
    } finally {
      await ctx.close();
    }
  });
});
