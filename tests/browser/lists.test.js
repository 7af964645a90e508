// The blocklists page (#/lists) against the real collector in demo mode,
// whose agents run the real control thread and fetch named lists by hash:
// an admin uploads a list file (its progress shown) and sees it counted;
// once dinkes enables the category, a new version of the list reaches
// dinkes's nodes (applied at a new policy version); a shrunk upload is held
// and confirmed through the dialog; an operator reads without the forms;
// an agency officer reads the page too. Every page is watched for uncaught
// errors and CSP violations.
//   cargo build -p simpul-demo && npm ci --prefix tests/browser && node --test tests/browser/
import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import {
  SHOTS, apiFetch, apiLogin, getJSON, launchBrowser, loginPage, pageKit, startCollector, waitFor,
} from './helpers.js';

const CODE = 'dinkes';
const LIST = 'judi-uji';

/** A list file of `n` generated names (plain lines) → its path. */
function listFile(n, name) {
  const file = path.join(os.tmpdir(), `simpul-${process.pid}-${name}.txt`);
  let text = '# daftar uji\n';
  for (let i = 0; i < n; i += 1) text += `situs-${i}.judi.example\n`;
  text += 'bukan domain!\n';
  writeFileSync(file, text);
  return file;
}

describe('Simpul dashboard: blocklists (collector demo)', { timeout: 900000 }, () => {
  let collector;
  let browser;
  let creds;
  let api;
  const get = (p) => getJSON(collector.url, p, api);

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    collector = await startCollector();
    creds = collector.credentials();
    api = await apiLogin(collector.url, creds.admin);
    browser = await launchBrowser();
    await waitFor(async () => (await get(`api/v1/nodes?agency=${CODE}`)).every((n) => n.policy?.state === 'applied'),
      { timeout: 60000, message: `${CODE}'s nodes applied their first version` });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await collector?.stop();
  });

  const { newPage, assertClean, step } = pageKit('lists', () => ({ browser, collector }));

  async function upload(page, file, comment) {
    await page.getByTestId('list-upload-name').fill(LIST);
    await page.getByTestId('list-upload-file').setInputFiles(file);
    await page.getByTestId('list-upload-comment').fill(comment);
    await page.getByTestId('list-upload-submit').click();
    const msg = page.locator('[data-testid="list-upload-message"]:not([hidden])');
    await msg.waitFor({ timeout: 60000 });
    return msg;
  }

  step('admin: uploads a list with progress, the nodes of an agency that enables it fetch each new version, a shrunk one is held and confirmed', async () => {
    const { page, watch } = await newPage();
    await loginPage(page, collector.url, creds.admin, { hash: '#/lists' });
    await page.getByTestId('lists-page').waitFor();
    assert.equal(await page.getByTestId('nav-lists').count(), 1);
    // 200,000 names: the upload's progress bar shows while it goes up.
    let sawProgress = false;
    const file = listFile(200000, 'v1');
    const uploading = upload(page, file, 'surat 070/KOMINFO/2026');
    await waitFor(async () => {
      const v = await page.getByTestId('list-upload-progress').evaluate((el) => ({ hidden: el.hidden, value: el.value }));
      if (!v.hidden) sawProgress = true;
      return sawProgress || (await page.locator('[data-testid="list-upload-message"]:not([hidden])').count()) > 0;
    }, { interval: 20, message: 'the upload shows its progress' });
    const msg = await uploading;
    assert.equal(await msg.getAttribute('data-state'), 'ok', await msg.textContent());
    assert.match(await msg.textContent(), /200\.000 domain/);
    assert.match(await msg.textContent(), /1 baris tidak valid/);
    assert.ok(sawProgress, 'the progress bar was shown');
    const row = page.getByTestId(`list-row-${LIST}`);
    await row.waitFor();
    assert.match(await row.textContent(), /200\.000/);
    const v1 = (await get(`api/v1/lists/${LIST}`)).current;
    assert.equal(v1.domains, 200000);

    // dinkes switches the category on in its policy page (the form's
    // checkbox): its nodes fetch the list by hash and apply; a new upload
    // gives dinkes a new version by itself.
    const pol = await get(`api/v1/agencies/${CODE}/policy`);
    await page.goto(`${collector.url}#/policy/${CODE}`);
    await page.locator(`[data-testid="policy-page"][data-code="${CODE}"][data-version]`).waitFor();
    const box = page.getByTestId(`pf-cat-${LIST}`);
    assert.equal(await box.isChecked(), false);
    assert.match(await page.getByTestId('pf-categories').textContent(), /judi-uji \(200\.000\)/);
    await box.check();
    await page.getByTestId('pf-comment').fill('surat 071/DINKES/2026: kategori judi');
    await page.getByTestId('pf-save').click();
    await waitFor(async () => Number(await page.getByTestId('policy-version').getAttribute('data-value')) === pol.version + 1,
      { message: 'the policy saved with the category' });
    const saved = await get(`api/v1/agencies/${CODE}/policy`);
    assert.deepEqual(saved.effective.blocking.enabled_categories, [...(pol.effective.blocking.enabled_categories || []), LIST].sort());
    assert.equal(saved.effective.blocking.lists[LIST].sha256, v1.sha256);
    await page.locator(`[data-testid="policy-categories"] li`).filter({ hasText: LIST }).waitFor();
    const applied = async (version) => (await get(`api/v1/nodes?agency=${CODE}`))
      .every((n) => n.policy?.state === 'applied' && n.policy?.version === version);
    await waitFor(() => applied(pol.version + 1), { timeout: 60000, message: 'dinkes nodes applied the policy naming the list' });
    await page.goto(`${collector.url}#/lists`);
    await page.getByTestId(`list-row-${LIST}`).waitFor();
    const v2file = listFile(190000, 'v2');
    const msg2 = await upload(page, v2file, 'surat 072/KOMINFO/2026');
    assert.match(await msg2.textContent(), /versi 2: 190\.000 domain; 1 kebijakan/);
    await waitFor(() => applied(pol.version + 2), { timeout: 60000, message: 'dinkes nodes applied the list\'s version 2' });

    // Half of it: held, the version in force stays; confirmed in the dialog.
    const msg3 = await upload(page, listFile(90000, 'v3'), 'surat 073/KOMINFO/2026');
    assert.equal(await msg3.getAttribute('data-state'), 'error');
    assert.match(await msg3.textContent(), /ditahan/);
    await page.getByTestId(`list-held-${LIST}-3`).waitFor();
    assert.equal((await get(`api/v1/lists/${LIST}`)).current.version, 2);
    await page.getByTestId(`list-confirm-${LIST}-3`).click();
    await page.getByTestId('list-decide-comment').fill('surat 074/KOMINFO/2026: memang dikurangi');
    await page.getByTestId('list-decide-ok').click();
    await page.locator('[data-testid="lists-message"][data-state="ok"]').waitFor();
    await waitFor(async () => (await page.getByTestId(`list-held-${LIST}-3`).count()) === 0, { message: 'no held row left' });
    assert.equal((await get(`api/v1/lists/${LIST}`)).current.version, 3);
    await waitFor(() => applied(pol.version + 3), { timeout: 60000, message: 'dinkes nodes applied the confirmed version' });
    await page.screenshot({ path: path.join(SHOTS, 'lists.png'), fullPage: true });
    assertClean(watch, 'admin lists page');
  });

  step('wall: a node that refused the newest policy is marked (its list could not be fetched), and clears when a policy it can apply follows', async () => {
    // A list whose stored content is lost from the collector's data
    // directory: dinkes's nodes cannot fetch it and refuse the version.
    const up = await apiFetch(collector.url, api, 'PUT', 'api/v1/lists/hilang?comment=surat%20080', undefined,
      { body: 'a.hilang.example\nb.hilang.example\n', contentType: 'text/plain' });
    const upText = await up.text();
    assert.equal(up.status, 200, upText);
    const { version: lost } = JSON.parse(upText);
    rmSync(path.join(collector.dataDir, 'lists', `${lost.sha256}.gz`));
    const pol = await get(`api/v1/agencies/${CODE}/policy`);
    const doc = structuredClone(pol.policy);
    const enabled = pol.effective.blocking.enabled_categories || [];
    doc.blocking = { ...(doc.blocking || {}), enabled_categories: [...enabled, 'hilang'] };
    const put = await apiFetch(collector.url, api, 'PUT', `api/v1/agencies/${CODE}/policy`,
      { base_version: pol.version, policy: doc, comment: 'surat 081/DINKES/2026' });
    assert.equal(put.status, 200, await put.text());
    const nodes = (await get(`api/v1/agencies`)).find((a) => a.code === CODE).nodes;
    await waitFor(async () => (await get(`api/v1/nodes?agency=${CODE}`)).every((n) => n.policy?.state === 'rejected'),
      { timeout: 60000, message: 'dinkes nodes refused the version naming a lost list' });
    const { page, watch } = await newPage();
    await loginPage(page, collector.url, creds.operator);
    for (const n of nodes) {
      const tile = page.getByTestId(`node-status-${n}`);
      await page.locator(`[data-testid="node-status-${n}"][data-policy="rejected"]`).waitFor({ timeout: 30000 });
      assert.match(await tile.getByTestId(`node-policy-${n}`).textContent(), new RegExp(`v${pol.version + 1}`));
      assert.match(await tile.getByTestId(`node-policy-${n}`).getAttribute('title'), /hilang/);
    }
    await page.screenshot({ path: path.join(SHOTS, 'wall-policy-rejected.png') });
    // A version without the lost list: applied, the marks go.
    doc.blocking.enabled_categories = enabled;
    const fix = await apiFetch(collector.url, api, 'PUT', `api/v1/agencies/${CODE}/policy`,
      { base_version: pol.version + 1, policy: doc, comment: 'surat 082/DINKES/2026' });
    assert.equal(fix.status, 200, await fix.text());
    for (const n of nodes) {
      await page.locator(`[data-testid="node-status-${n}"]:not([data-policy])`).waitFor({ timeout: 30000 });
    }
    assertClean(watch, 'wall with a refused policy');
  });

  step('operator and agency officer: read the lists, no forms', async () => {
    for (const who of ['operator', 'agency']) {
      const { page, watch } = await newPage();
      await loginPage(page, collector.url, creds[who], { hash: '#/lists' });
      await page.getByTestId(`list-row-${LIST}`).waitFor();
      await page.getByTestId('lists-readonly').waitFor();
      assert.equal(await page.getByTestId('list-upload-form').count(), 0, `${who}: no upload form`);
      assert.equal(await page.getByTestId('list-source-form').count(), 0, `${who}: no source form`);
      assertClean(watch, `${who} lists page`);
    }
  });
});
