// The deployed app as a clinic's IT person checks it. dist/ served under a sub-path works; the
// page carries a Content-Security-Policy that allows only its own origin and nothing breaks it;
// a full analysis of a scan opened from disk asks nothing of any other origin, and nothing of
// the network once the app and models have loaded (the scan's bytes never reach a request);
// after one visit the app, its models and the opened sample work with no network (service
// worker), and Chromium finds the page installable. Run `trunk build --release` first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
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

test(`under ${PREFIX}: a full analysis asks nothing of another origin, and nothing of the network once loaded`, async () => {
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
    page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text()); });
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
    await page.waitForTimeout(1000);
    const loadedRequests = requests.length;
    const loadedHits = hits.length;

    await page.setInputFiles('[data-testid="file-input"]', sampleFile);
    await waitForSlice(page);
    await waitForDone(page);
    const found = await page.locator('[data-testid="finding"]').count();
    assert.equal(found, reference.findings_at_operating_point, 'the sample\'s findings');

    const offOrigin = requests.map((r) => r.url()).filter((u) => !u.startsWith(origin + PREFIX) && !u.startsWith('data:') && !u.startsWith('blob:'));
    assert.deepEqual(offOrigin, [], 'requests outside the app');
    // After loading, the only requests are the decode worker's restart after each scan (a
    // fresh, small wasm heap) reading its own script and wasm back from the offline cache:
    // body-less GETs of files of the build, answered by the service worker. The server is asked
    // nothing but sw.js: the browser's own check for a new deploy, which starting a worker
    // triggers.
    assert.deepEqual(hits.slice(loadedHits).filter((h) => h !== `${PREFIX}sw.js`), [], 'paths the server was asked after loading');
    const appFiles = new Set(JSON.parse(readFileSync(join(repo, 'dist', 'sw.js'), 'utf8').match(/const FILES = (\[[\s\S]*?\]);/)[1]));
    for (const r of requests.slice(loadedRequests)) {
      const name = new URL(r.url()).pathname.slice(PREFIX.length);
      assert.equal(r.method(), 'GET', r.url());
      assert.equal(r.postData(), null, r.url());
      assert.ok(appFiles.has(name) && !/sample\//.test(name), `${name}: not one of the app's own files`);
      assert.ok((await r.response())?.fromServiceWorker(), `${name}: not answered by the offline cache`);
    }
    assert.ok(hits.every((h) => h.startsWith(PREFIX)), `every path under ${PREFIX}: ${hits.filter((h) => !h.startsWith(PREFIX))}`);
    assert.ok(requests.slice(loadedRequests).every((r) => /decode-worker|file-reader/.test(r.url())),
      `only the decode worker restarts: ${requests.slice(loadedRequests).map((r) => r.url())}`);
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
