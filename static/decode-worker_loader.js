// Starts the decode worker: Trunk builds the `decode-worker` binary (data-type="worker") as
// decode-worker.js + decode-worker_bg.wasm, unhashed, next to this file. Written by hand
// rather than Trunk's data-loader-shim, which uses wasm-bindgen's deprecated init call.
importScripts('./decode-worker.js');
wasm_bindgen({ module_or_path: './decode-worker_bg.wasm' }).catch((e) => {
  // Tell the page instead of leaving it waiting for "ready".
  postMessage({ kind: 'failed', message: `the decoder could not start: ${e}` });
});
