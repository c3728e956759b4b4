// Starts the analysis worker: Trunk builds the `analysis-worker` binary (data-type="worker",
// feature `inference`) as analysis-worker.js + analysis-worker_bg.wasm, unhashed, next to this
// file. The page passes its options in this script's query string (?backend=cpu, ?fault=…),
// which the worker reads from its own location.
importScripts('./analysis-worker.js');
wasm_bindgen({ module_or_path: './analysis-worker_bg.wasm' }).catch((e) => {
  // Tell the page instead of leaving it waiting for "started".
  const data = { kind: 'failed', job: null, error: { kind: 'startup', message: String(e) } };
  postMessage({ data: JSON.stringify(data) });
});
