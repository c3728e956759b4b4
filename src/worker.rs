//! The decode worker: receives [`Request`]s, opens scans with `nodulens_core::open`, and
//! answers with progress and the volume. Runs in a dedicated Web Worker, so the blocking
//! decode never freezes the page, and files can be read synchronously (`FileReaderSync`),
//! one at a time, only when the reader asks for them.

use std::borrow::Cow;
use std::cell::RefCell;

use js_sys::{Int16Array, Uint8Array};
use nodulens_core::{FileSource, MemoryFiles, OpenOptions, ReadError};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, FileReaderSync, MessageEvent};

use crate::protocol::{
    InputFile, LoadProgress, LoadStage, Request, Response, Throttle, VolumeHeader,
};

/// User files, read lazily through `FileReaderSync` (only allowed in workers).
struct BlobFiles {
    files: Vec<InputFile>,
    reader: FileReaderSync,
}

impl FileSource for BlobFiles {
    fn count(&self) -> usize {
        self.files.len()
    }
    fn name(&self, index: usize) -> &str {
        &self.files[index].path
    }
    fn size(&self, index: usize) -> u64 {
        self.files[index].file.size() as u64
    }
    fn read(&self, index: usize) -> Result<Cow<'_, [u8]>, ReadError> {
        let input = &self.files[index];
        let buffer = self
            .reader
            .read_as_array_buffer(&input.file)
            .map_err(|e| ReadError::Io {
                file: input.path.clone(),
                reason: js_error_text(&e),
            })?;
        Ok(Cow::Owned(Uint8Array::new(&buffer).to_vec()))
    }
}

/// The readable part of a thrown JS value (`Error.message`, a string, or its debug form).
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

fn decode(source: &dyn FileSource, spacing: [f64; 3]) {
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
        Request::Open { files, spacing } => match FileReaderSync::new() {
            Ok(reader) => decode(&BlobFiles { files, reader }, spacing),
            Err(e) => post(&Response::Failed {
                message: format!(
                    "this browser cannot read files in a worker: {}",
                    js_error_text(&e)
                ),
            }),
        },
        Request::OpenSample { url, name, spacing } => {
            wasm_bindgen_futures::spawn_local(async move {
                report(LoadProgress {
                    stage: LoadStage::Downloading,
                    done: 0,
                    total: 0,
                });
                match fetch_bytes(&url).await {
                    Ok(bytes) => decode(&MemoryFiles::new(vec![(name, bytes)]), spacing),
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
