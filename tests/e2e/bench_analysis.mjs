// Browser benchmark (not a test): drop-to-findings for a DICOM series in headless Chromium,
// as a user opens it through the file input, against native `nodulens detect` in the same
// run. CPU path (`?backend=cpu`) and WebGPU path (Chromium's --enable-unsafe-webgpu adapter,
// SwiftShader on a machine without a GPU). Reports file-input `change` → findings shown
// (`data-state="done"`), the worker's own volume-whole → findings time, and the page's peak
// memory (renderer RSS high-water mark growth, workers included) against the volume's bytes.
// Needs `trunk build --release`, `cargo build --release -p nodulens-cli` and target/test-scans.
// Usage: node bench_analysis.mjs [cpu runs] (NODULENS_BENCH_SCAN picks the scan,
// NODULENS_BENCH_WEBGPU=0 skips the WebGPU path).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, repo, serveDist } from './harness.mjs';

const name = process.env.NODULENS_BENCH_SCAN ?? 'LIDC-IDRI-0006';
const scan = join(repo, 'target', 'test-scans', name, 'dicom');
const native = join(repo, 'target', 'release', 'nodulens');
if (!existsSync(scan) || !existsSync(native)) {
  console.log(`skipped: needs ${scan} and ${native}`);
  process.exit(0);
}
const files = readdirSync(scan).sort().map((f) => join(scan, f));
const runs = Number(process.argv[2] ?? 3);

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

// Native, same machine, same run: wall-clock of the whole command (decode included).
const nativeMs = [];
for (let i = 0; i < runs; i++) {
  const start = performance.now();
  const out = spawnSync(native, ['detect', scan, '--json', '/dev/null'], { encoding: 'utf8', cwd: repo });
  if (out.status !== 0) throw new Error(`nodulens detect failed: ${out.stderr}`);
  nativeMs.push(performance.now() - start);
}

const { server, url } = await serveDist();
async function measure(webgpu, count) {
  const browser = await launch({ webgpu });
  const results = [];
  for (let run = 0; run <= count; run++) {
    // A fresh page (and renderer) per run; run 0 warms the caches and compiles the wasm. No
    // service worker: its install would fetch the whole app again while the run is timed.
    const page = await browser.newPage({ serviceWorkers: 'block' });
    await page.goto(url + (webgpu ? '' : '?backend=cpu'));
    await page.locator('[data-testid="file-input"]').waitFor({ state: 'attached' });
    page.on('console', (m) => {
      if (run > 0 && m.text().startsWith('nodulens analysis timings')) console.log(`  ${webgpu ? 'WebGPU' : 'CPU'} run ${run}: ${m.text()}`);
    });
    // The worker loads its models at page start; wait for them, as a user who reads the page first.
    await page.locator('body[data-analysis-backend]').waitFor({ state: 'attached', timeout: 120_000 });
    await page.waitForTimeout(500);
    const before = Object.fromEntries(renderers().map((p) => [p, kb(p, 'VmRSS:')]));
    await page.evaluate(() => {
      document.querySelector('[data-testid="file-input"]').addEventListener('change', () => {
        window.__changeAt = performance.now();
      }, { capture: true });
    });
    if (process.env.NODULENS_BENCH_TRACE) {
      await page.evaluate(() => {
        window.__trace = [];
        let last = performance.now();
        setInterval(() => {
          const now = performance.now();
          if (now - last > 150) window.__trace.push([Math.round(last - window.__changeAt), `main thread blocked ${Math.round(now - last)} ms`]);
          last = now;
        }, 20);
        new MutationObserver(() => {
          const el = document.querySelector('[data-testid="analysis-status"]');
          const text = el ? `${el.dataset.state}: ${el.innerText.split('\n')[0]}` : '-';
          if (window.__trace.at(-1)?.[1] !== text) window.__trace.push([Math.round(performance.now() - window.__changeAt), text]);
        }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
      });
    }
    await page.setInputFiles('[data-testid="file-input"]', files);
    const done = page.locator('[data-testid="analysis-status"][data-state="done"]');
    await done.waitFor({ timeout: 600_000 }).catch(async (e) => {
      const state = await page.locator('[data-testid="analysis-status"]').innerText().catch(() => '?');
      throw new Error(`no findings (status: ${state}): ${e.message}`);
    });
    const timing = await page.evaluate(() => ({
      dropToFindingsMs: performance.now() - window.__changeAt,
      analysisMs: Number(document.body.dataset.analysisMs),
      decodeMs: Number(document.body.dataset.decodeMs),
      backend: document.querySelector('[data-testid="backend"]').innerText,
      findings: document.querySelectorAll('[data-testid="finding"]').length,
    }));
    if (process.env.NODULENS_BENCH_TRACE) console.log(JSON.stringify(await page.evaluate(() => window.__trace)));
    const growth = Math.max(...renderers().map((p) => kb(p, 'VmHWM:') - (before[p] ?? 0)));
    if (run > 0) results.push({ ...timing, peakGrowthMiB: growth / 1024 });
    await page.close();
  }
  await browser.close();
  return results;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const volumeMiB = (512 * 512 * files.length * 2) / 2 ** 20;
const report = (label, results) => {
  const drop = median(results.map((r) => r.dropToFindingsMs));
  console.log(`${label} (${results[0].backend}, ${results[0].findings} findings): drop-to-findings median ${(drop / 1000).toFixed(2)} s `
    + `(decode ${(median(results.map((r) => r.decodeMs)) / 1000).toFixed(2)} s, analysis ${(median(results.map((r) => r.analysisMs)) / 1000).toFixed(2)} s) `
    + `= ${(drop / median(nativeMs)).toFixed(2)}× native; peak page memory growth ${median(results.map((r) => r.peakGrowthMiB)).toFixed(0)} MiB `
    + `= ${(median(results.map((r) => r.peakGrowthMiB)) / volumeMiB).toFixed(2)}× the ${volumeMiB.toFixed(0)} MiB volume`);
};
console.log(`${name}: native nodulens detect median ${(median(nativeMs) / 1000).toFixed(2)} s over ${runs} runs`);
report('browser CPU', await measure(false, runs));
if (process.env.NODULENS_BENCH_WEBGPU !== '0') report('browser WebGPU', await measure(true, 1));
server.close();
