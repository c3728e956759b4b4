//! The UI's handle on the decode worker: spawns it, queues a request until the worker
//! says it is ready, turns its messages into [`Action`]s, and cancels by terminating it
//! (a synchronous decode cannot read a "stop" message) and spawning a fresh one. Each
//! slice it receives is copied into the UI's volume, then relayed to the analysis worker
//! (`crate::analyser`), which hands the buffer back for the next slices.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::Reflect;
use nodulens_app::protocol::{Incoming, Request, Response};
use nodulens_core::view::Slice;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Event, MessageEvent, Worker};
use yew::UseReducerDispatcher;

use crate::analyser::{self, AnalyserRef};
use crate::state::{Action, AppState, Loaded, Preview, SessionAction, VolumeRef};
use crate::worker_sources::WorkerSources;
use nodulens_app::analysis::AnalysisAction;

/// The worker's loader (`static/decode-worker_loader.js`, copied next to Trunk's unhashed
/// `decode-worker.js` and `decode-worker_bg.wasm`).
const WORKER_URL: &str = "decode-worker_loader.js";

pub struct Decoder {
    worker: Option<Worker>,
    ready: bool,
    pending: Option<Request>,
    busy: bool,
    /// `performance.now()` when the current request was posted.
    sent_at: f64,
    /// What is being opened, for the title.
    what: String,
    /// The last request, so an image stack can be reopened with another spacing.
    last: Option<Request>,
    /// The volume arriving slice by slice (the one copy of its voxels).
    incoming: Option<Incoming>,
    dispatch: UseReducerDispatcher<AppState>,
    analyser: AnalyserRef,
    /// The worker's code once fetched: later workers start from it without a request.
    sources: Option<Rc<WorkerSources>>,
    /// Whether the running worker started from `sources` (if it dies before Ready, blob:
    /// workers are refused here and the URLs take over).
    from_sources: bool,
    /// Workers started so far, published as `data-decoder-starts` for the tests.
    starts: u32,
    // Kept alive as long as the worker they are attached to.
    _on_message: Option<Closure<dyn FnMut(MessageEvent)>>,
    _on_error: Option<Closure<dyn FnMut(Event)>>,
}

pub type DecoderRef = Rc<RefCell<Decoder>>;

pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

impl Decoder {
    pub fn new(dispatch: UseReducerDispatcher<AppState>, analyser: AnalyserRef) -> DecoderRef {
        let decoder = Rc::new(RefCell::new(Decoder {
            worker: None,
            ready: false,
            pending: None,
            busy: false,
            sent_at: 0.0,
            what: String::new(),
            last: None,
            incoming: None,
            dispatch,
            analyser: analyser.clone(),
            sources: None,
            from_sources: false,
            starts: 0,
            _on_message: None,
            _on_error: None,
        }));
        // The first worker too starts from the sources once they are fetched, so its script
        // and wasm are fetched (and compiled) once; an open before then starts one from the
        // URLs (`open`).
        let weak = Rc::downgrade(&decoder);
        wasm_bindgen_futures::spawn_local(async move {
            let state = match WorkerSources::fetch().await {
                Ok(sources) => {
                    if let Some(decoder) = weak.upgrade() {
                        decoder.borrow_mut().sources = Some(Rc::new(sources));
                    }
                    "ready"
                }
                // Workers keep starting from their URLs: the page works, with a request per
                // restart.
                Err(e) => {
                    web_sys::console::warn_1(
                        &format!("the decode worker restarts from the network: {e}").into(),
                    );
                    "network"
                }
            };
            if let Some(decoder) = weak.upgrade() {
                let idle = decoder.borrow().worker.is_none();
                if idle {
                    spawn(&decoder);
                }
            }
            // For the tests: from here on, a restart fetches nothing.
            if let Some(body) = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.body())
            {
                let _ = body.dataset().set("decoderSources", state);
            }
        });
        // The analysis worker's copied buffers go back to the decoder for the next slices.
        let weak = Rc::downgrade(&decoder);
        analyser.borrow_mut().set_recycle(Box::new(move |voxels| {
            if let Some(decoder) = weak.upgrade()
                && let Ok(d) = decoder.try_borrow()
            {
                recycle(&d, voxels);
            }
        }));
        decoder
    }

    pub fn last_request(&self) -> Option<Request> {
        self.last.clone()
    }
}

/// Hands a copied slice buffer back to the decode worker (best effort: a worker that has
/// gone allocates new ones).
fn recycle(d: &Decoder, voxels: js_sys::Int16Array) {
    if let (Some(worker), Ok((message, transfer))) =
        (&d.worker, Request::Recycle { voxels }.to_js())
    {
        let _ = worker.post_message_with_transfer(&message, &transfer);
    }
}

/// Starts a fresh worker (dropping any old one) and wires its events.
fn spawn(this: &DecoderRef) {
    let weak = Rc::downgrade(this);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
        let weak = weak.clone();
        move |event: MessageEvent| on_message(&weak, event.data())
    });
    let on_error = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
        event.prevent_default();
        on_crash(&weak, nodulens_app::protocol::worker_error_text(&event));
    });
    let mut d = this.borrow_mut();
    if let Some(old) = d.worker.take() {
        old.terminate();
    }
    d.ready = false;
    d.busy = false;
    d.incoming = None;
    let sources = d.sources.clone();
    d.from_sources = sources.is_some();
    let mut started = match &sources {
        Some(sources) => sources.start(),
        None => Worker::new(WORKER_URL),
    };
    if started.is_err() && sources.is_some() {
        // This page cannot start blob: workers (a host's policy): from the URLs from now on.
        d.sources = None;
        d.from_sources = false;
        started = Worker::new(WORKER_URL);
    }
    d.starts += 1;
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|doc| doc.body())
    {
        let _ = body.dataset().set("decoderStarts", &d.starts.to_string());
    }
    match started {
        Ok(worker) => {
            worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            d.worker = Some(worker);
            d._on_message = Some(on_message);
            d._on_error = Some(on_error);
        }
        Err(e) => {
            let dispatch = d.dispatch.clone();
            drop(d);
            dispatch.dispatch(Action::Session(SessionAction::Failed(format!(
                "could not start the decoder worker: {e:?}"
            ))));
        }
    }
}

/// [`spawn`] once the current event handler has returned: spawning replaces the
/// closures attached to the old worker, and the running one must not be dropped.
fn spawn_later(this: DecoderRef) {
    spawn_later_with(this, None);
}

/// [`spawn_later`], then `pending` waits for the new worker's Ready.
fn spawn_later_with(this: DecoderRef, pending: Option<Request>) {
    wasm_bindgen_futures::spawn_local(async move {
        spawn(&this);
        if let Some(request) = pending {
            let mut d = this.borrow_mut();
            d.pending = Some(request);
            d.busy = true;
            d.sent_at = now_ms();
        }
    });
}

fn on_message(weak: &Weak<RefCell<Decoder>>, data: JsValue) {
    let Some(this) = weak.upgrade() else {
        return;
    };
    let response = Response::from_js(&data);
    let mut d = this.borrow_mut();
    let dispatch = d.dispatch.clone();
    match response {
        Ok(Response::Ready) => {
            d.ready = true;
            if let Some(request) = d.pending.take() {
                post(&mut d, request);
            }
        }
        Ok(Response::Progress(p)) => {
            drop(d);
            dispatch.dispatch(Action::Session(SessionAction::Progress(p)));
        }
        Ok(Response::Expect { voxels }) => {
            d.incoming
                .get_or_insert_with(|| Incoming::new(nodulens_core::MAX_VOXELS))
                .expect(voxels);
            analyser::reserve(&d.analyser, voxels);
        }
        Ok(Response::Slices { voxels, preview }) => {
            let incoming = d
                .incoming
                .get_or_insert_with(|| Incoming::new(nodulens_core::MAX_VOXELS));
            let copied = incoming.append(voxels.length() as usize, |room| voxels.copy_to(room));
            let preview = preview
                .filter(|_| copied.is_ok())
                .and_then(|shape| preview_slice(shape, incoming.latest()));
            match copied {
                // On to the analysis worker, which hands the buffer back; without a job,
                // straight back to the decoder.
                Ok(()) => {
                    if let Err(voxels) = analyser::relay(&d.analyser, voxels) {
                        recycle(&d, voxels);
                    }
                    if let Some(preview) = preview {
                        drop(d);
                        dispatch.dispatch(Action::Session(SessionAction::Preview(preview)));
                    }
                }
                Err(message) => {
                    drop(d);
                    fail_and_restart(this, dispatch, message);
                }
            }
        }
        Ok(Response::Finished(finished)) => {
            d.busy = false;
            let decode_ms = now_ms() - d.sent_at;
            let what = d.what.clone();
            let incoming = d.incoming.take();
            let analyser = d.analyser.clone();
            drop(d);
            let for_analysis = (*finished).clone();
            let loaded = incoming
                .unwrap_or_else(|| Incoming::new(nodulens_core::MAX_VOXELS))
                .finish(*finished)
                .map(|(volume, statistics)| Loaded::new(volume, statistics, what));
            match loaded {
                Ok(loaded) => {
                    publish_timing(decode_ms, loaded.volume.voxels().len() as u32);
                    let loaded = VolumeRef(Rc::new(loaded));
                    dispatch.dispatch(Action::Session(SessionAction::Opened(loaded.clone())));
                    analyser::analyse(&analyser, for_analysis, loaded);
                }
                Err(message) => {
                    abandon(&analyser, &dispatch);
                    dispatch.dispatch(Action::Session(SessionAction::Failed(message)));
                }
            }
            // A wasm heap never shrinks: a fresh worker is small, whatever this decode
            // grew the old one to.
            spawn_later(this);
        }
        Ok(Response::Failed { message }) => {
            if !d.ready && d.from_sources {
                // The wasm would not start from the fetched sources: the URLs take over.
                drop(d);
                urls_take_over(&this);
                return;
            }
            d.incoming = None;
            abandon(&d.analyser, &dispatch);
            let ready = d.ready;
            if !ready {
                // The loader could not initialise the worker's wasm: do not loop on it.
                stop(&mut d);
            }
            d.busy = false;
            drop(d);
            dispatch.dispatch(Action::Session(SessionAction::Failed(message)));
            if ready {
                // Free whatever the failed decode had grown the worker's heap to.
                spawn_later(this);
            }
        }
        Err(message) => {
            drop(d);
            dispatch.dispatch(Action::Session(SessionAction::Failed(message)));
        }
    }
}

/// The slice just received, to show while the rest arrives, if it is the shape the worker
/// said.
fn preview_slice([width, height]: [usize; 2], values: &[i16]) -> Option<Preview> {
    (width.checked_mul(height)? == values.len() && !values.is_empty()).then(|| {
        Preview(Rc::new(Slice {
            width,
            height,
            // Previews come from DICOM slices, whose pixels are almost always square; the
            // viewer uses the true spacing once the volume is whole.
            pixel_mm: [1.0, 1.0],
            values: values.to_vec(),
        }))
    })
}

/// The scan will not open: its analysis stops too.
fn abandon(analyser: &AnalyserRef, dispatch: &UseReducerDispatcher<AppState>) {
    let job = analyser::cancel(analyser);
    dispatch.dispatch(Action::Analysis(AnalysisAction::Skipped {
        job,
        reason: "the scan could not be opened".into(),
    }));
}

/// A broken stream: say why, drop what arrived, and start a fresh worker.
fn fail_and_restart(this: DecoderRef, dispatch: UseReducerDispatcher<AppState>, message: String) {
    {
        let mut d = this.borrow_mut();
        d.busy = false;
        d.incoming = None;
        abandon(&d.analyser, &dispatch);
    }
    dispatch.dispatch(Action::Session(SessionAction::Failed(message)));
    spawn_later(this);
}

fn on_crash(weak: &Weak<RefCell<Decoder>>, message: String) {
    let Some(this) = weak.upgrade() else {
        return;
    };
    // A blob: worker refused asynchronously (the host's policy): the URLs take over, and the
    // request waiting for Ready goes to that worker.
    if !this.borrow().ready && urls_take_over(&this) {
        return;
    }
    let (dispatch, was_ready) = {
        let d = this.borrow();
        if d.busy {
            abandon(&d.analyser, &d.dispatch);
        }
        (d.dispatch.clone(), d.ready)
    };
    if was_ready {
        // The wasm instance in the worker is unusable after a trap: start over.
        spawn_later(this);
    } else {
        // It never started (script missing, wasm rejected): respawning would fail the same
        // way, in a loop. The next open tries again.
        stop(&mut this.borrow_mut());
    }
    dispatch.dispatch(Action::Session(SessionAction::WorkerCrashed(format!(
        "the decoder stopped: {message}"
    ))));
}

/// After a worker started from the fetched sources died before Ready: forget the sources and
/// start one from the URLs, keeping the request that waits for Ready. `false` when the worker
/// had started from the URLs already.
fn urls_take_over(this: &DecoderRef) -> bool {
    let mut d = this.borrow_mut();
    if !d.from_sources {
        return false;
    }
    web_sys::console::warn_1(
        &"blob: workers are refused here: the decoder starts from its URLs".into(),
    );
    d.sources = None;
    let pending = d.pending.take();
    drop(d);
    spawn_later_with(this.clone(), pending);
    true
}

/// Terminates the worker without starting another.
fn stop(d: &mut Decoder) {
    if let Some(worker) = d.worker.take() {
        worker.terminate();
    }
    d.ready = false;
    d.busy = false;
    d.pending = None;
}

fn post(d: &mut Decoder, request: Request) {
    let Some(worker) = &d.worker else {
        d.dispatch.dispatch(Action::Session(SessionAction::Failed(
            "the decoder worker is not running".into(),
        )));
        return;
    };
    let sent = request.to_js().and_then(|(msg, transfer)| {
        worker
            .post_message_with_transfer(&msg, &transfer)
            .map_err(|e| format!("{e:?}"))
    });
    match sent {
        Ok(()) => {
            d.busy = true;
            d.sent_at = now_ms();
        }
        Err(e) => d
            .dispatch
            .dispatch(Action::Session(SessionAction::Failed(format!(
                "could not send files to the decoder: {e}"
            )))),
    }
}

/// Sends a request, restarting the worker first if it is busy with an older one.
pub fn open(this: &DecoderRef, request: Request, what: String) {
    clear_timing();
    let (restart, dispatch) = {
        let d = this.borrow();
        (d.busy || d.worker.is_none(), d.dispatch.clone())
    };
    if restart {
        spawn(this);
    }
    dispatch.dispatch(Action::Session(SessionAction::StartLoading {
        what: what.clone(),
    }));
    let analyser = this.borrow().analyser.clone();
    let job = analyser::begin(&analyser);
    dispatch.dispatch(Action::Analysis(AnalysisAction::Started { job }));
    let mut d = this.borrow_mut();
    d.what = what;
    d.last = Some(request.clone());
    if d.ready {
        post(&mut d, request);
    } else {
        // Posted when the worker reports Ready; until then it would be dropped unread.
        d.pending = Some(request);
        d.busy = true;
        d.sent_at = now_ms();
    }
}

/// Stops the running decode.
pub fn cancel(this: &DecoderRef) {
    let (dispatch, analyser) = {
        let d = this.borrow();
        (d.dispatch.clone(), d.analyser.clone())
    };
    let job = analyser::cancel(&analyser);
    dispatch.dispatch(Action::Analysis(AnalysisAction::Cancelled { job }));
    this.borrow_mut().pending = None;
    spawn(this);
    dispatch.dispatch(Action::Session(SessionAction::Cancelled));
}

/// `data-first-slice` on `<body>` (time of the first slice drawn, a preview or the viewer),
/// unless already set for this open; read by the browser benchmark.
pub fn mark_first_slice() {
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        let dataset = body.dataset();
        if dataset.get("firstSlice").is_none() {
            let _ = dataset.set("firstSlice", &format!("{:.1}", now_ms()));
        }
    }
}

/// `data-decode-ms` on `<body>` and `window.__nodulens`, read by the e2e tests and the
/// browser benchmark.
fn publish_timing(decode_ms: f64, voxels: u32) {
    let Some(window) = web_sys::window() else {
        return;
    };
    if let Some(body) = window.document().and_then(|d| d.body()) {
        let _ = body.dataset().set("decodeMs", &format!("{decode_ms:.1}"));
    }
    let info = js_sys::Object::new();
    let _ = Reflect::set(&info, &"decodeMs".into(), &decode_ms.into());
    let _ = Reflect::set(&info, &"voxels".into(), &voxels.into());
    let _ = Reflect::set(&window, &"__nodulens".into(), &info);
}

fn clear_timing() {
    let Some(window) = web_sys::window() else {
        return;
    };
    if let Some(body) = window.document().and_then(|d| d.body()) {
        let dataset = body.dataset();
        dataset.delete("decodeMs");
        dataset.delete("firstSlice");
        dataset.delete("viewerDrawn");
    }
    let _ = Reflect::delete_property(&window, &"__nodulens".into());
}
