// Browser tests of NetFlow in against the real collector in demo mode: the
// demo's MikroTik router of Diskominfo (diskominfo-mt-01) exports NetFlow
// v9 sampled 1:100 over loopback to the collector's real UDP listener. The
// flows tables say where each flow came from ("NetFlow v9 · 1:100
// (dikalikan)" beside "Agen"), and the exporter's node page shows its
// protocol, the sampling rate in force, the templates it taught, its
// sequence gaps per observation domain and its last export — in Bahasa
// Indonesia and English, and on a 390×844 phone without sideways scrolling.
//   cargo build -p simpul-demo && node --test tests/browser/netflow.test.js
import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  SHOTS, apiLogin, getJSON, launchBrowser, loginPage, pageKit, startCollector, waitFor,
} from './helpers.js';

const EXPORTER = 'diskominfo-mt-01';
const AGENCY = 'diskominfo';

describe('Simpul NOC dashboard: a NetFlow exporter and its sampled flows (collector demo)', { timeout: 900000 }, () => {
  let collector;
  let browser;
  let creds;
  let api;
  const get = (p) => getJSON(collector.url, p, api);
  const kit = pageKit('netflow', () => ({ browser, collector }));

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    collector = await startCollector();
    creds = collector.credentials();
    api = await apiLogin(collector.url, creds.admin);
    browser = await launchBrowser();
    // The demo exports once a second: wait until the API shows the exporter heard and its flows stored.
    await waitFor(async () => {
      const x = (await get('api/v1/netflow/exporters')).find((e) => e.node_id === EXPORTER);
      return x?.protocol === 'netflow-v9' && x.sampling_intervals?.join() === '100';
    }, { timeout: 60000, message: 'the demo exporter heard, sampled 1:100' });
    await waitFor(async () => {
      const flows = await get(`api/v1/flows?agency=${AGENCY}&limit=1000`);
      return flows.some((f) => f.node_id === EXPORTER) && flows.some((f) => f.node_id !== EXPORTER);
    }, { timeout: 120000, message: 'the exporter\'s and the agent\'s flows stored' });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
  });

  const badge = (page, origin) => page.locator(`[data-testid="flow-origin"][data-origin="${origin}"]`).first();
  const switchTo = async (page, lang) => {
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === lang, { message: `html lang="${lang}"` });
  };
  const scrollWidth = (page) => page.evaluate(() => document.documentElement.scrollWidth);

  kit.step('the flows API and the agency\'s and search\'s flows tables say where a flow came from and its sampling, in both languages', async () => {
    const flows = await get(`api/v1/flows?agency=${AGENCY}&limit=1000`);
    const exported = flows.filter((f) => f.node_id === EXPORTER);
    const agents = flows.filter((f) => f.node_id !== EXPORTER);
    assert.ok(exported.length > 0 && agents.length > 0, `both kinds among ${flows.length} flows`);
    for (const f of exported) assert.deepEqual([f.origin, f.sampling_interval], ['netflow-v9', 100], JSON.stringify(f));
    for (const f of agents) assert.deepEqual([f.origin, f.sampling_interval], ['agent', null], JSON.stringify(f));
    // Scaled: the demo's sampled counts (64–191 bytes, 1 packet) times 100.
    for (const f of exported) {
      assert.ok(f.bytes_up >= 6400 && f.bytes_up % 100 === 0 && f.packets_up === 100, `scaled counts: ${JSON.stringify(f)}`);
    }

    const { page, watch } = await kit.newPage();
    await loginPage(page, collector.url, creds.operator, { hash: `#/agency/${AGENCY}` });
    await page.getByTestId('agency-page').waitFor();
    await waitFor(async () => (await badge(page, 'netflow-v9').count()) > 0 && (await badge(page, 'agent').count()) > 0,
      { timeout: 60000, message: 'exported and agent flows in the agency\'s flows table' });
    assert.equal(await badge(page, 'netflow-v9').textContent(), 'NetFlow v9 · 1:100 (dikalikan)');
    assert.equal(await badge(page, 'netflow-v9').getAttribute('data-sampling'), '100');
    assert.match(await badge(page, 'netflow-v9').getAttribute('title'), /1 dari 100 paket/);
    assert.equal(await badge(page, 'agent').textContent(), 'Agen');
    const header = () => page.locator('[data-testid="flows-table"] thead th').filter({ hasText: /^(Asal|Origin)/ });
    assert.equal(await header().count(), 1, 'an origin column');
    await switchTo(page, 'en');
    await waitFor(async () => (await badge(page, 'netflow-v9').textContent()) === 'NetFlow v9 · 1:100 (scaled)',
      { message: 'the English badge' });
    assert.equal(await badge(page, 'agent').textContent(), 'Agent');
    assert.match(await header().textContent(), /^Origin/);
    await switchTo(page, 'id');

    // The search's flows table (and its pages through /api/v1/flows) too.
    await page.goto(`${collector.url}#/search?q=${AGENCY}`);
    await page.getByTestId('search-page').waitFor();
    const inSearch = () => page.locator('[data-testid="search-flows-table"] [data-testid="flow-origin"][data-origin="netflow-v9"]').first();
    await waitFor(async () => (await inSearch().count()) > 0, { timeout: 60000, message: 'exported flows in the search\'s flows' });
    assert.equal(await inSearch().textContent(), 'NetFlow v9 · 1:100 (dikalikan)');
    await page.getByTestId('search-flows-table').screenshot({ path: path.join(SHOTS, 'netflow-search-flows.png') });
    kit.assertClean(watch, 'flows tables');
  });

  kit.step('the exporter\'s node page: protocol, sampling in force, templates, gaps per domain, last export; an agent\'s page has none', async () => {
    const { page, watch } = await kit.newPage();
    await loginPage(page, collector.url, creds.operator, { hash: `#/node/${EXPORTER}` });
    await page.locator(`[data-testid="node-page"][data-node="${EXPORTER}"]`).waitFor();
    const panel = page.getByTestId('node-exporter-panel');
    await panel.waitFor();
    const x = (await get('api/v1/netflow/exporters')).find((e) => e.node_id === EXPORTER);
    assert.equal(await page.getByTestId('node-exporter-protocol').textContent(), 'NetFlow v9');
    assert.equal(await page.getByTestId('node-exporter-sampling').textContent(), '1:100 (byte dan paket dikalikan 100)');
    assert.equal(await page.getByTestId('node-exporter-templates').textContent(), String(x.templates));
    assert.equal(x.templates, 2, 'a flow template and a sampling options template');
    // The demo skips one sequence number in 60 datagrams (one a second), the first about 6 s after its start.
    await waitFor(async () => Number(await page.getByTestId('node-exporter-lost').getAttribute('data-value')) >= 1,
      { timeout: 120000, interval: 1000, message: 'a sequence gap counted' });
    const lost = (await get('api/v1/netflow/exporters')).find((e) => e.node_id === EXPORTER).domains[0].lost;
    assert.ok(lost >= 1, `the API counts it too: ${lost}`);
    assert.match(await page.getByTestId('node-exporter-last-export').textContent(), /(lalu|baru saja) · /);
    const domain = page.getByTestId('node-exporter-domain-netflow-v9-1');
    await domain.waitFor();
    await waitFor(async () => Number(await domain.locator('td').nth(5).locator('[data-value]').getAttribute('data-value')) >= 1,
      { message: 'the gap in the domain\'s row' });
    const cells = await domain.locator('td').allTextContents();
    assert.deepEqual(cells.slice(0, 5), ['1', 'NetFlow v9', '1:100', '1', '1'], `domain row: ${cells}`);
    assert.ok(await panel.getByText('Ekspor NetFlow/IPFIX').isVisible(), 'the panel\'s Indonesian heading');
    await panel.screenshot({ path: path.join(SHOTS, 'netflow-exporter-node.png') });
    // The node list calls it by its protocol, and it is up from its export stream.
    const node = (await get(`api/v1/nodes?agency=${AGENCY}`)).find((n) => n.node_id === EXPORTER);
    assert.equal(node?.agent_version, 'netflow-v9', JSON.stringify(node));
    assert.equal(node?.liveness, 'up', JSON.stringify(node));
    assert.equal(await page.getByTestId('node-page-status').locator('[data-status]').getAttribute('data-status'), 'up');

    await switchTo(page, 'en');
    await waitFor(async () => (await page.getByTestId('node-exporter-sampling').textContent()) === '1:100 (bytes and packets multiplied by 100)',
      { message: 'the English sampling' });
    assert.ok(await panel.getByText('NetFlow/IPFIX export').isVisible(), 'the panel\'s English heading');
    assert.match(await page.getByTestId('node-exporter-last-export').textContent(), /(ago|just now) · /);
    await switchTo(page, 'id');

    // An agent's node page shows no exporter panel.
    await page.goto(`${collector.url}#/node/${AGENCY}-01`);
    await page.locator(`[data-testid="node-page"][data-node="${AGENCY}-01"]`).waitFor();
    await waitFor(async () => (await page.getByTestId('node-dropped-records').getAttribute('data-value')) !== null, { message: 'the agent\'s page loaded' });
    assert.equal(await page.getByTestId('node-exporter-panel').isHidden(), true);
    kit.assertClean(watch, 'node pages');
  });

  kit.step('phone 390×844: the exporter\'s page and the flows with their origin do not scroll sideways', async () => {
    const { page, watch } = await kit.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    await loginPage(page, collector.url, creds.operator, { hash: `#/node/${EXPORTER}` });
    await page.getByTestId('node-exporter-domain-netflow-v9-1').waitFor();
    assert.ok((await scrollWidth(page)) <= 390, `node page ${await scrollWidth(page)} px wide`);
    await page.goto(`${collector.url}#/agency/${AGENCY}`);
    await waitFor(async () => (await badge(page, 'netflow-v9').count()) > 0, { timeout: 60000, message: 'the agency\'s flows' });
    assert.ok((await scrollWidth(page)) <= 390, `agency page ${await scrollWidth(page)} px wide`);
    await page.screenshot({ path: path.join(SHOTS, 'netflow-phone-agency.png'), fullPage: true });
    kit.assertClean(watch, 'phone');
  });
});
