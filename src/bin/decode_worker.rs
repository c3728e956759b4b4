//! The decode Web Worker (built by Trunk with `data-type="worker"`). All the work is in
//! `nodulens_app::worker` so the protocol stays next to its other half.

#[cfg(target_arch = "wasm32")]
fn main() {
    nodulens_app::web::run_static_constructors();
    nodulens_app::worker::run();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("decode-worker runs in the browser only: build the app with `trunk build`");
}
