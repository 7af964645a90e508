// Browser tests of the NOC dashboard against the real collector in demo mode,
// logged in as the demo's operator (the API checks use an admin session).
//   cargo build -p simpul-demo && npm ci --prefix tests/browser && node --test tests/browser/
// Env: SIMPUL_DEMO_BIN (default target/debug/simpul-demo), SIMPUL_CHROMIUM (default /usr/bin/chromium).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  SHOTS, apiFetch, apiLogin, getJSON, launchBrowser, loginPage, parseRate, readOverview, seriesPixels, sleep, startCollector,
  waitFor, watchPage,
  stepWithShots,
} from './helpers.js';

const SERIES_COLORS = ['#38bdf8', '#f472b6']; // charts.js COLORS.in / COLORS.out
// The live feed rounds moving rates to 3 significant digits (at most 0.5 % off).
const near = (a, b) => Math.abs(a - b) <= Math.max(1, Math.abs(b) * 0.005);

/** A live-feed patch applied to a copy of `cur` (see collector/src/live/delta.rs). */
function patched(cur, p) {
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return p;
  if ('=' in p) return p['='];
  if (Array.isArray(cur) && '@' in p) {
    const out = cur.slice();
    for (const [i, ip] of Object.entries(p['@'])) out[Number(i)] = patched(out[Number(i)], ip);
    return out;
  }
  if (cur === null || typeof cur !== 'object') return p;
  const out = { ...cur };
  for (const [k, v] of Object.entries(p)) out[k] = patched(cur[k], v);
  return out;
}

/** The agencies' rates of a patch: [index, in, out, internet in/out, intranet in/out, …]. */
function withRates(ov, r) {
  const f = ['in_bps', 'out_bps', 'internet_in_bps', 'internet_out_bps', 'intranet_in_bps', 'intranet_out_bps'];
  const agencies = ov.agencies.slice();
  for (let j = 0; j + 7 <= (r || []).length; j += 7) {
    agencies[r[j]] = { ...agencies[r[j]] };
    f.forEach((k, i) => { agencies[r[j]][k] = r[j + 1 + i]; });
  }
  return { ...ov, agencies };
}

/** Ids of the open incidents that are alarms: all but the unreachable ones whose root has an open incident. */
function alarmIds(open) {
  const roots = new Set(open.filter((i) => i.kind !== 'unreachable').map((i) => i.node_id));
  return open.filter((i) => !(i.kind === 'unreachable' && roots.has(i.root_cause))).map((i) => i.id).sort((a, b) => a - b);
}

describe('Simpul NOC dashboard (collector demo)', { timeout: 600000 }, () => {
  let collector;
  let browser;
  let context;
  let page;
  let watch; // uncaught errors and CSP violations of the page
  let creds; // the demo's accounts
  let api; // an admin session for the API checks
  const get = (p) => getJSON(collector.url, p, api);
  const ticks = new Map(); // overview.ts (ms) → overview, from the page's own WebSocket
  let liveSockets = 0;

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    for (const f of readdirSync(SHOTS)) if (f.startsWith('failure-') && !f.startsWith('failure-access-')) rmSync(path.join(SHOTS, f));
    collector = await startCollector();
    creds = collector.credentials();
    api = await apiLogin(collector.url, creds.admin);
    browser = await launchBrowser();
    context = await browser.newContext({
      viewport: { width: 1920, height: 1080 }, timezoneId: 'Asia/Jakarta', locale: 'id-ID',
    });
    page = await context.newPage();
    watch = await watchPage(page);
    page.on('websocket', (ws) => {
      if (!/\/api\/v1\/live$/.test(new URL(ws.url()).pathname)) return;
      liveSockets++;
      // A snapshot, then patches: the overview each second, rebuilt here
      // independently of the page's live.js.
      let cur = null;
      ws.on('framereceived', ({ payload }) => {
        let msg;
        try { msg = JSON.parse(payload); } catch (_) { return; }
        if (msg?.type === 'snapshot') cur = msg.overview;
        else if (msg?.type === 'delta' && cur) cur = withRates(patched(cur, msg.o), msg.r);
        else return;
        if (!cur?.ts) return;
        ticks.set(Date.parse(cur.ts), cur);
        if (ticks.size > 300) ticks.delete(ticks.keys().next().value);
      });
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
  });

  /** No uncaught error and no Content-Security-Policy violation on the page so far. */
  const assertClean = () => {
    assert.deepEqual(watch.errors, [], 'no uncaught page errors');
    assert.deepEqual(watch.csp, [], 'no Content-Security-Policy violations');
  };

  /** Run a test body; on failure save a screenshot and attach the collector's last output. */
  const step = stepWithShots('', () => page, () => collector, { timeout: 180000 });

  step('the operator logs in; the overview loads live with at least 2 nodes up and 2 agencies', async () => {
    // Nothing but the login page before a login.
    await page.goto(collector.url);
    await page.getByTestId('login-form').waitFor({ timeout: 30000 });
    assert.equal(await page.locator('h1').textContent(), 'Simpul');
    assert.equal(await page.getAttribute('html', 'lang'), 'id');
    assert.equal(await page.locator('#login-title').textContent(), 'Masuk ke Simpul NOC');
    assert.equal(await page.locator('[data-testid^="agency-row-"]').count(), 0, 'no data before the login');
    assert.equal(liveSockets, 0, 'no live feed before the login');
    await loginPage(page, collector.url, creds.operator);
    assert.equal(await page.getByTestId('user-name').textContent(), 'Operator NOC');
    assert.equal(await page.getByTestId('user-role').textContent(), 'Operator');
    assert.equal(await page.getByTestId('nav-admin').count(), 0, 'no admin screens for an operator');
    await page.locator('[data-testid="conn-status"][data-state="live"]').waitFor({ timeout: 30000 });
    assert.ok(liveSockets >= 1, 'the page opened the /api/v1/live WebSocket');
    assert.ok(await page.locator('[data-testid="conn-banner"]').isHidden(), 'no disconnect banner while live');

    await waitFor(async () => (await page.locator('[data-testid^="node-status-"][data-status="up"]').count()) >= 2,
      { timeout: 90000, message: '≥ 2 nodes with status "up"' });
    const agencies = await page.locator('[data-testid^="agency-row-"]').count();
    assert.ok(agencies >= 2, `≥ 2 agencies shown, got ${agencies}`);

    // Every node the API knows is on the wall with the API's status, and up nodes say when they were seen.
    const api = await get('api/v1/overview');
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

  step('outage alarms on the wall: demo incidents, unreachable under their root, liveness; the operator acknowledges under its own name', async () => {
    // The demo: bappeda-02 never connects (DOWN ~12 s after the start); the
    // rural link of disdik-kec-01 and the school behind it is cut 20 s after
    // the start (one grouped outage, the school unreachable under it).
    assert.equal(await page.locator('#h-alerts').textContent(), 'Gangguan aktif');
    const rows = page.locator('[data-testid="alerts"] li.alert');
    await waitFor(async () => (await rows.count()) > 0, { timeout: 30000, message: 'an incident of the demo on the wall' });
    await waitFor(async () => (await get('api/v1/incidents?open=true&limit=500')).some((i) => i.kind === 'group_down'),
      { timeout: 45000, message: 'the grouped outage of the flaky rural link' });

    // The alarms are the open incidents, except unreachable nodes whose root has an open incident.
    let open;
    await waitFor(async () => {
      open = await get('api/v1/incidents?open=true&limit=500');
      const want = alarmIds(open);
      const shown = await page.evaluate(() => [...document.querySelectorAll('[data-testid="alerts"] li.alert')].map((li) => Number(li.dataset.id)).sort((a, b) => a - b));
      return open.some((i) => i.kind === 'group_down') && JSON.stringify(shown) === JSON.stringify(want);
    }, { timeout: 20000, message: 'wall alarms = open incidents with unreachable ones under their root' });
    const grouped = open.find((i) => i.kind === 'group_down');
    const row = page.locator(`[data-testid="alerts"] li.alert[data-id="${grouped.id}"]`);
    assert.equal(await row.getAttribute('data-node'), 'disdik-kec-01');
    assert.equal(await row.getAttribute('data-severity'), 'critical', 'the demo topology makes the kecamatan router critical');
    assert.match(await page.getByTestId(`kind-${grouped.id}`).textContent(), /^PADAM \+\d+$/);
    const children = await row.locator('[data-testid^="alert-children-"] .child').evaluateAll((els) => els.map((e) => e.dataset.node));
    const cutOff = new Set([...grouped.children, ...open.filter((i) => i.kind === 'unreachable' && i.root_cause === grouped.node_id).map((i) => i.node_id)]);
    assert.deepEqual(children.sort(), [...cutOff].sort(), 'the nodes cut off are listed under their root');
    assert.ok(cutOff.has('disdik-sd-01'), `the school is unreachable under the hub: ${JSON.stringify(grouped)}`);
    for (const c of cutOff) {
      assert.equal(await page.locator(`[data-testid="alerts"] li.alert[data-node="${c}"]`).count(), 0, `${c} is not an alarm of its own`);
    }
    for (const li of await rows.all()) {
      assert.match(await li.locator('.kind').textContent(), /^(PADAM( \+\d+)?|TAK TERJANGKAU|TIDAK STABIL|KESEHATAN AGEN|JAM MELESET)$/);
      assert.match(await li.locator('.alert-since').textContent(), /^(\d+ (dtk|mnt|jam|hari) lalu|baru saja)$/);
      assert.ok(['critical', 'major', 'minor', 'info'].includes(await li.getAttribute('data-severity')));
    }
    // Unacknowledged first, then by severity.
    const order = await rows.evaluateAll((els) => els.map((e) => [e.dataset.acked, e.dataset.severity]));
    const rank = { critical: 0, major: 1, minor: 2, info: 3 };
    for (let i = 1; i < order.length; i++) {
      const [a, b] = [order[i - 1], order[i]];
      assert.ok(a[0] < b[0] || (a[0] === b[0] && rank[a[1]] <= rank[b[1]]), `alarm order: ${JSON.stringify(order)}`);
    }

    // Node tiles follow the detector's liveness: unreachable and down are told apart.
    await waitFor(async () => {
      const nodes = await get('api/v1/nodes');
      const tiles = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('[data-testid^="node-status-"]')]
        .map((el) => [el.dataset.testid.slice('node-status-'.length), el.dataset.status])));
      const live = nodes.filter((n) => ['up', 'down', 'unreachable', 'flapping'].includes(n.liveness));
      return live.some((n) => n.liveness === 'unreachable') && live.every((n) => tiles[n.node_id] === n.liveness);
    }, { timeout: 20000, message: 'node tiles = /api/v1/nodes liveness, with an unreachable node' });
    assert.equal(await page.locator('[data-testid="node-status-bappeda-02"]').getAttribute('data-status'), 'down');
    assert.equal(await page.locator('[data-testid="node-status-disdik-sd-01"] .node-state').textContent(), 'Tak terjangkau');
    const dims = await page.evaluate(() => ({ w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight }));
    assert.ok(dims.w <= 1920 && dims.h <= 1080, `the wall with alarms fits 1920×1080 (${dims.w}×${dims.h})`);
    await page.screenshot({ path: path.join(SHOTS, 'alarms.png') });

    // Acknowledge the first alarm: no name to type, the server takes it from the session.
    const first = rows.and(page.locator('[data-acked="false"]')).first();
    const id = await first.getAttribute('data-id');
    const node = await first.getAttribute('data-node');
    const t0 = Date.now();
    const posted = page.waitForResponse((r) => r.url().endsWith(`/api/v1/incidents/${id}/ack`) && r.request().method() === 'POST');
    await page.getByTestId(`ack-${id}`).click();
    const res = await posted;
    assert.equal(res.status(), 200);
    assert.ok(res.request().headers()['x-csrf-token'], 'the acknowledgement carries the CSRF token');
    assert.equal(res.request().postData(), null, 'no body: nobody names themselves');
    await waitFor(async () => /^Diterima Operator NOC · \d{2}\.\d{2}\.\d{2}$/.test(await page.getByTestId(`acked-${id}`).textContent()),
      { timeout: 10000, message: 'the row says the operator acknowledged it' });
    assert.equal(await page.getByTestId(`acked-${id}`).getAttribute('data-by'), 'Operator NOC');
    assert.equal(await page.locator(`[data-testid="alerts"] li.alert[data-id="${id}"]`).getAttribute('data-acked'), 'true');
    const acked = (await get(`api/v1/incidents?node=${node}&limit=500`)).find((i) => String(i.id) === id);
    assert.equal(acked.acked_by, 'Operator NOC', 'the API shows who acknowledged it');
    assert.ok(acked.acked_ms >= t0 - 5000 && acked.acked_ms <= Date.now() + 5000, `acked_ms ${acked.acked_ms} is now`);

    // The next one too.
    const second = rows.and(page.locator('[data-acked="false"]')).first();
    const id2 = await second.getAttribute('data-id');
    const posted2 = page.waitForResponse((r) => r.url().endsWith(`/api/v1/incidents/${id2}/ack`) && r.request().method() === 'POST');
    await page.getByTestId(`ack-${id2}`).click();
    assert.equal((await posted2).status(), 200);
    await page.getByTestId(`acked-${id2}`).waitFor({ timeout: 10000 });
    // A later acknowledgement (the admin, elsewhere) keeps the first.
    const again = await apiFetch(collector.url, api, 'POST', `api/v1/incidents/${id}/ack`);
    assert.equal(again.status, 200);
    assert.equal((await again.json()).acked_by, 'Operator NOC');
    // Without the CSRF header the session cookie alone changes nothing.
    const forged = await apiFetch(collector.url, { cookie: api.cookie, csrf: '' }, 'POST', `api/v1/incidents/${id}/ack`);
    assert.equal(forged.status, 403);
    assertClean();
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
    //    the same tick (same ts) must match (exactly, or rounded to 3 digits while rates move); otherwise each value must lie between
    //    the page's tick just before and the tick just after the request.
    const misses = [];
    let nonzero = false;
    const ok = await waitFor(async () => {
      const beforeReq = await readOverview(page);
      const api = await get('api/v1/overview');
      let afterReq = await readOverview(page);
      if (afterReq.ts === beforeReq.ts) {
        afterReq = await waitFor(async () => { const s = await readOverview(page); return s.ts !== beforeReq.ts ? s : null; },
          { timeout: 5000, interval: 100, message: 'the next tick' });
      }
      const exact = [beforeReq, afterReq].find((s) => Date.parse(s.ts) === Date.parse(api.ts));
      const problems = [];
      const check = (name, v, lo, hi) => {
        if (v > 0) nonzero = true;
        if (exact) { if (!near(exact === beforeReq ? lo : hi, v)) problems.push(`${name}: api ${v} ≠ page ${exact === beforeReq ? lo : hi}`); return; }
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
    const api = await get('api/v1/overview');
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
    // The allocation in force over the range is drawn (dashed, amber), in
    // view even when the traffic stays far below it.
    assert.ok(Number(await page.getByTestId('history-chart').getAttribute('data-alloc-runs')) >= 1, 'allocation runs in the history');
    await waitFor(async () => (await seriesPixels(page, '[data-testid="history-chart"]', ['#fbbf24'])) > 100,
      { message: 'allocation lines drawn on the history chart' });
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
    assert.equal(flowCells.length, 11, 'flow row: time, unit, initiator, destination, site, source, proto, scope, bytes ↑, bytes ↓, origin');
    assert.match(flowCells[6], /^(TCP|UDP|ICMP|ICMPv6|\d+)/, `protocol cell: ${flowCells[6]}`);
    assert.match(flowCells[9], /\d.*B$/, `bytes cell: ${flowCells[9]}`);
    // The same rows as the API (newest first).
    const flows = await get(`api/v1/flows?agency=${code}&limit=50`);
    assert.ok(flows.length > 0, 'the API has flows for the agency');
    assert.ok(flows.every((f) => f.agency === code), 'flows API filters by agency');

    await page.screenshot({ path: path.join(SHOTS, 'agency-tables.png'), fullPage: true });
    assertClean();
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
      const api = await get('api/v1/blocked/summary?limit=10');
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
      ['Terakhir', 'Instansi / unit', 'Klien', 'Target', 'Metode', 'Aturan', 'Upaya']);
    assert.ok((await page.locator('[data-testid="blocked-targets-table"] tbody tr[data-testid]').count()) > 0, 'top targets rows');
    assert.ok((await page.locator('[data-testid="blocked-clients-table"] tbody tr[data-testid]').count()) > 0, 'top clients rows');
    assert.ok((await page.locator('[data-testid^="blocked-agency-"]').count()) > 0, 'attempts per agency');
    // The rows are the API's, newest first (the page refreshes every 5 s),
    // each rule said as a reader says it (never the matcher's "quic · quic").
    const ruleText = (r) => ({
      domains: `domain ${r.rule} (daftar instansi)`, cidrs: `alamat ${r.rule} diblokir`, ports: `port ${r.rule} ditutup`,
      doh: `resolver DoH ${r.rule}`, dot: 'DNS-over-TLS ditutup (port 853)', quic: 'QUIC ditutup (UDP 443)',
    }[r.list] ?? `${r.rule} · kategori ${r.list}`);
    const agencies = await get('api/v1/agencies');
    const named = (code) => agencies.find((a) => a.code === code)?.name || code;
    await waitFor(async () => {
      const api = await get('api/v1/blocked?limit=50');
      const cells = await page.evaluate(() => [...document.querySelectorAll('[data-testid="blocked-recent-table"] tbody tr[data-testid]')]
        .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
      if (cells.length !== api.length) return false;
      return api.every((r, i) => cells[i][1].startsWith(`${named(r.agency)} / `) && cells[i][2] === r.client
        && cells[i][3] === r.target && cells[i][5] === ruleText(r) && cells[i][6] === String(r.attempts));
    }, { timeout: 30000, message: 'recent attempts table = /api/v1/blocked' });
    const method = await page.locator('[data-testid="blocked-row-1"] [data-method]').getAttribute('data-method');
    assert.ok(['dns', 'sni', 'quic', 'http', 'address', 'port', 'dot', 'doh', 'quic_protocol'].includes(method), `method ${method}`);
    // Refreshed by itself.
    const refresh = await page.waitForResponse((r) => /\/api\/v1\/blocked\?limit=50$/.test(r.url()), { timeout: 10000 });
    assert.equal(refresh.status(), 200);
    // A longer range: the API is asked from then on, the titles say so.
    const longer = page.waitForResponse((r) => /\/api\/v1\/blocked\/summary\?limit=10&from=\d+$/.test(r.url()));
    await page.getByTestId('blocked-range-24h').click();
    const from = Number(new URL((await longer).url()).searchParams.get('from'));
    assert.ok(Math.abs(Date.now() / 1000 - 86400 - from) < 120, `from ${from} is 24 h back`);
    await waitFor(async () => /dalam 24 jam$/.test(await page.getByTestId('blocked-total').textContent()), { message: 'the total names 24 h' });
    assert.equal(await page.locator('#h-blocked-targets').textContent(), 'Target teratas · 24 jam');
    assert.equal(await page.getByTestId('blocked-range-24h').getAttribute('aria-pressed'), 'true');
    await page.getByTestId('blocked-range-15m').click();
    await waitFor(async () => /dalam 15 mnt$/.test(await page.getByTestId('blocked-total').textContent()), { message: 'back to 15 min' });
    await page.screenshot({ path: path.join(SHOTS, 'blocked.png'), fullPage: true });

    // English after switching, same rows.
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === 'en', { message: 'html lang="en"' });
    assert.equal(await page.locator('#h-blocked-panel').textContent(), 'Blocked attempts');
    assert.deepEqual(await page.locator('[data-testid="blocked-recent-table"] thead th').allTextContents(),
      ['Last seen', 'Agency / unit', 'Client', 'Target', 'Method', 'Rule', 'Attempts']);
    await waitFor(async () => (await recent.count()) > 0, { message: 'rows after the language switch' });
    assert.match(await page.getByTestId('blocked-total').textContent(), /^\d[\d,]* attempts? in 15 min$/);
    await page.screenshot({ path: path.join(SHOTS, 'blocked-en.png'), fullPage: true });

    // The agency page shows the same panel for its agency only (units, no agency column).
    const summary = await get('api/v1/blocked/summary');
    const code = summary.agencies[0].agency;
    await page.goto(`${collector.url}#/agency/${code}`);
    await page.locator(`[data-testid="agency-page"][data-code="${code}"]`).waitFor();
    await waitFor(async () => (await recent.count()) > 0, { timeout: 30000, message: `blocked attempts of ${code}` });
    assert.equal(await page.locator('#h-blocked-panel').textContent(), 'Blocked attempts');
    assert.equal((await page.locator('[data-testid="blocked-recent-table"] thead th').allTextContents())[1], 'Unit');
    const mine = await get(`api/v1/blocked?agency=${code}&limit=50`);
    assert.ok(mine.length > 0 && mine.every((r) => r.agency === code), 'the API filters by agency');
    await waitFor(async () => {
      const api = await get(`api/v1/blocked?agency=${code}&limit=50`);
      const shown = await page.evaluate(() => [...document.querySelectorAll('[data-testid="blocked-recent-table"] tbody tr[data-testid]')]
        .map((tr) => tr.querySelectorAll('td')[3].textContent));
      return JSON.stringify(shown) === JSON.stringify(api.map((r) => r.target));
    }, { timeout: 30000, message: `the agency page's rows = /api/v1/blocked?agency=${code}` });

    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === 'id', { message: 'back to html lang="id"' });
    assert.equal(await page.locator('#h-blocked-panel').textContent(), 'Upaya akses diblokir');
    assertClean();
  });

  step('incidents page and availability with maintenance windows, in Indonesian then English', async () => {
    await page.evaluate(() => localStorage.setItem('simpul.lang', 'id'));
    await page.goto(collector.url);
    await page.locator('[data-testid="conn-status"][data-state="live"]').waitFor({ timeout: 30000 });
    await page.getByTestId('incidents-link').click();
    await page.getByTestId('incidents-page').waitFor();
    assert.equal(new URL(page.url()).hash, '#/incidents');
    const table = page.getByTestId('incidents-table');
    const rowIds = () => page.evaluate(() => [...document.querySelectorAll('[data-testid="incidents-table"] tbody tr[data-testid]')]
      .map((tr) => Number(tr.dataset.testid.slice('incident-row-'.length))).sort((a, b) => a - b));
    await waitFor(async () => (await rowIds()).length > 0, { timeout: 20000, message: 'incident rows' });
    assert.deepEqual(await table.locator('thead th').allTextContents(), ['Tingkat', 'Jenis', 'Node / instansi', 'Mulai', 'Durasi', 'Diterima', 'Pulih']);
    // Open ones by default: the same alarms as the wall.
    await waitFor(async () => JSON.stringify(await rowIds()) === JSON.stringify(alarmIds(await get('api/v1/incidents?open=true&limit=500'))),
      { timeout: 15000, message: 'open incident rows = the open alarms' });
    const ackedCells = await page.locator('[data-testid="incidents-table"] [data-testid^="acked-"]').allTextContents();
    assert.ok(ackedCells.some((c) => /^Diterima Operator NOC · /.test(c)), `acknowledged rows say who: ${ackedCells}`);

    // All of the last 7 days: the grouped outage with the school under it, not as a row of its own.
    await page.getByTestId('inc-filter-all').click();
    await waitFor(async () => {
      const all = await get('api/v1/incidents?limit=500');
      const g = all.find((i) => i.kind === 'group_down' && i.node_id === 'disdik-kec-01');
      if (!g) return false;
      const text = await page.getByTestId(`incident-row-${g.id}`).textContent().catch(() => '');
      const school = all.filter((i) => i.node_id === 'disdik-sd-01' && i.kind === 'unreachable' && i.root_cause === 'disdik-kec-01'
        && i.detected_ms >= g.started_ms && (g.resolved_ms == null || i.started_ms <= g.resolved_ms));
      const separate = await Promise.all(school.map((i) => page.getByTestId(`incident-row-${i.id}`).count()));
      return text.includes('PADAM +') && text.includes('Tak terjangkau karena ini: disdik-sd-01') && separate.every((n) => n === 0);
    }, { timeout: 20000, message: 'the grouped outage lists the school, which has no row of its own' });
    // Agency filter.
    await page.getByTestId('inc-filter-agency').selectOption('bappeda');
    await waitFor(async () => {
      const nodes = await page.evaluate(() => [...document.querySelectorAll('[data-testid="incidents-table"] tbody tr[data-testid]')].map((tr) => tr.dataset.node));
      return nodes.length > 0 && nodes.every((n) => n.startsWith('bappeda-'));
    }, { message: 'only Bappeda incidents' });
    await page.getByTestId('inc-filter-agency').selectOption('');
    await page.getByTestId('inc-filter-open').click();

    // Timeline: a track per node, outages on it; 24 h then 7 days.
    const timeline = page.getByTestId('timeline');
    const nodes = (await get('api/v1/nodes')).filter((n) => n.status !== 'revoked');
    await waitFor(async () => (await timeline.getAttribute('data-range')) === '24h' && Number(await timeline.getAttribute('data-rows')) === nodes.length,
      { message: 'a timeline row per node' });
    assert.ok(await page.locator('[data-testid="timeline-row-bappeda-02"] .seg[data-kind="down"]').count() > 0, 'bappeda-02 down on its track');
    assert.ok(await page.locator('[data-testid="timeline-row-disdik-sd-01"] .seg[data-kind="unreachable"]').count() > 0, 'the school unreachable on its track');
    await page.getByTestId('tl-range-7d').click();
    await waitFor(async () => (await timeline.getAttribute('data-range')) === '7d', { message: '7 day timeline' });
    await page.getByTestId('tl-range-24h').click();

    // Time to acknowledge and resolve, by severity (= /api/v1/incidents/stats).
    let stats;
    await waitFor(async () => {
      stats = await get('api/v1/incidents/stats');
      const shown = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('[data-testid="incident-stats-table"] tbody tr[data-testid]')]
        .map((tr) => [tr.dataset.testid.slice('incident-stats-'.length), [...tr.querySelectorAll('td')].map((td) => td.textContent)])));
      return Object.keys(stats).length > 0 && Object.keys(stats).every((s) => shown[s] && shown[s][1] === String(stats[s].incidents) && shown[s][2] === String(stats[s].acknowledged));
    }, { timeout: 40000, message: 'stats table = /api/v1/incidents/stats' });
    assert.ok(stats.critical?.acknowledged >= 1 || stats.major?.acknowledged >= 1, `the acknowledgements count: ${JSON.stringify(stats)}`);
    await page.screenshot({ path: path.join(SHOTS, 'incidents.png'), fullPage: true });

    // Availability over today (the NOC's day), maintenance and unreachable apart.
    await page.getByTestId('tab-availability').click();
    await page.getByTestId('availability-page').waitFor();
    await page.getByTestId('av-today').click();
    const avRows = page.locator('[data-testid="availability-table"] tbody tr[data-testid]');
    await waitFor(async () => (await avRows.count()) === nodes.length, { message: 'an availability row per node' });
    await waitFor(async () => (await page.getByTestId('av-today').getAttribute('aria-pressed')) === 'true', { message: 'today chosen' });
    const down = page.getByTestId('availability-row-bappeda-02');
    await waitFor(async () => Number(await down.getAttribute('data-pct')) < 100, { message: 'bappeda-02 lost availability today' });
    assert.match((await down.locator('td').nth(1).textContent()), /^\d{1,3},\d{2}%$/);
    // The school's unreachable time is shown apart and not counted against it.
    const school = page.getByTestId('availability-row-disdik-sd-01');
    assert.match(await school.locator('td').nth(3).textContent(), /\d+ (dtk|mnt|jam)/, 'its unreachable time is shown apart');
    const [schoolToday] = await get(`api/v1/availability?node=disdik-sd-01&from=${await page.evaluate(() => {
      const d = new Date(); d.setHours(0, 0, 0, 0); return Math.floor(d.getTime() / 1000);
    })}`);
    assert.ok(schoolToday.unreachable_ms > 0, JSON.stringify(schoolToday));
    if (schoolToday.down_ms === 0) assert.equal(await school.getAttribute('data-pct'), '100', 'unreachable time is not downtime');

    // Add a maintenance window: created by the logged-in operator (no name to type).
    assert.equal(await page.getByTestId('maintenance-by').count(), 0, 'no "by" field');
    await page.getByTestId('maintenance-node').selectOption('bappeda-02');
    await page.getByTestId('maintenance-reason').fill('Uji pemeliharaan router');
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/v1/maintenance') && r.request().method() === 'POST');
    await page.getByTestId('maintenance-submit').click();
    assert.equal((await saved).status(), 201);
    await waitFor(async () => (await page.getByTestId('maintenance-message').textContent()) === 'Jadwal pemeliharaan tersimpan.', { message: 'saved message' });
    const windows = await get('api/v1/maintenance');
    const w = windows.find((m) => m.reason === 'Uji pemeliharaan router');
    assert.ok(w && w.node_id === 'bappeda-02' && w.agency === null && w.created_by === 'Operator NOC' && w.ends_ms - w.starts_ms === 2 * 3600e3,
      `the window is stored: ${JSON.stringify(windows)}`);
    const wRow = page.getByTestId(`maintenance-row-${w.id}`);
    await wRow.waitFor();
    assert.match(await wRow.textContent(), /terjadwal/);
    // An end before the start is refused on the page, nothing is sent.
    await page.getByTestId('maintenance-to').fill(await page.getByTestId('maintenance-from').inputValue());
    await page.getByTestId('maintenance-reason').fill('Tidak valid');
    await page.getByTestId('maintenance-submit').click();
    await waitFor(async () => (await page.getByTestId('maintenance-message').getAttribute('data-state')) === 'error', { message: 'error message' });
    assert.equal(await page.getByTestId('maintenance-message').textContent(), 'Waktu selesai harus setelah waktu mulai.');
    assert.equal((await get('api/v1/maintenance')).length, windows.length, 'nothing stored');

    // Change the planned window: a new reason (PATCH), shown in its row and stored.
    await page.getByTestId(`maintenance-edit-${w.id}`).click();
    await page.getByTestId('mt-edit-dialog').waitFor();
    await page.getByTestId('mt-edit-reason').fill('Penggantian router inti');
    const patched = page.waitForResponse((r) => r.url().endsWith(`/api/v1/maintenance/${w.id}`) && r.request().method() === 'PATCH');
    await page.getByTestId('mt-edit-dialog-ok').click();
    assert.equal((await patched).status(), 200);
    await waitFor(async () => /Penggantian router inti/.test(await page.getByTestId(`maintenance-row-${w.id}`).textContent()),
      { message: 'the changed reason in the row' });
    assert.equal((await get('api/v1/maintenance')).find((m) => m.id === w.id).reason, 'Penggantian router inti');

    // Delete it (not started yet): asked first, then gone from the page and the API.
    await page.getByTestId(`maintenance-delete-${w.id}`).click();
    await page.getByTestId('confirm').waitFor();
    const deleted = page.waitForResponse((r) => r.url().endsWith(`/api/v1/maintenance/${w.id}`) && r.request().method() === 'DELETE');
    await page.getByTestId('confirm-ok').click();
    assert.equal((await deleted).status(), 204);
    await waitFor(async () => (await page.getByTestId(`maintenance-row-${w.id}`).count()) === 0, { message: 'the deleted row gone' });
    assert.ok(!(await get('api/v1/maintenance')).some((m) => m.id === w.id), 'deleted in the API');

    // A window running now (from this minute) can be ended: the End button, asked first.
    // An operator may start a window at most a minute in the past: not in this minute's last seconds.
    await waitFor(async () => (await page.evaluate(() => new Date().getSeconds())) < 45, { timeout: 30000, message: 'the start of a minute' });
    const minute = await page.evaluate(() => {
      const d = new Date(); d.setSeconds(0, 0);
      const p = (n) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
    });
    await page.getByTestId('maintenance-scope-agency').check();
    await page.getByTestId('maintenance-agency').selectOption('bappeda');
    await page.getByTestId('maintenance-from').fill(minute);
    await page.getByTestId('maintenance-to').fill(await page.evaluate((m) => {
      const d = new Date(m); d.setHours(d.getHours() + 1);
      const p = (n) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
    }, minute));
    await page.getByTestId('maintenance-reason').fill('Uji pemeliharaan berjalan');
    const saved2 = page.waitForResponse((r) => r.url().endsWith('/api/v1/maintenance') && r.request().method() === 'POST');
    await page.getByTestId('maintenance-submit').click();
    const made = await saved2;
    assert.equal(made.status(), 201, await made.text());
    const running = await made.json();
    assert.equal(running.agency, 'bappeda');
    await page.getByTestId(`maintenance-end-${running.id}`).waitFor({ timeout: 10000 });
    await page.getByTestId(`maintenance-end-${running.id}`).click();
    await page.getByTestId('confirm').waitFor();
    const ended = page.waitForResponse((r) => r.url().endsWith(`/api/v1/maintenance/${running.id}/end`) && r.request().method() === 'POST');
    await page.getByTestId('confirm-ok').click();
    assert.equal((await ended).status(), 200);
    await waitFor(async () => (await page.getByTestId('maintenance-message').textContent()) === 'Pemeliharaan diakhiri.', { message: 'ended message' });
    const after = (await get('api/v1/maintenance')).find((m) => m.id === running.id);
    assert.ok(after.ends_ms <= Date.now() + 5000, `ended now: ${JSON.stringify(after)}`);
    await waitFor(async () => (await page.locator(`[data-testid="maintenance-row-${running.id}"] [data-state="done"]`).count()) === 1,
      { message: 'the ended window shows as over' });
    await page.screenshot({ path: path.join(SHOTS, 'availability.png'), fullPage: true });

    // English.
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === 'en', { message: 'html lang="en"' });
    assert.equal(await page.locator('#h-av').textContent(), 'Node availability');
    await waitFor(async () => (await page.getByTestId('av-today').textContent()) === 'Today' && (await page.getByTestId('av-month').textContent()) === 'This month',
      { message: 'English calendar ranges' });
    assert.equal(await page.locator('#h-mt').textContent(), 'Maintenance windows');
    await page.getByTestId('tab-incidents').click();
    await page.getByTestId('incidents-page').waitFor();
    await waitFor(async () => (await page.locator('[data-testid="incidents-table"] tbody tr[data-testid]').count()) > 0, { message: 'rows in English' });
    assert.deepEqual(await page.locator('[data-testid="incidents-table"] thead th').allTextContents(),
      ['Severity', 'Kind', 'Node / agency', 'Started', 'Duration', 'Acknowledged', 'Resolved']);
    const kinds = await page.locator('[data-testid="incidents-table"] .kind').allTextContents();
    assert.ok(kinds.every((k) => /^(DOWN( \+\d+)?|UNREACHABLE|FLAPPING|AGENT HEALTH|CLOCK SKEW)$/.test(k)), `English kinds: ${kinds}`);
    assert.ok((await page.locator('[data-testid="incidents-table"] [data-testid^="acked-"]').allTextContents()).some((c) => /^Acknowledged by Operator NOC · \d{2}:\d{2}:\d{2}$/.test(c)));
    await page.screenshot({ path: path.join(SHOTS, 'incidents-en.png'), fullPage: true });
    await page.getByTestId('home-link').click();
    await page.locator('#h-alerts').waitFor();
    assert.equal(await page.locator('#h-alerts').textContent(), 'Active alarms');
    const wallKinds = await page.locator('[data-testid="alerts"] li.alert .kind').allTextContents();
    assert.ok(wallKinds.length > 0 && wallKinds.every((k) => /^(DOWN( \+\d+)?|UNREACHABLE|FLAPPING|AGENT HEALTH|CLOCK SKEW)$/.test(k)), `English alarms: ${wallKinds}`);
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === 'id', { message: 'back to html lang="id"' });
    assertClean();
  });

  step('WebSocket failure shows the disconnect banner and falls back to polling', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 }, timezoneId: 'Asia/Jakarta' });
    try {
      const p = await ctx.newPage();
      const w = await watchPage(p);
      let allowWs = false;
      await p.routeWebSocket(/\/api\/v1\/live$/, (ws) => { if (allowWs) ws.connectToServer(); else ws.close(); });
      let failOverview = false;
      await p.route(/\/api\/v1\/overview$/, (route) => (failOverview ? route.abort('connectionrefused') : route.continue()));
      await loginPage(p, collector.url, creds.operator);
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
      assert.deepEqual(w.errors, [], 'no uncaught page errors');
      assert.deepEqual(w.csp, [], 'no Content-Security-Policy violations');
    } finally {
      await ctx.close();
    }
  });
});
