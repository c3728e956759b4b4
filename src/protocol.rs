//! Messages between the UI and the decode worker.
//!
//! Both sides use the typed [`Request`] and [`Response`] enums; on the wire they are plain
//! JS objects with a `kind` field, because `File`s and voxel `Int16Array`s must go through
//! `postMessage` as themselves (Files are structured-cloned as handles, voxel buffers are
//! *transferred*), which serde cannot express. Everything else (the volume header, progress)
//! is serde data.
//!
//! A scan arrives as `Expect` (a size hint), `Slices` (decoded slices in the order the
//! worker decoded them), then `Finished` (the header, and which arrival goes in which slot):
//! the worker hands each slice on as it decodes it, so the volume is only ever whole in the
//! UI, which puts the slices in place there ([`nodulens_core::slices::arrange_slices`]).

use nodulens_core::slices::arrange_slices;
use nodulens_core::{Progress, RunningStatistics, Stage, Statistics, Volume, VolumeHeader};
use serde::{Deserialize, Serialize};

/// The end of a scan's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// Every warning included.
    pub header: VolumeHeader,
    /// For each slot along the volume's third axis, the `Slices` message (one slice each)
    /// that fills it; `None` when the messages are the volume, in order.
    pub order: Option<Vec<usize>>,
}

/// A volume being received: the UI's side of `Expect`, `Slices`, `Finished`.
#[derive(Debug)]
pub struct Incoming {
    voxels: Vec<i16>,
    /// Voxels of each `Slices` message, in arrival order.
    lengths: Vec<usize>,
    /// Statistics of each `Slices` message, gathered as they come (the UI thread is idle
    /// while the worker decodes).
    statistics: Vec<RunningStatistics>,
    max_voxels: u64,
}

impl Incoming {
    /// Refuses to hold more than `max_voxels`.
    pub fn new(max_voxels: u64) -> Self {
        Self {
            voxels: Vec::new(),
            lengths: Vec::new(),
            statistics: Vec::new(),
            max_voxels,
        }
    }

    /// Reserves room for about `voxels` (once, so the volume is never copied to grow).
    pub fn expect(&mut self, voxels: usize) {
        let voxels = voxels.min(usize::try_from(self.max_voxels).unwrap_or(usize::MAX));
        self.voxels
            .reserve(voxels.saturating_sub(self.voxels.len()));
    }

    /// Appends the next `len` voxels that arrived, which `fill` writes.
    pub fn append(&mut self, len: usize, fill: impl FnOnce(&mut [i16])) -> Result<(), String> {
        let start = self.voxels.len();
        let end = start
            .checked_add(len)
            .filter(|&end| end as u64 <= self.max_voxels)
            .ok_or_else(|| {
                format!(
                    "the decoder sent more than the limit of {} voxels",
                    self.max_voxels
                )
            })?;
        self.voxels.resize(end, 0);
        fill(&mut self.voxels[start..]);
        let mut statistics = RunningStatistics::default();
        statistics.add(&self.voxels[start..]);
        self.statistics.push(statistics);
        self.lengths.push(len);
        Ok(())
    }

    /// The voxels of the last `append`.
    pub fn latest(&self) -> &[i16] {
        let len = self.lengths.last().copied().unwrap_or(0);
        &self.voxels[self.voxels.len() - len..]
    }

    /// The volume, with its slices put in place.
    pub fn finish(self, finished: Finished) -> Result<(Volume, Statistics), String> {
        let mut voxels = self.voxels;
        let mut statistics = RunningStatistics::default();
        if let Some(order) = &finished.order {
            let slice_len = finished.header.dims[0] * finished.header.dims[1];
            arrange_slices(&mut voxels, &self.lengths, order, slice_len)
                .map_err(|e| format!("the decoder's slices do not fit together: {e}"))?;
            for &arrival in order {
                // arrange_slices checked that every arrival named exists.
                if let Some(s) = self.statistics.get(arrival) {
                    statistics.merge(s);
                }
            }
        } else {
            self.statistics.iter().for_each(|s| statistics.merge(s));
        }
        let volume = finished
            .header
            .into_volume(voxels)
            .map_err(|e| format!("the decoder's volume is not usable: {e}"))?;
        Ok((volume, statistics.finish()))
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
    use super::{Finished, LoadProgress};
    use js_sys::{Array, Int16Array, Object, Reflect};
    use wasm_bindgen::{JsCast, JsValue};

    /// What a worker's `error` event says. A script that fails to load (missing, refused by
    /// the page's policy) fires a plain `Event`, not an `ErrorEvent`: it has no message.
    pub fn worker_error_text(event: &web_sys::Event) -> String {
        Reflect::get(event, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .unwrap_or_else(|| "its script could not be loaded or was refused".to_owned())
    }

    /// A file picked or dropped by the user, with its path inside a dropped folder.
    #[derive(Debug, Clone, PartialEq)]
    pub struct InputFile {
        pub path: String,
        pub file: web_sys::File,
    }

    /// UI → worker.
    #[derive(Debug, Clone)]
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
        /// A `Slices` buffer the UI has copied, handed back for the next slices: the JS
        /// memory of slices in flight stays bounded instead of waiting for the collector.
        Recycle { voxels: Int16Array },
    }

    /// Worker → UI.
    #[derive(Debug)]
    pub enum Response {
        /// The worker's wasm is initialised; messages sent before this would be lost.
        Ready,
        Progress(LoadProgress),
        /// About this many voxels will follow.
        Expect {
            voxels: usize,
        },
        /// The next decoded voxels.
        Slices {
            voxels: Int16Array,
            /// `[columns, rows]` when these voxels are one slice worth showing while the
            /// rest of the scan arrives.
            preview: Option<[usize; 2]>,
        },
        /// Every slice has been sent.
        Finished(Box<Finished>),
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
        /// The message and its transfer list.
        pub fn to_js(&self) -> Result<(JsValue, Array), String> {
            let obj = Object::new();
            let transfer = Array::new();
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
                Request::Recycle { voxels } => {
                    set(&obj, "kind", &"recycle".into())?;
                    set(&obj, "voxels", voxels)?;
                    transfer.push(&voxels.buffer());
                }
            }
            Ok((obj.into(), transfer))
        }

        pub fn from_js(value: &JsValue) -> Result<Request, String> {
            let spacing =
                || -> Result<[f64; 3], String> { from_js(get(value, "spacing")?, "spacing") };
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
                    Ok(Request::Open {
                        files,
                        spacing: spacing()?,
                    })
                }
                "sample" => Ok(Request::OpenSample {
                    url: get_string(value, "url")?,
                    name: get_string(value, "name")?,
                    spacing: spacing()?,
                }),
                "recycle" => Ok(Request::Recycle {
                    voxels: get(value, "voxels")?.dyn_into().map_err(|_| {
                        "malformed message: voxels are not an Int16Array".to_owned()
                    })?,
                }),
                other => Err(format!("unknown request `{other}`")),
            }
        }
    }

    impl Response {
        /// The message and its transfer list (voxel buffers move, they are not copied).
        pub fn to_js(&self) -> Result<(JsValue, Array), String> {
            let obj = Object::new();
            let transfer = Array::new();
            match self {
                Response::Ready => set(&obj, "kind", &"ready".into())?,
                Response::Progress(p) => {
                    set(&obj, "kind", &"progress".into())?;
                    set(&obj, "progress", &to_js(p)?)?;
                }
                Response::Expect { voxels } => {
                    set(&obj, "kind", &"expect".into())?;
                    set(&obj, "voxels", &JsValue::from_f64(*voxels as f64))?;
                }
                Response::Slices { voxels, preview } => {
                    set(&obj, "kind", &"slices".into())?;
                    set(&obj, "voxels", voxels)?;
                    if let Some(preview) = preview {
                        set(&obj, "preview", &to_js(preview)?)?;
                    }
                    transfer.push(&voxels.buffer());
                }
                Response::Finished(finished) => {
                    set(&obj, "kind", &"finished".into())?;
                    set(&obj, "finished", &to_js(finished)?)?;
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
                "expect" => Ok(Response::Expect {
                    voxels: get(value, "voxels")?
                        .as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .ok_or_else(|| "malformed message: `voxels` is not a count".to_owned())?
                        as usize,
                }),
                "slices" => Ok(Response::Slices {
                    voxels: get(value, "voxels")?.dyn_into().map_err(|_| {
                        "malformed message: voxels are not an Int16Array".to_owned()
                    })?,
                    preview: match get(value, "preview")? {
                        v if v.is_undefined() => None,
                        v => Some(from_js(v, "preview shape")?),
                    },
                }),
                "finished" => Ok(Response::Finished(Box::new(from_js(
                    get(value, "finished")?,
                    "end of volume",
                )?))),
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

    fn volume() -> Volume {
        Volume::new(
            VolumeHeader {
                format: nodulens_core::Format::Nifti,
                dims: [2, 2, 3],
                spacing: [1.0, 1.0, 2.0],
                origin: [0.0; 3],
                direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                units: nodulens_core::IntensityUnits::Hounsfield,
                metadata: nodulens_core::Metadata::default(),
                warnings: vec![nodulens_core::Warning::new(
                    nodulens_core::WarningKind::Other,
                    "from the header",
                )],
            },
            (0..12).map(|v| v * 100 - 600).collect(),
        )
        .expect("valid test volume")
    }

    fn finished(volume: &Volume, order: Option<Vec<usize>>) -> Finished {
        Finished {
            header: volume.header().clone(),
            order,
        }
    }

    #[test]
    fn slices_in_arrival_order_are_put_in_place() {
        let volume = volume();
        let mut incoming = Incoming::new(u64::MAX);
        incoming.expect(12);
        // Arrivals: slice 2, slice 0, a stranger of 2 voxels, slice 1.
        let slice = |slot: usize| &volume.voxels()[slot * 4..(slot + 1) * 4];
        for slot in [2usize, 0] {
            incoming
                .append(4, |room| room.copy_from_slice(slice(slot)))
                .expect("room");
        }
        // The stranger's extreme values must not reach the statistics.
        incoming
            .append(2, |room| room.fill(i16::MAX))
            .expect("room");
        incoming
            .append(4, |room| room.copy_from_slice(slice(1)))
            .expect("room");
        // The page previews the slice that came last.
        assert_eq!(incoming.latest(), slice(1));
        let (back, statistics) = incoming
            .finish(finished(&volume, Some(vec![1, 3, 0])))
            .expect("complete");
        assert_eq!(back, volume);
        assert_eq!(statistics, volume.statistics());
    }

    #[test]
    fn broken_streams_are_refused() {
        let volume = volume();
        let mut incoming = Incoming::new(11);
        assert!(incoming.append(8, |_| ()).is_ok());
        assert!(incoming.append(4, |_| ()).is_err(), "over the limit");
        let mut incoming = Incoming::new(u64::MAX);
        incoming.append(8, |_| ()).expect("room");
        let err = incoming.finish(finished(&volume, None)).unwrap_err();
        assert!(err.contains("call for 12 voxels"), "{err}");
        let mut incoming = Incoming::new(u64::MAX);
        incoming.append(4, |_| ()).expect("room");
        let err = incoming
            .finish(finished(&volume, Some(vec![0, 0, 0])))
            .unwrap_err();
        assert!(err.contains("do not fit"), "{err}");
    }
}
