// Shared helpers for the dashboard browser tests: start the real collector in
// demo mode, launch Debian's Chromium, wait for conditions, read the page.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHOTS = path.join(ROOT, 'tests/browser/screenshots');
const CHROMIUM = process.env.SIMPUL_CHROMIUM || '/usr/bin/chromium';
const READY_TIMEOUT_MS = Number(process.env.SIMPUL_READY_TIMEOUT_MS || 120000);

/**
 * Start `simpul-demo --listen 127.0.0.1:0 --data-dir <tmp>` (the collector
 * with its demo agents) and wait for its "Dashboard: http://127.0.0.1:PORT/"
 * line. It runs in its own process group so that stop() also ends anything
 * it started.
 */
export async function startCollector() {
  const bin = path.resolve(ROOT, process.env.SIMPUL_DEMO_BIN || 'target/debug/simpul-demo');
  if (!existsSync(bin)) {
    throw new Error(`demo binary not found at ${bin}: run \`cargo build -p simpul-demo\` or set SIMPUL_DEMO_BIN`);
  }
  const dataDir = mkdtempSync(path.join(tmpdir(), 'simpul-browser-'));
  const proc = spawn(bin, ['--listen', '127.0.0.1:0', '--data-dir', dataDir], {
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

  return { url, proc, stop, logTail: (n = 60) => log.slice(-n).join('\n'), exited: () => exited };
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

export async function getJSON(base, p) {
  const res = await fetch(new URL(p, base), { headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`GET ${p}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
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
