//! The analysis worker: receives the scan's slices as the decoder produces them (relayed by
//! the UI), then runs the detection pipeline on them, unchanged: lung mask, candidates,
//! segmentation and measurement, both models, findings. Runs in a dedicated Web Worker.
//!
//! The weights are fetched and checked (SHA-256 from `models/manifest.json`) once, and kept
//! with the device (WebGPU, else the CPU) for every later scan. A job stops between stages
//! and between scoring batches when the page cancels it or sends a newer scan: the worker
//! yields to its event loop there, so it reads the page's messages, and is never killed.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Int16Array;
use nodulens_detect::{
    MalignancyCombination, Site, all_findings, candidates, lung_mask, lungs_covered,
    malignancy::shipped_p_malignant, merge_duplicates, report_warnings, sites,
};
use nodulens_model::{Classifier, Manifest, ModelKind};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::analysis::{AnalysisResult, AnalysisStage, Backend};
use crate::analysis_protocol::{
    AnalysisError, Fault, FromAnalysis, ToAnalysis, WorkerOptions, from_js, to_js,
};
use crate::analysis_scoring::JobScoring;
use crate::helper_pool::HelperPool;
use crate::helper_protocol::{helper_count, is_helper};
use crate::inference::{ComputeBackend, best_device, cpu_device};
use crate::protocol::Incoming;
use crate::web::fetch_bytes;

/// Candidates segmented between two looks at the page's messages and the helpers' answers
/// (about 0.1 s in the browser).
const SEGMENT_CHUNK: usize = 32;
/// Patches per model call in the warm-up.
const WARM_UP_BATCH: usize = 64;

struct Models {
    nodule: Classifier,
    malignancy: Classifier,
    /// What `p_malignant` makes of the malignancy CNN's output and the measurement.
    combination: Option<MalignancyCombination>,
    operating_point: f32,
    backend: Backend,
    /// The report's `model` object and the models' short id (see [`AnalysisResult`]).
    describe: serde_json::Value,
    short_id: String,
    /// Scoring helpers (CPU only): `None` where none could start.
    helpers: Option<HelperPool>,
}

#[derive(Default)]
struct State {
    options: WorkerOptions,
    /// The job the page wants; any other job's messages are dropped and its work stops.
    current: Option<u64>,
    incoming: Option<(u64, Incoming)>,
    /// Set once: the loaded models, or why they could not be loaded.
    models: Option<Result<Rc<Models>, AnalysisError>>,
    /// The fault option fires once.
    fault_used: bool,
    /// The current job's slice messages: how many, ms spent on them, `Date.now()` of the first.
    receiving: (usize, f64, f64),
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(message: &FromAnalysis, voxels: Option<&Int16Array>) {
    match to_js(message, voxels) {
        Ok((value, transfer)) => {
            let _ = scope().post_message_with_transfer(&value, &transfer);
        }
        Err(e) => web_sys::console::error_1(&format!("analysis worker: {e}").into()),
    }
}

fn fail(job: Option<u64>, error: AnalysisError) {
    post(&FromAnalysis::Failed { job, error }, None);
}

fn progress(job: u64, stage: AnalysisStage, done: usize, total: usize) {
    post(
        &FromAnalysis::Progress {
            job,
            stage,
            done,
            total,
        },
        None,
    );
}

fn now_ms() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| p.dyn_into::<web_sys::Performance>().ok())
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// Lets the worker's event loop run (and deliver Cancel) before going on.
async fn yield_now() {
    gloo::timers::future::TimeoutFuture::new(0).await;
}

fn is_current(job: u64) -> bool {
    STATE.with(|s| s.borrow().current == Some(job))
}

pub fn run() {
    let query = crate::web::own_options();
    if is_helper(&query) {
        return crate::scoring_helper::run();
    }
    let options = WorkerOptions::from_query(&query);
    STATE.with(|s| s.borrow_mut().options = options);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        match from_js::<ToAnalysis>(&event.data()) {
            Ok((message, voxels)) => handle(message, voxels),
            Err(e) => web_sys::console::error_1(&format!("analysis worker: {e}").into()),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives as long as its handler.
    on_message.forget();
    post(&FromAnalysis::Started, None);
    wasm_bindgen_futures::spawn_local(async move {
        let loaded = load_models(options).await;
        match &loaded {
            Ok((models, why_not_webgpu)) => post(
                &FromAnalysis::Ready {
                    backend: models.backend,
                    why_not_webgpu: why_not_webgpu.clone(),
                },
                None,
            ),
            Err(e) => fail(None, e.clone()),
        }
        STATE.with(|s| s.borrow_mut().models = Some(loaded.map(|(m, _)| m)));
    });
}

/// Fetches the manifest and both weight files next to the worker, checks their SHA-256 and
/// loads them on WebGPU (else the CPU).
async fn load_models(
    options: WorkerOptions,
) -> Result<(Rc<Models>, Option<String>), AnalysisError> {
    let force_cpu = options.force_cpu;
    let crash_a_helper = options.fault == Some(Fault::HelperCrash);
    let models_error = AnalysisError::Models;
    let manifest_text = fetch_bytes("models/manifest.json")
        .await
        .map_err(models_error)?;
    let manifest_text = String::from_utf8(manifest_text)
        .map_err(|e| AnalysisError::Models(format!("manifest.json: {e}")))?;
    let manifest =
        Manifest::from_json(&manifest_text).map_err(|e| AnalysisError::Models(e.to_string()))?;
    let (device, backend, why_not_webgpu) = if force_cpu {
        (
            cpu_device(),
            ComputeBackend::Cpu,
            Some("the CPU was asked for".to_owned()),
        )
    } else {
        best_device().await
    };
    let entry = |kind: ModelKind| {
        manifest
            .model(kind)
            .ok_or_else(|| AnalysisError::Models(format!("no {} model", kind.name())))
    };
    let mut weights = Vec::new();
    for kind in ModelKind::ALL {
        let entry = entry(kind)?;
        let bytes = fetch_bytes(&format!("models/{}", entry.file))
            .await
            .map_err(AnalysisError::Models)?;
        entry
            .verify(&bytes)
            .map_err(|e| AnalysisError::Models(e.to_string()))?;
        weights.push(bytes);
    }
    let [nodule_bytes, malignancy_bytes]: [Vec<u8>; 2] = weights
        .try_into()
        .map_err(|_| AnalysisError::Models("expected two weight files".into()))?;
    // On the CPU, helpers load the same models on the other cores meanwhile.
    let helpers = (backend == ComputeBackend::Cpu)
        .then(|| {
            let count = helper_count(cores());
            (count > 0).then(|| {
                HelperPool::start(
                    count,
                    &manifest_text,
                    [&nodule_bytes, &malignancy_bytes],
                    crash_a_helper,
                )
            })
        })
        .flatten();
    let load = |kind: ModelKind, bytes: Vec<u8>| {
        Classifier::from_manifest(entry(kind)?, bytes, &device)
            .map_err(|e| AnalysisError::Models(format!("{}: {e}", kind.name())))
    };
    let operating_point = manifest.operating_point().unwrap_or(0.5);
    let combination =
        MalignancyCombination::shipped(entry(ModelKind::Malignancy)?.combination.as_ref())
            .map_err(|e| AnalysisError::Models(e.to_string()))?;
    let backend = match backend {
        ComputeBackend::WebGpu => Backend::WebGpu,
        ComputeBackend::Cpu => Backend::Cpu,
    };
    let mut models = Models {
        nodule: load(ModelKind::Nodule, nodule_bytes)?,
        malignancy: load(ModelKind::Malignancy, malignancy_bytes)?,
        combination,
        operating_point,
        backend,
        describe: manifest.describe(
            operating_point,
            match backend {
                Backend::WebGpu => "webgpu",
                Backend::Cpu => "cpu (fused pass)",
            },
        ),
        short_id: manifest.short_id(),
        helpers: None,
    };
    warm_up(&models).await;
    if let Some(pool) = helpers {
        let ready = pool.until_ready().await;
        web_sys::console::log_1(&format!("nodulens analysis: {ready} scoring helper(s)").into());
        models.helpers = (ready > 0).then_some(pool);
    }
    Ok((Rc::new(models), why_not_webgpu))
}

/// Logical cores, as the browser reports them (1 where it does not say).
fn cores() -> usize {
    js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|navigator| js_sys::Reflect::get(&navigator, &"hardwareConcurrency".into()))
        .ok()
        .and_then(|n| n.as_f64())
        .map_or(1, |n| n.max(1.0) as usize)
}

/// Runs the pipeline once on the synthetic chest (a twentieth of a CT's voxels) before the
/// worker says it is ready. V8 runs a wasm function's first call in its baseline compiler, and
/// a stage's loops stay there for the whole call; after this, a scan's stages run optimised
/// code (about twice as fast), and WebGPU has compiled its shaders.
async fn warm_up(models: &Models) {
    let volume = nodulens_detect::phantom::chest();
    // The slices' path too (each scan's slice messages go through it).
    let mut incoming = Incoming::new(nodulens_core::MAX_VOXELS);
    let [nx, ny, _] = volume.dims();
    incoming.expect(volume.voxels().len());
    for slice in volume.voxels().chunks(nx * ny) {
        let _ = incoming.append(slice.len(), |room| room.copy_from_slice(slice));
    }
    drop(incoming);
    let mask = lung_mask(&volume);
    let found = candidates(&volume, &mask);
    let measured = sites(&volume, &mask, &found);
    for classifier in [&models.nodule, &models.malignancy] {
        let config = &classifier.preprocess;
        let mut patches = Vec::new();
        for site in measured.iter().cycle().take(WARM_UP_BATCH) {
            site.cut_patch(&volume, config, &mut patches);
        }
        // A failure here shows on the first scan, where it is reported.
        let _ = classifier.predict_async(&patches).await;
    }
    let scored = measured.into_iter().map(|site| (site, 0.5, 0.5)).collect();
    let _ = merge_duplicates(all_findings(&volume, scored));
}

fn handle(message: ToAnalysis, voxels: Option<Int16Array>) {
    match message {
        ToAnalysis::Begin { job } => STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.receiving = (0, 0.0, 0.0);
            s.current = Some(job);
            s.incoming = Some((job, Incoming::new(nodulens_core::MAX_VOXELS)));
        }),
        ToAnalysis::Reserve { job, voxels } => STATE.with(|s| {
            if let Some((j, incoming)) = &mut s.borrow_mut().incoming
                && *j == job
            {
                incoming.expect(voxels);
            }
        }),
        ToAnalysis::Slices { job } => {
            let Some(voxels) = voxels else {
                fail(
                    Some(job),
                    AnalysisError::Input("a slice message without voxels".into()),
                );
                return;
            };
            let started = js_sys::Date::now();
            let copied = STATE.with(|s| {
                let mut s = s.borrow_mut();
                let (count, ms, first) = s.receiving;
                let first = if count == 0 { started } else { first };
                s.receiving = (count + 1, ms, first);
                match &mut s.incoming {
                    Some((j, incoming)) if *j == job => {
                        let copied =
                            incoming.append(voxels.length() as usize, |room| voxels.copy_to(room));
                        if copied.is_err() {
                            s.incoming = None;
                        }
                        copied
                    }
                    _ => Ok(()),
                }
            });
            post(&FromAnalysis::Recycle, Some(&voxels));
            STATE.with(|s| s.borrow_mut().receiving.1 += js_sys::Date::now() - started);
            if let Err(e) = copied {
                fail(Some(job), AnalysisError::Input(e));
            }
        }
        ToAnalysis::Analyse {
            job,
            finished,
            sent_at_ms,
        } => {
            let incoming = STATE.with(|s| {
                let mut s = s.borrow_mut();
                match s.incoming.take() {
                    Some((j, incoming)) if j == job => Some(incoming),
                    other => {
                        s.incoming = other;
                        None
                    }
                }
            });
            let Some(incoming) = incoming else {
                return;
            };
            let received = js_sys::Date::now();
            let queued = received - sent_at_ms;
            match incoming.finish(*finished) {
                Ok((volume, _)) => {
                    let assembled = js_sys::Date::now() - received;
                    let (count, ms, first) = STATE.with(|s| s.borrow().receiving);
                    let waited = vec![
                        ("first slice to Analyse".to_owned(), received - first),
                        (format!("{count} slice messages"), ms),
                        ("queued".to_owned(), queued),
                        ("assembling".to_owned(), assembled),
                    ];
                    wasm_bindgen_futures::spawn_local(analyse(job, volume, received, waited))
                }
                Err(e) => fail(Some(job), AnalysisError::Input(e)),
            }
        }
        ToAnalysis::Cancel { job } => STATE.with(|s| {
            let mut s = s.borrow_mut();
            if s.current == Some(job) {
                s.current = None;
                s.incoming = None;
            }
        }),
    }
}

/// The models, once loaded (a job that arrives first waits for them).
async fn models(job: u64) -> Option<Result<Rc<Models>, AnalysisError>> {
    let mut reported = false;
    loop {
        if let Some(models) = STATE.with(|s| s.borrow().models.clone()) {
            return Some(models);
        }
        if !is_current(job) {
            return None;
        }
        if !reported {
            progress(job, AnalysisStage::Models, 0, 1);
            reported = true;
        }
        gloo::timers::future::TimeoutFuture::new(20).await;
    }
}

/// The worker's own injected fault, if it is due (once per worker).
fn take_fault() -> Option<Fault> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.fault_used || s.options.fault == Some(Fault::HelperCrash) {
            return None;
        }
        s.fault_used = true;
        s.options.fault
    })
}

/// `received`: `Date.now()` when the `Analyse` message arrived; `waited`: ms before that
/// (in the message queue, putting the slices in place).
async fn analyse(
    job: u64,
    volume: nodulens_core::Volume,
    received: f64,
    waited: Vec<(String, f64)>,
) {
    let models = match models(job).await {
        None => return,
        Some(Ok(models)) => models,
        Some(Err(e)) => return fail(Some(job), e),
    };
    let mut timings = waited;
    timings.push(("start".to_owned(), js_sys::Date::now() - received));
    let mut clock = now_ms();
    let mut lap = |name: &str, timings: &mut Vec<(String, f64)>| {
        let now = now_ms();
        timings.push((name.to_owned(), now - clock));
        clock = now;
    };
    macro_rules! checkpoint {
        ($stage:expr) => {
            progress(job, $stage, 0, 1);
            yield_now().await;
            if !is_current(job) {
                return;
            }
        };
    }
    checkpoint!(AnalysisStage::Lungs);
    let mask = lung_mask(&volume);
    lap("lungs", &mut timings);
    checkpoint!(AnalysisStage::Candidates);
    let found = candidates(&volume, &mask);
    lap("candidates", &mut timings);
    checkpoint!(AnalysisStage::Measuring);
    match take_fault() {
        Some(Fault::GpuLost) => {
            return fail(
                Some(job),
                AnalysisError::Gpu("the GPU device was lost (injected by ?fault=gpu-lost)".into()),
            );
        }
        Some(Fault::Crash) => panic!("analysis worker crash injected by ?fault=crash"),
        // The helpers' fault (`take_fault` never gives it).
        Some(Fault::HelperCrash) | None => {}
    }
    // Segment chunk by chunk; each chunk's patches go to the helpers at once, so they score
    // while this worker segments.
    let mut scoring = JobScoring::new(
        [&models.nodule, &models.malignancy],
        models.backend,
        &volume,
        models.helpers.as_ref(),
    );
    let mut measured: Vec<Site> = Vec::new();
    let mut segmented = 0;
    for chunk in found.chunks(SEGMENT_CHUNK) {
        let first = measured.len();
        measured.extend(sites(&volume, &mask, chunk));
        scoring.push(first..measured.len());
        if let Err(e) = scoring.collect() {
            return fail(Some(job), e);
        }
        scoring.lend(&measured);
        segmented += chunk.len();
        progress(job, AnalysisStage::Measuring, segmented, found.len());
        yield_now().await;
        if !is_current(job) {
            return;
        }
    }
    lap("segmentation", &mut timings);
    let total = 2 * measured.len();
    loop {
        if let Err(e) = scoring.collect() {
            return fail(Some(job), e);
        }
        scoring.lend(&measured);
        progress(job, AnalysisStage::Scoring, scoring.done(), total);
        match scoring.score_one_here(&measured).await {
            Ok(true) => yield_now().await,
            Ok(false) => {
                if !scoring.wait_for_helpers().await {
                    break;
                }
            }
            Err(e) => return fail(Some(job), e),
        }
        if !is_current(job) {
            return;
        }
    }
    let helper_patches = scoring.helper_patches();
    let probabilities = match scoring.finish(measured.len()) {
        Ok(p) => p,
        Err(e) => return fail(Some(job), e),
    };
    lap("scoring", &mut timings);
    let [p_nodule, p_malignant] = [&probabilities[0], &probabilities[1]];
    let scored: Vec<(Site, f32, f32)> = measured
        .into_iter()
        .enumerate()
        .map(|(i, site)| {
            let p = shipped_p_malignant(
                models.combination.as_ref(),
                p_malignant[i],
                &site.measurement,
            );
            (site, p_nodule[i], p)
        })
        .collect();
    let scored_count = scored.len();
    let findings = merge_duplicates(all_findings(&volume, scored));
    let warnings = report_warnings(&volume, &mask);
    lap("findings", &mut timings);
    let result = AnalysisResult {
        findings,
        operating_point: models.operating_point,
        candidates: found.len(),
        scored: scored_count,
        lung_volume_ml: mask.volume_ml(),
        lungs_covered: lungs_covered(&warnings, &mask),
        warnings,
        backend: models.backend,
        helper_patches,
        timings_ms: timings,
        posted_at_ms: js_sys::Date::now(),
        model: models.describe.clone(),
        models_id: models.short_id.clone(),
    };
    if is_current(job) {
        post(
            &FromAnalysis::Done {
                job,
                result: Box::new(result),
            },
            None,
        );
    }
}
