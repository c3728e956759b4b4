// Browser benchmark (not a test): navigation to interactive for the built app on localhost, in
// headless Chromium. Interactive: the page's open buttons are there and respond (the UI's wasm
// runs); models ready: the analysis worker has fetched, checked and loaded both models and
// reports its backend. Cold: a fresh context per run (empty HTTP cache, no service worker);
// repeat: a second navigation in a context whose service worker has cached the app.
// Needs `trunk build --release`. Usage: node bench_load.mjs [runs]
import { launch, serveDist } from './harness.mjs';

const runs = Number(process.argv[2] ?? 5);
const { server, url } = await serveDist();
const browser = await launch();

async function timings(page) {
  await page.locator('[data-testid="open-sample"]').waitFor({ timeout: 60_000 });
  const interactive = await page.evaluate(() => performance.now());
  await page.waitForFunction(() => document.body.dataset.analysisBackend, null, { timeout: 120_000, polling: 20 });
  const models = await page.evaluate(() => performance.now());
  return { interactive, models };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cold = [];
const repeat = [];
for (let run = 0; run < runs; run++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(url);
  cold.push(await timings(page));
  await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  await page.reload();
  repeat.push(await timings(page));
  await context.close();
}
await browser.close();
server.close();
for (const [label, xs] of [['cold', cold], ['repeat (service worker)', repeat]]) {
  console.log(`${label}: interactive ${median(xs.map((x) => x.interactive)).toFixed(0)} ms, models ready ${median(xs.map((x) => x.models)).toFixed(0)} ms `
    + `(median of ${xs.length}; interactive ${xs.map((x) => x.interactive.toFixed(0)).join(', ')})`);
}
