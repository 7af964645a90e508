// Shared helpers for the dashboard browser tests: start the real collector in
// demo mode, launch Debian's Chromium, wait for conditions, read the page.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHOTS = path.join(ROOT, 'tests/browser/screenshots');
const CHROMIUM = process.env.SIMPUL_CHROMIUM || '/usr/bin/chromium';
const READY_TIMEOUT_MS = Number(process.env.SIMPUL_READY_TIMEOUT_MS || 120000);

/**
 * Start `simpul-demo --listen 127.0.0.1:0 --data-dir <tmp> [args…]` (the
 * collector with its demo agents; `args` e.g. ['--province']) and wait for
 * its "Dashboard: http://127.0.0.1:PORT/" line. It runs in its own process
 * group so that stop() also ends anything it started.
 */
export async function startCollector({ args = [] } = {}) {
  const bin = path.resolve(ROOT, process.env.SIMPUL_DEMO_BIN || 'target/debug/simpul-demo');
  if (!existsSync(bin)) {
    throw new Error(`demo binary not found at ${bin}: run \`cargo build -p simpul-demo\` or set SIMPUL_DEMO_BIN`);
  }
  const dataDir = mkdtempSync(path.join(tmpdir(), 'simpul-browser-'));
  const proc = spawn(bin, ['--listen', '127.0.0.1:0', '--data-dir', dataDir, ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' },
  });
  const log = [];
  const remember = (stream, name) => {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        log.push(`[${name}] ${line}`);
        if (log.length > 400) log.shift();
        stream.emit('line', line);
      }
    });
  };
  remember(proc.stdout, 'stdout');
  remember(proc.stderr, 'stderr');

  let exited = null;
  const exitPromise = new Promise((resolve) => proc.on('exit', (code, signal) => { exited = { code, signal }; resolve(exited); }));
  // Last resort if the test process dies without running after(): kill the group.
  const onExit = () => { try { process.kill(-proc.pid, 'SIGKILL'); } catch (_) { /* gone */ } };
  process.on('exit', onExit);

  const stop = async () => {
    process.off('exit', onExit);
    // Ctrl-C (the demo's graceful stop), then SIGTERM, then SIGKILL.
    for (const [signal, ms] of [['SIGINT', 5000], ['SIGTERM', 2000], ['SIGKILL', 5000]]) {
      if (exited) break;
      try { process.kill(-proc.pid, signal); } catch (_) { break; /* gone */ }
      await Promise.race([exitPromise, new Promise((resolve) => setTimeout(resolve, ms))]);
    }
    // The group may still hold children after the leader exited.
    try { process.kill(-proc.pid, 'SIGKILL'); } catch (_) { /* none left */ }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`collector printed no "Dashboard:" line within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    proc.stdout.on('line', (line) => {
      const m = line.match(/Dashboard:\s*(https?:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1].endsWith('/') ? m[1] : `${m[1]}/`); }
    });
    exitPromise.then((e) => { clearTimeout(timer); reject(new Error(`collector exited early (${JSON.stringify(e)})`)); });
  }).catch(async (err) => {
    await stop();
    err.message += `\n--- collector output ---\n${log.join('\n')}`;
    throw err;
  });

  return {
    url, proc, stop, dataDir, logTail: (n = 60) => log.slice(-n).join('\n'), exited: () => exited,
    /** The demo's accounts (credentials.txt in its data directory). */
    credentials: () => readCredentials(dataDir),
  };
}

/**
 * credentials.txt of the demo: `#` header lines, then `ROLE USERNAME
 * PASSWORD` (roles admin, operator, agency:CODE, viewer) and `kiosk-token
 * TOKEN` → { admin: {username, password}, operator, agency: {code, username,
 * password}, viewer, kiosk }.
 */
export function readCredentials(dataDir) {
  const text = readFileSync(path.join(dataDir, 'credentials.txt'), 'utf8');
  const out = {};
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [role, a, b] = line.trim().split(/\s+/);
    if (role === 'kiosk-token') { out.kiosk = a; continue; }
    const [name, code] = role.split(':');
    out[name] = { username: a, password: b, ...(code ? { code } : {}) };
  }
  for (const k of ['admin', 'operator', 'agency', 'viewer', 'kiosk']) {
    if (!out[k]) throw new Error(`credentials.txt has no ${k} line:\n${text}`);
  }
  return out;
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll fn until it returns a truthy value; throws with the last value/error. */
export async function waitFor(fn, { timeout = 20000, interval = 250, message = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > end) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${message} (last: ${detail})`);
    }
    await sleep(interval);
  }
}

/**
 * Log in through the API (as a script would): { base, cookie, csrf, me }.
 * Throws with the server's answer when refused.
 */
export async function apiLogin(base, { username, password }) {
  const res = await fetch(new URL('api/v1/auth/login', base), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const text = await res.text();
  if (!res.ok) throw Object.assign(new Error(`login ${username}: HTTP ${res.status} ${text}`), { status: res.status });
  const me = JSON.parse(text);
  const cookie = (res.headers.get('set-cookie') || '').split(';')[0];
  if (!cookie.startsWith('simpul_session=')) throw new Error(`login ${username}: no session cookie`);
  return { base, cookie, csrf: me.csrf_token, me };
}

/**
 * An API call under `auth`: a session from apiLogin (cookie, and the CSRF
 * header on changes) or { token } (Authorization: Bearer). Resolves to the
 * Response.
 */
export function apiFetch(base, auth, method, p, body, raw = null) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (raw) headers['content-type'] = raw.contentType;
  if (auth?.cookie) {
    headers.cookie = auth.cookie;
    if (method !== 'GET') headers['x-csrf-token'] = auth.csrf;
  }
  if (auth?.token) headers.authorization = `Bearer ${auth.token}`;
  // raw: { body, contentType } sent as is (a list upload).
  const sent = raw ? raw.body : body === undefined ? undefined : JSON.stringify(body);
  return fetch(new URL(p, base), { method, headers, body: sent });
}

/** GET JSON under `auth` (see apiFetch); throws on any non-2xx answer. */
export async function getJSON(base, p, auth) {
  const res = await apiFetch(base, auth, 'GET', p);
  if (!res.ok) throw new Error(`GET ${p}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

/**
 * Log in on the dashboard's login page (the page shows it when there is no
 * session) and wait until the dashboard is there.
 */
export async function loginPage(page, url, { username, password }, { hash = '' } = {}) {
  await page.goto(`${url}${hash}`);
  await page.getByTestId('login-form').waitFor({ timeout: 30000 });
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.locator('body[data-auth="in"]').waitFor({ timeout: 30000 });
}

/**
 * Watch a page for what must never happen: uncaught errors, and Content
 * Security Policy violations (console messages and `securitypolicyviolation`
 * events, reported through a binding so they survive navigations).
 */
export async function watchPage(page) {
  const w = { errors: [], csp: [] };
  page.on('pageerror', (e) => w.errors.push(e.message));
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to (execute|load|apply|connect|frame)/i.test(m.text())) w.csp.push(`console: ${m.text()}`);
  });
  await page.exposeBinding('__simpulCsp', (_src, v) => { w.csp.push(`event: ${v}`); });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__simpulCsp?.(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile || ''}:${e.lineNumber}`);
    });
  });
  return w;
}

/**
 * What the overview page shows right now, read in one go (a tick updates the
 * DOM in one task, so this is one consistent tick).
 */
export function readOverview(page) {
  return page.evaluate(() => {
    const num = (el) => (el ? Number(el.dataset.value) : null);
    const last = document.querySelector('[data-testid="last-update"]');
    const agencies = {};
    for (const el of document.querySelectorAll('[data-testid^="agency-in-bps-"]')) {
      const code = el.dataset.testid.slice('agency-in-bps-'.length);
      const out = document.querySelector(`[data-testid="agency-out-bps-${CSS.escape(code)}"]`);
      agencies[code] = { in: num(el), out: num(out), inText: el.textContent, outText: out?.textContent };
    }
    return {
      ts: last?.dataset.ts ?? null,
      source: last?.dataset.source ?? null,
      uplinkIn: num(document.querySelector('[data-testid="uplink-in-bps"]')),
      uplinkOut: num(document.querySelector('[data-testid="uplink-out-bps"]')),
      agencies,
    };
  });
}

/** Count canvas pixels close to any of the given #rrggbb colours. */
export function seriesPixels(page, selector, colors) {
  return page.evaluate(({ selector, colors }) => {
    const canvas = document.querySelector(`${selector} canvas`);
    if (!canvas || !canvas.width || !canvas.height) return 0;
    const ctx = canvas.getContext('2d');
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const rgb = colors.map((c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)));
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] < 200) continue;
      for (const [r, g, b] of rgb) {
        if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60) { n++; break; }
      }
    }
    return n;
  }, { selector, colors });
}

const UNIT = { bps: 1, Kbps: 1e3, Mbps: 1e6, Gbps: 1e9, Tbps: 1e12 };

/**
 * Parse a displayed rate ("12,3 Mbps" in id, "12.3 Mbps" in en) back to bps;
 * null when it does not look like the language's number format.
 */
export function parseRate(text, lang) {
  const re = lang === 'id' ? /^(\d{1,3}(?:\.\d{3})*(?:,\d+)?) (bps|Kbps|Mbps|Gbps|Tbps)$/ : /^(\d{1,3}(?:,\d{3})*(?:\.\d+)?) (bps|Kbps|Mbps|Gbps|Tbps)$/;
  const m = String(text).trim().match(re);
  if (!m) return null;
  const n = lang === 'id' ? m[1].replace(/\./g, '').replace(',', '.') : m[1].replace(/,/g, '');
  return Number(n) * UNIT[m[2]];
}


/**
 * `step(name, fn)`: a test that, when it fails, screenshots `page()` as
 * `failure-<tag>-<name>.png` and appends the collector's log tail to the
 * error; `after` runs once the test is over, failed or not.
 */
export function stepWithShots(tag, page, collector, { timeout = 240000, after = null } = {}) {
  return (name, fn) => it(name, { timeout }, async () => {
    try {
      await fn();
    } catch (err) {
      const file = path.join(SHOTS, `failure-${tag ? `${tag}-` : ''}${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase().slice(0, 80)}.png`);
      await page()?.screenshot({ path: file, fullPage: true }).catch(() => {});
      err.message += `\n(screenshot: ${file})\n--- collector output (tail) ---\n${collector()?.logTail()}`;
      throw err;
    } finally {
      await after?.();
    }
  });
}
/**
 * Per-file scaffolding for the browser tests: fresh watched pages, a check
 * that a page stayed clean, and `step` — a test that screenshots the page
 * in view when it fails, appends the collector's log, and closes the
 * contexts it opened. `env()` gives the file's { browser, collector }.
 */
export function pageKit(tag, env) {
  let contexts = []; // browser contexts of the running test, closed after it
  let shown = null; // the page to screenshot when a test fails
  async function newPage() {
    const ctx = await env().browser.newContext({ viewport: { width: 1920, height: 1080 }, timezoneId: 'Asia/Jakarta', locale: 'id-ID' });
    contexts.push(ctx);
    const page = await ctx.newPage();
    const watch = await watchPage(page);
    shown = page;
    return { ctx, page, watch };
  }
  function assertClean(watch, what) {
    assert.deepEqual(watch.errors, [], `${what}: no uncaught page errors`);
    assert.deepEqual(watch.csp, [], `${what}: no Content-Security-Policy violations`);
  }
  const step = stepWithShots(tag, () => shown, () => env().collector, {
    timeout: 300000,
    after: async () => {
      for (const c of contexts) await c.close().catch(() => {});
      contexts = [];
      shown = null;
    },
  });
  return { newPage, assertClean, step, show: (page) => { shown = page; } };
}

/** RFC 4180 records of a CSV text (BOM required: spreadsheets need it). */
/**
 * The demo collector and a browser for one describe() block: started
 * before its tests, stopped after them. Fields fill in as `before` runs:
 * `collector`, `creds`, `api` (an admin's session), `browser`, and `kit`
 * (`pageKit(tag)`).
 */
export function demoSuite(tag) {
  const s = { collector: null, browser: null, creds: null, api: null };
  s.kit = pageKit(tag, () => s);
  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    s.collector = await startCollector();
    s.creds = s.collector.credentials();
    s.api = await apiLogin(s.collector.url, s.creds.admin);
    s.browser = await launchBrowser();
  });
  after(async () => {
    await s.browser?.close().catch(() => {});
    await s.collector?.stop();
  });
  return s;
}

export function parseCsv(text) {
  assert.equal(text.charCodeAt(0), 0xfeff, 'a byte-order mark for spreadsheets');
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; } else if (c === '\r') { /* CRLF */ } else if (c === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; } else cell += c;
  }
  assert.ok(!cell && !row.length, 'the last line ends');
  return rows;
}
