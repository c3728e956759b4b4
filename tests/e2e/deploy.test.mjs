// The deployed app as a clinic's IT person checks it. dist/ served under a sub-path works; the
// page carries a Content-Security-Policy that allows only its own origin and nothing breaks it;
// a full analysis of scans opened from disk asks nothing of any other origin, and the page
// requests nothing at all once the app and models have loaded (the scans' bytes never reach a
// request; the server hears only the browser's service worker update check);
// after one visit the app, its models and the opened sample work with no network (service
// worker), and Chromium finds the page installable. Run `trunk build --release` first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { launch, launchProfile, repo, serveDist, waitForSlice } from './harness.mjs';

const reference = JSON.parse(readFileSync(join(repo, 'tests', 'fixtures', 'detect', 'sample_findings.json'), 'utf8'));
const sampleFile = join(repo, 'static', 'sample', 'LIDC-IDRI-0006.nii.gz');
const ANALYSIS_MS = 180_000;
const PREFIX = '/some/path/';

async function waitForDone(page) {
  await page.locator('[data-testid="analysis-status"][data-state="done"]').waitFor({ timeout: ANALYSIS_MS });
}

/** Resolves once the service worker is active and controls the page (its install cached the
 *  app and models). */
async function waitForServiceWorker(page) {
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
    }
  });
}

test(`under ${PREFIX}: a full analysis asks nothing of another origin, and the page nothing at all once loaded`, async () => {
  const { server, url, origin, hits } = await serveDist({ prefix: PREFIX });
  const browser = await launch();
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const requests = [];
    context.on('request', (r) => requests.push(r));
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const violations = [];
    const watch = (m) => { if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text()); };
    page.on('console', watch);
    // Workers inherit the page's policy; their violations are logged in the worker.
    page.on('worker', (w) => w.on('console', watch));
    await page.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    await page.goto(url);
    // The policy is the page's own: no host header needed.
    const policy = await page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content');
    assert.match(policy, /script-src 'self' 'wasm-unsafe-eval' 'sha256-[^']+'/);
    assert.match(policy, /connect-src 'self'/);
    assert.match(policy, /default-src 'self'/);
    // Loaded: the models are in the analysis worker (it reports its backend), the service
    // worker has cached the app.
    await page.waitForFunction(() => document.body.dataset.analysisBackend, null, { timeout: 120_000 });
    await waitForServiceWorker(page);
    await page.waitForFunction(() => document.body.dataset.decoderSources === 'ready', null, { timeout: 60_000 });
    const loadedRequests = requests.length;
    const loadedHits = hits.length;

    await page.setInputFiles('[data-testid="file-input"]', sampleFile);
    await waitForSlice(page);
    await waitForDone(page);
    const found = await page.locator('[data-testid="finding"]').count();
    assert.equal(found, reference.findings_at_operating_point, 'the sample\'s findings');

    const offOrigin = requests.map((r) => r.url()).filter((u) => !u.startsWith(origin + PREFIX) && !u.startsWith('data:') && !u.startsWith('blob:'));
    assert.deepEqual(offOrigin, [], 'requests outside the app');
    // After loading the page requests nothing: the decode worker's restart after each scan (a
    // fresh, small wasm heap) starts from code the page fetched once (a blob: script). The
    // server hears only the browser's own update check of the service worker (GET sw.js, no
    // body, nothing of the page's), which Chromium makes when a controlled page starts a worker.
    const pageRequests = () => requests.slice(loadedRequests).map((r) => r.url()).filter((u) => !u.startsWith('blob:'));
    const serverHits = () => hits.slice(loadedHits).filter((h) => h !== `${PREFIX}sw.js`);
    assert.deepEqual(pageRequests(), [], 'requests after the app and models had loaded');
    assert.deepEqual(serverHits(), [], 'paths the server was asked after loading');
    // A second scan, a DICOM folder this time (its files go through the file reader worker).
    const startsBefore = Number(await page.evaluate(() => document.body.dataset.decoderStarts));
    assert.ok(startsBefore >= 2, `the decoder restarted after the first scan (${startsBefore} starts)`);
    const dicom = join(repo, 'tests', 'fixtures', 'dicom', 'rle');
    await page.setInputFiles('[data-testid="file-input"]', readdirSync(dicom).sort().map((f) => join(dicom, f)));
    await page.locator('[data-testid="metadata"]', { hasText: 'DICOM' }).waitFor({ timeout: 60_000 });
    // The decoder restarts its worker once the series is in.
    await page.waitForFunction((n) => Number(document.body.dataset.decoderStarts) > n, startsBefore, { timeout: 30_000 });
    assert.deepEqual(pageRequests(), [], 'requests after a second scan');
    assert.deepEqual(serverHits(), [], 'paths the server was asked after a second scan');
    assert.deepEqual(violations, [], 'CSP violations in the console');
    assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], 'CSP violations');
    assert.deepEqual(errors, []);
    await context.close();
  } finally {
    await browser.close();
    server.close();
  }
});

test('after one visit the app works with no network: reload, open the sample, analyse it; installable', async () => {
  const { server, url } = await serveDist();
  const { context, profile } = await launchProfile({ viewport: { width: 1400, height: 900 } });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    await waitForServiceWorker(page);
    // Installable, as Chromium judges it (a manifest with icons, served in scope).
    const cdp = await context.newCDPSession(page);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    assert.deepEqual(installabilityErrors, [], 'installability errors');
    const manifest = await page.evaluate(async () => (await fetch('manifest.webmanifest')).json());
    assert.equal(manifest.start_url, './');
    // One cache, named after this build (a new deploy's worker deletes the others).
    const build = readFileSync(join(repo, 'dist', 'sw.js'), 'utf8').match(/const BUILD = '([0-9a-f]+)'/)[1];
    const caches = await page.evaluate(() => caches.keys());
    assert.deepEqual(caches, [`nodulens-${build}`]);
    // The sample is cached when it is first opened.
    await page.click('[data-testid="open-sample"]');
    await waitForSlice(page);
    await waitForDone(page);

    // No network at all: the browser is offline and the server is gone.
    await context.setOffline(true);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await page.reload();
    await page.click('[data-testid="open-sample"]', { timeout: 60_000 });
    await waitForSlice(page);
    await waitForDone(page);
    assert.equal(await page.locator('[data-testid="finding"]').count(), reference.findings_at_operating_point);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    server.close();
  }
});

test('a new deploy installs beside the open tab, and takes over with its own cache once the tab closes', async () => {
  const { server, url, overrides } = await serveDist();
  const browser = await launch();
  try {
    const context = await browser.newContext();
    let page = await context.newPage();
    await page.goto(url);
    await waitForServiceWorker(page);
    const keys = () => page.evaluate(() => caches.keys());
    const old = await keys();
    assert.equal(old.length, 1);
    // A new deploy: a build whose files differ, so its sw.js has another BUILD.
    const sw = readFileSync(join(repo, 'dist', 'sw.js'), 'utf8');
    const next = 'f'.repeat(16);
    overrides.set('/sw.js', sw.replace(/const BUILD = '[0-9a-f]+'/, `const BUILD = '${next}'`));
    await page.reload();
    await page.waitForFunction(async () => Boolean((await navigator.serviceWorker.getRegistration())?.waiting), null, { timeout: 30_000, polling: 200 });
    // The open tab keeps its build: same controller, the old cache still there.
    assert.ok((await keys()).includes(old[0]), 'the old build stays while its tab is open');
    await page.close();
    page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction((name) => caches.keys().then((k) => k.length === 1 && k[0] === name), `nodulens-${next}`, { timeout: 30_000, polling: 200 });
    await page.locator('[data-testid="open-sample"]').waitFor({ timeout: 60_000 });
    await context.close();
  } finally {
    await browser.close();
    server.close();
  }
});

test('where the host\'s policy refuses blob: workers, the decoder restarts from its URLs', async () => {
  // A second policy from the host's header is enforced beside the page's own.
  const { server, url } = await serveDist({ pageHeaders: { 'content-security-policy': "worker-src 'self'" } });
  const browser = await launch();
  try {
    const page = await browser.newPage({ serviceWorkers: 'block' });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForFunction(() => document.body.dataset.decoderSources, null, { timeout: 60_000 });
    // Starts: at load a blob: worker (refused) and one from the URLs; after the first scan
    // one more from the URLs (3), after the second another (4).
    for (const starts of [3, 4]) {
      await page.click('[data-testid="open-sample"]');
      await page.waitForFunction((n) => Number(document.body.dataset.decoderStarts) >= n, starts, { timeout: 60_000 });
      await page.locator('[data-testid="view-axial"][data-drawn="true"]').waitFor({ timeout: 60_000 });
    }
    assert.equal(await page.locator('[data-testid="error"]').count(), 0, 'no error shown');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    server.close();
  }
});
