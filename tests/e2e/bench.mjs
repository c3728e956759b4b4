// Browser benchmark (not a test): decode ../shared/data/scans/LIDC-IDRI-0002 (261 slices)
// in headless Chromium through the file input, as a user opens it. Reports the worker's decode
// time, file-input `change` → first slice drawn (the preview of a slice as it arrives),
// `change` → the viewer drawn (the whole volume in place), and the renderer's peak memory growth.
// Needs `trunk build --release` and target/test-scans (created by `cargo test` or
// `cargo bench -p nodulens-core` where ../shared/data exists). Usage: node bench.mjs [runs]
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, repo, serveDist, waitForSlice } from './harness.mjs';

const scan = join(repo, 'target', 'test-scans', process.env.NODULENS_BENCH_SCAN ?? 'LIDC-IDRI-0002', 'dicom');
if (!existsSync(scan)) {
  console.log(`skipped: ${scan} not found`);
  process.exit(0);
}
const files = readdirSync(scan).sort().map((f) => join(scan, f));
const runs = Number(process.argv[2] ?? 5);

function kb(pid, field) {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(field));
    return Number(line.split(/\s+/)[1]);
  } catch {
    return 0;
  }
}
function renderers() {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      return cmd.includes('--type=renderer') && !cmd.includes('--extension-process');
    } catch {
      return false;
    }
  });
}

const { server, url } = await serveDist();
const browser = await launch();
const results = [];
for (let run = 0; run <= runs; run++) {
  // No service worker: its install would fetch the whole app again while the run is timed.
  const page = await browser.newPage({ serviceWorkers: 'block' });
  page.on('console', (m) => {
    if (run > 0 && m.text().startsWith('nodulens timings')) console.log(`run ${run}: ${m.text()}`);
  });
  await page.goto(url);
  await page.locator('[data-testid="file-input"]').waitFor({ state: 'attached' });
  const before = Object.fromEntries(renderers().map((p) => [p, kb(p, 'VmRSS:')]));
  await page.evaluate(() => {
    document.querySelector('[data-testid="file-input"]').addEventListener('change', () => {
      window.__changeAt = performance.now();
    }, { capture: true });
  });
  await page.setInputFiles('[data-testid="file-input"]', files);
  await waitForSlice(page);
  const timing = await page.evaluate(() => ({
    decodeMs: Number(document.body.dataset.decodeMs),
    firstSliceMs: Number(document.body.dataset.firstSlice) - window.__changeAt,
    viewerMs: Number(document.body.dataset.viewerDrawn) - window.__changeAt,
  }));
  const growth = Math.max(...renderers().map((p) => kb(p, 'VmHWM:') - (before[p] ?? 0)));
  if (run > 0) results.push({ ...timing, peakGrowthMiB: growth / 1024 }); // run 0 warms up
  await page.close();
}
await browser.close();
server.close();
const median = (key) => results.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(results.length / 2)];
const volumeMiB = (512 * 512 * files.length * 2) / 2 ** 20;
console.log(`browser decode (worker) median ${median('decodeMs').toFixed(1)} ms over ${results.length} runs`);
console.log(`file-input change -> first slice drawn: median ${median('firstSliceMs').toFixed(1)} ms`);
console.log(`file-input change -> viewer drawn (whole volume): median ${median('viewerMs').toFixed(1)} ms`);
console.log(`renderer peak RSS growth: median ${median('peakGrowthMiB').toFixed(0)} MiB for a ${volumeMiB.toFixed(0)} MiB volume`);
console.log(`BROWSER_DECODE_MS=${median('decodeMs').toFixed(3)}`);
