//! The UI's handle on the analysis worker: starts it once (it keeps its models and device
//! across scans), relays the decoder's slices to it as they arrive, starts the analysis when
//! the volume is whole, turns the worker's messages into analysis actions, and recovers: on
//! a GPU error or the worker's death during a job, a fresh worker on the CPU reruns the job
//! from the UI's own copy of the volume.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Array, Int16Array};
use nodulens_app::analysis::AnalysisAction;
use nodulens_app::analysis_protocol::{
    AnalysisError, FromAnalysis, ToAnalysis, WorkerOptions, from_js, to_js,
};
use nodulens_app::protocol::Finished;
use nodulens_core::{IntensityUnits, Volume};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Event, MessageEvent, Worker};
use yew::UseReducerDispatcher;

use crate::decoder::now_ms;
use crate::state::{Action, AppState, VolumeRef};

/// The worker's loader (`static/analysis-worker_loader.js`).
const WORKER_URL: &str = "analysis-worker_loader.js";

pub struct Analyser {
    worker: Option<Worker>,
    options: WorkerOptions,
    /// The worker has posted `Started`; until then messages wait in `queue`.
    started: bool,
    queue: Vec<(JsValue, Array)>,
    /// The page's job (0: none) and whether its volume has been sent whole.
    job: u64,
    next_job: u64,
    sent_whole: bool,
    /// The job's volume on the UI side, to rerun it on a fresh worker.
    volume: Option<VolumeRef>,
    /// Whether the job already fell back to the CPU (a second failure is an error).
    fell_back: bool,
    /// When the job's volume was whole (for the timing the benchmark reads).
    analyse_at: f64,
    /// Hands copied slice buffers back to the decoder.
    recycle: Option<Box<dyn Fn(Int16Array)>>,
    dispatch: UseReducerDispatcher<AppState>,
    _on_message: Option<Closure<dyn FnMut(MessageEvent)>>,
    _on_error: Option<Closure<dyn FnMut(Event)>>,
}

pub type AnalyserRef = Rc<RefCell<Analyser>>;

/// The page's own options (`?backend=cpu`, `?fault=gpu-lost`), passed to the worker.
fn page_options() -> WorkerOptions {
    let query = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    WorkerOptions::from_query(&query)
}

impl Analyser {
    pub fn new(dispatch: UseReducerDispatcher<AppState>) -> AnalyserRef {
        let this = Rc::new(RefCell::new(Analyser {
            worker: None,
            options: page_options(),
            started: false,
            queue: Vec::new(),
            job: 0,
            next_job: 1,
            sent_whole: false,
            volume: None,
            fell_back: false,
            analyse_at: 0.0,
            recycle: None,
            dispatch,
            _on_message: None,
            _on_error: None,
        }));
        spawn(&this);
        this
    }

    pub fn set_recycle(&mut self, recycle: Box<dyn Fn(Int16Array)>) {
        self.recycle = Some(recycle);
    }

    fn send(&mut self, message: &ToAnalysis, voxels: Option<&Int16Array>) {
        let Ok(envelope) = to_js(message, voxels) else {
            return;
        };
        match (&self.worker, self.started) {
            (Some(worker), true) => {
                let _ = worker.post_message_with_transfer(&envelope.0, &envelope.1);
            }
            (Some(_), false) => self.queue.push(envelope),
            (None, _) => {}
        }
    }
}

/// Starts a worker with `options` (replacing any old one) and wires its events.
fn spawn(this: &AnalyserRef) {
    let weak = Rc::downgrade(this);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
        let weak = weak.clone();
        move |event: MessageEvent| on_message(&weak, event.data())
    });
    let on_error = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
        event.prevent_default();
        on_crash(&weak, nodulens_app::protocol::worker_error_text(&event));
    });
    let mut a = this.borrow_mut();
    if let Some(old) = a.worker.take() {
        old.terminate();
    }
    a.started = false;
    a.queue.clear();
    match nodulens_app::web::start_worker(WORKER_URL, &a.options.to_query()) {
        Ok(worker) => {
            worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            a.worker = Some(worker);
            a._on_message = Some(on_message);
            a._on_error = Some(on_error);
        }
        Err(e) => {
            let (dispatch, job) = (a.dispatch.clone(), a.job);
            drop(a);
            dispatch.dispatch(Action::Analysis(AnalysisAction::Failed {
                job,
                message: format!("could not start the analysis worker: {e:?}"),
            }));
        }
    }
}

fn on_message(weak: &Weak<RefCell<Analyser>>, data: JsValue) {
    let Some(this) = weak.upgrade() else {
        return;
    };
    let message = match from_js::<FromAnalysis>(&data) {
        Ok(message) => message,
        Err(e) => {
            web_sys::console::error_1(&format!("analysis worker: {e}").into());
            return;
        }
    };
    let dispatch = this.borrow().dispatch.clone();
    let action = |a| dispatch.dispatch(Action::Analysis(a));
    match message {
        (FromAnalysis::Started, _) => {
            let mut a = this.borrow_mut();
            a.started = true;
            if let Some(worker) = a.worker.clone() {
                for (message, transfer) in std::mem::take(&mut a.queue) {
                    let _ = worker.post_message_with_transfer(&message, &transfer);
                }
            }
        }
        (FromAnalysis::Ready { backend, .. }, _) => {
            // Read by the browser benchmark: the models are loaded.
            if let Some(body) = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.body())
            {
                let _ = body.dataset().set("analysisBackend", backend.label());
            }
            action(AnalysisAction::Backend(backend));
        }
        (
            FromAnalysis::Progress {
                job,
                stage,
                done,
                total,
            },
            _,
        ) => action(AnalysisAction::Progress {
            job,
            stage,
            done,
            total,
        }),
        (FromAnalysis::Done { job, result }, _) => {
            let mut a = this.borrow_mut();
            if job == a.job {
                a.sent_whole = false;
                publish_timing(now_ms() - a.analyse_at);
                let stages: Vec<String> = result
                    .timings_ms
                    .iter()
                    .map(|(stage, ms)| format!("{stage} {ms:.0}"))
                    .collect();
                web_sys::console::info_1(
                    &format!(
                        "nodulens analysis timings (ms): {}, result over to the page {:.0}; \
                         {} of {} patches scored by helpers",
                        stages.join(", "),
                        js_sys::Date::now() - result.posted_at_ms,
                        result.helper_patches,
                        2 * result.scored
                    )
                    .into(),
                );
            }
            drop(a);
            action(AnalysisAction::Done {
                job,
                result: Rc::new(*result),
            });
        }
        (FromAnalysis::Failed { job, error }, _) => {
            let current = this.borrow().job;
            match (job, error) {
                (Some(job), AnalysisError::Gpu(why)) if job == current => {
                    fall_back(&this, format!("WebGPU failed ({why})"));
                }
                (Some(job), error) => action(AnalysisAction::Failed {
                    job,
                    message: error.to_string(),
                }),
                (None, error) => {
                    // The worker itself is unusable (wasm or models): say so for the job
                    // in hand, and let the next scan try a fresh one.
                    if let Some(worker) = this.borrow_mut().worker.take() {
                        worker.terminate();
                    }
                    action(AnalysisAction::Failed {
                        job: current,
                        message: error.to_string(),
                    });
                }
            }
        }
        (FromAnalysis::Recycle, Some(voxels)) => {
            if let Some(recycle) = &this.borrow().recycle {
                recycle(voxels);
            }
        }
        (FromAnalysis::Recycle, None) => {}
    }
}

fn on_crash(weak: &Weak<RefCell<Analyser>>, message: String) {
    let Some(this) = weak.upgrade() else {
        return;
    };
    let running = {
        let a = this.borrow();
        a.job != 0 && a.sent_whole
    };
    if running {
        fall_back(&this, format!("the analysis worker stopped ({message})"));
    } else {
        // Nothing lost; the next scan gets a fresh worker.
        if let Some(worker) = this.borrow_mut().worker.take() {
            worker.terminate();
        }
    }
}

/// Reruns the current job on a fresh CPU worker, once.
fn fall_back(this: &AnalyserRef, why: String) {
    let (job, volume, dispatch, again) = {
        let a = this.borrow();
        (a.job, a.volume.clone(), a.dispatch.clone(), a.fell_back)
    };
    if again || volume.is_none() {
        dispatch.dispatch(Action::Analysis(AnalysisAction::Failed {
            job,
            message: why,
        }));
        return;
    }
    {
        let mut a = this.borrow_mut();
        a.fell_back = true;
        a.options = WorkerOptions {
            force_cpu: true,
            fault: None,
        };
    }
    dispatch.dispatch(Action::Analysis(AnalysisAction::FellBack {
        job,
        why: why.clone(),
    }));
    let this = this.clone();
    // Not inside the dying worker's own event handler.
    wasm_bindgen_futures::spawn_local(async move {
        spawn(&this);
        if let Some(volume) = volume {
            send_volume(&this, job, &volume.volume);
        }
    });
}

/// Sends a whole volume the UI holds as `job` (a rerun): slice by slice, then `Analyse`.
fn send_volume(this: &AnalyserRef, job: u64, volume: &Volume) {
    let mut a = this.borrow_mut();
    a.send(&ToAnalysis::Begin { job }, None);
    a.send(
        &ToAnalysis::Reserve {
            job,
            voxels: volume.voxels().len(),
        },
        None,
    );
    let [nx, ny, _] = volume.dims();
    for slice in volume.voxels().chunks(nx * ny) {
        let voxels = Int16Array::new_with_length(slice.len() as u32);
        voxels.copy_from(slice);
        a.send(&ToAnalysis::Slices { job }, Some(&voxels));
    }
    a.send(
        &ToAnalysis::Analyse {
            job,
            finished: Box::new(Finished {
                header: volume.header().clone(),
                order: None,
            }),
            sent_at_ms: js_sys::Date::now(),
        },
        None,
    );
    a.sent_whole = true;
    a.analyse_at = now_ms();
}

/// A new scan is being decoded: returns its job id (the old job stops).
pub fn begin(this: &AnalyserRef) -> u64 {
    let needs_worker = this.borrow().worker.is_none();
    if needs_worker {
        this.borrow_mut().options = page_options();
        spawn(this);
    }
    let mut a = this.borrow_mut();
    if a.fell_back {
        // A new scan tries the page's backend again, on a fresh worker.
        a.fell_back = false;
        a.options = page_options();
        drop(a);
        spawn(this);
        a = this.borrow_mut();
    }
    if a.job != 0 {
        let old = a.job;
        a.send(&ToAnalysis::Cancel { job: old }, None);
    }
    let job = a.next_job;
    a.next_job += 1;
    a.job = job;
    a.sent_whole = false;
    a.volume = None;
    a.send(&ToAnalysis::Begin { job }, None);
    job
}

pub fn reserve(this: &AnalyserRef, voxels: usize) {
    let mut a = this.borrow_mut();
    let job = a.job;
    if job != 0 {
        a.send(&ToAnalysis::Reserve { job, voxels }, None);
    }
}

/// Hands decoded voxels on to the worker; `Err` gives them back when no job takes them.
pub fn relay(this: &AnalyserRef, voxels: Int16Array) -> Result<(), Int16Array> {
    let mut a = this.borrow_mut();
    let job = a.job;
    if job == 0 || a.worker.is_none() {
        return Err(voxels);
    }
    a.send(&ToAnalysis::Slices { job }, Some(&voxels));
    Ok(())
}

/// Why a volume is not analysed, if it is not.
fn not_analysable(volume: &Volume) -> Option<String> {
    if volume.units() != IntensityUnits::Hounsfield {
        return Some(
            "not analysed: these images hold grey levels, not Hounsfield units (a CT exported as \
             pictures); open the DICOM, NIfTI or MetaImage files instead"
                .into(),
        );
    }
    match volume.metadata().modality.as_deref() {
        Some(modality) if !modality.eq_ignore_ascii_case("CT") => Some(format!(
            "not analysed: the series is {modality}, not CT; the models were trained on chest CT"
        )),
        _ => None,
    }
}

/// The decode of the current job is whole: analyse it, or say why not.
pub fn analyse(this: &AnalyserRef, finished: Finished, volume: VolumeRef) {
    let dispatch = this.borrow().dispatch.clone();
    let mut a = this.borrow_mut();
    let job = a.job;
    if job == 0 {
        return;
    }
    if let Some(reason) = not_analysable(&volume.volume) {
        a.send(&ToAnalysis::Cancel { job }, None);
        drop(a);
        dispatch.dispatch(Action::Analysis(AnalysisAction::Skipped { job, reason }));
        return;
    }
    a.volume = Some(volume);
    a.send(
        &ToAnalysis::Analyse {
            job,
            finished: Box::new(finished),
            sent_at_ms: js_sys::Date::now(),
        },
        None,
    );
    a.sent_whole = true;
    a.analyse_at = now_ms();
}

/// Stops the current job (the decode failed or was cancelled, or the reader cancelled).
pub fn cancel(this: &AnalyserRef) -> u64 {
    let mut a = this.borrow_mut();
    let job = a.job;
    if job != 0 {
        a.send(&ToAnalysis::Cancel { job }, None);
    }
    a.sent_whole = false;
    job
}

/// Analyses the open scan again (after Cancel or an error), from the UI's copy.
pub fn rerun(this: &AnalyserRef, volume: VolumeRef) {
    let dispatch = this.borrow().dispatch.clone();
    let job = begin(this);
    dispatch.dispatch(Action::Analysis(AnalysisAction::Started { job }));
    if let Some(reason) = not_analysable(&volume.volume) {
        dispatch.dispatch(Action::Analysis(AnalysisAction::Skipped { job, reason }));
        return;
    }
    this.borrow_mut().volume = Some(volume.clone());
    send_volume(this, job, &volume.volume);
}

/// `data-analysis-ms` on `<body>`: volume whole → findings, read by the browser benchmark.
fn publish_timing(ms: f64) {
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        let _ = body.dataset().set("analysisMs", &format!("{ms:.1}"));
    }
}
