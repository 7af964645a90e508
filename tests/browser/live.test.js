// The live feed in a real browser against the province-sized demo
// (`simpul-demo --province`: 60 agencies, 120 real agents): the wall renders
// every agency live from a snapshot and patches; Chromium negotiates
// permessage-deflate; only the pages that show live data hold the feed open.
//   cargo build -p simpul-demo && node --test tests/browser/live.test.js
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  SHOTS, launchBrowser, loginPage, readOverview, startCollector, waitFor, watchPage,
} from './helpers.js';

describe('live feed at province size', { timeout: 600000 }, () => {
  let collector; let browser; let page; let watch; let cdp;
  const sockets = []; // { ws, frames: [{type, bytes}], closed }
  const handshakes = []; // the live feed's handshake answers (headers)

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    collector = await startCollector({ args: ['--province'] });
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1920, height: 1080 }, locale: 'id-ID' });
    page = await context.newPage();
    watch = await watchPage(page);
    cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const urls = new Map();
    cdp.on('Network.webSocketCreated', (e) => urls.set(e.requestId, e.url));
    cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
      if (/\/api\/v1\/live$/.test(urls.get(e.requestId) || '')) handshakes.push(e.response.headers);
    });
    page.on('websocket', (ws) => {
      if (!/\/api\/v1\/live$/.test(new URL(ws.url()).pathname)) return;
      const s = { ws, frames: [], closed: false };
      sockets.push(s);
      ws.on('framereceived', ({ payload }) => {
        try { s.frames.push({ type: JSON.parse(payload).type, bytes: String(payload).length }); } catch (_) { /* not JSON */ }
      });
      ws.on('close', () => { s.closed = true; });
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
  });

  const open = () => sockets.filter((s) => !s.closed);

  it('the wall shows all 60 agencies live, from a snapshot and patches', async () => {
    const creds = collector.credentials();
    await loginPage(page, collector.url, creds.operator);
    await waitFor(async () => Object.keys((await readOverview(page)).agencies).length >= 60,
      { timeout: 120000, message: 'the wall lists 60 agencies' });
    await waitFor(() => (open()[0]?.frames.filter((f) => f.type === 'delta').length ?? 0) >= 3,
      { timeout: 30000, message: 'three patches after the snapshot' });
    const frames = open()[0].frames;
    assert.equal(frames[0].type, 'snapshot', 'a snapshot first');
    assert.ok(frames.slice(1).every((f) => f.type === 'delta'), 'then patches only');
    const shown = await readOverview(page);
    assert.equal(shown.source, 'ws', 'the numbers come from the live feed');
    // A patch is a fraction of the whole overview the snapshot carried.
    const deltas = frames.filter((f) => f.type === 'delta');
    const mean = deltas.reduce((s, f) => s + f.bytes, 0) / deltas.length;
    assert.ok(mean < frames[0].bytes / 4, `patches (${Math.round(mean)} B) vs the snapshot (${frames[0].bytes} B)`);
    const tiles = await page.locator('[data-testid^="node-status-"], [data-testid^="node-sum-"]').count();
    assert.ok(tiles > 0, 'nodes are shown (tiles or counts per agency)');
    await page.screenshot({ path: path.join(SHOTS, 'live-province.png') });
    assert.deepEqual(watch.errors, [], 'no uncaught page errors');
  });

  it('Chromium and the collector agree on permessage-deflate', async () => {
    await waitFor(() => handshakes.length > 0, { message: 'the handshake answer' });
    const ext = Object.entries(handshakes[0]).find(([k]) => k.toLowerCase() === 'sec-websocket-extensions')?.[1] || '';
    assert.match(ext, /^permessage-deflate/, `Sec-WebSocket-Extensions: ${ext}`);
  });

  it('only pages with live data hold the feed open', async () => {
    assert.equal(open().length, 1, 'one feed on the wall');
    const before = sockets.length;
    await page.evaluate(() => { location.hash = '#/nodes'; });
    await waitFor(() => open().length === 0, { message: 'the feed closed on #/nodes' });
    await waitFor(async () => (await page.getByTestId('conn-status').getAttribute('data-state')) === 'paused',
      { message: 'the connection chip says there is no live data here' });
    assert.equal(await page.getByTestId('conn-banner').isHidden(), true, 'no disconnect banner on a page without live data');
    await page.evaluate(() => { location.hash = '#/incidents'; });
    await page.waitForTimeout(2500);
    assert.equal(sockets.length, before, 'no feed opened on #/nodes or #/incidents');
    await page.evaluate(() => { location.hash = '#/agency/dinkes'; });
    await waitFor(() => open().length === 1, { message: 'the feed open again on an agency page' });
    await page.evaluate(() => { location.hash = '#/'; });
    await page.waitForTimeout(1500);
    assert.equal(open().length, 1, 'kept open from the agency page to the wall, not reopened');
    assert.equal(sockets.length, before + 1);
    await waitFor(async () => (await readOverview(page)).source === 'ws', { message: 'the wall live again' });
    assert.deepEqual(watch.errors, [], 'no uncaught page errors');
  });
});
