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
  stepWithShots,
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

  const step = stepWithShots('nav', () => page, () => collector);

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
    // Back returns to the range before.
    await page.getByTestId('range-30d').click();
    await waitFor(async () => (await chart.getAttribute('data-range')) === '30d', { message: '30 days' });
    await page.goBack();
    await waitFor(async () => (await chart.getAttribute('data-range')) === '7d', { message: 'back to 7 days' });
    assert.equal(new URL(page.url()).hash, `#/agency/${code}?range=7d`);
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
    // "All" lists the incidents of the page's range.
    const all = page.waitForRequest((r) => /\/api\/v1\/incidents\?limit=500&from=\d+/.test(r.url()));
    await page.getByTestId('inc-filter-all').click();
    assert.ok(Math.abs(Number(params((await all).url()).get('from')) - (nowSecs() - 30 * 86400)) < 120, 'all incidents of 30 days');
    await page.getByTestId('inc-filter-open').click();
    assertClean();
  });

  step('the node page keeps the range of its incidents in the address', async () => {
    const node = (await get('api/v1/nodes')).find((n) => n.status !== 'revoked').node_id;
    const isInc = (r) => r.url().includes(`/api/v1/incidents?node=${node}&from=`);
    const first = page.waitForRequest(isInc);
    await page.goto(`${collector.url}#/node/${node}`);
    assert.ok(Math.abs(Number(params((await first).url()).get('from')) - (nowSecs() - 7 * 86400)) < 120, '7 days by default');
    assert.equal(await page.locator('#h-node-inc').textContent(), 'Insiden node · 7 hari');
    const asked = page.waitForRequest(isInc);
    await page.getByTestId('node-range-24h').click();
    assert.ok(Math.abs(Number(params((await asked).url()).get('from')) - (nowSecs() - 86400)) < 120, '24 h asked');
    assert.equal(new URL(page.url()).hash, `#/node/${node}?range=24h`);
    const again = page.waitForRequest(isInc);
    await page.reload();
    assert.ok(Math.abs(Number(params((await again).url()).get('from')) - (nowSecs() - 86400)) < 120, '24 h after the reload');
    await waitFor(async () => (await page.locator('#h-node-inc').textContent()) === 'Insiden node · 24 jam', { message: 'the title names 24 h' });
    assert.equal(await page.getByTestId('node-range-24h').getAttribute('aria-pressed'), 'true');
    assertClean();
  });

  step('the node page says which collector address the agent is on, in both languages', async () => {
    // Demo agents are the real agent over the real link: their heartbeats
    // name the address they were welcomed on, the one the demo printed
    // (the two behind the flaky relay are on the relay's).
    const want = collector.logTail(1e6).match(/Agents connect to (wss:\/\/\S+)/)?.[1];
    assert.match(want || '', /^wss:\/\/localhost:\d+\/api\/v1\/agent$/, 'the demo printed the agents\' address');
    const flaky = ['disdik-kec-01', 'disdik-sd-01'];
    let node;
    await waitFor(async () => {
      node = (await get('api/v1/nodes')).find((n) => n.status !== 'revoked' && !flaky.includes(n.node_id) && n.health?.collector);
      return !!node;
    }, { message: 'a demo agent reported its collector link', timeout: 60000 });
    assert.deepEqual(node.health.collector, { url: want, index: 0, failovers: 0 });
    await page.goto(`${collector.url}#/node/${node.node_id}`);
    const link = page.getByTestId('node-health-collector');
    await link.waitFor();
    assert.equal(await link.textContent(), `${want} · alamat ke-1 · 0× pindah`);
    // No name lanes, refusals or IPFIX export in the demo (file capture, no
    // enforcement, no [export.ipfix]): those rows stay away.
    for (const id of ['node-health-name-lanes', 'node-health-name-block', 'node-health-ipfix']) {
      assert.equal(await page.getByTestId(id).count(), 0, id);
    }
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await link.textContent()) === `${want} · address #1 · 0 failovers`, { message: 'in English' });
    await page.getByTestId('lang-switch').click();
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

  /** A fresh browser context logged in as `role`: fn(page) runs in it. */
  const asRole = async (role, fn, opts = {}) => {
    const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 }, timezoneId: ZONE, locale: 'id-ID', ...opts });
    const p = await ctx.newPage();
    const w = await watchPage(p);
    try {
      await loginPage(p, collector.url, creds[role]);
      await fn(p);
      assert.deepEqual([w.errors, w.csp], [[], []], `${role}: no page errors, no CSP violations`);
    } catch (err) {
      await p.screenshot({ path: path.join(SHOTS, `failure-nav-${role}.png`), fullPage: true }).catch(() => {});
      throw err;
    } finally {
      await ctx.close();
    }
  };

  /** Follow every link of the navigation bar: each opens its page (never "not found"). */
  const followNav = async (p) => {
    const links = await p.evaluate(() => [...document.querySelectorAll('#nav-links a')].map((a) => [a.dataset.testid, a.getAttribute('href')]));
    for (const [testid, href] of links) {
      await p.getByTestId(testid).click();
      await waitFor(async () => new URL(p.url()).hash.startsWith(href.replace(/\/$/, '')) || href === '#/', { message: `${testid} → ${href}` });
      const route = await p.locator('#view').getAttribute('data-route');
      assert.notEqual(route, 'notfound', `${href} is a page`);
      // The address changes before the page is drawn: wait for the drawing.
      await waitFor(async () => (await p.getByTestId(testid).getAttribute('aria-current')) === 'page', { message: `${testid} marked as the current page` });
    }
    return links.map(([testid]) => testid.slice('nav-'.length));
  };

  step('the navigation bar reaches every page a role may read, and only those', async () => {
    const everyone = ['overview', 'incidents', 'availability', 'nodes'];
    const readers = ['blocked', 'policy', 'lists'];
    const seen = {};
    for (const role of ['operator', 'viewer', 'admin', 'agency']) {
      await asRole(role, async (p) => {
        seen[role] = await followNav(p);
      });
    }
    for (const role of Object.keys(seen)) for (const r of everyone) assert.ok(seen[role].includes(r), `${role} reaches ${r}`);
    for (const r of readers) {
      assert.ok(seen.operator.includes(r) && seen.admin.includes(r) && seen.agency.includes(r), `${r} for the readers`);
      assert.ok(!seen.viewer.includes(r), `no ${r} for the viewer`);
    }
    assert.ok(seen.admin.includes('admin') && !seen.operator.includes('admin') && !seen.viewer.includes('admin'), 'admin screens for the admin only');
    assert.ok(seen.agency.includes('agency') && !seen.operator.includes('agency'), 'the officer\'s own agency');
    // #/availability is one click from every page, not only from #/incidents.
    await page.goto(`${collector.url}#/nodes`);
    await page.getByTestId('nav-availability').click();
    await page.getByTestId('availability-page').waitFor();
  });

  step('phone 390×844: the navigation folds behind "Menu", no page scrolls sideways, alarms keep the node name', async () => {
    const code = await busiest();
    const node = (await get('api/v1/nodes')).find((n) => n.agency === code).node_id;
    const pages = ['#/', `#/agency/${code}`, `#/agency/${code}?range=7d`, '#/blocked', '#/incidents', '#/availability', '#/nodes',
      `#/node/${node}`, '#/policy', `#/policy/${code}`, '#/policy-default', '#/lists', '#/admin/users', '#/admin/tokens',
      '#/admin/audit', '#/admin/sessions', '#/reports', `#/search?q=${code}`, '#/nosuch'];
    await asRole('admin', async (p) => {
      // The menu: folded, opened, and folded again by choosing a page.
      const links = p.locator('#nav-links');
      assert.ok(await p.getByTestId('nav-toggle').isVisible(), 'a Menu button');
      assert.ok(await links.isHidden(), 'links folded');
      await p.getByTestId('nav-toggle').click();
      assert.equal(await p.getByTestId('nav-toggle').getAttribute('aria-expanded'), 'true');
      assert.ok(await links.isVisible(), 'links shown');
      await p.getByTestId('nav-incidents').click();
      await p.getByTestId('incidents-page').waitFor();
      assert.ok(await links.isHidden(), 'folded again after choosing');

      const wide = [];
      for (const hash of pages) {
        await p.goto(`${collector.url}${hash}`);
        await p.waitForFunction(() => document.querySelector('#view')?.dataset.route && document.querySelector('#view').children.length > 0);
        await p.waitForTimeout(1500); // tables and charts fill in
        const w = await p.evaluate(() => document.documentElement.scrollWidth);
        if (w > 390) wide.push(`${hash}: ${w}px`);
        await p.screenshot({ path: path.join(SHOTS, `phone-${hash.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '') || 'wall'}.png`), fullPage: true });
      }
      assert.deepEqual(wide, [], 'no page wider than the phone');

      // An alarm on the wall shows its node whole.
      await p.goto(collector.url);
      await p.locator('li.alert').first().waitFor({ timeout: 90000 });
      const names = await p.evaluate(() => [...document.querySelectorAll('li.alert .alert-node')].map((a) => {
        const r = a.getBoundingClientRect();
        return { text: a.textContent, left: r.left, right: r.right, width: r.width, full: a.scrollWidth };
      }));
      for (const n of names) assert.ok(n.width > 0 && n.left >= 0 && n.right <= 390 && n.width >= n.full - 1, `alarm node ${n.text} visible: ${JSON.stringify(n)}`);
    }, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  });

  step('one word per state, one duration style, the scope column headed as scope', async () => {
    const strings = await page.evaluate(async () => {
      const i18n = await import('./i18n.js');
      const out = {};
      for (const l of ['id', 'en']) {
        i18n.setLang(l);
        out[l] = {
          states: ['down', 'unreachable', 'flapping'].map((s) => [i18n.t(`status.${s}`), i18n.t(`kind.${s}`), i18n.t(`tl.${s}`)]),
          group: i18n.t('kind.group_down'),
          durations: [i18n.fmtDuration(170), i18n.fmtSpan(170000), i18n.fmtDuration(3 * 3600 + 20 * 60), i18n.fmtSpan((3 * 3600 + 20 * 60) * 1000)],
          scope: i18n.t('col.scope'),
        };
      }
      i18n.setLang('id');
      return out;
    });
    for (const l of ['id', 'en']) {
      for (const [tile, alarm, timeline] of strings[l].states) {
        assert.equal(alarm, tile.toUpperCase(), `${l}: alarm "${alarm}" = tile "${tile}"`);
        assert.equal(timeline, tile, `${l}: timeline "${timeline}" = tile "${tile}"`);
      }
      assert.equal(strings[l].group, strings[l].states[0][1], `${l}: a group outage is the same word`);
      const [a, b, c, d] = strings[l].durations;
      assert.equal(a, b, `${l}: one duration style`);
      assert.equal(c, d, `${l}: one duration style`);
    }
    assert.equal(strings.id.durations[0], '2 mnt 50 dtk');
    assert.deepEqual([strings.id.scope, strings.en.scope], ['Cakupan', 'Scope']);

    // On screen: a node that is down says "Padam" on its tile and "PADAM" on its alarm.
    await page.goto(collector.url);
    await waitFor(async () => (await page.locator('[data-testid^="node-status-"][data-status="down"]').count()) > 0, { timeout: 90000, message: 'a node down' });
    const down = await page.locator('[data-testid^="node-status-"][data-status="down"]').first();
    const id = (await down.getAttribute('data-testid')).slice('node-status-'.length);
    assert.equal(await down.locator('.node-state').textContent(), 'Padam');
    await waitFor(async () => (await page.locator(`li.alert[data-node="${id}"] .kind`).count()) > 0, { message: `an alarm for ${id}` });
    assert.match(await page.locator(`li.alert[data-node="${id}"] .kind`).first().textContent(), /^PADAM( \+\d+)?$/);
    assert.match(await page.getByTestId('nodes-up-count').locator('xpath=../..').textContent(), /\d+ padam/);
    // The flows table's scope column and the uptime in the nodes table.
    const code = await busiest();
    await page.goto(`${collector.url}#/agency/${code}`);
    await waitFor(async () => (await page.locator('[data-testid="flows-table"] thead th').count()) > 0, { timeout: 60000, message: 'flows table' });
    assert.ok((await page.locator('[data-testid="flows-table"] thead th').allTextContents()).includes('Cakupan'));
    const uptime = await page.locator('[data-testid="nodes-table"] tbody tr').first().locator('td').nth(5).textContent();
    assert.match(uptime, /^(—|\d+ (dtk|mnt \d+ dtk|jam \d+ mnt|hari \d+ jam))$/, `uptime in the one style: ${uptime}`);
    assertClean();
  });
});
