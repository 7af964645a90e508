// Who sees and may do what on the dashboard, against the real collector in
// demo mode: the login page (wrong password, throttling), session restore and
// logout, an agency officer who sees one agency only, the read-only kiosk
// wall, and the admin screens (users, API tokens, sessions, audit log).
// Every page is watched for uncaught errors and Content-Security-Policy
// violations.
//   cargo build -p simpul-demo && npm ci --prefix tests/browser && node --test tests/browser/
import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  SHOTS, apiFetch, apiLogin, getJSON, launchBrowser, loginPage, pageKit, startCollector, waitFor,
} from './helpers.js';

const LIVE = '[data-testid="conn-status"][data-state="live"]';

describe('Simpul dashboard: logins, roles and admin screens (collector demo)', { timeout: 900000 }, () => {
  let collector;
  let browser;
  let creds; // the demo's accounts (credentials.txt)
  let api; // an admin session for setting up and checking through the API
  const get = (p) => getJSON(collector.url, p, api);

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    for (const f of readdirSync(SHOTS)) if (f.startsWith('failure-access-')) rmSync(path.join(SHOTS, f));
    collector = await startCollector();
    creds = collector.credentials();
    api = await apiLogin(collector.url, creds.admin);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
  });

  const { newPage, assertClean, step, show } = pageKit('access', () => ({ browser, collector }));

  /** Type into the login form and send it; resolves to the login answer. */
  async function tryLogin(page, username, password) {
    await page.getByTestId('login-username').fill(username);
    await page.getByTestId('login-password').fill(password);
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/login') && r.request().method() === 'POST');
    await page.getByTestId('login-submit').click();
    return answer;
  }

  step('login page: a wrong password shows the server\'s error and stays on the login page; repeated failures say "try again in N s"', async () => {
    const { ctx, page, watch } = await newPage();
    await page.goto(collector.url);
    await page.getByTestId('login-form').waitFor({ timeout: 30000 });
    assert.equal(await page.locator('#login-title').textContent(), 'Masuk ke Simpul NOC');
    assert.ok(await page.getByTestId('mainnav').isHidden(), 'no navigation before a login');

    // The CSP is in force, and the watcher sees a violation (so that "none" below means something).
    const ran = await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.__inlineRan = true';
      document.head.append(s);
      return window.__inlineRan === true;
    });
    assert.equal(ran, false, 'an inline script is refused');
    await waitFor(() => watch.csp.some((v) => v.startsWith('event:')) && watch.csp.some((v) => v.startsWith('console:')),
      { message: 'the inline script reported as a CSP violation (event and console)' });
    watch.csp.length = 0;

    // A wrong password: the server's 401, said in Indonesian with the server's own words beneath.
    const wrong = await tryLogin(page, creds.operator.username, 'bukan-sandinya-123');
    assert.equal(wrong.status(), 401);
    const error = page.getByTestId('login-error');
    await page.locator('[data-testid="login-error"][data-kind="wrong"]').waitFor();
    assert.equal(await page.getByTestId('login-error-text').textContent(), 'Nama pengguna atau kata sandi salah.');
    assert.equal(await page.getByTestId('login-error-server').textContent(), (await wrong.json()).error);
    assert.equal(await page.getByTestId('login-password').inputValue(), '', 'the password field is emptied');
    assert.equal(await page.getByTestId('login-username').inputValue(), creds.operator.username, 'the username stays');
    assert.equal(await page.getAttribute('body', 'data-auth'), 'out', 'still logged out');
    assert.ok(await page.getByTestId('login-form').isVisible(), 'still on the login page');
    assert.deepEqual((await ctx.cookies()).filter((c) => c.name === 'simpul_session'), [], 'no session cookie');

    // Throttling (per account: 5 free failures, then a lock): the server's 429 with the seconds to wait.
    let throttled = null;
    let attempts = 0;
    while (!throttled && attempts < 10) {
      attempts += 1;
      const r = await tryLogin(page, 'belum.terdaftar', `salah-${attempts}-xxxxxx`);
      if (r.status() === 429) throttled = r;
      else {
        assert.equal(r.status(), 401, 'an unknown user gets the same 401 as a wrong password');
        await page.locator('[data-testid="login-error"][data-kind="wrong"]').waitFor();
      }
    }
    assert.ok(throttled, `throttled after ${attempts} attempts`);
    assert.ok(attempts > 5, `the first failures are free (throttled at attempt ${attempts})`);
    const said = (await throttled.json()).error;
    assert.match(said, /try again in \d+ s/);
    assert.ok(Number(throttled.headers()['retry-after']) > 0, 'Retry-After');
    await page.locator('[data-testid="login-error"][data-kind="throttled"]').waitFor();
    assert.match(await page.getByTestId('login-error-text').textContent(), /^Terlalu banyak percobaan gagal\. Coba lagi dalam \d+ dtk\.$/);
    assert.equal(await page.getByTestId('login-error-server').textContent(), said);
    assert.ok(await page.getByTestId('login-submit').isDisabled(), 'no sending while locked');
    assert.ok(await error.isVisible());
    // The same in English.
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => /^Too many failed attempts\. Try again in \d+ s\.$/.test(await page.getByTestId('login-error-text').textContent()),
      { message: 'the English throttling message' });
    assert.equal(await page.locator('#login-title').textContent(), 'Log in to Simpul NOC');
    assert.equal(await page.getByTestId('login-submit').textContent(), 'Log in');
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === 'id', { message: 'back to Indonesian' });
    await page.screenshot({ path: path.join(SHOTS, 'login-throttled.png') });
    assert.equal(await page.getAttribute('body', 'data-auth'), 'out');
    assertClean(watch, 'login page');
  });

  step('log in, the session is restored on reload; log out: the server forgets the session (401)', async () => {
    const { ctx, page, watch } = await newPage();
    await loginPage(page, collector.url, creds.operator);
    await page.locator(LIVE).waitFor({ timeout: 30000 });
    assert.equal(await page.getByTestId('user-name').textContent(), 'Operator NOC');
    const cookie = (await ctx.cookies()).find((c) => c.name === 'simpul_session');
    assert.ok(cookie, 'a session cookie');
    assert.equal(cookie.httpOnly, true, 'HttpOnly');
    assert.equal(cookie.sameSite, 'Strict', 'SameSite=Strict');
    assert.equal(await page.evaluate(() => document.cookie), '', 'the page script cannot read it');
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    assert.ok(!stored.includes(creds.operator.password), 'the password is kept nowhere');

    // A reload resumes the session (GET /api/v1/auth/me), no second login.
    const me = page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/me'));
    await page.reload();
    assert.equal((await me).status(), 200);
    await page.locator('body[data-auth="in"]').waitFor();
    await page.locator(LIVE).waitFor({ timeout: 30000 });
    assert.equal(await page.getByTestId('login-form').count(), 0);
    assert.equal(await page.getByTestId('user-name').textContent(), 'Operator NOC');

    // Log out.
    const out = page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/logout'));
    await page.getByTestId('logout').click();
    const res = await out;
    assert.equal(res.status(), 204);
    assert.ok(res.request().headers()['x-csrf-token'], 'the logout carries the CSRF token');
    await page.getByTestId('login-form').waitFor();
    assert.equal(await page.locator('[data-testid="login-notice"] .strong').textContent(), 'Anda sudah keluar.');
    assert.equal(await page.locator('[data-testid^="agency-row-"]').count(), 0, 'nothing of the session left on the page');
    assert.ok(await page.getByTestId('mainnav').isHidden());
    // The session is gone on the server: the page's own request and the old cookie replayed get 401.
    assert.equal(await page.evaluate(async () => (await fetch('api/v1/auth/me')).status), 401);
    const replay = await apiFetch(collector.url, { cookie: `simpul_session=${cookie.value}` }, 'GET', 'api/v1/overview');
    assert.equal(replay.status, 401);
    assert.ok((await replay.json()).error, 'a JSON error');
    await page.reload();
    await page.getByTestId('login-form').waitFor();
    assertClean(watch, 'login and logout');
  });

  step('an agency officer sees its own agency only: wall, live feed, nodes, incidents, top lists, availability, blocked attempts', async () => {
    const own = creds.agency.code;
    // Other agencies' data that must stay out of sight: their outages (the demo's) and maintenance windows.
    await waitFor(async () => (await get('api/v1/incidents?open=true&limit=500')).some((i) => i.node_id === 'bappeda-02'),
      { timeout: 90000, message: 'the demo outage of bappeda-02' });
    const agencies = await get('api/v1/agencies');
    const mine = agencies.find((a) => a.code === own);
    const others = agencies.filter((a) => a.code !== own);
    assert.ok(mine && others.length >= 2, `the demo has ${own} and others: ${agencies.map((a) => a.code)}`);
    const secret = 'Rahasia instansi lain';
    const now = Math.floor(Date.now() / 1000);
    // Made by the NOC's operator (the demo admin's display name, "Admin Diskominfo", names an agency).
    const noc = await apiLogin(collector.url, creds.operator);
    for (const body of [
      { node: others[0].nodes[0], from: String(now + 3600), to: String(now + 7200), reason: secret },
      { agency: own, from: String(now + 3600), to: String(now + 7200), reason: 'Pemeliharaan jaringan dinkes' },
    ]) {
      const r = await apiFetch(collector.url, noc, 'POST', 'api/v1/maintenance', body);
      assert.equal(r.status, 201, await r.text());
    }
    const forbidden = [...new Set(others.flatMap((a) => [a.code, a.name, ...a.nodes]).concat(secret).map((x) => x.toLowerCase()))];
    const leaks = (text) => forbidden.filter((f) => text.toLowerCase().includes(f));

    const { page, watch } = await newPage();
    const answers = []; // every API answer the page received
    const reading = [];
    page.on('response', (r) => {
      if (!new URL(r.url()).pathname.includes('/api/')) return;
      reading.push(r.text().then((text) => answers.push({ url: r.url(), status: r.status(), text }), () => {}));
    });
    const frames = []; // the live feed
    page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => frames.push(String(payload))));

    await loginPage(page, collector.url, creds.agency);
    await page.locator(LIVE).waitFor({ timeout: 30000 });
    await waitFor(async () => (await page.getByTestId('user-role').textContent()) === `Petugas instansi · ${mine.name}`,
      { message: 'the role and agency of the officer' });
    assert.equal(await page.getByTestId('nav-admin').count(), 0);
    assert.equal(await page.getByTestId('nav-agency').getAttribute('href'), `#/agency/${own}`);
    const checkPage = async (what) => {
      const html = await page.content();
      assert.deepEqual(leaks(html), [], `${what}: nothing of another agency in the page`);
    };

    // The wall: its agency, its nodes, its top lists; live ticks keep coming, for it only.
    await waitFor(async () => JSON.stringify(await page.evaluate(() => [...document.querySelectorAll('[data-testid^="agency-row-"]')].map((e) => e.dataset.code)))
      === JSON.stringify([own]), { message: `only ${own} on the wall` });
    await waitFor(async () => (await page.locator('[data-testid^="node-status-"]').count()) === mine.nodes.length, { message: 'its node tiles' });
    for (const n of mine.nodes) assert.equal(await page.getByTestId(`node-status-${n}`).count(), 1, `tile of ${n}`);
    await page.getByTestId('alerts-panel').waitFor();
    await waitFor(async () => (await page.getByTestId('alerts-count').getAttribute('data-value')) !== null || (await page.getByTestId('alerts-none').count()) > 0,
      { message: 'the alarms loaded' });
    assert.equal(await page.locator('[data-testid="alerts"] li.alert[data-node^="bappeda"]').count(), 0);
    const ticksBefore = frames.length;
    await waitFor(() => frames.length >= ticksBefore + 3, { timeout: 20000, message: 'live ticks for the officer' });
    for (const ol of ['top-agencies', 'top-sites', 'blocked-wall']) {
      const codes = await page.locator(`[data-testid="${ol}"] [data-code]`).evaluateAll((els) => els.map((e) => e.dataset.code));
      assert.ok(codes.every((c) => c === own), `${ol}: ${codes}`);
    }
    await checkPage('wall');
    await page.screenshot({ path: path.join(SHOTS, 'agency-officer.png') });

    // Its agency page, with the tables of its traffic.
    await page.getByTestId('nav-agency').click();
    await page.locator(`[data-testid="agency-page"][data-code="${own}"]`).waitFor();
    await waitFor(async () => (await page.locator('[data-testid="top-sites-table"] tbody tr[data-testid], [data-testid="flows-table"] tbody tr[data-testid]').count()) > 0,
      { timeout: 90000, message: `traffic tables of ${own}` });
    await checkPage('agency page');

    // Another agency's page is not offered: the router sends the officer to its own.
    await page.goto(`${collector.url}#/agency/${others[0].code}`);
    await waitFor(() => new URL(page.url()).hash === `#/agency/${own}`, { message: 'redirected to its own agency' });

    // Incidents: no agency picker; all of 7 days, its nodes only; the timeline has its nodes.
    await page.goto(`${collector.url}#/incidents`);
    await page.getByTestId('incidents-page').waitFor();
    assert.equal(await page.getByTestId('inc-filter-agency').count(), 0, 'no agency picker');
    await page.getByTestId('inc-filter-all').click();
    await waitFor(async () => (await page.getByTestId('incidents-table').getAttribute('data-rows')) !== null
      && Number(await page.getByTestId('timeline').getAttribute('data-rows')) === mine.nodes.length, { message: 'incidents and the timeline loaded' });
    const incNodes = await page.locator('[data-testid="incidents-table"] tbody tr[data-testid]').evaluateAll((els) => els.map((e) => e.dataset.node));
    assert.ok(incNodes.every((n) => mine.nodes.includes(n)), `incident rows: ${incNodes}`);
    await checkPage('incidents');

    // Availability: its nodes; its agency's maintenance window, not the other one; no form (read only).
    await page.getByTestId('tab-availability').click();
    await page.getByTestId('availability-page').waitFor();
    await waitFor(async () => (await page.locator('[data-testid="availability-table"] tbody tr[data-testid]').count()) === mine.nodes.length,
      { message: 'an availability row per own node' });
    await waitFor(async () => /Pemeliharaan jaringan dinkes/.test(await page.getByTestId('maintenance-table').textContent()),
      { message: 'its maintenance window' });
    assert.equal(await page.getByTestId('maintenance-form').count(), 0, 'no maintenance form for an agency officer');
    assert.equal(await page.locator('[data-testid^="maintenance-edit-"], [data-testid^="maintenance-delete-"]').count(), 0);
    await checkPage('availability');

    // Blocked attempts, the node list and its node's page.
    await page.goto(`${collector.url}#/blocked`);
    await page.getByTestId('blocked-page').waitFor();
    await waitFor(async () => (await page.getByTestId('blocked-recent-table').getAttribute('data-rows')) !== null, { message: 'blocked attempts loaded' });
    const chips = await page.locator('[data-testid^="blocked-agency-"]').evaluateAll((els) => els.map((e) => e.dataset.testid));
    assert.ok(chips.every((c) => c === `blocked-agency-${own}`), `blocked per agency: ${chips}`);
    await checkPage('blocked attempts');
    await page.goto(`${collector.url}#/nodes`);
    await waitFor(async () => (await page.locator('[data-testid="node-list-table"] tbody tr[data-testid]').count()) === mine.nodes.length,
      { message: 'its nodes listed' });
    await checkPage('nodes');
    await page.getByTestId(`node-link-${mine.nodes[0]}`).click();
    await page.locator(`[data-testid="node-page"][data-node="${mine.nodes[0]}"]`).waitFor();
    await waitFor(async () => (await page.getByTestId('node-dropped-records').getAttribute('data-value')) !== null, { message: 'node loss figures' });
    const [apiNode] = (await get(`api/v1/nodes?agency=${own}`)).filter((n) => n.node_id === mine.nodes[0]);
    assert.equal(Number(await page.getByTestId('node-dropped-records').getAttribute('data-value')), apiNode.dropped_records, 'dropped_records on the node page');
    assert.equal(Number(await page.getByTestId('node-refused-records').getAttribute('data-value')), apiNode.refused_records, 'refused_records on the node page');
    assert.equal(await page.locator('#k-dropped').textContent(), 'Rekaman hilang di spool');
    await checkPage('node page');

    // The answers and the live frames the page got: its agency only (and there was something).
    await Promise.all(reading);
    assert.ok(answers.length > 20 && frames.length > 3, `${answers.length} answers, ${frames.length} frames`);
    for (const a of answers) {
      // Before the login the page asked who is logged in: nobody (401).
      if (!(a.status === 401 && a.url.endsWith('/api/v1/auth/me'))) assert.ok(a.status < 400, `${a.url}: HTTP ${a.status} ${a.text}`);
      assert.deepEqual(leaks(a.text), [], `${a.url} holds nothing of another agency`);
    }
    for (const f of frames) assert.deepEqual(leaks(f), [], 'live frames hold nothing of another agency');
    // Snapshots hold its agency only; patches carry one agency's rates (index 0) and points.
    const msgs = frames.map((f) => { try { return JSON.parse(f); } catch (_) { return {}; } });
    const snaps = msgs.filter((m) => m.type === 'snapshot');
    const patches = msgs.filter((m) => m.type === 'delta');
    assert.ok(snaps.length >= 1 && snaps.every((m) => m.overview.agencies.every((a) => a.code === own)
      && m.overview.nodes.every((n) => n.agency === own) && Object.keys(m.series || {}).every((c) => c === own)), 'live overview of its agency');
    const foreign = patches.filter((m) => !((m.p || []).length === 2 && (m.r || []).every((v, i) => i % 7 !== 0 || v === 0)));
    // The feed runs only while a live page is open (the wall here), so a few patches.
    assert.ok(patches.length >= 1 && foreign.length === 0,
      `patches of its agency only (${patches.length} patches; not so: ${JSON.stringify(foreign.slice(0, 2)).slice(0, 600)})`);
    assert.ok(answers.some((a) => a.url.includes('/api/v1/incidents')) && answers.some((a) => a.url.includes('/api/v1/top/')), 'incidents and top lists were fetched');

    // And the server refuses the rest (the page only hides).
    const probe = await page.evaluate(async (other) => Promise.all([
      `api/v1/agencies/${other}/usage`, `api/v1/nodes?agency=${other}`, `api/v1/incidents?agency=${other}`, 'api/v1/users',
    ].map(async (p) => (await fetch(p)).status)), others[0].code);
    assert.deepEqual(probe, [403, 403, 403, 403]);
    assertClean(watch, 'agency officer');
  });

  step('kiosk URL: a read-only wall (no acknowledge, maintenance or admin controls; a POST from the page is refused 403)', async () => {
    await waitFor(async () => (await get('api/v1/incidents?open=true&limit=500')).some((i) => i.acked_ms == null && i.kind !== 'unreachable'),
      { timeout: 90000, message: 'an unacknowledged incident of the demo' });
    const { page, watch } = await newPage();
    const traded = page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/kiosk'));
    await page.goto(`${collector.url}?kiosk=${encodeURIComponent(creds.kiosk)}`);
    assert.equal((await traded).status(), 200);
    await page.locator('body[data-auth="in"]').waitFor({ timeout: 30000 });
    assert.ok(!page.url().includes('kiosk='), `the token left the address bar: ${page.url()}`);
    assert.equal(await page.getAttribute('body', 'data-kiosk'), 'true');
    await page.locator(LIVE).waitFor({ timeout: 30000 });
    assert.equal(await page.getByTestId('user-role').textContent(), 'Layar dinding (hanya baca)');
    assert.ok(await page.getByTestId('logout').isHidden(), 'no logout (a POST) on the wall');
    assert.equal(await page.getByTestId('nav-admin').count(), 0);
    assert.equal(await page.getByTestId('blocked-wall-panel').count(), 0, 'no client addresses on the viewer\'s wall');

    // Alarms without acknowledge buttons.
    const rows = page.locator('[data-testid="alerts"] li.alert');
    await waitFor(async () => (await rows.count()) > 0, { timeout: 60000, message: 'alarms on the wall' });
    await waitFor(async () => (await page.locator('[data-testid^="unacked-"]').count()) > 0, { message: '"belum diterima" on an alarm' });
    assert.equal(await page.locator('button[data-testid^="ack-"]').count(), 0, 'no acknowledge button');
    await page.screenshot({ path: path.join(SHOTS, 'kiosk.png') });

    await page.goto(`${collector.url}#/incidents`);
    await waitFor(async () => (await page.locator('[data-testid="incidents-table"] tbody tr[data-testid]').count()) > 0, { message: 'incident rows' });
    assert.equal(await page.locator('button[data-testid^="ack-"]').count(), 0, 'no acknowledge button on the incidents page');
    await page.goto(`${collector.url}#/availability`);
    await waitFor(async () => (await page.getByTestId('maintenance-table').getAttribute('data-rows')) !== null, { message: 'maintenance windows loaded' });
    assert.equal(await page.getByTestId('maintenance-form').count(), 0, 'no maintenance form');
    assert.equal(await page.locator('[data-testid^="maintenance-edit-"], [data-testid^="maintenance-end-"], [data-testid^="maintenance-delete-"]').count(), 0);
    await page.goto(`${collector.url}#/nodes`);
    await waitFor(async () => (await page.locator('[data-testid="node-list-table"] tbody tr[data-testid]').count()) > 0, { message: 'nodes listed' });
    assert.equal(await page.locator('[data-testid^="node-enroll-"], [data-testid^="node-revoke-"]').count(), 0);
    await page.goto(`${collector.url}#/admin/users`);
    await waitFor(() => new URL(page.url()).hash === '#/', { message: 'the admin screens are not offered' });

    // The server refuses every change from this session, CSRF token or not.
    const open = (await get('api/v1/incidents?open=true&limit=500')).find((i) => i.acked_ms == null);
    const res = await page.evaluate(async (id) => {
      const me = await (await fetch('api/v1/auth/me')).json();
      const post = async (p, body) => {
        const r = await fetch(p, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf_token },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        return [r.status, (await r.json().catch(() => ({}))).error];
      };
      const now = Math.floor(Date.now() / 1000);
      return {
        me,
        ack: await post(`api/v1/incidents/${id}/ack`),
        maintenance: await post('api/v1/maintenance', { from: String(now + 3600), to: String(now + 7200), reason: 'kiosk' }),
        logout: await post('api/v1/auth/logout'),
      };
    }, open.id);
    assert.equal(res.me.kiosk, true);
    assert.equal(res.me.role, 'viewer');
    assert.equal(res.ack[0], 403, JSON.stringify(res.ack));
    assert.equal(res.maintenance[0], 403, JSON.stringify(res.maintenance));
    assert.equal(res.logout[0], 403, JSON.stringify(res.logout));
    assert.match(res.logout[1], /read-only/);
    assert.equal((await get('api/v1/incidents?open=true&limit=500')).find((i) => i.id === open.id).acked_ms, null, 'not acknowledged');

    // A wrong kiosk token: the login page says so, no session.
    const other = await newPage();
    show(other.page);
    await other.page.goto(`${collector.url}?kiosk=spl_0000_bogus`);
    await other.page.getByTestId('login-form').waitFor({ timeout: 30000 });
    assert.equal(await other.page.locator('[data-testid="login-notice"] .strong').textContent(), 'Token layar dinding ditolak.');
    assert.ok(!other.page.url().includes('kiosk='));
    assert.equal(await other.page.getAttribute('body', 'data-auth'), 'out');
    assertClean(other.watch, 'refused kiosk token');
    show(page);

    // The wall survives a reload (its session is in the cookie; the token is no longer in the address).
    await page.goto(collector.url);
    await page.locator(LIVE).waitFor({ timeout: 30000 });
    assert.equal(await page.getAttribute('body', 'data-kiosk'), 'true');
    assertClean(watch, 'kiosk wall');
  });

  step('viewer: the wall read-only (no acknowledge, no maintenance form, no client addresses), and logs out', async () => {
    const { page, watch } = await newPage();
    await loginPage(page, collector.url, creds.viewer);
    await page.locator(LIVE).waitFor({ timeout: 30000 });
    assert.equal(await page.getByTestId('user-role').textContent(), 'Pemantau');
    assert.deepEqual(await page.locator('#nav-links a').evaluateAll((els) => els.map((e) => e.dataset.testid)),
      ['nav-overview', 'nav-incidents', 'nav-availability', 'nav-nodes']);
    await waitFor(async () => (await page.locator('[data-testid="alerts"] li.alert').count()) > 0, { timeout: 60000, message: 'alarms on the wall' });
    assert.equal(await page.locator('button[data-testid^="ack-"]').count(), 0, 'no acknowledge button');
    assert.equal(await page.getByTestId('blocked-wall-panel').count(), 0);
    // Blocked attempts and the admin screens are not offered; an agency page has no hosts or flows.
    await page.goto(`${collector.url}#/blocked`);
    await waitFor(() => new URL(page.url()).hash === '#/', { message: '#/blocked not offered' });
    await page.goto(`${collector.url}#/agency/${creds.agency.code}`);
    await page.locator(`[data-testid="agency-page"][data-code="${creds.agency.code}"]`).waitFor();
    await waitFor(async () => (await page.getByTestId('top-sites-table').getAttribute('data-rows')) !== null, { timeout: 30000, message: 'top sites loaded' });
    assert.equal(await page.locator('[data-testid="top-hosts-table"], [data-testid="flows-table"], [data-testid="blocked-panel"]').count(), 0);
    await page.goto(`${collector.url}#/availability`);
    await waitFor(async () => (await page.getByTestId('maintenance-table').getAttribute('data-rows')) !== null, { message: 'maintenance windows loaded' });
    assert.equal(await page.getByTestId('maintenance-form').count(), 0);
    // The server agrees.
    assert.deepEqual(await page.evaluate(async () => {
      const me = await (await fetch('api/v1/auth/me')).json();
      const post = (p) => fetch(p, { method: 'POST', headers: { 'x-csrf-token': me.csrf_token } }).then((r) => r.status);
      return [(await fetch('api/v1/flows')).status, (await fetch('api/v1/blocked')).status, await post('api/v1/incidents/1/ack')];
    }), [403, 403, 403]);
    await page.getByTestId('logout').click();
    await page.getByTestId('login-form').waitFor();
    assertClean(watch, 'viewer');
  });

  step('admin: users (add, password reset, disable), API token (shown once, revoke), sessions (end one), audit log (filters, CSV)', async () => {
    const { page, watch } = await newPage();
    await loginPage(page, collector.url, creds.admin);
    await page.getByTestId('nav-admin').click();
    await page.getByTestId('admin-users').waitFor();
    for (const u of [creds.admin, creds.operator, creds.agency, creds.viewer]) {
      await page.getByTestId(`user-row-${u.username}`).waitFor();
    }
    assert.equal(await page.getByTestId(`user-toggle-${creds.admin.username}`).count(), 0, 'an admin cannot disable itself');

    // Add an operator.
    const user = { username: 'uji.operator', password: 'sandi-uji-0123' };
    assert.ok(await page.getByTestId('user-agency').isHidden(), 'the agency picker only for role agency');
    await page.getByTestId('user-add-role').selectOption('agency');
    assert.ok(await page.getByTestId('user-agency').isVisible());
    await page.getByTestId('user-add-role').selectOption('operator');
    await page.getByTestId('user-username').fill(user.username);
    await page.getByTestId('user-display').fill('Uji Operator');
    await page.getByTestId('user-password').fill(user.password);
    const added = page.waitForResponse((r) => r.url().endsWith('/api/v1/users') && r.request().method() === 'POST');
    await page.getByTestId('user-submit').click();
    assert.equal((await added).status(), 201);
    await page.getByTestId(`user-row-${user.username}`).waitFor();
    assert.equal(await page.getByTestId('user-message').textContent(), 'Pengguna uji.operator ditambahkan.');
    assert.equal(await page.getByTestId('user-password').inputValue(), '');
    const first = await apiLogin(collector.url, user);
    assert.equal(first.me.role, 'operator');
    assert.equal(first.me.display_name, 'Uji Operator');

    // Reset its password: its sessions end, the new one works.
    user.password = 'sandi-baru-4567';
    await page.getByTestId(`user-password-${user.username}`).click();
    await page.getByTestId('password-dialog').waitFor();
    await page.getByTestId('user-new-password').fill(user.password);
    const patched = page.waitForResponse((r) => r.url().endsWith(`/api/v1/users/${user.username}`) && r.request().method() === 'PATCH');
    await page.getByTestId('password-dialog-ok').click();
    assert.equal((await patched).status(), 200);
    await waitFor(async () => (await page.getByTestId('user-message').textContent()) === 'Kata sandi uji.operator diganti; sesinya berakhir.',
      { message: 'password reset message' });
    assert.equal((await apiFetch(collector.url, first, 'GET', 'api/v1/auth/me')).status, 401, 'its old session ended');
    let second = await apiLogin(collector.url, user);

    // Change its role to dinkes's officer: its session ends, the next login has the new role.
    assert.equal(await page.getByTestId(`user-role-${creds.admin.username}`).count(), 0, 'an admin cannot demote itself');
    await page.getByTestId(`user-role-${user.username}`).click();
    await page.getByTestId('role-dialog').waitFor();
    assert.ok(await page.getByTestId('user-new-agency').isHidden(), 'no agency for an operator');
    await page.getByTestId('user-new-role').selectOption('agency');
    await page.getByTestId('user-new-agency').selectOption('dinkes');
    const roled = page.waitForResponse((r) => r.url().endsWith(`/api/v1/users/${user.username}`) && r.request().method() === 'PATCH');
    await page.getByTestId('role-dialog-ok').click();
    assert.equal((await roled).status(), 200);
    await waitFor(async () => (await page.getByTestId(`user-row-${user.username}`).textContent()).includes('Dinas Kesehatan'),
      { message: 'the new role in the list' });
    assert.equal((await apiFetch(collector.url, second, 'GET', 'api/v1/auth/me')).status, 401, 'the session of the old role ended');
    second = await apiLogin(collector.url, user);
    assert.deepEqual([second.me.role, second.me.agency], ['agency', 'dinkes']);

    // Sessions: the new user's session is listed; ending it ends it.
    await page.getByTestId('admin-tab-sessions').click();
    const sRow = page.getByTestId(`session-row-${second.me.session_id}`);
    await sRow.waitFor();
    assert.equal(await sRow.getAttribute('data-user'), user.username);
    await page.getByTestId(`session-end-${second.me.session_id}`).click();
    await page.getByTestId('confirm').waitFor();
    const ended = page.waitForResponse((r) => r.url().endsWith(`/api/v1/auth/sessions/${second.me.session_id}`) && r.request().method() === 'DELETE');
    await page.getByTestId('confirm-ok').click();
    assert.equal((await ended).status(), 204);
    await waitFor(async () => (await sRow.count()) === 0, { message: 'the ended session gone from the list' });
    assert.equal((await apiFetch(collector.url, second, 'GET', 'api/v1/auth/me')).status, 401, 'the ended session is refused');

    // An operator's open dashboard goes back to the login page when an admin ends its session.
    const op = await newPage();
    show(page);
    await loginPage(op.page, collector.url, creds.operator);
    await op.page.locator(LIVE).waitFor({ timeout: 30000 });
    const opSession = await op.page.evaluate(async () => (await (await fetch('api/v1/auth/me')).json()).session_id);
    await page.reload();
    await page.getByTestId(`session-row-${opSession}`).waitFor();
    await page.getByTestId(`session-end-${opSession}`).click();
    await page.getByTestId('confirm-ok').click();
    await op.page.getByTestId('login-form').waitFor({ timeout: 30000 });
    assert.equal(await op.page.locator('[data-testid="login-notice"] .strong').textContent(), 'Sesi Anda berakhir. Silakan masuk lagi.');
    assertClean(op.watch, 'the operator whose session ended');

    // Disable the user: no more logins.
    await page.getByTestId('admin-tab-users').click();
    await page.getByTestId(`user-toggle-${user.username}`).click();
    await page.getByTestId('confirm').waitFor();
    await page.getByTestId('confirm-ok').click();
    await waitFor(async () => (await page.getByTestId(`user-row-${user.username}`).getAttribute('data-disabled')) === 'true', { message: 'disabled in the list' });
    await assert.rejects(apiLogin(collector.url, user), (e) => e.status === 401);

    // An API token: shown once, works as a bearer token, revoked.
    await page.getByTestId('admin-tab-tokens').click();
    await page.getByTestId('token-form').waitFor();
    await page.getByTestId('token-name').fill('grafana-uji');
    await page.getByTestId('token-role').selectOption('viewer');
    await page.getByTestId('token-expires').fill('30');
    const created = page.waitForResponse((r) => r.url().endsWith('/api/v1/tokens') && r.request().method() === 'POST');
    await page.getByTestId('token-submit').click();
    const made = await (await created).json();
    await page.getByTestId('token-created').waitFor();
    const token = await page.getByTestId('token-value').inputValue();
    assert.equal(token, made.token);
    assert.match(token, /^spl_/);
    assert.ok(!(await page.getByTestId('token-created').textContent()).includes('null'), 'no stray "null" in the new-token panel');
    const tRow = page.getByTestId(`token-row-${made.id}`);
    await tRow.waitFor();
    assert.equal(await tRow.getAttribute('data-state'), 'active');
    assert.ok(!(await tRow.textContent()).includes(token), 'the list never shows the token');
    assert.equal((await apiFetch(collector.url, { token }, 'GET', 'api/v1/overview')).status, 200, 'the token works');
    assert.equal((await apiFetch(collector.url, { token }, 'GET', 'api/v1/users')).status, 403, 'as a viewer');
    await page.getByTestId('token-dismiss').click();
    await page.reload();
    await tRow.waitFor();
    assert.ok(!(await page.content()).includes(token), 'shown once: not on the page again');
    await page.getByTestId(`token-revoke-${made.id}`).click();
    await page.getByTestId('confirm').waitFor();
    const revoked = page.waitForResponse((r) => r.url().endsWith(`/api/v1/tokens/${made.id}`) && r.request().method() === 'DELETE');
    await page.getByTestId('confirm-ok').click();
    assert.equal((await revoked).status(), 204);
    await waitFor(async () => (await tRow.getAttribute('data-state')) === 'revoked', { message: 'revoked in the list' });
    assert.equal((await apiFetch(collector.url, { token }, 'GET', 'api/v1/overview')).status, 401, 'the revoked token is refused');

    // The audit log has all of it; filters; the CSV export.
    await page.getByTestId('admin-tab-audit').click();
    const audit = page.locator('[data-testid="audit-table"] tbody tr[data-testid]');
    const has = async (action, target) => (await page.locator(`[data-testid="audit-table"] tr[data-action="${action}"][data-target="${target}"]`).count()) > 0;
    await waitFor(async () => (await audit.count()) > 0, { message: 'audit rows' });
    for (const [action, target] of [['user.add', user.username], ['user.password', user.username], ['user.disable', user.username],
      ['auth.session_revoke', second.me.session_id], ['token.create', made.id], ['token.revoke', made.id]]) {
      assert.ok(await has(action, target), `audit row ${action} ${target}`);
    }
    const actorOf = await page.locator(`[data-testid="audit-table"] tr[data-action="user.add"][data-target="${user.username}"]`).getAttribute('data-actor');
    assert.equal(actorOf, creds.admin.username, 'who did it');
    await page.getByTestId('audit-action').fill('token.');
    const filtered = page.waitForResponse((r) => /\/api\/v1\/audit\?.*action=token\./.test(r.url()));
    await page.getByTestId('audit-apply').click();
    assert.equal((await filtered).status(), 200);
    await waitFor(async () => {
      const actions = await audit.evaluateAll((els) => els.map((e) => e.dataset.action));
      return actions.length >= 2 && actions.every((a) => a.startsWith('token.'));
    }, { message: 'only token rows after the filter' });
    const href = await page.getByTestId('audit-export').getAttribute('href');
    assert.match(href, /\/api\/v1\/audit\?.*action=token\..*format=csv/);
    const csv = await page.evaluate(async (u) => {
      const r = await fetch(u);
      return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
    }, href);
    assert.equal(csv.status, 200);
    assert.match(csv.type, /^text\/csv/);
    const lines = csv.text.trim().split('\n');
    assert.equal(lines[0], 'seq,time,actor,address,action,target,outcome,detail,prev_hash,hash');
    assert.ok(lines.some((l) => l.includes(',token.create,') && l.includes(made.id)), 'the CSV has the token creation');
    assert.ok(!lines.some((l) => l.includes(',user.add,')), 'the CSV follows the filter');
    await page.screenshot({ path: path.join(SHOTS, 'admin-audit.png'), fullPage: true });

    // In English too.
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.locator('#h-audit').textContent()) === 'Audit log', { message: 'English audit page' });
    // The heading changes before the table is drawn again: wait for the headers themselves.
    const english = ['Time', 'Actor', 'Address', 'Action', 'Target', 'Outcome', 'Detail'];
    let heads = [];
    await waitFor(async () => {
      heads = await page.locator('[data-testid="audit-table"] thead th').allTextContents();
      return JSON.stringify(heads) === JSON.stringify(english);
    }, { message: 'English audit headers' }).catch(() => {});
    assert.deepEqual(heads, english);
    await page.getByTestId('lang-switch').click();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === 'id', { message: 'back to Indonesian' });
    assertClean(watch, 'admin screens');
  });
});
