// What a clinic files from the page, for a DICOM series opened from disk (a shared LIDC scan):
// the JSON download has native `nodulens detect --json`'s schema and findings; the CSV has the
// table; the DICOM SR reads back with pydicom and highdicom and passes dciodvfy
// (tests/sr/check_sr.py); the printed report, rendered to PDF, holds the table, the models and
// the disclaimer; the model card says what p_malignant means. Run `trunk build --release` and
// `cargo test` (it unpacks target/test-scans and builds target/debug/nodulens) first.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, repo, serveDist, waitForSlice } from './harness.mjs';

const scan = join(repo, 'target', 'test-scans', 'LIDC-IDRI-0006', 'dicom');
const cli = join(repo, 'target', 'debug', 'nodulens');
const out = join(repo, 'target', 'e2e-reports');
// Skipped in a user's clone without ../shared/data; under CI (CI=true) it runs, and fails if
// the scan or the tools are missing.
const ci = process.env.CI === 'true';
const python = spawnSync('python3', ['-c', 'import highdicom, pydicom, pypdf'], { encoding: 'utf8' }).status === 0
  && spawnSync('dciodvfy', ['-'], { encoding: 'utf8' }).error === undefined;
const skip = !ci && (!existsSync(scan) || !existsSync(cli) || !python)
  && 'needs target/test-scans and target/debug/nodulens (cargo test with ../shared/data), pydicom, highdicom, pypdf and dciodvfy (scripts/setup.sh)';

let server, url, browser, page, errors;
before(async () => {
  if (skip) return;
  mkdirSync(out, { recursive: true });
  ({ server, url } = await serveDist());
  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // The print dialog cannot be driven headless: count the calls instead.
  await page.addInitScript(() => {
    window.__printed = 0;
    window.print = () => { window.__printed += 1; };
  });
  await page.goto(url);
  await page.setInputFiles('[data-testid="file-input"]', readdirSync(scan).sort().map((f) => join(scan, f)));
  await waitForSlice(page);
  await page.locator('[data-testid="analysis-status"][data-state="done"]').waitFor({ timeout: 180_000 });
});
after(async () => {
  await browser?.close();
  server?.close();
});

async function download(testid) {
  const [file] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid="${testid}"]`)]);
  const path = join(out, file.suggestedFilename());
  await file.saveAs(path);
  return { name: file.suggestedFilename(), path };
}

const shownCount = () => page.locator('[data-testid="finding"]').count();

test('JSON: native detect\'s schema and findings', { skip }, async () => {
  const { name, path } = await download('download-json');
  assert.match(name, /^LIDC-IDRI-0006-\d{8}-nodulens\.json$/, 'named after the patient and study');
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  assert.equal(doc.findings.length, await shownCount());
  const nativePath = join(out, 'native.json');
  const run = spawnSync(cli, ['detect', scan, '--json', nativePath], { encoding: 'utf8', cwd: repo });
  assert.equal(run.status, 0, run.stderr);
  const native = JSON.parse(readFileSync(nativePath, 'utf8'));
  assert.deepEqual(Object.keys(doc).sort(), Object.keys(native).sort(), 'top-level fields');
  assert.deepEqual(Object.keys(doc.model).sort(), Object.keys(native.model).sort(), 'model fields');
  assert.deepEqual(doc.source, native.source, 'source');
  assert.equal(doc.findings.length, native.findings.length, 'findings at the operating point');
  for (const f of doc.findings) {
    assert.deepEqual(Object.keys(f).sort(), Object.keys(native.findings[0]).sort(), 'finding fields');
    const twin = native.findings.find((n) => n.center_mm.every((c, a) => Math.abs(c - f.center_mm[a]) <= 0.5));
    assert.ok(twin, `no native finding at ${f.center_mm}`);
    assert.ok(Math.abs(twin.p_nodule - f.p_nodule) <= 1e-3);
    assert.equal(twin.lung_rads, f.lung_rads);
  }
  assert.ok(doc.source.study_uid, 'the study the findings belong to');
});

test('CSV: a header and one row per finding shown', { skip }, async () => {
  const { name, path } = await download('download-csv');
  assert.match(name, /-nodulens\.csv$/);
  const lines = readFileSync(path, 'utf8').split('\r\n').filter((l) => l.length > 0);
  const header = lines[0].split(',');
  assert.deepEqual(header.slice(0, 4), ['finding', 'center_x_mm', 'center_y_mm', 'center_z_mm']);
  assert.ok(header.includes('p_malignant') && header.includes('lung_rads'));
  assert.equal(lines.length - 1, await shownCount());
  const diameters = lines.slice(1).map((l) => Number(l.split(',')[header.indexOf('diameter_mm')]));
  assert.ok(diameters.every((d) => d > 0 && d < 100), `diameters ${diameters}`);
});

test('DICOM SR: reads back with pydicom and highdicom, dciodvfy finds no error', { skip }, async () => {
  const json = await download('download-json');
  const { name, path } = await download('download-sr');
  assert.match(name, /-nodulens\.dcm$/);
  const source = join(scan, readdirSync(scan).sort()[0]);
  const check = spawnSync('python3', [join(repo, 'tests', 'sr', 'check_sr.py'), path, json.path, source], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /^OK: \d+ findings/m);
});

test('the printed report holds the findings table, the models and the disclaimer (PDF)', { skip }, async () => {
  await page.click('[data-testid="print-report-button"]');
  await page.waitForFunction(() => window.__printed === 1, null, { timeout: 30_000 });
  await page.locator('[data-testid="print-report"][data-ready="true"]').waitFor({ state: 'attached' });
  await page.emulateMedia({ media: 'print' });
  assert.ok(await page.locator('[data-testid="print-report"]').isVisible(), 'the report shows in print');
  assert.equal(await page.locator('[data-testid="view-axial"]').isVisible(), false, 'the viewer does not');
  const widths = await page.$$eval('.print-report .key-image img', (images) => images.map((i) => i.naturalWidth));
  assert.equal(widths.length, Math.min(await shownCount(), 12), 'a key image per finding (at most 12)');
  assert.ok(widths.every((w) => w > 0), `decoded key images: widths ${widths}`);
  const pdf = join(out, 'report.pdf');
  await page.pdf({ path: pdf, format: 'A4' });
  await page.emulateMedia({ media: 'screen' });
  const text = spawnSync('python3', ['-c', 'import sys, pypdf; print("\\n".join(p.extract_text() for p in pypdf.PdfReader(sys.argv[1]).pages))', pdf], { encoding: 'utf8' });
  assert.equal(text.status, 0, text.stderr);
  writeFileSync(join(out, 'report.txt'), text.stdout);
  assert.match(text.stdout, /Research use only/);
  assert.match(text.stdout, /not a medical device/);
  assert.match(text.stdout, /Lung-RADS/);
  assert.match(text.stdout, /Models: /);
  const rows = await page.locator('[data-testid="print-findings"] tbody tr').count();
  assert.equal(rows, await shownCount(), 'one printed row per finding shown');
  // Every finding's diameter, as the page shows it, is printed.
  const diameters = await page.$$eval('[data-testid="finding"]', (r) => r.map((row) => Number(row.dataset.diameterMm).toFixed(1)));
  for (const d of diameters) assert.ok(text.stdout.includes(d), `diameter ${d} in the PDF`);
});

test('the model card is one click away and says what p_malignant means', { skip }, async () => {
  await page.click('[data-testid="model-card-button"]');
  const card = page.locator('[data-testid="model-card"]');
  await card.locator('pre').waitFor({ timeout: 10_000 });
  assert.match(await card.innerText(), /AUC/);
  assert.match(await page.locator('[data-testid="p-malignant-meaning"]').innerText(), /not a cancer risk/);
  assert.deepEqual(errors, []);
});
