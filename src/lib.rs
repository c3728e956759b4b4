//! Code shared by the viewer UI (`src/main.rs`), the decode worker
//! (`src/bin/decode_worker.rs`) and the analysis worker (`src/bin/analysis_worker.rs`).
//!
//! The pure parts (display geometry, the header that crosses the worker boundary,
//! progress throttling) build everywhere so native `cargo test` covers them; the parts
//! that touch the browser are compiled for wasm32 only.

pub mod analysis;
pub mod analysis_protocol;
pub mod display;
pub mod helper_protocol;
pub mod protocol;
pub mod reports;
pub mod state;

#[cfg(all(target_arch = "wasm32", feature = "inference"))]
mod analysis_scoring;
#[cfg(all(target_arch = "wasm32", feature = "inference"))]
pub mod analysis_worker;
#[cfg(all(target_arch = "wasm32", feature = "inference"))]
mod helper_pool;
#[cfg(all(target_arch = "wasm32", feature = "inference"))]
pub mod inference;
#[cfg(all(target_arch = "wasm32", feature = "inference"))]
mod scoring_helper;
#[cfg(target_arch = "wasm32")]
pub mod web;
#[cfg(target_arch = "wasm32")]
pub mod worker;
