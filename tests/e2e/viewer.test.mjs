// The built app in headless Chromium, as a user drives it. Run `trunk build --release` first
// (scripts/test.sh does). Cases that need ../shared/data skip where it is absent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, repo, serveDist, waitForSlice } from './harness.mjs';

let server, url, browser;
before(async () => {
  ({ server, url } = await serveDist());
  browser = await launch();
});
after(async () => {
  await browser?.close();
  server?.close();
});

async function freshPage() {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.locator('[data-testid="file-input"]').waitFor({ state: 'attached', timeout: 60_000 });
  return { page, errors };
}

const fixtures = join(repo, 'tests', 'fixtures');
const files = (dir) => readdirSync(dir).sort().map((f) => join(dir, f));

test('the bundled sample opens with one click and shows its metadata', async () => {
  const { page, errors } = await freshPage();
  await page.click('[data-testid="open-sample"]');
  await waitForSlice(page);
  const metadata = await page.locator('[data-testid="metadata"]').innerText();
  assert.match(metadata, /NIfTI/);
  assert.match(metadata, /512/);
  for (const view of ['axial', 'coronal', 'sagittal']) {
    assert.equal(await page.locator(`[data-testid="view-${view}"]`).count(), 1, view);
  }
  await page.screenshot({ path: join(repo, 'target', 'e2e-sample.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a DICOM series from the file input: slices, presets, HU under the cursor', async () => {
  const { page, errors } = await freshPage();
  await page.setInputFiles('[data-testid="file-input"]', files(join(fixtures, 'dicom', 'rle')));
  await waitForSlice(page);
  assert.match(await page.locator('[data-testid="metadata"]').innerText(), /DICOM/);
  // Window presets change the displayed window.
  await page.click('[data-testid="preset-bone"]');
  assert.match(await page.locator('[data-testid="window-level"]').innerText(), /2000/);
  await page.click('[data-testid="preset-lung"]');
  assert.match(await page.locator('[data-testid="window-level"]').innerText(), /1500/);
  // HU and LPS mm under the cursor.
  const box = await page.locator('[data-testid="view-axial"]').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  const readout = await page.locator('[data-testid="cursor-readout"]').innerText();
  assert.match(readout, /HU/);
  assert.match(readout, /mm/);
  // The slider moves through the slices.
  const slider = page.locator('[data-testid="slider-axial"]');
  await slider.fill('4');
  assert.match(await page.locator('[data-testid="slice-axial"]').innerText(), /5/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a DICOM folder still opens where the file reader worker cannot start', async () => {
  // The decoder then reads the files itself.
  const broken = await serveDist({ missing: ['file-reader.js'] });
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(broken.url);
  assert.equal((await fetch(`${broken.url}file-reader.js`)).status, 404);
  await page.setInputFiles('[data-testid="file-input"]', files(join(fixtures, 'dicom', 'explicit_le')));
  await waitForSlice(page);
  // All five slices, with the values the normal path reads (tests/fixtures/reference.json).
  const metadata = await page.locator('[data-testid="metadata"]').innerText();
  assert.match(metadata, /96 × 96 × 5 voxels/);
  assert.match(metadata, /−1003 to 1016/);
  assert.deepEqual(errors, []);
  await page.close();
  broken.server.close();
});

test('PNG slices say their values are not HU and their spacing is assumed', async () => {
  const { page } = await freshPage();
  await page.setInputFiles('[data-testid="file-input"]', files(join(fixtures, 'png', 'grey16')));
  await waitForSlice(page);
  const warnings = await page.locator('[data-testid="warnings"]').innerText();
  assert.match(warnings, /not Hounsfield/);
  assert.match(warnings, /assumed/);
  // Typed: the page can act on the kind, not only show the text.
  assert.equal(await page.locator('[data-testid="warnings"] li[data-kind="not_hounsfield"]').count(), 1);
  assert.equal(await page.locator('[data-testid="warnings"] li[data-kind="assumed_geometry"]').count(), 1);
  await page.close();
});

test('a broken file gives a clear error in the page, and the page stays usable', async () => {
  const { page, errors } = await freshPage();
  await page.setInputFiles('[data-testid="file-input"]', join(repo, 'tests', 'malformed', 'nifti_truncated.nii'));
  const error = page.locator('[data-testid="error"]');
  await error.waitFor({ timeout: 60_000 });
  assert.match(await error.innerText(), /nifti_truncated\.nii.*truncated/s);
  await page.setInputFiles('[data-testid="file-input"]', join(fixtures, 'nifti', 'scan.nii.gz'));
  await waitForSlice(page);
  assert.deepEqual(errors, []);
  await page.close();
});

// Files whose lengths wrap a 32-bit usize (the browser's): each is refused within 20 s with
// the message the CLI gives (tests/malformed/expected.json), and the sample opens right after.
const malformed = join(repo, 'tests', 'malformed');
const expectedErrors = JSON.parse(readFileSync(join(malformed, 'expected.json'), 'utf8'));
for (const name of readdirSync(malformed).filter((f) => f.startsWith('wrap32_')).sort()) {
  test(`32-bit wraparound: ${name} is refused at once, and the sample opens after`, async () => {
    const { page, errors } = await freshPage();
    await page.setInputFiles('[data-testid="file-input"]', join(malformed, name));
    const error = page.locator('[data-testid="error"]');
    await error.waitFor({ timeout: 20_000 });
    const text = await error.innerText();
    assert.ok(text.includes(expectedErrors[name].error), `${name}: ${text}`);
    await page.click('[data-testid="open-sample"]');
    await waitForSlice(page);
    assert.deepEqual(errors, []);
    await page.close();
  });
}

const bigScan = join(repo, 'target', 'test-scans', 'LIDC-IDRI-0002', 'dicom');
// Skipped in a user's clone without ../shared/data; under CI (CI=true) they run, and fail if
// the scan is missing.
const needsBigScan = !existsSync(bigScan) && process.env.CI !== 'true'
  && 'needs target/test-scans (cargo test with ../shared/data)';
test('a long decode can be cancelled', { skip: needsBigScan }, async () => {
  const { page } = await freshPage();
  await page.setInputFiles('[data-testid="file-input"]', files(bigScan));
  await page.locator('[data-testid="progress"]').waitFor({ timeout: 30_000 });
  await page.click('[data-testid="cancel"]');
  await page.locator('text=Cancelled').first().waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('[data-testid="view-axial"][data-drawn="true"]').count(), 0);
  await page.close();
});

test('a long DICOM series shows a slice while it is read, then the viewer', { skip: needsBigScan }, async () => {
  const { page, errors } = await freshPage();
  await page.setInputFiles('[data-testid="file-input"]', files(bigScan));
  // Everything about the first drawn preview is read in one task of the page: the series may
  // finish loading (and the preview give way to the viewer) between two separate reads.
  const seen = await page.waitForFunction(() => {
    const canvas = document.querySelector('[data-testid="preview"][data-drawn="true"]');
    if (!canvas) return null;
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let bright = 0, dark = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] > 128) bright++;
      else if (data[i] > 20 && data[i] < 100) dark++;
    }
    return {
      bright: bright / (data.length / 4),
      dark: dark / (data.length / 4),
      progress: document.querySelectorAll('[data-testid="progress"]').length,
      viewer: document.querySelectorAll('[data-testid="view-axial"]').length,
    };
  }, null, { timeout: 30_000, polling: 10 });
  const { bright, dark, progress, viewer } = await seen.jsonValue();
  // Shown while the rest still loads: the progress bar is up and the viewer is not there yet.
  assert.equal(progress, 1);
  assert.equal(viewer, 0);
  // A real CT slice in the lung window: soft tissue near white, air and lung dark grey (not
  // the canvas's black background).
  assert.ok(bright > 0.05, `bright fraction ${bright}`);
  assert.ok(dark > 0.05, `dark fraction ${dark}`);
  await waitForSlice(page);
  assert.equal(await page.locator('[data-testid="preview"]').count(), 0);
  assert.deepEqual(errors, []);
  await page.close();
});
