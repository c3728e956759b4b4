// The analysis in the page, as a user meets it: a scan opened is analysed in a worker of its
// own; the findings equal native `nodulens detect`'s on the bundled sample
// (tests/fixtures/detect/sample_findings.json, written natively by crates/cli/tests/detect.rs)
// on the CPU (with the worker's scoring helpers on the other cores) and on WebGPU (SwiftShader
// here); a GPU failure or the worker's death reruns the job on the CPU; a helper's death
// leaves its batches to the worker; Cancel stops it; images that are not CT are not analysed, and the page says
// why. Run `trunk build --release` first (scripts/test.sh does).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, repo, serveDist, waitForSlice } from './harness.mjs';

const reference = JSON.parse(readFileSync(join(repo, 'tests', 'fixtures', 'detect', 'sample_findings.json'), 'utf8'));
// SwiftShader runs the models at ~10 patches/s: the WebGPU run takes about a minute.
const ANALYSIS_MS = 240_000;

let server, url, browser;
before(async () => {
  ({ server, url } = await serveDist());
  browser = await launch();
});
after(async () => {
  await browser?.close();
  server?.close();
});

async function openSample(b, query = '') {
  const page = await b.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url + query);
  await page.locator('[data-testid="open-sample"]').click({ timeout: 60_000 });
  await waitForSlice(page);
  return { page, errors };
}

const status = (page) => page.locator('[data-testid="analysis-status"]');
async function waitForState(page, state, timeout = ANALYSIS_MS) {
  await page.locator(`[data-testid="analysis-status"][data-state="${state}"]`).waitFor({ timeout });
}

/** Patches the analysis worker's scoring helpers scored, and the browser's logical cores. */
async function helperPatches(page) {
  const patches = Number(await page.locator('[data-testid="backend"]').getAttribute('data-helper-patches'));
  return { patches, cores: await page.evaluate(() => navigator.hardwareConcurrency) };
}

async function shownFindings(page) {
  return page.$$eval('[data-testid="finding"]', (rows) => rows.map((r) => ({
    center: r.dataset.centerMm.split(',').map(Number),
    voxel: r.dataset.centerVoxel.split(',').map(Number),
    diameter: Number(r.dataset.diameterMm),
    pNodule: Number(r.dataset.pNodule),
    pMalignant: Number(r.dataset.pMalignant),
    lungRads: r.dataset.lungRads,
    selected: r.getAttribute('aria-selected') === 'true',
  })));
}

/** The page's findings are native's at the operating point: same count, centres within
 *  0.5 mm, probabilities within 1e-3. */
function assertNative(found, label) {
  assert.equal(found.length, reference.findings_at_operating_point, `${label}: findings at the operating point`);
  const used = new Set();
  for (const f of found) {
    // The nearest: two candidates on one blob can give sites a tenth of a mm apart.
    const d2 = (w) => w.center_mm.reduce((s, c, a) => s + (c - f.center[a]) ** 2, 0);
    let i = -1;
    reference.scored.forEach((w, j) => {
      const near = w.center_mm.every((c, a) => Math.abs(c - f.center[a]) <= 0.5);
      if (near && (i < 0 || d2(w) < d2(reference.scored[i]))) i = j;
    });
    assert.ok(i >= 0 && !used.has(i), `${label}: no native finding at ${f.center}`);
    used.add(i);
    const w = reference.scored[i];
    assert.ok(Math.abs(w.p_nodule - f.pNodule) <= 1e-3, `${label}: p_nodule ${f.pNodule} vs native ${w.p_nodule}`);
    assert.ok(Math.abs(w.p_malignant - f.pMalignant) <= 1e-3, `${label}: p_malignant ${f.pMalignant} vs native ${w.p_malignant}`);
    assert.ok(w.p_nodule >= reference.operating_point);
  }
}

test('the sample is analysed on the CPU: native findings, markers, table, threshold, keyboard', async () => {
  const { page, errors } = await openSample(browser);
  await waitForState(page, 'done');
  assert.equal(await page.locator('[data-testid="backend"]').innerText(), 'CPU');
  const found = await shownFindings(page);
  assertNative(found, 'CPU');
  // With a second core, a helper scored part of the batches (the same wasm: the same numbers).
  const { patches, cores } = await helperPatches(page);
  if (cores >= 2) assert.ok(patches > 0, `${cores} cores, yet no patch scored by a helper`);
  // A NIfTI scan has no DICOM SR, and the page says why.
  assert.ok(await page.locator('[data-testid="download-sr"]').isDisabled(), 'no SR for NIfTI');
  assert.match(await page.locator('[data-testid="sr-unavailable"]').innerText(), /No DICOM SR: .*read from NIfTI/);
  // The scan's category and what it means for follow-up.
  const scan = page.locator('[data-testid="scan-lung-rads"]');
  assert.match(await scan.innerText(), /Lung-RADS \S+ — /);
  const worst = found.map((f) => f.lungRads).sort().at(-1);
  assert.equal(await scan.getAttribute('data-category'), worst);
  assert.match(await page.locator('[data-testid="disclaimer"]').innerText(), /Research use only — not a medical device/);
  // A lower threshold shows more, live; the default brings the operating point back.
  await page.locator('[data-testid="threshold"]').fill('0.9');
  const lower = await shownFindings(page);
  const expectedAt09 = reference.scored.filter((w) => w.p_nodule >= 0.9).length;
  assert.ok(lower.length > found.length && lower.length <= expectedAt09, `${lower.length} at 0.9`);
  await page.click('[data-testid="threshold-default"]');
  assert.equal((await shownFindings(page)).length, found.length);
  // A click on a row brings the three views to the finding.
  const row = page.locator('[data-testid="finding"]').nth(1);
  await row.click();
  const [x, y, z] = found[1].voxel;
  for (const [view, index] of [['axial', z], ['coronal', y], ['sagittal', x]]) {
    assert.match(await page.locator(`[data-testid="slice-${view}"]`).innerText(), new RegExp(`^${index + 1} /`), view);
  }
  // Keyboard alone: N / P step through the findings, Enter on a focused row selects it.
  await page.locator('body').focus();
  await page.keyboard.press('n');
  assert.ok((await shownFindings(page))[2].selected, 'N selects the next finding');
  await page.keyboard.press('p');
  assert.ok((await shownFindings(page))[1].selected, 'P the previous');
  await page.locator('[data-testid="finding"]').nth(0).focus();
  await page.keyboard.press('Enter');
  assert.ok((await shownFindings(page))[0].selected, 'Enter selects the focused row');
  await page.keyboard.press('3');
  assert.match(await page.locator('[data-testid="window-level"]').innerText(), /2000/, '3: bone window');
  // The table sorts by a column (largest diameter first).
  await page.getByRole('button', { name: /^Diameter/ }).click();
  const sorted = (await shownFindings(page)).map((f) => f.diameter);
  assert.deepEqual(sorted, [...sorted].sort((a, b) => b - a));
  // Markers: each view, now through the selected finding, draws its ring (yellow: selected).
  for (const view of ['axial', 'coronal', 'sagittal']) {
    const yellow = await page.$eval(`[data-testid="view-${view}"]`, (canvas) => {
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      let n = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] > 220 && data[i + 1] > 180 && data[i + 2] < 80) n++;
      return n;
    });
    assert.ok(yellow > 20, `${view}: ${yellow} marker pixels`);
  }
  await page.screenshot({ path: join(repo, 'target', 'e2e-findings.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('on WebGPU (SwiftShader) the sample gives the native findings', async () => {
  const gpuBrowser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openSample(gpuBrowser);
    await waitForState(page, 'done');
    assert.equal(await page.locator('[data-testid="backend"]').innerText(), 'WebGPU');
    assertNative(await shownFindings(page), 'WebGPU');
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await gpuBrowser.close();
  }
});

for (const [fault, because] of [['gpu-lost', /WebGPU failed/], ['crash', /analysis worker stopped/]]) {
  test(`?fault=${fault}: the job reruns on a fresh CPU worker and finishes`, async () => {
    const { page, errors } = await openSample(browser, `?fault=${fault}`);
    await waitForState(page, 'done');
    assert.equal(await page.locator('[data-testid="backend"]').innerText(), 'CPU');
    const notice = await page.locator('[data-testid="analysis-notice"]').innerText();
    assert.match(notice, because);
    assert.match(notice, /analysed again on the CPU/);
    assertNative(await shownFindings(page), `after ${fault}`);
    assert.deepEqual(errors, []);
    await page.close();
  });
}

test('a scoring helper that crashes mid-job leaves its batches to the worker: native findings', async () => {
  const { page, errors } = await openSample(browser, '?fault=helper-crash');
  await waitForState(page, 'done');
  assert.equal(await page.locator('[data-testid="backend"]').innerText(), 'CPU');
  assertNative(await shownFindings(page), 'after a helper crash');
  // The crashed helper is the only one on two cores: everything was scored by the worker.
  const { patches, cores } = await helperPatches(page);
  if (cores === 2) assert.equal(patches, 0, 'patches scored by the crashed helper');
  assert.deepEqual(errors, []);
  await page.close();
});

test('Cancel stops the analysis between batches; "Analyse again" finishes it', async () => {
  const { page, errors } = await openSample(browser);
  await waitForState(page, 'analysing', 60_000);
  await page.click('[data-testid="analysis-cancel"]');
  await waitForState(page, 'idle', 10_000);
  assert.match(await status(page).innerText(), /cancelled/);
  // Nothing from the cancelled job arrives afterwards.
  await page.waitForTimeout(3000);
  assert.equal(await status(page).getAttribute('data-state'), 'idle');
  assert.equal(await page.locator('[data-testid="finding"]').count(), 0);
  await page.click('[data-testid="analyse"]');
  await waitForState(page, 'done');
  assertNative(await shownFindings(page), 'after a cancel');
  assert.deepEqual(errors, []);
  await page.close();
});

test('grey-level pictures are not analysed, and the page says why', async () => {
  const page = await browser.newPage();
  await page.goto(url);
  const dir = join(repo, 'tests', 'fixtures', 'png', 'grey16');
  await page.setInputFiles('[data-testid="file-input"]', readdirSync(dir).sort().map((f) => join(dir, f)));
  await waitForSlice(page);
  await waitForState(page, 'idle', 30_000);
  assert.match(await status(page).innerText(), /grey levels, not Hounsfield/);
  await page.close();
});
