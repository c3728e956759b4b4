//! What the scan is (metadata) and what the reader had to assume (warnings).

use nodulens_app::display::signed;
use nodulens_core::{Format, IntensityUnits};
use yew::prelude::*;

use crate::state::VolumeRef;

#[derive(Properties, PartialEq)]
pub struct MetadataProps {
    pub loaded: VolumeRef,
    /// Shown for image stacks: reopen the same files with the spacing now entered.
    pub on_reopen: Callback<()>,
}

fn mm3(v: [f64; 3], sep: &str) -> String {
    v.map(|x| signed((x * 1000.0).round() / 1000.0)).join(sep)
}

fn row(label: &'static str, value: Option<String>) -> Html {
    let value = value.filter(|v| !v.trim().is_empty());
    html! {
        <>
            <dt>{ label }</dt>
            <dd class={classes!(value.is_none().then_some("missing"))}>
                { value.unwrap_or_else(|| "—".into()) }
            </dd>
        </>
    }
}

#[component(MetadataPanel)]
pub fn metadata_panel(props: &MetadataProps) -> Html {
    let loaded = &props.loaded;
    let v = &loaded.volume;
    let m = &v.metadata();
    let stack = v.format() == Format::ImageStack;
    let spacing = if stack {
        format!("{} mm (assumed)", mm3(v.spacing(), " × "))
    } else {
        format!("{} mm", mm3(v.spacing(), " × "))
    };
    let units = match v.units() {
        IntensityUnits::Hounsfield => "Hounsfield units",
        IntensityUnits::GreyLevels => "grey levels (not HU)",
    };
    let s = loaded.statistics;
    let size_mb = v.byte_size() as f64 / (1024.0 * 1024.0);
    let on_reopen = props.on_reopen.reform(|_: MouseEvent| ());
    html! {
        <section class="panel metadata" data-testid="metadata">
            <h2>{ "Scan" }</h2>
            <dl>
                { row("Format", Some(v.format().label().to_owned())) }
                { row("Modality", m.modality.clone()) }
                { row("Series UID", m.series_uid.clone()) }
                { row("Description", m.series_description.clone()) }
                { row("Kernel", m.kernel.clone()) }
                { row("Manufacturer", m.manufacturer.clone()) }
                { row("Study date", m.study_date.clone()) }
                { row("Dimensions", Some(format!("{} × {} × {} voxels ({size_mb:.0} MiB)",
                    v.dims()[0], v.dims()[1], v.dims()[2]))) }
                { row("Spacing", Some(spacing)) }
                { row("Origin (LPS)", Some(format!("({}) mm", mm3(v.origin(), ", ")))) }
                { row("Slice thickness", m.slice_thickness_mm.map(|t| format!("{t} mm"))) }
                { row("Values", Some(format!("{units}, {} to {}", signed(f64::from(s.min)),
                    signed(f64::from(s.max))))) }
            </dl>
            if stack {
                <div class="assumed" data-testid="assumed-spacing">
                    <p>{ "PNG/JPEG slices carry no voxel size: the spacing above is assumed. \
                          Enter the real one under “Voxel size for PNG/JPEG stacks” and reopen." }</p>
                    <button class="button" data-testid="reopen" onclick={on_reopen}>
                        { "Reopen with that spacing" }
                    </button>
                </div>
            }
            if !m.other_series.is_empty() {
                <h3>{ "Other series in the input (not shown)" }</h3>
                <ul class="other-series" data-testid="other-series">
                    { for m.other_series.iter().map(|s| html! { <li>{ s }</li> }) }
                </ul>
            }
        </section>
    }
}

#[derive(Properties, PartialEq)]
pub struct WarningsProps {
    pub warnings: Vec<nodulens_core::Warning>,
}

#[component(WarningsPanel)]
pub fn warnings_panel(props: &WarningsProps) -> Html {
    let class = classes!(
        "panel",
        "warnings",
        (!props.warnings.is_empty()).then_some("has-warnings")
    );
    html! {
        <section {class} data-testid="warnings" role={(!props.warnings.is_empty()).then_some("status")}>
            <h2>{ format!("Warnings ({})", props.warnings.len()) }</h2>
            if props.warnings.is_empty() {
                <p class="none">{ "None: the files were read as they are." }</p>
            } else {
                <ul>
                    { for props.warnings.iter().map(|w| html! {
                        <li data-kind={w.kind.name()}>{ &w.message }</li>
                    }) }
                </ul>
            }
        </section>
    }
}
