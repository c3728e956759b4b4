//! The decode worker: receives [`Request`]s, opens scans with `nodulens_core`, and streams
//! the volume to the UI as `Expect`, `Slices`, `Finished`, with progress. Runs in a dedicated
//! Web Worker, so the blocking decode never freezes the page.
//!
//! In a browser, reading the dropped files is as slow as decoding them, and each read has a
//! fixed cost, so a DICOM folder is read once, file by file, with many reads in flight, by a
//! worker of its own ([`ReaderWorker`], so reading goes on while this one decodes): each
//! file is decoded as soon as it arrives by [`DicomStream`], and each slice is posted to
//! the UI at once. The UI puts the slices in place at the end. The worker never holds the files and the volume at once: the peak is
//! the UI's volume plus the files in flight.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use js_sys::{ArrayBuffer, Int16Array, Object, Reflect, Uint8Array};
use nodulens_core::dicom::{Added, DicomStream};
use nodulens_core::slices::ArrivalSink;
use nodulens_core::{FileSource, MemoryFiles, OpenOptions, Opening, ReadError, Volume};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::protocol::{Finished, InputFile, LoadProgress, LoadStage, Request, Response, Throttle};
use crate::web::{fetch_bytes, js_error_text};

/// Whole files being read ahead of the decoder. Reads in flight overlap their fixed costs
/// (64 read a folder about as fast as all at once), and bound what waits in memory
/// (about 32 MB of CT slices).
const READ_AHEAD: usize = 64;

/// A volume decoded at once is posted in parts of about this many voxels (16 MB).
const POST_VOXELS: usize = 8 << 20;

/// Formats whose readers read whole files at once (one file, a zip, a picture per slice):
/// fetched whole, all together, before they run. Anything else is taken as DICOM.
fn read_whole_up_front(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        ".nii", ".nii.gz", ".mhd", ".mha", ".raw", ".zraw", ".zip", ".png", ".jpg", ".jpeg",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

/// The dropped files, fetched whole up front (non-DICOM formats) or read as the decoder
/// goes ([`BrowserFiles::read_later`]); anything else a reader asks for is read with
/// `FileReaderSync`.
struct BrowserFiles {
    names: Vec<String>,
    sizes: Vec<u64>,
    files: Vec<web_sys::File>,
    fetched: Vec<Option<ArrayBuffer>>,
}

impl BrowserFiles {
    fn new(files: Vec<InputFile>) -> Self {
        Self {
            sizes: files.iter().map(|f| f.file.size() as u64).collect(),
            names: files.iter().map(|f| f.path.clone()).collect(),
            fetched: vec![None; files.len()],
            files: files.into_iter().map(|f| f.file).collect(),
        }
    }

    /// Reads every file at once (the reads run concurrently).
    async fn fetch_all(&mut self) -> Result<(), String> {
        report(LoadProgress {
            stage: LoadStage::Reading,
            done: 0,
            total: self.files.len(),
        });
        let promises: js_sys::Array = self.files.iter().map(|f| f.array_buffer()).collect();
        let buffers = JsFuture::from(js_sys::Promise::all(&promises))
            .await
            .map_err(|e| format!("the files could not be read: {}", js_error_text(&e)))?;
        self.fetched = js_sys::Array::from(&buffers)
            .iter()
            .map(|b| b.dyn_into::<ArrayBuffer>().ok())
            .collect();
        Ok(())
    }

    /// A whole file, read asynchronously.
    fn read_later(&self, index: usize) -> JsFuture {
        JsFuture::from(self.files[index].array_buffer())
    }

    fn io_error(&self, index: usize, reason: String) -> ReadError {
        ReadError::Io {
            file: self.names[index].clone(),
            reason,
        }
    }
}

impl FileSource for BrowserFiles {
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
        if let Some(buffer) = &self.fetched[index] {
            return Ok(Cow::Owned(Uint8Array::new(buffer).to_vec()));
        }
        // Not fetched up front (a data file an .mhd names among DICOM-looking files): rare,
        // so one synchronous read is fine.
        let reader =
            web_sys::FileReaderSync::new().map_err(|e| self.io_error(index, js_error_text(&e)))?;
        let buffer = reader
            .read_as_array_buffer(&self.files[index])
            .map_err(|e| self.io_error(index, js_error_text(&e)))?;
        Ok(Cow::Owned(Uint8Array::new(&buffer).to_vec()))
    }
}

/// The file reader's script (`static/file-reader.js`, copied next to this worker's).
const READER_URL: &str = "file-reader.js";

/// Files the reader worker reads beyond those taken (about 8 MB of CT slices): its reads run
/// while this worker decodes, so fewer keep up than [`READ_AHEAD`], and more only raised the
/// page's peak memory (past twice the volume, with the reader's own heap).
const READER_AHEAD: usize = 16;

/// What the reader worker has sent and the decoder not yet taken.
#[derive(Default)]
struct Arrivals {
    files: BTreeMap<usize, Result<ArrayBuffer, String>>,
    /// The file the decoder waits for, and how to wake it.
    awaited: Option<(usize, js_sys::Function)>,
    /// The reader failed (its script did not load): files are then read here.
    failed: bool,
}

impl Arrivals {
    fn wake(&mut self) {
        if let Some((_, wake)) = self.awaited.take() {
            let _ = wake.call0(&JsValue::NULL);
        }
    }
}

/// Reads a folder's files in a worker of its own (`static/file-reader.js`). A browser reads
/// a `File` on the thread that asked, so reads this worker asks for stall while it decodes;
/// the reader's go on, and hands each file over (transferred) as soon as it is read, at
/// most [`READER_AHEAD`] beyond what this worker has taken. Terminated when dropped, and
/// with this worker when the UI cancels.
struct ReaderWorker {
    worker: web_sys::Worker,
    files: Vec<web_sys::File>,
    arrivals: Rc<RefCell<Arrivals>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

impl ReaderWorker {
    /// `None` where a worker cannot start a worker (the files are then read here).
    fn start(files: &[web_sys::File]) -> Option<Self> {
        // Started from a blob (src/worker_sources.rs), this worker is told the reader's URL.
        let url = Reflect::get(&js_sys::global(), &"NODULENS_READER_URL".into())
            .ok()
            .and_then(|url| url.as_string())
            .unwrap_or_else(|| READER_URL.to_owned());
        let worker = web_sys::Worker::new(&url).ok()?;
        let arrivals = Rc::new(RefCell::new(Arrivals::default()));
        let into = arrivals.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let data = event.data();
            let field = |key: &str| Reflect::get(&data, &key.into()).unwrap_or_default();
            let Some(index) = field("index").as_f64().map(|i| i as usize) else {
                return;
            };
            let arrived = match field("buffer").dyn_into::<ArrayBuffer>() {
                Ok(buffer) => Ok(buffer),
                Err(_) => Err(field("message")
                    .as_string()
                    .unwrap_or_else(|| "the reader sent no data".to_owned())),
            };
            let mut arrivals = into.borrow_mut();
            arrivals.files.insert(index, arrived);
            if arrivals.awaited.as_ref().is_some_and(|(i, _)| *i == index) {
                arrivals.wake();
            }
        });
        let into = arrivals.clone();
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            event.prevent_default();
            let mut arrivals = into.borrow_mut();
            arrivals.failed = true;
            arrivals.wake();
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let request = Object::new();
        let list: js_sys::Array = files.iter().collect();
        let sent = Reflect::set(&request, &"kind".into(), &"read".into())
            .and_then(|_| Reflect::set(&request, &"files".into(), &list))
            .and_then(|_| Reflect::set(&request, &"ahead".into(), &(READER_AHEAD as f64).into()))
            .and_then(|_| worker.post_message(&request));
        if sent.is_err() {
            worker.terminate();
            return None;
        }
        Some(Self {
            worker,
            files: files.to_vec(),
            arrivals,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// File `index`'s bytes, once the reader has them; the files are asked for in order.
    async fn file(&self, index: usize) -> Result<ArrayBuffer, String> {
        loop {
            let arrived = self.arrivals.borrow_mut().files.remove(&index);
            if let Some(arrived) = arrived {
                let consumed = Object::new();
                let _ =
                    Reflect::set(&consumed, &"kind".into(), &"consumed".into()).and_then(|_| {
                        Reflect::set(&consumed, &"count".into(), &((index + 1) as f64).into())
                    });
                let _ = self.worker.post_message(&consumed);
                return arrived;
            }
            if self.arrivals.borrow().failed {
                let buffer = JsFuture::from(self.files[index].array_buffer())
                    .await
                    .map_err(|e| js_error_text(&e))?;
                return Ok(buffer.unchecked_into());
            }
            let arrivals = self.arrivals.clone();
            let woken = js_sys::Promise::new(&mut |wake, _| {
                arrivals.borrow_mut().awaited = Some((index, wake));
            });
            JsFuture::from(woken).await.map_err(|e| js_error_text(&e))?;
        }
    }
}

impl Drop for ReaderWorker {
    fn drop(&mut self) {
        self.worker.terminate();
    }
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
    /// Slice buffers the UI handed back, reused for the next slices.
    static RECYCLED: RefCell<Vec<Int16Array>> = const { RefCell::new(Vec::new()) };
}

/// More recycled buffers than this are let go (a slice is usually 512 KB).
const RECYCLED_MAX: usize = 64;

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
fn log_timings(what: &str, ms: f64) {
    web_sys::console::log_1(&format!("nodulens timings: {what} {ms:.0} ms").into());
}

/// A slice is offered to the UI as a preview at most this often (the first one at once), so
/// the page shows the scan while the rest is read; more would only cost the page time.
const PREVIEW_EVERY_MS: f64 = 250.0;

/// Posts each decoded slice to the UI.
struct PostSlices {
    scratch: Vec<i16>,
    /// Columns and rows of the slice being decoded.
    shape: [usize; 2],
    last_preview_at: Option<f64>,
}

impl PostSlices {
    fn new() -> Self {
        Self {
            scratch: Vec::new(),
            shape: [0, 0],
            last_preview_at: None,
        }
    }
}

impl ArrivalSink for PostSlices {
    fn expect(&mut self, voxels: usize) {
        post(&Response::Expect { voxels });
    }
    fn slice(&mut self, columns: usize, rows: usize) -> Result<&mut [i16], ReadError> {
        self.shape = [columns, rows];
        self.scratch.resize(columns * rows, 0);
        Ok(&mut self.scratch)
    }
    fn done(&mut self) -> Result<(), ReadError> {
        let recycled = RECYCLED.with(|pool| {
            let mut pool = pool.borrow_mut();
            let at = pool
                .iter()
                .position(|b| b.length() as usize == self.scratch.len())?;
            Some(pool.swap_remove(at))
        });
        let voxels = match recycled {
            Some(buffer) => {
                buffer.copy_from(&self.scratch);
                buffer
            }
            None => Int16Array::from(&self.scratch[..]),
        };
        let now = now_ms();
        let preview = match self.last_preview_at {
            Some(at) if now - at < PREVIEW_EVERY_MS => None,
            _ => {
                self.last_preview_at = Some(now);
                Some(self.shape)
            }
        };
        post(&Response::Slices { voxels, preview });
        Ok(())
    }
}

/// The next file's bytes: from what was fetched up front, else from the read-ahead queue
/// (which this tops up to [`READ_AHEAD`] reads in flight).
struct FileFeed<'a> {
    source: &'a dyn FileSource,
    blobs: Option<&'a BrowserFiles>,
    /// Reads in a worker of their own, where one could start.
    reader: Option<ReaderWorker>,
    /// Else reads in flight here.
    reading: VecDeque<(usize, JsFuture)>,
    next_read: usize,
}

impl FileFeed<'_> {
    async fn next(&mut self, file: usize) -> Result<(Vec<u8>, Option<ArrayBuffer>), String> {
        let Some(blobs) = self.blobs.filter(|b| b.fetched[file].is_none()) else {
            let bytes = self.source.read(file).map_err(|e| e.to_string())?;
            return Ok((bytes.into_owned(), None));
        };
        if let Some(reader) = &self.reader {
            let buffer = reader
                .file(file)
                .await
                .map_err(|reason| format!("{}: could not be read: {reason}", blobs.name(file)))?;
            return Ok((Uint8Array::new(&buffer).to_vec(), Some(buffer)));
        }
        while self.next_read < blobs.count() && self.reading.len() < READ_AHEAD {
            let index = self.next_read;
            self.reading.push_back((index, blobs.read_later(index)));
            self.next_read += 1;
        }
        match self.reading.pop_front() {
            Some((index, read)) if index == file => {
                let buffer: ArrayBuffer = read
                    .await
                    .map_err(|e| {
                        format!(
                            "{}: could not be read: {}",
                            blobs.name(file),
                            js_error_text(&e)
                        )
                    })?
                    .unchecked_into();
                Ok((Uint8Array::new(&buffer).to_vec(), Some(buffer)))
            }
            _ => Err("internal: files read out of order".to_owned()),
        }
    }
}

/// Milliseconds spent waiting for file reads and decoding, for the console.
#[derive(Default)]
struct Times {
    waiting: f64,
    decoding: f64,
}

/// Feeds every file to a [`DicomStream`] in order, decoding as they arrive; then decodes the
/// files of the chosen series that had to wait, and says where each slice goes.
async fn stream_dicom(
    mut stream: DicomStream,
    source: &dyn FileSource,
    blobs: Option<&BrowserFiles>,
) -> Result<Finished, String> {
    let total = source.count();
    let mut sink = PostSlices::new();
    // Files fetched up front (a folder that also holds a zip or pictures) need no reader.
    let reader = blobs
        .filter(|b| b.fetched.iter().all(Option::is_none))
        .and_then(|b| ReaderWorker::start(&b.files));
    let mut feed = FileFeed {
        source,
        blobs,
        reader,
        reading: VecDeque::new(),
        next_read: 0,
    };
    let mut times = Times::default();
    // Files of series that did not lead when they came, kept in JS memory until the series
    // is chosen.
    let mut waiting: BTreeMap<usize, ArrayBuffer> = BTreeMap::new();
    for file in 0..total {
        report(LoadProgress {
            stage: LoadStage::Decoding,
            done: file,
            total,
        });
        let waited = now_ms();
        let (bytes, buffer) = feed.next(file).await?;
        let decoding = now_ms();
        let added = stream
            .add_file(file, source.name(file), &bytes, &mut sink)
            .map_err(|e| e.to_string())?;
        times.waiting += decoding - waited;
        times.decoding += now_ms() - decoding;
        if let (Added::Deferred, Some(buffer)) = (added, buffer) {
            waiting.insert(file, buffer);
        }
    }
    drop(feed); // the reader worker's job is done
    web_sys::console::log_1(
        &format!(
            "nodulens timings: waiting for reads {:.0} ms, parsing and decoding {:.0} ms",
            times.waiting, times.decoding
        )
        .into(),
    );
    let late = stream.files_to_decode_late().map_err(|e| e.to_string())?;
    for file in late {
        let bytes = match waiting.remove(&file) {
            Some(buffer) => Uint8Array::new(&buffer).to_vec(),
            None => source.read(file).map_err(|e| e.to_string())?.into_owned(),
        };
        stream
            .decode_late(file, source.name(file), &bytes, &mut sink)
            .map_err(|e| e.to_string())?;
    }
    drop(waiting);
    let (header, order) = stream.finish().map_err(|e| e.to_string())?;
    Ok(Finished {
        header,
        order: Some(order),
    })
}

/// Sends a volume decoded at once, in parts, and drops it.
fn stream_volume(volume: Volume) -> Finished {
    let (header, voxels) = volume.into_parts();
    post(&Response::Expect {
        voxels: voxels.len(),
    });
    let slice_len = header.dims[0].saturating_mul(header.dims[1]).max(1);
    let slices_per_post = (POST_VOXELS / slice_len).max(1);
    for part in voxels.chunks(slices_per_post.saturating_mul(slice_len)) {
        post(&Response::Slices {
            voxels: Int16Array::from(part),
            preview: None,
        });
    }
    Finished {
        header,
        order: None,
    }
}

/// Opens `source` and streams the result; `blobs` is the same source when it holds the
/// browser's files (DICOM files are then read as the decoder goes).
async fn open_and_stream(source: &dyn FileSource, blobs: Option<&BrowserFiles>, spacing: [f64; 3]) {
    let started = now_ms();
    let options = OpenOptions {
        stack_spacing_mm: spacing,
        ..OpenOptions::default()
    };
    let opening = nodulens_core::begin_open(source, &options, &mut |p| {
        report(p.into());
        // Cancelling is done by terminating the worker, so never from here.
        true
    });
    let (what, finished) = match opening {
        Ok(Opening::Dicom(stream)) => (
            "read and decode DICOM",
            stream_dicom(stream, source, blobs).await,
        ),
        Ok(Opening::Decoded(volume)) => ("read and decode", Ok(stream_volume(volume))),
        Err(e) => ("", Err(e.to_string())),
    };
    match finished {
        Ok(finished) => {
            post(&Response::Finished(Box::new(finished)));
            log_timings(what, now_ms() - started);
        }
        Err(message) => post(&Response::Failed { message }),
    }
}

fn handle(request: Request) {
    if let Request::Recycle { voxels } = request {
        RECYCLED.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < RECYCLED_MAX {
                pool.push(voxels);
            }
        });
        return;
    }
    THROTTLE.with(|t| *t.borrow_mut() = Throttle::default());
    match request {
        Request::Open { files, spacing } => {
            wasm_bindgen_futures::spawn_local(async move {
                let whole = files.iter().any(|f| read_whole_up_front(&f.path));
                let mut source = BrowserFiles::new(files);
                if whole && let Err(message) = source.fetch_all().await {
                    post(&Response::Failed { message });
                    return;
                }
                open_and_stream(&source, Some(&source), spacing).await;
            });
        }
        Request::OpenSample { url, name, spacing } => {
            wasm_bindgen_futures::spawn_local(async move {
                report(LoadProgress {
                    stage: LoadStage::Downloading,
                    done: 0,
                    total: 0,
                });
                match fetch_bytes(&url).await {
                    Ok(bytes) => {
                        let source = MemoryFiles::new(vec![(name, bytes)]);
                        open_and_stream(&source, None, spacing).await
                    }
                    Err(message) => post(&Response::Failed { message }),
                }
            });
        }
        Request::Recycle { .. } => {}
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
