// Starts the analysis worker: Trunk builds the `analysis-worker` binary (data-type="worker",
// feature `inference`) as analysis-worker.js + analysis-worker_bg.wasm, unhashed, next to this
// file. The page passes its options as the worker's name, a query string (?backend=cpu,
// ?fault=…): not in this script's URL, which the service worker answers from its cache without
// the query once the app is installed (src/web.rs, start_worker).
//
// With ?role=helper this is one of the analysis worker's scoring helpers (src/helper_pool.rs):
// its first message brings the compiled module (nothing is fetched or compiled again) and the
// models, which the wasm reads from self.NODULENS_START.
importScripts('./analysis-worker.js');
const helper = new URLSearchParams(self.name).get('role') === 'helper';
const start = (module_or_path) => wasm_bindgen({ module_or_path }).catch((e) => {
  // Tell whoever started this worker instead of leaving it waiting.
  const data = helper
    ? { kind: 'failed', request: null, message: `the scoring helper could not start: ${e}` }
    : { kind: 'failed', job: null, error: { kind: 'startup', message: String(e) } };
  postMessage({ data: JSON.stringify(data) });
});
if (helper) {
  self.onmessage = (event) => {
    self.onmessage = null;
    self.NODULENS_START = event.data;
    start(event.data.module ?? './analysis-worker_bg.wasm');
  };
} else {
  start('./analysis-worker_bg.wasm');
}
