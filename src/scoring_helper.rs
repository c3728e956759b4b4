//! A scoring helper: a copy of the analysis worker's script started by the analysis worker
//! (`?role=helper`) that only runs the models on the CPU (see [`crate::helper_protocol`]).
//!
//! Its first message, which the loader (`static/analysis-worker_loader.js`) keeps in
//! `self.NODULENS_START` while it instantiates the module that message brings, holds the
//! manifest and both weight files; every later one is a `Score` request.

use std::cell::RefCell;

use nodulens_model::{Classifier, Manifest, ModelKind};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::analysis_protocol::{Fault, WorkerOptions};
use crate::helper_pool::{envelope, open_envelope};
use crate::helper_protocol::{FromHelper, HelperModel, ToHelper};
use crate::inference::cpu_device;

thread_local! {
    /// Nodule and malignancy classifiers, once loaded.
    static MODELS: RefCell<Option<[Classifier; 2]>> = const { RefCell::new(None) };
    /// `?fault=helper-crash`: panic on the first batch (read once, from the worker's name).
    static CRASH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(message: &FromHelper) {
    match envelope(message, None, &[]) {
        Ok((value, transfer)) => {
            let _ = scope().post_message_with_transfer(&value, &transfer);
        }
        Err(e) => web_sys::console::error_1(&format!("scoring helper: {e}").into()),
    }
}

pub fn run() {
    let crash =
        WorkerOptions::from_query(&crate::web::own_options()).fault == Some(Fault::HelperCrash);
    CRASH.with(|c| c.set(crash));
    let start = js_sys::Reflect::get(&js_sys::global(), &"NODULENS_START".into())
        .unwrap_or(JsValue::UNDEFINED);
    let loaded = load(&start).and_then(|models| warm_up(&models).map(|()| models));
    // The weights now live in the models: the start message's copy can go.
    let _ = js_sys::Reflect::delete_property(&js_sys::global(), &"NODULENS_START".into());
    match loaded {
        Ok(models) => {
            MODELS.with(|m| *m.borrow_mut() = Some(models));
        }
        Err(message) => {
            return post(&FromHelper::Failed {
                request: None,
                message,
            });
        }
    }
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        match open_envelope::<ToHelper>(&event.data()) {
            Ok((ToHelper::Score { request, model }, Some(patches), _)) => {
                score(request, model, patches.to_vec())
            }
            Ok((ToHelper::Score { request, .. }, None, _)) => post(&FromHelper::Failed {
                request: Some(request),
                message: "a Score request without patches".into(),
            }),
            Ok((ToHelper::Load { .. }, ..)) => post(&FromHelper::Failed {
                request: None,
                message: "the models were loaded already".into(),
            }),
            Err(e) => web_sys::console::error_1(&format!("scoring helper: {e}").into()),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The helper lives as long as its handler.
    on_message.forget();
    post(&FromHelper::Ready);
}

/// Both classifiers from the start message (the analysis worker checked the weights against
/// the manifest already).
fn load(start: &JsValue) -> Result<[Classifier; 2], String> {
    let (message, _, weights) = open_envelope::<ToHelper>(start)?;
    let ToHelper::Load { manifest } = message else {
        return Err("the first message did not bring the models".into());
    };
    let manifest = Manifest::from_json(&manifest).map_err(|e| e.to_string())?;
    let device = cpu_device();
    let mut loaded = Vec::new();
    for (kind, bytes) in ModelKind::ALL.into_iter().zip(weights) {
        let entry = manifest
            .model(kind)
            .ok_or_else(|| format!("no {} model in the manifest", kind.name()))?;
        loaded.push(
            Classifier::from_manifest(entry, bytes.to_vec(), &device)
                .map_err(|e| format!("{}: {e}", kind.name()))?,
        );
    }
    loaded
        .try_into()
        .map_err(|_| "the start message did not bring both weight files".into())
}

/// A few small batches, so that the first request runs V8's optimised code (a function's
/// first, long call stays in the baseline compiler; see the analysis worker's warm-up). A
/// helper whose models cannot score says so instead of saying it is ready.
fn warm_up(models: &[Classifier; 2]) -> Result<(), String> {
    for classifier in models {
        let patches = vec![0.0f32; 4 * classifier.preprocess.patch_len()];
        for _ in 0..3 {
            run_now(classifier, &patches)?;
        }
    }
    Ok(())
}

/// The fused CPU pass answers at once: its future is ready on the first poll.
fn run_now(classifier: &Classifier, patches: &[f32]) -> Result<Vec<f32>, String> {
    let mut future = std::pin::pin!(classifier.predict_async(patches));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(result) => result.map_err(|e| e.to_string()),
        std::task::Poll::Pending => Err("the model did not answer at once".into()),
    }
}

fn score(request: u64, model: HelperModel, patches: Vec<f32>) {
    if CRASH.with(|c| c.get()) {
        panic!("scoring helper crash injected by ?fault=helper-crash");
    }
    let answer = MODELS.with(|m| match &*m.borrow() {
        Some(models) => run_now(&models[model.index()], &patches),
        None => Err("no models".into()),
    });
    post(&match answer {
        Ok(probabilities) => FromHelper::Scored {
            request,
            probabilities,
        },
        Err(message) => FromHelper::Failed {
            request: Some(request),
            message,
        },
    });
}
