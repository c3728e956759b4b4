//! The decode worker: receives [`Request`]s, opens scans with `nodulens_core::open`, and
//! answers with progress and the volume. Runs in a dedicated Web Worker, so the blocking
//! decode never freezes the page. Dropped files are read into memory concurrently first
//! (see [`PrefetchedFiles`]).

use std::borrow::Cow;
use std::cell::RefCell;

use js_sys::{Int16Array, Uint8Array};
use nodulens_core::{FileSource, MemoryFiles, OpenOptions, ReadError};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::protocol::{
    InputFile, LoadProgress, LoadStage, Request, Response, Throttle, VolumeHeader,
};

/// Files read into JS memory all at once: the reads run concurrently, where one
/// synchronous `FileReaderSync` call per file and pass cost a browser round trip each
/// (10× slower than the decode itself). Each file's buffer is dropped after its second
/// read (header pass, then pixel pass), so the bytes held shrink as the volume grows.
struct PrefetchedFiles {
    names: Vec<String>,
    sizes: Vec<u64>,
    buffers: RefCell<Vec<Option<js_sys::ArrayBuffer>>>,
    reads: RefCell<Vec<u8>>,
}

impl PrefetchedFiles {
    async fn read_all(files: Vec<InputFile>) -> Result<Self, String> {
        report(LoadProgress {
            stage: LoadStage::Reading,
            done: 0,
            total: files.len(),
        });
        let promises: js_sys::Array = files.iter().map(|f| f.file.array_buffer()).collect();
        let buffers = JsFuture::from(js_sys::Promise::all(&promises))
            .await
            .map_err(|e| format!("the files could not be read: {}", js_error_text(&e)))?;
        let buffers: Vec<Option<js_sys::ArrayBuffer>> = js_sys::Array::from(&buffers)
            .iter()
            .map(|b| b.dyn_into::<js_sys::ArrayBuffer>().ok())
            .collect();
        Ok(Self {
            sizes: files.iter().map(|f| f.file.size() as u64).collect(),
            names: files.into_iter().map(|f| f.path).collect(),
            reads: RefCell::new(vec![0; buffers.len()]),
            buffers: RefCell::new(buffers),
        })
    }
}

impl FileSource for PrefetchedFiles {
    fn count(&self) -> usize {
        self.names.len()
    }
    fn name(&self, index: usize) -> &str {
        &self.names[index]
    }
    fn size(&self, index: usize) -> u64 {
        self.sizes[index]
    }
    fn read(&self, index: usize) -> Result<Cow<'_, [u8]>, ReadError> {
        let mut buffers = self.buffers.borrow_mut();
        let mut reads = self.reads.borrow_mut();
        reads[index] = reads[index].saturating_add(1);
        let buffer = if reads[index] >= 2 {
            buffers[index].take()
        } else {
            buffers[index].clone()
        };
        let buffer = buffer.ok_or_else(|| ReadError::Io {
            file: self.names[index].clone(),
            reason: "the browser did not return the file's contents".to_owned(),
        })?;
        Ok(Cow::Owned(Uint8Array::new(&buffer).to_vec()))
    }
}

fn js_error_text(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

fn scope() -> DedicatedWorkerGlobalScope {
    // Only ever called inside the worker, where the global object is this scope.
    js_sys::global().unchecked_into()
}

fn post(response: &Response) {
    let scope = scope();
    let sent = response.to_js().and_then(|(message, transfer)| {
        scope
            .post_message_with_transfer(&message, &transfer)
            .map_err(|e| js_error_text(&e))
    });
    if let Err(reason) = sent {
        // Tell the UI rather than leave it waiting forever.
        let failed = Response::Failed {
            message: format!("the decoder could not send its result: {reason}"),
        };
        if let Ok((message, _)) = failed.to_js() {
            let _ = scope.post_message(&message);
        }
    }
}

thread_local! {
    static THROTTLE: RefCell<Throttle> = RefCell::new(Throttle::default());
}

fn report(progress: LoadProgress) {
    let now = js_sys::Date::now();
    if THROTTLE.with(|t| t.borrow_mut().should_send(progress, now)) {
        post(&Response::Progress(progress));
    }
}

/// Milliseconds since the worker started (`performance.now()` of the worker scope).
fn now_ms() -> f64 {
    scope()
        .performance()
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// Where the time of one open went, in the worker's console (read by the browser benchmark,
/// and a first clue for anyone asking why a scan opens slowly).
fn log_timings(read_ms: f64, decode_ms: f64, handoff_ms: f64) {
    web_sys::console::log_1(
        &format!(
            "nodulens timings: read files {read_ms:.0} ms, decode {decode_ms:.0} ms, hand-off {handoff_ms:.0} ms"
        )
        .into(),
    );
}

fn decode(source: &dyn FileSource, spacing: [f64; 3], read_ms: f64) {
    let started = now_ms();
    let options = OpenOptions {
        stack_spacing_mm: spacing,
        ..OpenOptions::default()
    };
    let result = nodulens_core::open(source, &options, &mut |p| {
        report(p.into());
        // Cancelling is done by terminating the worker: a blocking decode cannot read
        // messages, so there is never a reason to stop from here.
        true
    });
    let decoded = now_ms();
    match result {
        Ok(mut volume) => {
            let header = VolumeHeader::of(&volume);
            let voxels = Int16Array::new_with_length(volume.voxels.len() as u32);
            voxels.copy_from(&volume.voxels);
            // Free the wasm copy before posting: the JS buffer is now the only one.
            volume.voxels = Vec::new();
            post(&Response::Opened {
                header: Box::new(header),
                voxels,
            });
            log_timings(read_ms, decoded - started, now_ms() - decoded);
        }
        Err(e) => post(&Response::Failed {
            message: e.to_string(),
        }),
    }
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let response = JsFuture::from(scope().fetch_with_str(url))
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
    Ok(Uint8Array::new(&buffer).to_vec())
}

fn handle(request: Request) {
    THROTTLE.with(|t| *t.borrow_mut() = Throttle::default());
    match request {
        Request::Open { files, spacing } => {
            wasm_bindgen_futures::spawn_local(async move {
                let started = now_ms();
                match PrefetchedFiles::read_all(files).await {
                    Ok(source) => decode(&source, spacing, now_ms() - started),
                    Err(message) => post(&Response::Failed { message }),
                }
            });
        }
        Request::OpenSample { url, name, spacing } => {
            wasm_bindgen_futures::spawn_local(async move {
                report(LoadProgress {
                    stage: LoadStage::Downloading,
                    done: 0,
                    total: 0,
                });
                let started = now_ms();
                match fetch_bytes(&url).await {
                    Ok(bytes) => decode(
                        &MemoryFiles::new(vec![(name, bytes)]),
                        spacing,
                        now_ms() - started,
                    ),
                    Err(message) => post(&Response::Failed { message }),
                }
            });
        }
    }
}

/// Worker entry point: installs the message handler and says it is ready.
pub fn run() {
    // A panic aborts the wasm instance; report it first so the UI shows why.
    std::panic::set_hook(Box::new(|info| {
        post(&Response::Failed {
            message: format!("internal error in the decoder: {info}"),
        });
    }));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        match Request::from_js(&event.data()) {
            Ok(request) => handle(request),
            Err(message) => post(&Response::Failed { message }),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();
    post(&Response::Ready);
}
