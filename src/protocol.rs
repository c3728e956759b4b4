//! Messages between the UI and the decode worker.
//!
//! Both sides use the typed [`Request`] and [`Response`] enums; on the wire they are plain
//! JS objects with a `kind` field, because `File`s and the voxel `Int16Array` must go
//! through `postMessage` as themselves (Files are structured-cloned as handles, the voxel
//! buffer is *transferred*), which serde cannot express. Everything else (the volume
//! header, progress) is serde data.

use nodulens_core::{Format, IntensityUnits, Metadata, Progress, Stage, Statistics, Volume};
use serde::{Deserialize, Serialize};

/// Everything about a decoded volume except its voxels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeHeader {
    pub format: Format,
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
    pub origin: [f64; 3],
    pub direction: [f64; 9],
    pub units: IntensityUnits,
    pub metadata: Metadata,
    pub warnings: Vec<String>,
    pub statistics: Statistics,
}

impl VolumeHeader {
    pub fn of(volume: &Volume) -> Self {
        Self {
            format: volume.format,
            dims: volume.dims,
            spacing: volume.spacing,
            origin: volume.origin,
            direction: volume.direction,
            units: volume.units,
            metadata: volume.metadata.clone(),
            warnings: volume.warnings.clone(),
            statistics: volume.statistics(),
        }
    }

    /// Rebuilds the volume on the UI side; `None` if the voxel count does not match the
    /// dimensions (a broken message must not turn into an out-of-bounds slice later).
    pub fn into_volume(self, voxels: Vec<i16>) -> Option<(Volume, Statistics)> {
        let expected = self
            .dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))?;
        if expected != voxels.len() {
            return None;
        }
        let statistics = self.statistics;
        let volume = Volume {
            format: self.format,
            dims: self.dims,
            spacing: self.spacing,
            origin: self.origin,
            direction: self.direction,
            units: self.units,
            voxels,
            metadata: self.metadata,
            warnings: self.warnings,
        };
        Some((volume, statistics))
    }
}

/// What the worker is doing; `Downloading` is the worker fetching the bundled sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadStage {
    Downloading,
    /// Reading the dropped files into memory.
    Reading,
    Scanning,
    Decoding,
}

impl LoadStage {
    pub fn label(self) -> &'static str {
        match self {
            LoadStage::Downloading => "Downloading",
            LoadStage::Reading => "Reading files",
            LoadStage::Scanning => "Reading headers",
            LoadStage::Decoding => "Decoding pixels",
        }
    }
}

/// `done` of `total` steps of a stage; `total == 0` when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadProgress {
    pub stage: LoadStage,
    pub done: usize,
    pub total: usize,
}

impl From<Progress> for LoadProgress {
    fn from(p: Progress) -> Self {
        LoadProgress {
            stage: match p.stage {
                Stage::Scanning => LoadStage::Scanning,
                Stage::Decoding => LoadStage::Decoding,
            },
            done: p.done,
            total: p.total,
        }
    }
}

/// Decides which progress reports are worth a `postMessage`: a decode reports per file
/// or per slice (thousands), the UI needs a few dozen updates.
#[derive(Debug, Clone, Default)]
pub struct Throttle {
    last: Option<(LoadStage, usize, f64)>,
}

/// Post at least every this many milliseconds while progress moves.
const THROTTLE_MS: f64 = 50.0;

impl Throttle {
    /// Whether `progress` at time `now_ms` should be sent.
    pub fn should_send(&mut self, progress: LoadProgress, now_ms: f64) -> bool {
        let fiftieths = |done: usize| done.saturating_mul(50) / progress.total.max(1);
        let send = match self.last {
            None => true,
            Some((stage, _, _)) if stage != progress.stage => true,
            _ if progress.done >= progress.total => true,
            Some((_, done, at)) => {
                fiftieths(progress.done) != fiftieths(done) || now_ms - at >= THROTTLE_MS
            }
        };
        if send {
            self.last = Some((progress.stage, progress.done, now_ms));
        }
        send
    }
}

#[cfg(target_arch = "wasm32")]
pub use wire::*;

#[cfg(target_arch = "wasm32")]
mod wire {
    use super::{LoadProgress, VolumeHeader};
    use js_sys::{Array, Int16Array, Object, Reflect};
    use wasm_bindgen::{JsCast, JsValue};

    /// A file picked or dropped by the user, with its path inside a dropped folder.
    #[derive(Debug, Clone, PartialEq)]
    pub struct InputFile {
        pub path: String,
        pub file: web_sys::File,
    }

    /// UI → worker.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Request {
        /// Open these files (read lazily in the worker); `spacing` is for image stacks.
        Open {
            files: Vec<InputFile>,
            spacing: [f64; 3],
        },
        /// Fetch `url` in the worker and open it as a file called `name`.
        OpenSample {
            url: String,
            name: String,
            spacing: [f64; 3],
        },
    }

    /// Worker → UI.
    #[derive(Debug)]
    pub enum Response {
        /// The worker's wasm is initialised; messages sent before this would be lost.
        Ready,
        Progress(LoadProgress),
        Opened {
            header: Box<VolumeHeader>,
            voxels: Int16Array,
        },
        Failed {
            message: String,
        },
    }

    fn set(obj: &Object, key: &str, value: &JsValue) -> Result<(), String> {
        Reflect::set(obj, &JsValue::from_str(key), value)
            .map(|_| ())
            .map_err(|e| format!("could not build a message: {e:?}"))
    }

    fn get(obj: &JsValue, key: &str) -> Result<JsValue, String> {
        Reflect::get(obj, &JsValue::from_str(key))
            .map_err(|e| format!("malformed message (field `{key}`): {e:?}"))
    }

    fn get_string(obj: &JsValue, key: &str) -> Result<String, String> {
        get(obj, key)?
            .as_string()
            .ok_or_else(|| format!("malformed message: `{key}` is not a string"))
    }

    fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, String> {
        serde_wasm_bindgen::to_value(value).map_err(|e| format!("could not encode: {e}"))
    }

    fn from_js<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> Result<T, String> {
        serde_wasm_bindgen::from_value(value).map_err(|e| format!("malformed {what}: {e}"))
    }

    impl Request {
        pub fn to_js(&self) -> Result<JsValue, String> {
            let obj = Object::new();
            match self {
                Request::Open { files, spacing } => {
                    set(&obj, "kind", &"open".into())?;
                    let list: Array = files.iter().map(|f| JsValue::from(&f.file)).collect();
                    let paths: Array = files.iter().map(|f| JsValue::from_str(&f.path)).collect();
                    set(&obj, "files", &list)?;
                    set(&obj, "paths", &paths)?;
                    set(&obj, "spacing", &to_js(spacing)?)?;
                }
                Request::OpenSample { url, name, spacing } => {
                    set(&obj, "kind", &"sample".into())?;
                    set(&obj, "url", &url.into())?;
                    set(&obj, "name", &name.into())?;
                    set(&obj, "spacing", &to_js(spacing)?)?;
                }
            }
            Ok(obj.into())
        }

        pub fn from_js(value: &JsValue) -> Result<Request, String> {
            let spacing: [f64; 3] = from_js(get(value, "spacing")?, "spacing")?;
            match get_string(value, "kind")?.as_str() {
                "open" => {
                    let files: Array = get(value, "files")?
                        .dyn_into()
                        .map_err(|_| "malformed message: `files` is not an array".to_owned())?;
                    let paths: Array = get(value, "paths")?
                        .dyn_into()
                        .map_err(|_| "malformed message: `paths` is not an array".to_owned())?;
                    let files = files
                        .iter()
                        .zip(paths.iter())
                        .map(|(file, path)| {
                            let file: web_sys::File = file
                                .dyn_into()
                                .map_err(|_| "malformed message: not a File".to_owned())?;
                            let path = path.as_string().unwrap_or_else(|| file.name());
                            Ok(InputFile { path, file })
                        })
                        .collect::<Result<_, String>>()?;
                    Ok(Request::Open { files, spacing })
                }
                "sample" => Ok(Request::OpenSample {
                    url: get_string(value, "url")?,
                    name: get_string(value, "name")?,
                    spacing,
                }),
                other => Err(format!("unknown request `{other}`")),
            }
        }
    }

    impl Response {
        /// The message and its transfer list (the voxel buffer moves, it is not copied).
        pub fn to_js(&self) -> Result<(JsValue, Array), String> {
            let obj = Object::new();
            let transfer = Array::new();
            match self {
                Response::Ready => set(&obj, "kind", &"ready".into())?,
                Response::Progress(p) => {
                    set(&obj, "kind", &"progress".into())?;
                    set(&obj, "progress", &to_js(p)?)?;
                }
                Response::Opened { header, voxels } => {
                    set(&obj, "kind", &"opened".into())?;
                    set(&obj, "header", &to_js(header)?)?;
                    set(&obj, "voxels", voxels)?;
                    transfer.push(&voxels.buffer());
                }
                Response::Failed { message } => {
                    set(&obj, "kind", &"failed".into())?;
                    set(&obj, "message", &message.into())?;
                }
            }
            Ok((obj.into(), transfer))
        }

        pub fn from_js(value: &JsValue) -> Result<Response, String> {
            match get_string(value, "kind")?.as_str() {
                "ready" => Ok(Response::Ready),
                "progress" => Ok(Response::Progress(from_js(
                    get(value, "progress")?,
                    "progress",
                )?)),
                "opened" => Ok(Response::Opened {
                    header: from_js(get(value, "header")?, "volume header")?,
                    voxels: get(value, "voxels")?.dyn_into().map_err(|_| {
                        "malformed message: voxels are not an Int16Array".to_owned()
                    })?,
                }),
                "failed" => Ok(Response::Failed {
                    message: get_string(value, "message")?,
                }),
                other => Err(format!("unknown response `{other}`")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stage: LoadStage, done: usize, total: usize) -> LoadProgress {
        LoadProgress { stage, done, total }
    }

    #[test]
    fn throttle_sends_about_every_two_percent() {
        let mut t = Throttle::default();
        let sent = (0..=1000)
            .filter(|&i| t.should_send(at(LoadStage::Decoding, i, 1000), 0.0))
            .count();
        // First report, one per 2 %, and the last.
        assert!((50..=52).contains(&sent), "{sent}");
    }

    #[test]
    fn throttle_sends_on_stage_change_and_time() {
        let mut t = Throttle::default();
        assert!(t.should_send(at(LoadStage::Scanning, 0, 100_000), 0.0));
        assert!(!t.should_send(at(LoadStage::Scanning, 1, 100_000), 10.0));
        assert!(t.should_send(at(LoadStage::Scanning, 2, 100_000), 60.0));
        assert!(t.should_send(at(LoadStage::Decoding, 0, 10), 61.0));
        assert!(t.should_send(at(LoadStage::Decoding, 10, 10), 62.0));
    }

    #[test]
    fn header_round_trips_and_checks_voxel_count() {
        let volume = Volume {
            format: Format::Nifti,
            dims: [2, 2, 1],
            spacing: [1.0, 1.0, 2.0],
            origin: [0.0; 3],
            direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            units: IntensityUnits::Hounsfield,
            voxels: vec![-1000, 0, 40, 1000],
            metadata: Metadata::default(),
            warnings: vec!["w".into()],
        };
        let header = VolumeHeader::of(&volume);
        assert_eq!(header.statistics.max, 1000);
        assert!(header.clone().into_volume(vec![0; 3]).is_none());
        let (back, _) = header
            .into_volume(volume.voxels.clone())
            .expect("count matches");
        assert_eq!(back, volume);
    }
}
