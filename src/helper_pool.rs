//! The analysis worker's side of its scoring helpers (see [`crate::helper_protocol`]):
//! starts them from the module it runs, sends them batches and collects their answers.
//! A helper that fails to start, errors or dies is dropped; the analysis worker scores its
//! batches itself.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Array, Float32Array, Reflect, Uint8Array};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Event, MessageEvent, Worker};

use crate::analysis_protocol::{open, seal, transfer_with};
use crate::helper_protocol::{FromHelper, HELPER_QUERY, HelperModel, ToHelper};
use crate::protocol::worker_error_text;

/// The analysis worker's loader, next to the analysis worker's own script.
const HELPER_URL: &str = "analysis-worker_loader.js";

/// How long helpers may take to load their models before the analysis goes on without them.
const START_TIMEOUT_MS: f64 = 20_000.0;

/// The envelope `{ data, patches?, weights? }` ([`crate::analysis_protocol`]'s, other
/// fields) and its transfer list.
pub fn envelope<T: Serialize>(
    data: &T,
    patches: Option<&[f32]>,
    weights: &[&[u8]],
) -> Result<(JsValue, Array), String> {
    let envelope = seal(data)?;
    if let Some(patches) = patches {
        let array = Float32Array::from(patches);
        transfer_with(&envelope, "patches", &array, &array.buffer())?;
    }
    if !weights.is_empty() {
        let list = Array::new();
        for bytes in weights {
            let array = Uint8Array::from(*bytes);
            envelope.1.push(&array.buffer());
            list.push(&array);
        }
        Reflect::set(&envelope.0, &"weights".into(), &list).map_err(|e| format!("{e:?}"))?;
    }
    Ok((envelope.0.into(), envelope.1))
}

/// An envelope's data, patches and weights.
#[allow(clippy::type_complexity)]
pub fn open_envelope<T: DeserializeOwned>(
    value: &JsValue,
) -> Result<(T, Option<Float32Array>, Vec<Uint8Array>), String> {
    let (data, patches) = open(value, "patches")?;
    let weights = Reflect::get(value, &"weights".into())
        .ok()
        .and_then(|v| v.dyn_into::<Array>().ok())
        .map(|list| {
            list.iter()
                .filter_map(|w| w.dyn_into::<Uint8Array>().ok())
                .collect()
        })
        .unwrap_or_default();
    Ok((data, patches, weights))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Starting,
    Ready,
    Gone,
}

struct Helper {
    worker: Worker,
    health: Health,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
}

#[derive(Default)]
struct Shared {
    helpers: Vec<Helper>,
    /// Answers not yet collected: (helper, message). A helper's death arrives as a
    /// `Failed` without a request.
    inbox: VecDeque<(usize, FromHelper)>,
    /// Resolves the promise [`HelperPool::wait`] is waiting on.
    waker: Option<js_sys::Function>,
}

impl Shared {
    fn deliver(&mut self, helper: usize, message: FromHelper) {
        match &message {
            FromHelper::Ready => {
                if let Some(h) = self.helpers.get_mut(helper)
                    && h.health == Health::Starting
                {
                    h.health = Health::Ready;
                }
            }
            FromHelper::Failed {
                request: None,
                message: why,
            } => {
                web_sys::console::warn_1(&format!("scoring helper {helper} stopped: {why}").into());
                if let Some(h) = self.helpers.get_mut(helper) {
                    h.health = Health::Gone;
                    h.worker.terminate();
                }
                self.inbox.push_back((helper, message));
            }
            _ => self.inbox.push_back((helper, message)),
        }
        if let Some(wake) = self.waker.take() {
            let _ = wake.call0(&JsValue::NULL);
        }
    }
}

/// The helpers of one analysis worker.
#[derive(Clone, Default)]
pub struct HelperPool {
    shared: Rc<RefCell<Shared>>,
}

impl HelperPool {
    /// Starts `count` helpers from this worker's module, each with the manifest's text and
    /// both weight files (nodule first). They load while the caller goes on; see
    /// [`HelperPool::until_ready`]. `crash_first`: the first helper panics on its first
    /// batch (`?fault=helper-crash`).
    pub fn start(
        count: usize,
        manifest: &str,
        weights: [&[u8]; 2],
        crash_first: bool,
    ) -> HelperPool {
        let pool = HelperPool::default();
        let module = wasm_bindgen::module();
        for index in 0..count {
            let crash = crash_first && index == 0;
            match pool.spawn(index, &module, manifest, weights, crash) {
                Ok(helper) => pool.shared.borrow_mut().helpers.push(helper),
                Err(e) => {
                    web_sys::console::warn_1(
                        &format!("scoring helper {index} could not start: {e}").into(),
                    );
                    break;
                }
            }
        }
        pool
    }

    fn spawn(
        &self,
        index: usize,
        module: &JsValue,
        manifest: &str,
        weights: [&[u8]; 2],
        crash: bool,
    ) -> Result<Helper, String> {
        let fault = if crash { "&fault=helper-crash" } else { "" };
        let worker = crate::web::start_worker(HELPER_URL, &format!("?{HELPER_QUERY}{fault}"))
            .map_err(|e| crate::web::js_error_text(&e))?;
        let shared = Rc::downgrade(&self.shared);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
            let shared = shared.clone();
            move |event: MessageEvent| {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let message = match open_envelope::<FromHelper>(&event.data()) {
                    Ok((message, _, _)) => message,
                    Err(e) => FromHelper::Failed {
                        request: None,
                        message: e,
                    },
                };
                shared.borrow_mut().deliver(index, message);
            }
        });
        let on_error = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
            event.prevent_default();
            if let Some(shared) = shared.upgrade() {
                shared.borrow_mut().deliver(
                    index,
                    FromHelper::Failed {
                        request: None,
                        message: worker_error_text(&event),
                    },
                );
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let (start, transfer) = envelope(
            &ToHelper::Load {
                manifest: manifest.to_owned(),
            },
            None,
            &weights,
        )?;
        let posted = if module.is_instance_of::<js_sys::WebAssembly::Module>() {
            Reflect::set(&start, &"module".into(), module)
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        } else {
            Ok(())
        }
        .and_then(|()| {
            worker
                .post_message_with_transfer(&start, &transfer)
                .map_err(|e| crate::web::js_error_text(&e))
        });
        if let Err(e) = posted {
            worker.terminate();
            return Err(e);
        }
        Ok(Helper {
            worker,
            health: Health::Starting,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// Waits until every helper is ready or gone (or the start timeout has passed; the late
    /// ones are dropped). Returns how many are ready.
    pub async fn until_ready(&self) -> usize {
        let started = js_sys::Date::now();
        loop {
            let starting = self.count(Health::Starting);
            if starting == 0 {
                break;
            }
            let left = START_TIMEOUT_MS - (js_sys::Date::now() - started);
            if left <= 0.0 {
                let mut shared = self.shared.borrow_mut();
                for (index, helper) in shared.helpers.iter_mut().enumerate() {
                    if helper.health == Health::Starting {
                        web_sys::console::warn_1(
                            &format!("scoring helper {index} did not start in time").into(),
                        );
                        helper.health = Health::Gone;
                        helper.worker.terminate();
                    }
                }
                break;
            }
            self.wait(left.min(100.0)).await;
        }
        // Startup failures are not answers to collect.
        self.shared.borrow_mut().inbox.clear();
        self.count(Health::Ready)
    }

    fn count(&self, health: Health) -> usize {
        self.shared
            .borrow()
            .helpers
            .iter()
            .filter(|h| h.health == health)
            .count()
    }

    /// The helpers that take requests.
    pub fn ready(&self) -> Vec<usize> {
        self.shared
            .borrow()
            .helpers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.health == Health::Ready)
            .map(|(i, _)| i)
            .collect()
    }

    /// Sends `patches` to `helper` to be scored by `model`; on failure the helper is dropped
    /// (its loans come back through [`HelperPool::collect`]).
    pub fn send(&self, helper: usize, request: u64, model: HelperModel, patches: &[f32]) {
        let sent = envelope(&ToHelper::Score { request, model }, Some(patches), &[]).and_then(
            |(message, transfer)| {
                let shared = self.shared.borrow();
                let worker = &shared.helpers.get(helper).ok_or("no such helper")?.worker;
                worker
                    .post_message_with_transfer(&message, &transfer)
                    .map_err(|e| crate::web::js_error_text(&e))
            },
        );
        if let Err(message) = sent {
            self.shared.borrow_mut().deliver(
                helper,
                FromHelper::Failed {
                    request: None,
                    message,
                },
            );
        }
    }

    /// Stops `helper` for good (it fell silent): it takes no more requests.
    pub fn give_up(&self, helper: usize) {
        if let Some(h) = self.shared.borrow_mut().helpers.get_mut(helper) {
            h.health = Health::Gone;
            h.worker.terminate();
        }
    }

    /// The answers that arrived since the last call.
    pub fn collect(&self) -> Vec<(usize, FromHelper)> {
        self.shared.borrow_mut().inbox.drain(..).collect()
    }

    /// Until a helper answers, or `timeout_ms` has passed.
    pub async fn wait(&self, timeout_ms: f64) {
        if !self.shared.borrow().inbox.is_empty() {
            return;
        }
        let shared = self.shared.clone();
        let promise = js_sys::Promise::new(&mut |resolve: js_sys::Function, _| {
            let _ = js_sys::global()
                .unchecked_into::<web_sys::WorkerGlobalScope>()
                .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, timeout_ms as i32);
            shared.borrow_mut().waker = Some(resolve);
        });
        let _ = JsFuture::from(promise).await;
    }
}
