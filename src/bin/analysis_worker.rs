//! The analysis Web Worker (built by Trunk with `data-type="worker"` and the `inference`
//! feature). All the work is in `nodulens_app::analysis_worker`.

#[cfg(target_arch = "wasm32")]
fn main() {
    nodulens_app::web::run_static_constructors();
    nodulens_app::analysis_worker::run();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("analysis-worker runs in the browser only: build the app with `trunk build`");
}
