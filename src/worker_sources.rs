//! The decode worker's code, fetched and compiled once per page. The decoder starts a fresh
//! worker after every scan (a wasm heap never shrinks) and on Cancel; started from these
//! sources (a blob: script and the compiled module, handed over in its first message) a
//! restart fetches nothing, so once the page has loaded, opening and analysing scans makes no
//! request at all (`tests/e2e/deploy.test.mjs`). Until they are ready, or where they cannot be
//! made, workers start from their URLs as before; where a blob: worker is refused (a host's
//! policy without `blob:` in `worker-src`), the decoder forgets the sources and goes back to
//! the URLs (`src/decoder.rs`).

use js_sys::{Array, Object, Reflect};
use nodulens_app::web::{fetch_array, js_error_text};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, BlobPropertyBag, Url, Worker};

/// Appended to Trunk's `decode-worker.js` (wasm-bindgen's no-modules glue) in the blob: the
/// first message brings the compiled module and the file reader's script; errors reach the
/// page as the URL loader's do (`static/decode-worker_loader.js`).
const BOOTSTRAP: &str = "
self.onmessage = (event) => {
  self.onmessage = null;
  self.NODULENS_READER_URL = event.data.readerUrl;
  wasm_bindgen({ module_or_path: event.data.module }).catch((e) => {
    postMessage({ kind: 'failed', message: `the decoder could not start: ${e}` });
  });
};
";

pub struct WorkerSources {
    /// blob: URL of the worker's script (the glue and [`BOOTSTRAP`]).
    script_url: String,
    module: js_sys::WebAssembly::Module,
    /// blob: URL of `file-reader.js`, or its absolute URL where it could not be fetched
    /// (a blob worker cannot resolve a relative one).
    reader_url: String,
}

impl WorkerSources {
    /// Fetches `decode-worker.js`, `decode-worker_bg.wasm` (compiled here) and
    /// `file-reader.js`.
    pub async fn fetch() -> Result<WorkerSources, String> {
        let glue = fetch_array("decode-worker.js").await?;
        let wasm = fetch_array("decode-worker_bg.wasm").await?;
        let module = JsFuture::from(js_sys::WebAssembly::compile(&wasm))
            .await
            .map_err(|e| js_error_text(&e))?
            .dyn_into::<js_sys::WebAssembly::Module>()
            .map_err(|e| js_error_text(&e))?;
        let script_url = blob_url(&[glue.into(), JsValue::from_str(BOOTSTRAP)])?;
        let reader_url = match fetch_array("file-reader.js").await {
            Ok(reader) => blob_url(&[reader.into()])?,
            Err(_) => absolute("file-reader.js")?,
        };
        Ok(WorkerSources {
            script_url,
            module,
            reader_url,
        })
    }

    /// A new decode worker from these sources.
    pub fn start(&self) -> Result<Worker, JsValue> {
        let worker = Worker::new(&self.script_url)?;
        let message = Object::new();
        Reflect::set(&message, &"module".into(), &self.module)?;
        Reflect::set(
            &message,
            &"readerUrl".into(),
            &self.reader_url.as_str().into(),
        )?;
        worker.post_message(&message)?;
        Ok(worker)
    }
}

fn blob_url(parts: &[JsValue]) -> Result<String, String> {
    let options = BlobPropertyBag::new();
    options.set_type("text/javascript");
    let blob =
        Blob::new_with_u8_array_sequence_and_options(&parts.iter().collect::<Array>(), &options)
            .map_err(|e| js_error_text(&e))?;
    Url::create_object_url_with_blob(&blob).map_err(|e| js_error_text(&e))
}

fn absolute(path: &str) -> Result<String, String> {
    let href = web_sys::window()
        .ok_or("no window")?
        .location()
        .href()
        .map_err(|e| js_error_text(&e))?;
    Url::new_with_base(path, &href)
        .map(|url| url.href())
        .map_err(|e| js_error_text(&e))
}
