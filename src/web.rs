//! Browser plumbing shared by the page and its workers: the binaries' static constructors,
//! fetching a file of the app and the text of a JavaScript error.

use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// The message of a JavaScript error (an `Error`'s message, a string, or its debug form).
pub fn js_error_text(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

/// Fetches `url` (relative to the page or the worker) and returns its body; the error says
/// which file and why.
pub async fn fetch_array(url: &str) -> Result<Uint8Array, String> {
    let global = js_sys::global();
    // The same `fetch` on the page (Window) and in a worker (WorkerGlobalScope).
    let request = match global.dyn_ref::<web_sys::Window>() {
        Some(window) => window.fetch_with_str(url),
        None => global
            .unchecked_ref::<web_sys::WorkerGlobalScope>()
            .fetch_with_str(url),
    };
    let response = JsFuture::from(request)
        .await
        .map_err(|e| format!("could not download {url}: {}", js_error_text(&e)))?;
    let response: web_sys::Response = response
        .dyn_into()
        .map_err(|_| format!("could not download {url}: not a response"))?;
    if !response.ok() {
        return Err(format!(
            "could not download {url}: HTTP {} {}",
            response.status(),
            response.status_text()
        ));
    }
    let body = response
        .array_buffer()
        .map_err(|e| format!("could not download {url}: {}", js_error_text(&e)))?;
    let buffer = JsFuture::from(body)
        .await
        .map_err(|e| format!("could not download {url}: {}", js_error_text(&e)))?;
    Ok(Uint8Array::new(&buffer))
}

/// [`fetch_array`], copied into wasm memory.
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    Ok(fetch_array(url).await?.to_vec())
}

/// Starts the worker script at `url` with `options` (a query string such as
/// `?backend=cpu&fault=crash`) as its name, where [`own_options`] reads them back.
///
/// Not in the script's URL: once the service worker has cached the app it answers
/// `worker.js?x=y` with its cached `worker.js` (the cache ignores the query), and a worker's
/// `location` is the response's URL, so the query would be lost on every visit but the first.
pub fn start_worker(url: &str, options: &str) -> Result<web_sys::Worker, JsValue> {
    let settings = web_sys::WorkerOptions::new();
    settings.set_name(options);
    web_sys::Worker::new_with_options(url, &settings)
}

/// The options this worker was started with by [`start_worker`] (its name).
pub fn own_options() -> String {
    js_sys::global()
        .unchecked_into::<web_sys::DedicatedWorkerGlobalScope>()
        .name()
}

/// Runs the module's static constructors once; every binary's `main` calls it first, and the
/// burn device functions call it too, for binaries (the wasm test harness) that have no `main`
/// of ours. Later calls do nothing.
///
/// wasm-ld links a binary that never calls `__wasm_call_ctors` itself "command-style": it then
/// runs every constructor again at the start of *every* exported function, that is on every
/// call from JavaScript into the wasm (each event handler, each JS value handed in). burn's
/// GPU backend registers dozens of kernels through `inventory` constructors, so in the
/// analysis worker that was about 10 ms per slice message and 1.5 s per scan. An explicit
/// call makes the link a "reactor": constructors run when called, once. (See the `inventory`
/// crate's "WebAssembly and constructors".) Since the call exists in the library, every binary
/// linking it is a reactor and must reach this function before it relies on a constructor.
pub fn run_static_constructors() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::Relaxed) {
        return;
    }
    unsafe extern "C" {
        fn __wasm_call_ctors();
    }
    // SAFETY: wasm-ld's synthetic function; the flag above makes it run at most once per
    // instance, before anything here relies on a constructor having run.
    unsafe { __wasm_call_ctors() }
}
