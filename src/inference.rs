//! The one file that touches burn devices: WebGPU when the browser offers an adapter, the CPU
//! (burn's pure-Rust flex backend) otherwise.
//!
//! A page (or worker) may initialise WebGPU only once, so the device is kept for its lifetime;
//! a failed attempt is remembered too, and the CPU is used from then on.

use std::cell::RefCell;

use nodulens_model::Device;

/// Where the models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeBackend {
    WebGpu,
    Cpu,
}

impl ComputeBackend {
    pub fn label(self) -> &'static str {
        match self {
            ComputeBackend::WebGpu => "WebGPU",
            ComputeBackend::Cpu => "CPU",
        }
    }
}

thread_local! {
    /// The outcome of this context's one WebGPU initialisation.
    static WEBGPU: RefCell<Option<Result<Device, String>>> = const { RefCell::new(None) };
}

/// The WebGPU device, initialised on first use; `Err` says why there is none (no
/// `navigator.gpu`, no adapter, device request refused).
pub async fn webgpu_device() -> Result<Device, String> {
    crate::web::run_static_constructors();
    if let Some(known) = WEBGPU.with(|cell| cell.borrow().clone()) {
        return known;
    }
    let outcome = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| e.to_string());
    // Two callers racing here would both try to initialise; the second attempt fails with
    // "already initialised", so keep a success that is already recorded.
    WEBGPU.with(|cell| {
        let mut slot = cell.borrow_mut();
        match &*slot {
            Some(Ok(device)) => Ok(device.clone()),
            _ => {
                *slot = Some(outcome.clone());
                outcome
            }
        }
    })
}

/// The CPU device (always available).
pub fn cpu_device() -> Device {
    crate::web::run_static_constructors();
    Device::flex()
}

/// WebGPU if available, else the CPU; with the reason WebGPU was not used.
pub async fn best_device() -> (Device, ComputeBackend, Option<String>) {
    match webgpu_device().await {
        Ok(device) => (device, ComputeBackend::WebGpu, None),
        Err(why) => (cpu_device(), ComputeBackend::Cpu, Some(why)),
    }
}
