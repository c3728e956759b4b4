//! Messages between the UI and the analysis worker.
//!
//! One envelope, `{ data, voxels? }`: `data` is serde data ([`ToAnalysis`], [`FromAnalysis`])
//! as a JSON string, `voxels` an optional `Int16Array` whose buffer is *transferred*, not
//! copied. Every job
//! message carries its job id, so the worker drops what belongs to a scan the page has left,
//! and the page drops what a stale job says.
//!
//! The volume reaches the worker as it reaches the UI: the UI relays each decoded slice
//! message (`Begin`, `Reserve`, `Slices`…, `Analyse`), so the worker builds its own copy
//! while the decode runs, without the UI ever holding a second one; the worker hands each
//! buffer back (`Recycle`) for the decoder to reuse.

use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisResult, AnalysisStage, Backend};
use crate::protocol::Finished;

/// UI → analysis worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToAnalysis {
    /// A new scan, `job`: its slices follow; any older job stops.
    Begin { job: u64 },
    /// About this many voxels will follow.
    Reserve { job: u64, voxels: usize },
    /// The next decoded voxels (the envelope's `voxels`).
    Slices { job: u64 },
    /// Every slice has been sent: put them in place and analyse.
    Analyse {
        job: u64,
        finished: Box<Finished>,
        /// `Date.now()` when the page sent it (the worker reports the time it waited).
        sent_at_ms: f64,
    },
    /// Stop the job (between batches) and forget its volume.
    Cancel { job: u64 },
}

/// Analysis worker → UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FromAnalysis {
    /// The worker listens: messages posted before this would be lost.
    Started,
    /// Weights loaded and checked, on this backend (kept for every later scan).
    Ready {
        backend: Backend,
        /// Why WebGPU is not used, when it is not.
        why_not_webgpu: Option<String>,
    },
    Progress {
        job: u64,
        stage: AnalysisStage,
        done: usize,
        total: usize,
    },
    Done {
        job: u64,
        result: Box<AnalysisResult>,
    },
    /// `job` is `None` when the worker itself could not start.
    Failed {
        job: Option<u64>,
        error: AnalysisError,
    },
    /// A `Slices` buffer copied, handed back in the envelope's `voxels`.
    Recycle,
}

/// Why an analysis did not finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum AnalysisError {
    /// The worker's wasm could not start.
    #[error("the analysis worker could not start: {0}")]
    Startup(String),
    /// The weights could not be fetched, or are not the ones the manifest names.
    #[error("the models could not be loaded: {0}")]
    Models(String),
    /// The GPU failed (device lost, out of memory): the page reruns the job on the CPU.
    #[error("WebGPU failed: {0}")]
    Gpu(String),
    /// The slices the worker received do not make a volume.
    #[error("the scan could not be analysed: {0}")]
    Input(String),
    #[error("the analysis failed: {0}")]
    Internal(String),
}

/// A fault the page can inject (`?fault=…`) to test its recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The first job fails as if the GPU device were lost, as its measuring starts.
    GpuLost,
    /// The worker panics as its first job's measuring starts (a crash, not an error message).
    Crash,
    /// The first scoring helper panics on its first batch (the worker scores the helper's
    /// batches itself).
    HelperCrash,
}

/// How an analysis worker is started: read from the query string it is named with, which the
/// page sets from its own (`?backend=cpu`, `?fault=gpu-lost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerOptions {
    pub force_cpu: bool,
    pub fault: Option<Fault>,
}

impl WorkerOptions {
    /// From `?backend=cpu&fault=gpu-lost` (unknown keys and values are ignored).
    pub fn from_query(query: &str) -> Self {
        let mut options = WorkerOptions::default();
        for pair in query.trim_start_matches('?').split('&') {
            match pair.split_once('=') {
                Some(("backend", "cpu")) => options.force_cpu = true,
                Some(("fault", "gpu-lost")) => options.fault = Some(Fault::GpuLost),
                Some(("fault", "crash")) => options.fault = Some(Fault::Crash),
                Some(("fault", "helper-crash")) => options.fault = Some(Fault::HelperCrash),
                _ => {}
            }
        }
        options
    }

    /// The query string that gives these options back (empty for the defaults).
    pub fn to_query(self) -> String {
        let mut parts = Vec::new();
        if self.force_cpu {
            parts.push("backend=cpu");
        }
        match self.fault {
            Some(Fault::GpuLost) => parts.push("fault=gpu-lost"),
            Some(Fault::Crash) => parts.push("fault=crash"),
            Some(Fault::HelperCrash) => parts.push("fault=helper-crash"),
            None => {}
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use wire::{from_js, open, seal, to_js, transfer_with};

#[cfg(target_arch = "wasm32")]
mod wire {
    use js_sys::{Array, Int16Array, Object, Reflect};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use wasm_bindgen::{JsCast, JsValue};

    /// An envelope holding `data` and its (empty) transfer list. The data travel as one JSON
    /// string: building a JS object field by field (`serde_wasm_bindgen`) took seconds for a
    /// result of 300 findings in a worker.
    pub fn seal<T: Serialize>(data: &T) -> Result<(Object, Array), String> {
        let obj = Object::new();
        let data =
            JsValue::from_str(&serde_json::to_string(data).map_err(|e| format!("encode: {e}"))?);
        Reflect::set(&obj, &"data".into(), &data).map_err(|e| format!("{e:?}"))?;
        Ok((obj, Array::new()))
    }

    /// Puts `value` in the envelope under `key`, its `buffer` in the transfer list.
    pub fn transfer_with(
        (obj, transfer): &(Object, Array),
        key: &str,
        value: &JsValue,
        buffer: &JsValue,
    ) -> Result<(), String> {
        Reflect::set(obj, &key.into(), value).map_err(|e| format!("{e:?}"))?;
        transfer.push(buffer);
        Ok(())
    }

    /// An envelope's data, and its field `key` if it is an `A`.
    pub fn open<T: DeserializeOwned, A: JsCast>(
        value: &JsValue,
        key: &str,
    ) -> Result<(T, Option<A>), String> {
        let data = Reflect::get(value, &"data".into())
            .ok()
            .and_then(|d| d.as_string())
            .ok_or("malformed message: no data")?;
        let data = serde_json::from_str(&data).map_err(|e| format!("malformed: {e}"))?;
        let field = Reflect::get(value, &key.into())
            .ok()
            .and_then(|v| v.dyn_into::<A>().ok());
        Ok((data, field))
    }

    /// The envelope of `data` (and `voxels`, transferred) and its transfer list.
    pub fn to_js<T: Serialize>(
        data: &T,
        voxels: Option<&Int16Array>,
    ) -> Result<(JsValue, Array), String> {
        let envelope = seal(data)?;
        if let Some(voxels) = voxels {
            transfer_with(&envelope, "voxels", voxels, &voxels.buffer())?;
        }
        Ok((envelope.0.into(), envelope.1))
    }

    /// An envelope's data and voxels.
    pub fn from_js<T: DeserializeOwned>(
        value: &JsValue,
    ) -> Result<(T, Option<Int16Array>), String> {
        open(value, "voxels")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_through_the_query() {
        for options in [
            WorkerOptions::default(),
            WorkerOptions {
                force_cpu: true,
                fault: None,
            },
            WorkerOptions {
                force_cpu: false,
                fault: Some(Fault::GpuLost),
            },
            WorkerOptions {
                force_cpu: true,
                fault: Some(Fault::Crash),
            },
            WorkerOptions {
                force_cpu: true,
                fault: Some(Fault::HelperCrash),
            },
        ] {
            assert_eq!(WorkerOptions::from_query(&options.to_query()), options);
        }
        let page = WorkerOptions::from_query("?x=1&fault=gpu-lost&backend=gpu");
        assert_eq!(page.fault, Some(Fault::GpuLost));
        assert!(!page.force_cpu);
    }

    #[test]
    fn messages_are_tagged_serde_data() {
        let message = FromAnalysis::Failed {
            job: Some(3),
            error: AnalysisError::Gpu("device lost".into()),
        };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["kind"], "failed");
        assert_eq!(json["error"]["kind"], "gpu");
        assert_eq!(json["error"]["message"], "device lost");
        assert_eq!(
            serde_json::from_value::<FromAnalysis>(json).unwrap(),
            message
        );
        // What static/analysis-worker_loader.js posts (as the envelope's JSON string) when the
        // wasm cannot start.
        let startup: FromAnalysis = serde_json::from_str(
            r#"{"kind":"failed","job":null,"error":{"kind":"startup","message":"404"}}"#,
        )
        .unwrap();
        assert!(matches!(
            startup,
            FromAnalysis::Failed {
                job: None,
                error: AnalysisError::Startup(_)
            }
        ));
        let begin = serde_json::to_value(ToAnalysis::Reserve { job: 1, voxels: 8 }).unwrap();
        assert_eq!(begin["kind"], "reserve");
    }
}
