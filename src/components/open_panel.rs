//! Ways to open a scan: file picker, folder picker, the bundled sample, and the voxel
//! size given to PNG/JPEG stacks. Dropping onto the page is handled by the app root.

use nodulens_app::protocol::InputFile;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::files;

#[derive(Properties, PartialEq)]
pub struct OpenPanelProps {
    /// Compact layout for the top bar once a scan is shown.
    pub compact: bool,
    pub spacing: [f64; 3],
    pub on_files: Callback<Vec<InputFile>>,
    pub on_sample: Callback<()>,
    pub on_spacing: Callback<[f64; 3]>,
}

fn picker(on_files: &Callback<Vec<InputFile>>) -> Callback<Event> {
    let on_files = on_files.clone();
    Callback::from(move |e: Event| {
        let Some(input) = e.target_dyn_into::<HtmlInputElement>() else {
            return;
        };
        if let Some(list) = input.files() {
            let picked = files::from_file_list(&list);
            // Reset so picking the same files again fires `change` again.
            input.set_value("");
            on_files.emit(picked);
        }
    })
}

#[component(OpenPanel)]
pub fn open_panel(props: &OpenPanelProps) -> Html {
    let on_file_change = picker(&props.on_files);
    let on_folder_change = picker(&props.on_files);
    let on_sample = props.on_sample.reform(|_: MouseEvent| ());
    let spacing_input = |axis: usize, label: &'static str| {
        let spacing = props.spacing;
        let on_spacing = props.on_spacing.clone();
        let onchange = Callback::from(move |e: Event| {
            let Some(input) = e.target_dyn_into::<HtmlInputElement>() else {
                return;
            };
            match input.value().trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => {
                    let mut next = spacing;
                    next[axis] = v;
                    on_spacing.emit(next);
                }
                // Not a usable size: put the current one back.
                _ => input.set_value(&spacing[axis].to_string()),
            }
        });
        html! {
            <label class="spacing-field">
                <span>{ label }</span>
                <input
                    type="number"
                    min="0.001"
                    step="any"
                    data-testid={format!("spacing-{}", label.to_ascii_lowercase())}
                    value={props.spacing[axis].to_string()}
                    {onchange}
                />
            </label>
        }
    };
    let class = classes!("open-panel", props.compact.then_some("compact"));
    html! {
        <div {class}>
            <div class="open-buttons">
                <label class="button primary file-button">
                    { "Open files…" }
                    <input type="file" multiple=true data-testid="file-input"
                        onchange={on_file_change} />
                </label>
                <label class="button file-button">
                    { "Open folder…" }
                    <input type="file" webkitdirectory=true multiple=true data-testid="folder-input"
                        onchange={on_folder_change} />
                </label>
                <button class="button" data-testid="open-sample" onclick={on_sample}>
                    { "Open sample scan (LIDC-IDRI-0006)" }
                </button>
            </div>
            if !props.compact {
                <p class="hint">
                    { "…or drop files, a folder or a .zip anywhere on this page. DICOM series, \
                       NIfTI (.nii, .nii.gz), MetaImage (.mhd + .raw, .mha) and PNG/JPEG slice \
                       stacks are read on your computer; nothing is uploaded." }
                </p>
            }
            <details class="stack-spacing" open={!props.compact}>
                <summary>{ "Voxel size for PNG/JPEG stacks" }</summary>
                <div class="spacing-fields">
                    { spacing_input(0, "X") }
                    { spacing_input(1, "Y") }
                    { spacing_input(2, "Z") }
                    <span class="unit">{ "mm" }</span>
                </div>
                <p class="hint small">
                    { "Plain images carry no voxel size; this one is assumed. DICOM, NIfTI and \
                       MetaImage files carry their own." }
                </p>
            </details>
            <p class="attribution" data-testid="attribution">
                { "Sample: LIDC-IDRI-0006 from the " }
                <a href="https://doi.org/10.7937/K9/TCIA.2015.LO9QL9SX" target="_blank"
                    rel="noopener">{ "LIDC-IDRI" }</a>
                { " collection (Armato et al.), via The Cancer Imaging Archive (TCIA), \
                   licensed " }
                <a href="https://creativecommons.org/licenses/by/3.0/" target="_blank"
                    rel="noopener">{ "CC BY 3.0" }</a>
                { "; cropped." }
            </p>
        </div>
    }
}
