//! What a clinic keeps of an analysis: downloads (JSON, CSV, DICOM SR for DICOM input), the
//! printable report (`PrintReport`, shown only by the print stylesheet) and the model card.
//! Everything is built in the page from what is shown; nothing is sent anywhere.

use std::rc::Rc;

use nodulens_app::reports::{self, P_MALIGNANT_MEANING};
use nodulens_app::web;
use nodulens_core::view::{self, Plane, Window};
use nodulens_detect::{Finding, Report};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, BlobPropertyBag, HtmlAnchorElement, Url};
use yew::prelude::*;

use super::canvas;
use crate::state::{AppState, VolumeRef};

/// Key images in the printed report: the first findings only (a report stays printable).
const MAX_KEY_IMAGES: usize = 12;

/// Offers `bytes` as a file download named `name`.
fn download(name: &str, mime: &str, bytes: &[u8]) -> Result<(), JsValue> {
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let options = BlobPropertyBag::new();
    options.set_type(mime);
    let blob = Blob::new_with_u8_array_sequence_and_options(&parts, &options)?;
    let url = Url::create_object_url_with_blob(&blob)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let anchor: HtmlAnchorElement = document.create_element("a")?.dyn_into()?;
    anchor.set_href(&url);
    anchor.set_download(name);
    anchor.click();
    // The click has started the download; the URL is not needed after this turn.
    gloo::timers::callback::Timeout::new(1_000, move || {
        let _ = Url::revoke_object_url(&url);
    })
    .forget();
    Ok(())
}

/// Today's local date and time as DICOM writes them (`YYYYMMDD`, `HHMMSS`).
fn dicom_now() -> (String, String) {
    let d = js_sys::Date::new_0();
    (
        format!(
            "{:04}{:02}{:02}",
            d.get_full_year(),
            d.get_month() + 1,
            d.get_date()
        ),
        format!(
            "{:02}{:02}{:02}",
            d.get_hours(),
            d.get_minutes(),
            d.get_seconds()
        ),
    )
}

fn random_seed() -> u128 {
    let mut bytes = [0u8; 16];
    // Without crypto.getRandomValues the clock still makes the UIDs unique enough.
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&js_sys::Date::now().to_bits().to_le_bytes());
    }
    u128::from_le_bytes(bytes)
}

/// Fetches a text file of the app (the model card, the manifest).
async fn fetch_text(path: &str) -> Result<String, String> {
    String::from_utf8(web::fetch_bytes(path).await?).map_err(|_| format!("{path}: not UTF-8 text"))
}

#[derive(Properties, PartialEq)]
pub struct ReportsProps {
    pub state: UseReducerHandle<AppState>,
    /// Asks the printable report to prepare its key images and print.
    pub on_print: Callback<()>,
}

/// The downloads and the model card, under the findings.
#[component(ReportsPanel)]
pub fn reports_panel(props: &ReportsProps) -> Html {
    let card = use_state(|| None::<Result<String, String>>);
    let error = use_state(|| None::<String>);
    let state = &props.state;
    let (Some(loaded), Some(result), Some(report)) = (
        state.session.loaded.clone(),
        state.analysis.result.clone(),
        state.analysis.report(),
    ) else {
        return html! {};
    };
    let report = Rc::new(report);
    let sr_refusal = reports::sr_refusal(&loaded.volume);
    let save = |extension: &'static str,
                mime: &'static str,
                make: Rc<dyn Fn() -> Result<Vec<u8>, String>>| {
        let name = reports::download_name(&loaded.volume, &loaded.source, extension);
        let error = error.clone();
        Callback::from(move |_: MouseEvent| {
            let outcome = make().and_then(|bytes| {
                download(&name, mime, &bytes).map_err(|e| format!("the download failed: {e:?}"))
            });
            error.set(outcome.err());
        })
    };
    let on_json = {
        let (report, result, loaded) = (report.clone(), result.clone(), loaded.clone());
        save(
            "json",
            "application/json",
            Rc::new(move || {
                Ok(reports::json_document(&report, &result, &loaded.volume).into_bytes())
            }),
        )
    };
    let on_csv = {
        let report = report.clone();
        save(
            "csv",
            "text/csv",
            Rc::new(move || Ok(nodulens_detect::findings_csv(&report).into_bytes())),
        )
    };
    let on_sr = {
        let (report, result, loaded) = (report.clone(), result.clone(), loaded.clone());
        save(
            "dcm",
            "application/dicom",
            Rc::new(move || {
                let (date, time) = dicom_now();
                reports::structured_report(
                    &report,
                    &result,
                    &loaded.volume,
                    (&date, &time),
                    random_seed(),
                )
            }),
        )
    };
    let on_print = {
        let cb = props.on_print.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    let on_card = {
        let card = card.clone();
        Callback::from(move |_: MouseEvent| {
            if card.is_some() {
                card.set(None);
                return;
            }
            let card = card.clone();
            wasm_bindgen_futures::spawn_local(async move {
                card.set(Some(fetch_text("models/README.md").await));
            });
        })
    };
    html! {
        <section class="panel reports" aria-label="Reports">
            <h2>{ "Report" }</h2>
            <div class="report-buttons">
                <button class="button" data-testid="download-json" onclick={on_json}
                    title="The findings shown, as nodulens detect --json writes them">{ "JSON" }</button>
                <button class="button" data-testid="download-csv" onclick={on_csv}>{ "CSV" }</button>
                <button class="button" data-testid="download-sr" onclick={on_sr}
                    disabled={sr_refusal.is_some()}
                    title={sr_refusal.clone().unwrap_or_else(|| "A DICOM Comprehensive 3D SR (TID 1500) in the scan's study".into())}>
                    { "DICOM SR" }
                </button>
                <button class="button" data-testid="print-report-button" onclick={on_print}>{ "Print…" }</button>
                <button class="button" data-testid="model-card-button" onclick={on_card}
                    aria-expanded={card.is_some().to_string()}>{ "Model card" }</button>
            </div>
            if let Some(why) = sr_refusal {
                <p class="hint" data-testid="sr-unavailable">{ format!("No DICOM SR: {why}") }</p>
            }
            if let Some(message) = (*error).clone() {
                <p class="notice" role="alert">{ message }</p>
            }
            <p class="hint">{ format!("Downloads hold the {} finding(s) shown, made in this page: nothing is uploaded.", report.findings.len()) }</p>
            if let Some(card) = (*card).clone() {
                <div class="model-card" data-testid="model-card">
                    <p class="meaning" data-testid="p-malignant-meaning"><strong>{ P_MALIGNANT_MEANING }</strong></p>
                    { match card {
                        Ok(text) => html! { <pre>{ text }</pre> },
                        Err(e) => html! { <p class="notice">{ format!("The model card could not be read: {e}") }</p> },
                    } }
                </div>
            }
        </section>
    }
}

/// An axial key image of `finding` with its marker, as a PNG data URL.
fn key_image(loaded: &VolumeRef, finding: &Finding) -> Option<String> {
    let volume = &loaded.volume;
    let flips = loaded.flips(Plane::Axial);
    let voxel = volume.world_to_voxel(finding.center_mm);
    let at =
        nodulens_app::display::on_view(volume.dims(), volume.spacing(), flips, Plane::Axial, voxel);
    let index =
        finding.center_voxel[2].min(view::slice_count(volume, Plane::Axial).saturating_sub(1));
    let mut slice = view::extract(volume, Plane::Axial, index);
    flips.apply(&mut slice.values, slice.width, slice.height);
    let window = if volume.units() == nodulens_core::IntensityUnits::Hounsfield {
        Window::LUNG
    } else {
        loaded.default_window
    };
    let offscreen = canvas::offscreen()?;
    canvas::paint(&offscreen, &slice, window, &mut Vec::new())?;
    let ctx = canvas::context(&offscreen)?;
    let radius = (finding.diameter_mm / 2.0 + 2.5) / slice.pixel_mm[0].max(1e-6);
    ctx.begin_path();
    ctx.arc(at.x, at.y, radius.max(4.0), 0.0, std::f64::consts::TAU)
        .ok()?;
    ctx.set_line_width(2.0);
    ctx.set_stroke_style_str("#ff7a1a");
    ctx.stroke();
    offscreen.to_data_url().ok()
}

/// The models' test AUCs from the manifest, as the printed report cites them.
fn metrics_line(manifest: &str) -> Option<String> {
    let manifest: serde_json::Value = serde_json::from_str(manifest).ok()?;
    let lines: Vec<String> = manifest["models"]
        .as_array()?
        .iter()
        .filter_map(|m| {
            let metrics: serde_json::Value = match &m["metrics"] {
                serde_json::Value::String(text) => serde_json::from_str(text).ok()?,
                value => value.clone(),
            };
            let test = &metrics["test"];
            let ci = test["auc_ci95"].as_array()?;
            Some(format!(
                "{}: test AUC {:.3} [{:.3}, {:.3}]",
                m["kind"].as_str()?,
                test["auc"].as_f64()?,
                ci.first()?.as_f64()?,
                ci.get(1)?.as_f64()?,
            ))
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("; "))
}

/// The scan, job and threshold a set of key images was made for.
#[derive(Clone, Copy, PartialEq)]
struct ImagesOf {
    generation: u64,
    job: u64,
    threshold: u32,
}

/// Waits until every image matching `selector` is decoded (or failed to).
async fn decode_images(selector: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Ok(list) = document.query_selector_all(selector) else {
        return;
    };
    for i in 0..list.length() {
        if let Some(image) = list
            .item(i)
            .and_then(|n| n.dyn_into::<web_sys::HtmlImageElement>().ok())
        {
            let _ = JsFuture::from(image.decode()).await;
        }
    }
}

#[derive(Properties, PartialEq)]
pub struct PrintProps {
    pub state: UseReducerHandle<AppState>,
    /// Bumped by the Print button: prepare the key images, then print.
    pub request: u32,
}

/// The printable report: scan and patient data as the file gives them, the scan's category,
/// a key image per finding, the table, the models and their metrics, the disclaimer.
/// `display: none` on screen; the print stylesheet shows only this.
#[component(PrintReport)]
pub fn print_report(props: &PrintProps) -> Html {
    let images = use_state(|| None::<(u32, ImagesOf, Rc<Vec<Option<String>>>)>);
    let metrics = use_state(|| None::<String>);
    let state = &props.state;
    let report: Option<Rc<Report>> = state.analysis.report().map(Rc::new);
    // Which findings the key images show: made for one scan, job and threshold, they are
    // dropped (never shown under other findings' captions) when any of these change.
    let shown = ImagesOf {
        generation: state.session.loaded.as_ref().map_or(0, |l| l.generation),
        job: state.analysis.job,
        threshold: state.analysis.threshold.to_bits(),
    };
    {
        let images = images.clone();
        let metrics = metrics.clone();
        let loaded = state.session.loaded.clone();
        let report = report.clone();
        use_effect_with(props.request, move |&request| {
            if let (true, Some(loaded), Some(report)) = (request > 0, loaded, report) {
                let made = report
                    .findings
                    .iter()
                    .take(MAX_KEY_IMAGES)
                    .map(|f| key_image(&loaded, f))
                    .collect();
                wasm_bindgen_futures::spawn_local(async move {
                    let line = fetch_text("models/manifest.json")
                        .await
                        .ok()
                        .and_then(|m| metrics_line(&m));
                    metrics.set(Some(
                        line.unwrap_or_else(|| "metrics: see the model card".into()),
                    ));
                    images.set(Some((request, shown, Rc::new(made))));
                });
            }
        });
    }
    let current = images
        .as_ref()
        .filter(|(_, of, _)| *of == shown)
        .map(|(request, _, made)| (*request, made.clone()));
    let ready = props.request > 0 && matches!(&current, Some((r, _)) if *r == props.request);
    use_effect_with(ready, move |&ready| {
        if ready {
            // Print once the key images are decoded, or they may print blank.
            wasm_bindgen_futures::spawn_local(async {
                decode_images(".print-report img").await;
                if let Some(window) = web_sys::window() {
                    let _ = window.print();
                }
            });
        }
    });
    let (Some(loaded), Some(result), Some(report)) = (
        state.session.loaded.clone(),
        state.analysis.result.clone(),
        report,
    ) else {
        return html! {};
    };
    let m = loaded.volume.metadata();
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let row = |label: &'static str, value: String| html! { <tr><th>{ label }</th><td>{ value }</td></tr> };
    let [dx, dy, dz] = loaded.volume.spacing();
    let [nx, ny, nz] = loaded.volume.dims();
    let key_images = current.map(|(_, made)| made).unwrap_or_default();
    let has_images = key_images.iter().any(Option::is_some);
    let findings = report.findings.iter().enumerate().map(|(i, f)| {
        let [x, y, z] = f.center_mm;
        html! {
            <tr>
                <td>{ i + 1 }</td>
                <td>{ format!("{x:.1}, {y:.1}, {z:.1}") }</td>
                <td>{ format!("{:.1}", f.diameter_mm) }</td>
                <td>{ format!("{:.0}", f.volume_mm3) }</td>
                <td>{ f.nodule_type.name().replace('_', "-") }{ if f.calcified { ", calcified" } else { "" } }</td>
                <td>{ f.lung_rads.code() }</td>
                <td>{ f.lung_rads_rule.clone() }</td>
                <td>{ format!("{:.3}", f.p_nodule) }</td>
                <td>{ format!("{:.2}", f.p_malignant) }</td>
            </tr>
        }
    });
    let figures = report.findings.iter().take(MAX_KEY_IMAGES).enumerate().map(|(i, f)| {
        let src = key_images.get(i).cloned().flatten();
        html! {
            <figure class="key-image">
                if let Some(src) = src {
                    <img {src} alt={format!("Finding {} on axial slice {}", i + 1, f.center_voxel[2] + 1)} />
                }
                <figcaption>{ format!("{}: {:.1} mm, Lung-RADS {}, axial slice {}", i + 1, f.diameter_mm, f.lung_rads.code(), f.center_voxel[2] + 1) }</figcaption>
            </figure>
        }
    });
    html! {
        <section class="print-report" data-testid="print-report" data-ready={ready.to_string()}>
            <h1>{ "Nodulens — lung nodule report" }</h1>
            <p class="disclaimer-print"><strong>{ "Research use only — not a medical device." }</strong>
                { " Not for diagnosis or screening decisions." }</p>
            <table class="facts">
                { row("Patient", text(&m.patient.name)) }
                { row("Patient ID", text(&m.patient.id)) }
                { row("Birth date / sex", format!("{} / {}", text(&m.patient.birth_date), text(&m.patient.sex))) }
                { row("Study date", text(&m.study_date)) }
                { row("Accession / study ID", format!("{} / {}", text(&m.accession_number), text(&m.study_id))) }
                { row("Series", text(&m.series_description)) }
                { row("Manufacturer", text(&m.manufacturer)) }
                { row("Scan", format!("{} ({}), {nx}×{ny}×{nz} voxels of {dx:.2}×{dy:.2}×{dz:.2} mm", loaded.source, loaded.volume.format().label())) }
            </table>
            <p class="scan-category-print">
                <strong>{ format!("Lung-RADS {}", report.lung_rads.code()) }</strong>
                { format!(" — {} ({})", report.lung_rads.management(), report.lung_rads_rule) }
            </p>
            <p>{ format!("{} finding(s) at p(nodule) ≥ {:.3}; {} candidates scored; lungs {:.0} ml.",
                report.findings.len(), report.threshold, report.scored, report.lung_volume_ml) }</p>
            if !report.findings.is_empty() {
                <table class="findings-print" data-testid="print-findings">
                    <thead><tr>
                        <th>{ "#" }</th><th>{ "Centre (LPS mm)" }</th><th>{ "Diameter mm" }</th>
                        <th>{ "Volume mm³" }</th><th>{ "Type" }</th><th>{ "Lung-RADS" }</th>
                        <th>{ "Rule" }</th><th>{ "p(nodule)" }</th><th>{ "p(malignant)" }</th>
                    </tr></thead>
                    <tbody>{ for findings }</tbody>
                </table>
                if has_images {
                    <div class="key-images">{ for figures }</div>
                } else {
                    <p>{ "Key images are added when printing with the page's Print… button." }</p>
                }
            }
            if !report.warnings.is_empty() {
                <ul>{ for report.warnings.iter().map(|w| html! { <li>{ w.message.clone() }</li> }) }</ul>
            }
            <p class="models-print">{ format!("Models: {} ({}); {}.", result.models_id,
                result.backend.label(), (*metrics).clone().unwrap_or_default()) }</p>
            <p class="meaning">{ P_MALIGNANT_MEANING }</p>
            <p><strong>{ "Research use only — not a medical device." }</strong></p>
        </section>
    }
}
