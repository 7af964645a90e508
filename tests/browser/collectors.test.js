// Browser tests of who leads outage detection against the real collector in
// demo mode (one collector on SQLite, which leads without a lease): the NOC
// (admin, operator) sees "Deteksi gangguan dipimpin oleh <id> (kolektor
// ini)" and which collector serves the page under the wall's node tiles and
// on #/nodes with every lease, in Bahasa Indonesia and English; agency
// officers and the wall's viewer see the line on the wall (a kiosk is where
// the NOC notices that nobody alerts), not the lease table; "nobody leads"
// is an alarm; a 390×844 phone does not scroll sideways.
//   cargo build -p simpul-demo && node --test tests/browser/collectors.test.js
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  SHOTS, apiFetch, apiLogin, demoSuite, getJSON, loginPage, waitFor,
} from './helpers.js';

const PATH = 'api/v1/collectors';

describe('Simpul NOC dashboard: which collector leads outage detection (collector demo)', { timeout: 900000 }, () => {
  const s = demoSuite('collectors');
  const { kit } = s;

  /** The line's state once it has loaded. */
  const line = async (page) => {
    const el = page.getByTestId('collectors');
    await waitFor(async () => ['led', 'none'].includes(await el.getAttribute('data-state')), { message: 'the collectors line loaded' });
    return {
      state: await el.getAttribute('data-state'),
      leader: await el.getAttribute('data-leader'),
      self: await el.getAttribute('data-self'),
      leaderText: await page.getByTestId('collectors-leader').textContent(),
      selfText: await page.getByTestId('collectors-self').textContent(),
    };
  };
  const switchTo = async (page, lang) => {
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === lang, { message: `html lang="${lang}"` });
  };
  const scrollWidth = (page) => page.evaluate(() => document.documentElement.scrollWidth);

  kit.step('the API: the demo\'s one collector leads; every role may ask, strangers must log in', async () => {
    const c = await getJSON(s.collector.url, PATH, s.api);
    assert.equal(c.control, 'sqlite');
    assert.ok(c.this_collector, 'this collector is named');
    assert.equal(c.outage_leader?.collector_id, c.this_collector);
    assert.equal(c.outage_leader.this_collector, true);
    const operator = await apiLogin(s.collector.url, s.creds.operator);
    assert.equal((await apiFetch(s.collector.url, operator, 'GET', PATH)).status, 200);
    for (const role of ['agency', 'viewer']) {
      const session = await apiLogin(s.collector.url, s.creds[role]);
      assert.equal((await apiFetch(s.collector.url, session, 'GET', PATH)).status, 200, role);
    }
    assert.equal((await apiFetch(s.collector.url, null, 'GET', PATH)).status, 401);
  });

  kit.step('the wall and #/nodes name the leader and the collector serving the page, in both languages', async () => {
    const id = (await getJSON(s.collector.url, PATH, s.api)).this_collector;
    const { page, watch } = await kit.newPage();
    await loginPage(page, s.collector.url, s.creds.admin);
    const wall = await line(page);
    assert.deepEqual([wall.state, wall.leader, wall.self], ['led', id, id]);
    assert.equal(wall.leaderText, `Deteksi gangguan dipimpin oleh ${id} (kolektor ini)`);
    assert.equal(wall.selfText, `Halaman ini dilayani oleh ${id}`);
    // Under the node tiles, inside their panel.
    assert.equal(await page.locator('.nodes-panel [data-testid="collectors"]').count(), 1);
    await page.screenshot({ path: path.join(SHOTS, 'collectors-wall.png') });

    await switchTo(page, 'en');
    await waitFor(async () => (await line(page)).leaderText === `Outage detection led by ${id} (this collector)`,
      { message: 'the leader in English' });
    assert.equal((await line(page)).selfText, `This page is served by ${id}`);

    await page.goto(`${s.collector.url}#/nodes`);
    await page.getByTestId('nodes-page').waitFor();
    const nodes = await line(page);
    assert.deepEqual([nodes.state, nodes.leader], ['led', id]);
    assert.equal(nodes.leaderText, `Outage detection led by ${id} (this collector)`);
    await page.getByTestId('leases-table').waitFor();
    await switchTo(page, 'id');
    kit.assertClean(watch, 'admin');
  });

  kit.step('agency officers and the wall\'s viewer see who leads on the wall, not the lease table', async () => {
    const id = (await getJSON(s.collector.url, PATH, s.api)).this_collector;
    for (const role of ['agency', 'viewer']) {
      const { page, watch } = await kit.newPage();
      await loginPage(page, s.collector.url, s.creds[role]);
      await page.getByTestId('node-grid').waitFor();
      await waitFor(async () => (await line(page)).state === 'led', { message: `${role}: the leader line` });
      assert.equal((await line(page)).leaderText, `Deteksi gangguan dipimpin oleh ${id} (kolektor ini)`, role);
      await page.goto(`${s.collector.url}#/nodes`);
      await page.getByTestId('nodes-page').waitFor();
      assert.equal(await page.getByTestId('leases-table').count(), 0, role);
      kit.assertClean(watch, role);
    }
  });

  // The demo has one collector, which always leads: a dead leader on a
  // shared PostgreSQL (tested for real in collector/tests/collectors_api.rs)
  // is shown here by answering the real answer with its leader taken out.
  kit.step('nobody leading is an alarm, on the wall and on a phone without sideways scrolling', async () => {
    const { page, ctx, watch } = await kit.newPage();
    await loginPage(page, s.collector.url, s.creds.operator);
    assert.equal((await line(page)).state, 'led');
    const phone = await ctx.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    for (const hash of ['#/', '#/nodes']) {
      await phone.goto(`${s.collector.url}${hash}`);
      await line(phone);
      await phone.waitForTimeout(1000);
      assert.ok(await scrollWidth(phone) <= 390, `${hash}: ${await scrollWidth(phone)}px wide`);
    }

    await page.route(`**/${PATH}`, async (route) => {
      const res = await route.fetch();
      const body = await res.json();
      body.outage_leader = null;
      body.leases = [{ name: 'outage-detector', purpose: 'outage-detection', month: null, holder: 'noc-a#00000000000000aa',
        collector_id: 'noc-a', instance: '00000000000000aa', this_collector: false, live: false, expires_ms: Date.now() - 60000 }];
      await route.fulfill({ response: res, json: body });
    });
    await page.reload();
    await page.locator('[data-testid="collectors"][data-state="none"]').waitFor({ timeout: 30000 });
    const none = await line(page);
    assert.equal(none.leaderText, 'Tidak ada kolektor yang memimpin deteksi gangguan: tidak ada alarm yang dikirim!');
    assert.ok(await page.getByTestId('collectors').evaluate((el) => el.classList.contains('crit')), 'shown as an alarm');
    await page.screenshot({ path: path.join(SHOTS, 'collectors-nobody-leads.png') });
    await page.goto(`${s.collector.url}#/nodes`);
    const row = page.getByTestId('lease-row-outage-detector');
    await row.waitFor();
    assert.equal(await row.getAttribute('data-live'), 'false');
    assert.match(await row.textContent(), /Deteksi gangguan.*noc-a.*kedaluwarsa/);

    await phone.route(`**/${PATH}`, async (route) => {
      const res = await route.fetch();
      const body = await res.json();
      body.outage_leader = null;
      await route.fulfill({ response: res, json: body });
    });
    await phone.goto(`${s.collector.url}#/`);
    await phone.locator('[data-testid="collectors"][data-state="none"]').waitFor({ timeout: 30000 });
    await phone.waitForTimeout(1000);
    assert.ok(await scrollWidth(phone) <= 390, `the alarm on a phone: ${await scrollWidth(phone)}px wide`);
    await phone.screenshot({ path: path.join(SHOTS, 'collectors-phone-nobody-leads.png'), fullPage: true });
    kit.assertClean(watch, 'operator');
  });
});
