//! Training and evaluation data: the LIDC crops (`lidc-crops/`), the whole scans (`scans/`), the
//! split by patient, hard negatives from a simple blob detector, and augmented batches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nodulens_core::preprocess::{self, PatchTransform, PreprocessConfig};
use nodulens_core::{DiskFiles, OpenOptions, Volume};
use nodulens_model::ModelKind;
use serde::{Deserialize, Serialize};

use crate::rng::{Rng, hash};

/// Train / validation / test, decided per patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn parse(text: &str) -> anyhow::Result<Option<Split>> {
        Ok(match text {
            "train" => Some(Split::Train),
            "val" => Some(Split::Val),
            "test" => Some(Split::Test),
            "all" => None,
            other => bail!("unknown split {other:?} (train, val, test or all)"),
        })
    }
}

/// Patients held out of every model's training and tuning (always test): LIDC-IDRI-0476's
/// whole scan and six reference nodules are the one honest whole-scan figure we have.
pub const HELD_OUT_PATIENTS: [&str; 1] = ["LIDC-IDRI-0476"];

/// Fractions of patients in train and validation; the rest is test.
pub const TRAIN_FRACTION: f64 = 0.65;
pub const VAL_FRACTION: f64 = 0.15;

/// The scans' patients, dealt to the splits in a seeded order: two to train, one to validation,
/// one to test, so each split has whole-scan negatives.
fn scan_splits(scans: &[String], seed: u64) -> HashMap<String, Split> {
    let mut names: Vec<String> = scans
        .iter()
        .filter(|s| !HELD_OUT_PATIENTS.contains(&s.as_str()))
        .cloned()
        .collect();
    names.sort();
    Rng::derive(seed, "scans").shuffle(&mut names);
    let deal = [Split::Train, Split::Train, Split::Val, Split::Test];
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, deal[i % deal.len()]))
        .collect()
}

/// The split of a patient: fixed by the seed and the patient id alone (so adding patients never
/// moves the others), except the patients of the whole scans, dealt by [`scan_splits`].
pub fn split_of(patient: &str, seed: u64, scan_splits: &HashMap<String, Split>) -> Split {
    if HELD_OUT_PATIENTS.contains(&patient) {
        return Split::Test;
    }
    if let Some(s) = scan_splits.get(patient) {
        return *s;
    }
    let u = patient_unit(patient, seed);
    if u < TRAIN_FRACTION {
        Split::Train
    } else if u < TRAIN_FRACTION + VAL_FRACTION {
        Split::Val
    } else {
        Split::Test
    }
}

/// A patient's uniform number in [0, 1), fixed by the seed and the patient id alone.
fn patient_unit(patient: &str, seed: u64) -> f64 {
    let u = (hash(patient) ^ Rng::new(seed).next_u64()) as f64 / u64::MAX as f64;
    Rng::new(u.to_bits()).unit()
}

/// Share of each fold's training patients kept for validation (early stopping, threshold).
pub const FOLD_VAL_FRACTION: f64 = 0.2;

/// Fold `index` of a `count`-fold split by patient (`nodulens train --fold K/N`): that fold's
/// patients are test, a fifth of the others validation, the rest train. Every patient, the
/// held-out one included, is test in exactly one fold, so the folds' test predictions cover
/// every case once (`eval-malignancy --out-of-fold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    pub index: usize,
    pub count: usize,
}

impl Fold {
    /// `K/N`, with 0 ≤ K < N and 2 ≤ N ≤ 20.
    pub fn parse(text: &str) -> Result<Fold, String> {
        let (k, n) = text.split_once('/').ok_or("expected K/N, e.g. 0/5")?;
        let index: usize = k.trim().parse().map_err(|e| format!("{k:?}: {e}"))?;
        let count: usize = n.trim().parse().map_err(|e| format!("{n:?}: {e}"))?;
        if !(2..=20).contains(&count) || index >= count {
            return Err(format!(
                "fold {index}/{count}: need 0 ≤ K < N and 2 ≤ N ≤ 20"
            ));
        }
        Ok(Fold { index, count })
    }

    pub fn split_of(&self, patient: &str, seed: u64) -> Split {
        let u = patient_unit(patient, seed) * self.count as f64;
        let fold = (u as usize).min(self.count - 1);
        if fold == self.index {
            Split::Test
        } else if u.fract() < FOLD_VAL_FRACTION {
            Split::Val
        } else {
            Split::Train
        }
    }
}

/// One row of `nodules.csv`.
#[derive(Debug, Clone)]
pub struct NoduleRow {
    pub patient: String,
    pub image: String,
    pub mask: String,
    pub center: [f64; 3],
    pub diameter_mm: f64,
    pub malignancy: u8,
    /// The readers' texture rating (1–2 ground glass, 3–4 part-solid, 5 solid), if given.
    pub texture: Option<u8>,
    /// The readers' calcification rating (1–5 a pattern, 6 absent), if given.
    pub calcification: Option<u8>,
    /// The readers' lobulation and spiculation ratings (1 none … 5 marked), if given.
    pub lobulation: Option<u8>,
    pub spiculation: Option<u8>,
    /// The readers' margin (1 poorly defined … 5 sharp), sphericity (1 linear … 5 round) and
    /// subtlety (1 extremely subtle … 5 obvious) ratings, if given.
    pub margin: Option<u8>,
    pub sphericity: Option<u8>,
    pub subtlety: Option<u8>,
}

/// Auxiliary training targets of the malignancy model (multi-task, `train --aux-weight`):
/// what readers rate beside malignancy, each scaled to [0, 1]. Training targets only, never
/// an input.
pub const AUX_TARGETS: [&str; 8] = [
    "calcified",
    "lobulation",
    "spiculation",
    "margin",
    "sphericity",
    "subtlety",
    "texture",
    "diameter",
];

impl NoduleRow {
    /// [`AUX_TARGETS`] of this nodule (`None` where not rated).
    pub fn aux_targets(&self) -> [Option<f32>; AUX_TARGETS.len()] {
        let scale = |r: Option<u8>| {
            r.filter(|r| (1..=5).contains(r))
                .map(|r| f32::from(r - 1) / 4.0)
        };
        // Calcification 1–5 name a pattern, 6 is none.
        let calcified = self
            .calcification
            .filter(|c| (1..=6).contains(c))
            .map(|c| if c == 6 { 0.0 } else { 1.0 });
        // 3 mm → 0, 30 mm → 1, on a log scale.
        let diameter = (self.diameter_mm > 0.0)
            .then(|| ((self.diameter_mm / 3.0).ln() / 10f64.ln()).clamp(0.0, 1.0) as f32);
        [
            calcified,
            scale(self.lobulation),
            scale(self.spiculation),
            scale(self.margin),
            scale(self.sphericity),
            scale(self.subtlety),
            scale(self.texture),
            diameter,
        ]
    }
}

/// Reads `nodules.csv` (plain CSV, no quoted commas), by column name.
pub fn read_nodules_csv(dir: &Path) -> anyhow::Result<Vec<NoduleRow>> {
    let path = dir.join("nodules.csv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .context("nodules.csv is empty")?
        .split(',')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| format!("nodules.csv has no column {name}"))
    };
    let (c_pat, c_img, c_mask) = (col("patient_id")?, col("image")?, col("mask")?);
    let (cx, cy, cz) = (col("coordX")?, col("coordY")?, col("coordZ")?);
    let (c_diam, c_mal) = (col("diameter_mm")?, col("malignancy")?);
    // Optional ratings: read where the table has them.
    let (c_texture, c_calcification) = (col("texture").ok(), col("calcification").ok());
    let (c_lobulation, c_spiculation) = (col("lobulation").ok(), col("spiculation").ok());
    let (c_margin, c_sphericity, c_subtlety) = (
        col("margin").ok(),
        col("sphericity").ok(),
        col("subtlety").ok(),
    );
    let rating = |f: &[&str], c: Option<usize>| -> Option<u8> {
        let v: f64 = f.get(c?)?.trim().parse().ok()?;
        (v.is_finite() && (0.0..=255.0).contains(&v)).then(|| v.round() as u8)
    };
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let get = |c: usize| {
            f.get(c)
                .map(|s| s.trim())
                .with_context(|| format!("nodules.csv line {}: too few fields", n + 2))
        };
        let num = |c: usize| -> anyhow::Result<f64> {
            let s = get(c)?;
            let v: f64 = s
                .parse()
                .with_context(|| format!("nodules.csv line {}: {s:?} is not a number", n + 2))?;
            if !v.is_finite() {
                bail!("nodules.csv line {}: {s:?} is not finite", n + 2);
            }
            Ok(v)
        };
        let malignancy = num(c_mal)?;
        if !(1.0..=5.0).contains(&malignancy) {
            bail!(
                "nodules.csv line {}: malignancy {malignancy} not in 1..5",
                n + 2
            );
        }
        rows.push(NoduleRow {
            patient: get(c_pat)?.to_string(),
            image: get(c_img)?.to_string(),
            mask: get(c_mask)?.to_string(),
            center: [num(cx)?, num(cy)?, num(cz)?],
            diameter_mm: num(c_diam)?,
            malignancy: malignancy.round() as u8,
            texture: rating(&f, c_texture),
            calcification: rating(&f, c_calcification),
            lobulation: rating(&f, c_lobulation),
            spiculation: rating(&f, c_spiculation),
            margin: rating(&f, c_margin),
            sphericity: rating(&f, c_sphericity),
            subtlety: rating(&f, c_subtlety),
        });
    }
    Ok(rows)
}

/// Opens one file or folder with the core readers (as the app does).
pub fn open_volume(path: &Path) -> anyhow::Result<Volume> {
    let source = DiskFiles::from_paths(&[path])?;
    let volume = nodulens_core::open(&source, &OpenOptions::default(), &mut |_| true)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(volume)
}

/// Where a sample comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A nodule crop, centred on the nodule.
    Nodule,
    /// A crop, centred away from its nodule.
    CropBackground,
    /// A whole scan: a blob-detector candidate or a lung point, away from every mark.
    ScanCandidate,
}

#[derive(Debug, Clone)]
pub struct Sample {
    /// Index into [`Dataset::volumes`].
    pub volume: usize,
    pub center: [f64; 3],
    pub label: bool,
    pub patient: String,
    pub split: Split,
    /// Image file (crops) or scan name and point (scans).
    pub name: String,
    pub diameter_mm: f64,
    pub source: Source,
    /// The nodule's [`AUX_TARGETS`] (malignancy samples; `None` elsewhere).
    pub aux: Option<[Option<f32>; AUX_TARGETS.len()]>,
    /// A training target between the classes (an indeterminate malignancy rating), used
    /// instead of `label` by the loss; `None` for every sample that is scored.
    pub soft_target: Option<f32>,
}

pub struct Dataset {
    pub volumes: Vec<Volume>,
    pub samples: Vec<Sample>,
}

impl Dataset {
    pub fn indices(&self, split: Option<Split>) -> Vec<usize> {
        (0..self.samples.len())
            .filter(|&i| split.is_none_or(|s| self.samples[i].split == s))
            .collect()
    }

    /// Samples of one class (those with a soft target belong to neither).
    pub fn count(&self, split: Option<Split>, label: bool) -> usize {
        self.samples
            .iter()
            .filter(|s| {
                s.label == label && s.soft_target.is_none() && split.is_none_or(|sp| s.split == sp)
            })
            .count()
    }
}

/// `<data>/lidc-crops` when `data` is the shared data root, else `data` itself.
pub fn crops_dir(data: &Path) -> PathBuf {
    if data.join("lidc-crops/nodules.csv").is_file() {
        data.join("lidc-crops")
    } else {
        data.to_path_buf()
    }
}

/// `<data>/scans` when present (the shared data root), else `<data>/../scans`.
pub fn scans_dir(data: &Path) -> Option<PathBuf> {
    [data.join("scans"), data.join("../scans")]
        .into_iter()
        .find(|p| p.is_dir())
}

/// Names of the whole scans (folders with `dicom.tar.xz`).
pub fn scan_names(scans: Option<&Path>) -> Vec<String> {
    let Some(dir) = scans else { return Vec::new() };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("dicom.tar.xz").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Options of the dataset builder.
pub struct BuildOptions<'a> {
    pub kind: ModelKind,
    pub data: &'a Path,
    pub seed: u64,
    /// Where whole scans are unpacked (`<cache>/<scan>/dicom`).
    pub cache: &'a Path,
    /// Whole-scan negatives per scan (nodule model).
    pub negatives_per_scan: usize,
    /// Keep only these splits' samples (`None`: all).
    pub only: Option<Split>,
    /// A k-fold split instead of the seeded train / validation / test one.
    pub fold: Option<Fold>,
    /// Print what is loaded.
    pub verbose: bool,
    /// Malignancy: train on the nodules rated 3 (indeterminate) too, with this target between
    /// benign (0) and malignant (1). They are never validation or test cases.
    pub indeterminate_target: Option<f32>,
}

/// Builds the samples of one task.
///
/// - malignancy: every crop rated 1, 2 (benign) or 4, 5 (malignant), centred on its nodule;
///   with [`BuildOptions::indeterminate_target`], the training patients' crops rated 3 too.
/// - nodule: every crop (positive), one point of each crop away from its nodule (negative), and
///   the whole scans' pipeline candidates away from every mark (negatives).
///
/// Every nodule and every scan candidate is segmented and cut to its deterministic context
/// ([`nodulens_detect::Site`], [`nodulens_core::preprocess::nodule_context`]) exactly as the
/// detection pipeline cuts it, so that training and serving see the same patches.
pub fn build(options: &BuildOptions) -> anyhow::Result<Dataset> {
    let crops = crops_dir(options.data);
    let rows = read_nodules_csv(&crops)?;
    let scans_root = scans_dir(options.data);
    let scans = scan_names(scans_root.as_deref());
    let dealt = scan_splits(&scans, options.seed);
    let mut ds = Dataset {
        volumes: Vec::new(),
        samples: Vec::new(),
    };
    let mut rng = Rng::derive(options.seed, "negatives");
    for row in &rows {
        let split = match options.fold {
            Some(fold) => fold.split_of(&row.patient, options.seed),
            None => split_of(&row.patient, options.seed, &dealt),
        };
        if options.only.is_some_and(|s| s != split) {
            continue;
        }
        let soft_target =
            (options.kind == ModelKind::Malignancy && row.malignancy == 3 && split == Split::Train)
                .then_some(options.indeterminate_target)
                .flatten();
        let include = match options.kind {
            ModelKind::Malignancy => row.malignancy != 3 || soft_target.is_some(),
            ModelKind::Nodule => true,
        };
        if !include {
            continue;
        }
        let volume = open_volume(&crops.join(&row.image))?;
        let label = match options.kind {
            ModelKind::Malignancy => row.malignancy >= 4,
            ModelKind::Nodule => true,
        };
        let v = ds.volumes.len();
        if options.kind == ModelKind::Nodule {
            let mask = open_volume(&crops.join(&row.mask)).ok();
            if let Some(p) = background_point(&volume, mask.as_ref(), row, &mut rng) {
                ds.samples.push(Sample {
                    volume: v,
                    center: p,
                    label: false,
                    patient: row.patient.clone(),
                    split,
                    name: format!("{}@background", row.image),
                    diameter_mm: 0.0,
                    source: Source::CropBackground,
                    aux: None,
                    soft_target: None,
                });
            }
        }
        ds.volumes.push(volume);
        // The nodule as the pipeline sees it: its own segmentation's centre and context (the
        // whole crop where it cannot be segmented).
        let (center, volume) = match nodule_site(&ds.volumes[v], row) {
            Some((center, context)) => {
                ds.volumes.push(context);
                (center, ds.volumes.len() - 1)
            }
            None => (row.center, v),
        };
        ds.samples.push(Sample {
            volume,
            center,
            label,
            patient: row.patient.clone(),
            split,
            name: row.image.clone(),
            diameter_mm: row.diameter_mm,
            source: Source::Nodule,
            aux: (options.kind == ModelKind::Malignancy).then(|| row.aux_targets()),
            soft_target,
        });
    }
    if options.verbose {
        eprintln!("{} crops read", ds.volumes.len());
    }
    if options.kind == ModelKind::Nodule
        && let Some(root) = scans_root
    {
        for scan in &scans {
            let split = match options.fold {
                Some(fold) => fold.split_of(scan, options.seed),
                None => split_of(scan, options.seed, &dealt),
            };
            if options.only.is_some_and(|s| s != split) {
                continue;
            }
            let dicom = unpack_scan(&root, scan, options.cache)?;
            let volume = open_volume(&dicom)?;
            let marks = read_marks(&root.join(scan).join("annotations.json"))?;
            let negatives = mine_negatives(&volume, &marks, options.negatives_per_scan);
            if options.verbose {
                eprintln!("{scan}: {} negatives ({split:?})", negatives.len());
            }
            for site in negatives {
                let p = site.center_mm;
                let Some(crop) = preprocess::nodule_context(&volume, p, site.measurement.slices)
                else {
                    continue;
                };
                ds.samples.push(Sample {
                    volume: ds.volumes.len(),
                    center: p,
                    label: false,
                    patient: scan.clone(),
                    split,
                    name: format!("{scan}@{:.1},{:.1},{:.1}", p[0], p[1], p[2]),
                    diameter_mm: 0.0,
                    source: Source::ScanCandidate,
                    aux: None,
                    soft_target: None,
                });
                ds.volumes.push(crop);
            }
        }
    }
    if ds.samples.is_empty() {
        bail!("no samples found under {}", options.data.display());
    }
    Ok(ds)
}

/// A point of a crop away from its nodule: at least the radius + 4 mm from the centre and off
/// the mask. `None` when the crop has no such point.
fn background_point(
    volume: &Volume,
    mask: Option<&Volume>,
    row: &NoduleRow,
    rng: &mut Rng,
) -> Option<[f64; 3]> {
    let min_mm = row.diameter_mm / 2.0 + 4.0;
    for _ in 0..200 {
        let ijk = [
            rng.below(volume.dims()[0]),
            rng.below(volume.dims()[1]),
            rng.below(volume.dims()[2]),
        ];
        let p = volume.voxel_to_world([ijk[0] as f64, ijk[1] as f64, ijk[2] as f64]);
        let d = nodulens_detect::distance_mm(p, row.center);
        let on_mask = mask
            .filter(|m| m.dims() == volume.dims())
            .and_then(|m| m.get(ijk[0], ijk[1], ijk[2]))
            .is_some_and(|v| v != 0);
        if d >= min_mm && !on_mask {
            return Some(p);
        }
    }
    None
}

/// A region that no negative may come near: a marked nodule (any number of readers) or a box.
#[derive(Debug, Clone)]
pub enum Mark {
    Sphere { center: [f64; 3], radius_mm: f64 },
    Box { min: [f64; 3], max: [f64; 3] },
}

impl Mark {
    fn distance(&self, p: [f64; 3]) -> f64 {
        match self {
            Mark::Sphere { center, radius_mm } => {
                nodulens_detect::distance_mm(p, *center) - radius_mm
            }
            Mark::Box { min, max } => {
                let d: Vec<f64> = (0..3)
                    .map(|a| (min[a] - p[a]).max(p[a] - max[a]).max(0.0))
                    .collect();
                (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
            }
        }
    }
}

/// A nodule of a scan's `annotations.json`.
#[derive(Debug, Clone)]
pub struct AnnotatedNodule {
    pub center_mm: [f64; 3],
    /// 10 mm where the file gives none.
    pub diameter_mm: f64,
    pub n_readers: Option<u64>,
    /// Marked by ≥ 3 readers (the LUNA16 rule).
    pub reference: bool,
}

/// A scan's `annotations.json`: its nodules and its tumour boxes (`[min, max]`, LPS mm).
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    pub nodules: Vec<AnnotatedNodule>,
    pub tumours: Vec<([f64; 3], [f64; 3])>,
}

/// Reads a scan's `annotations.json`.
pub fn read_annotations(path: &Path) -> anyhow::Result<Annotations> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let triple = |v: &serde_json::Value| -> Option<[f64; 3]> {
        let a = v.as_array()?;
        Some([
            a.first()?.as_f64()?,
            a.get(1)?.as_f64()?,
            a.get(2)?.as_f64()?,
        ])
    };
    let mut annotations = Annotations::default();
    for n in json["nodules"].as_array().into_iter().flatten() {
        let center_mm = triple(&n["center_mm"])
            .with_context(|| format!("{}: nodule without center_mm", path.display()))?;
        annotations.nodules.push(AnnotatedNodule {
            center_mm,
            diameter_mm: n["diameter_mm"].as_f64().unwrap_or(10.0),
            n_readers: n["n_readers"].as_u64(),
            reference: n["reference"].as_bool().unwrap_or(false),
        });
    }
    for t in json["tumors"].as_array().into_iter().flatten() {
        if let (Some(min), Some(max)) = (triple(&t["box_min_mm"]), triple(&t["box_max_mm"])) {
            annotations.tumours.push((min, max));
        }
    }
    Ok(annotations)
}

/// Every mark of a scan's `annotations.json`.
pub fn read_marks(path: &Path) -> anyhow::Result<Vec<Mark>> {
    let annotations = read_annotations(path)?;
    let spheres = annotations.nodules.iter().map(|n| Mark::Sphere {
        center: n.center_mm,
        radius_mm: n.diameter_mm / 2.0,
    });
    let boxes = annotations
        .tumours
        .iter()
        .map(|&(min, max)| Mark::Box { min, max });
    Ok(spheres.chain(boxes).collect())
}

/// Unpacks `<scans>/<scan>/dicom.tar.xz` once into `<cache>/<scan>/dicom` (with `tar`).
pub fn unpack_scan(scans: &Path, scan: &str, cache: &Path) -> anyhow::Result<PathBuf> {
    let dest = cache.join(scan);
    let dicom = dest.join("dicom");
    if dicom.is_dir() && std::fs::read_dir(&dicom)?.next().is_some() {
        return Ok(dicom);
    }
    std::fs::create_dir_all(&dest)?;
    let archive = scans.join(scan).join("dicom.tar.xz");
    let status = std::process::Command::new("tar")
        .arg("-xJf")
        .arg(&archive)
        .arg("-C")
        .arg(&dest)
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar -xJf {} failed", archive.display());
    }
    Ok(dicom)
}

/// Hard negatives of a whole scan: the detection pipeline's own sites (lung mask, candidates,
/// segmentation; strongest candidates first) that lie at least 10 mm beyond every mark (any
/// number of readers) — what the pipeline will ask the nodule model about. Deterministic.
pub fn mine_negatives(volume: &Volume, marks: &[Mark], count: usize) -> Vec<nodulens_detect::Site> {
    let mask = nodulens_detect::lung_mask(volume);
    let budget = count.max(nodulens_detect::MAX_CANDIDATES);
    let found = nodulens_detect::candidates_up_to(volume, &mask, budget);
    nodulens_detect::sites(volume, &mask, &found)
        .into_iter()
        .filter(|s| marks.iter().all(|m| m.distance(s.center_mm) > 10.0))
        .take(count)
        .collect()
}

/// A crop's nodule as the pipeline would see it: the centre of our own segmentation near the
/// table's centre, and the deterministic context around it.
fn nodule_site(crop: &Volume, row: &NoduleRow) -> Option<([f64; 3], Volume)> {
    let site = nodulens_detect::Site::at(crop, None, row.center, row.diameter_mm / 2.0 + 2.5)?;
    let context = preprocess::nodule_context(crop, site.center_mm, site.measurement.slices)?;
    Some((site.center_mm, context))
}

/// Augmentation ranges at strength 1 for each task (scale changes apparent size, the main cue of
/// malignancy, so that task gets a narrower range).
pub fn random_transform(
    rng: &mut Rng,
    kind: ModelKind,
    strength: f64,
    sample: &Sample,
) -> PatchTransform {
    if strength <= 0.0 {
        return PatchTransform::default();
    }
    let s = strength;
    let theta = rng.uniform(0.0, std::f64::consts::TAU);
    let tilt_x = rng.uniform(-0.25, 0.25) * s;
    let tilt_y = rng.uniform(-0.25, 0.25) * s;
    let flips = [
        if rng.coin() { -1.0 } else { 1.0 },
        if rng.coin() { -1.0 } else { 1.0 },
        if rng.coin() { -1.0 } else { 1.0 },
    ];
    let rz = rot_z(theta);
    let rx = rot_x(tilt_x);
    let ry = rot_y(tilt_y);
    let mut r = mat_mul(&mat_mul(&rz, &rx), &ry);
    for row in 0..3 {
        for (col, f) in flips.iter().enumerate() {
            r[3 * row + col] *= f;
        }
    }
    let (scale_range, shift_mm) = match (kind, sample.source) {
        (ModelKind::Malignancy, _) => (0.05, 1.0),
        (ModelKind::Nodule, Source::Nodule) => (0.15, (sample.diameter_mm * 0.25).clamp(1.0, 3.0)),
        (ModelKind::Nodule, _) => (0.15, 2.0),
    };
    let shift = loop {
        let v = [
            rng.uniform(-1.0, 1.0),
            rng.uniform(-1.0, 1.0),
            rng.uniform(-1.0, 1.0),
        ];
        if v[0] * v[0] + v[1] * v[1] + v[2] * v[2] <= 1.0 {
            break v;
        }
    };
    PatchTransform {
        rotation: r,
        scale: 1.0 + rng.uniform(-scale_range, scale_range) * s,
        shift_mm: shift.map(|v| v * shift_mm * s),
        intensity_gain: (1.0 + rng.uniform(-0.05, 0.05) * s) as f32,
        intensity_offset: (rng.uniform(-30.0, 30.0) * s) as f32,
    }
}

fn rot_z(t: f64) -> [f64; 9] {
    let (s, c) = t.sin_cos();
    [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0]
}
fn rot_x(t: f64) -> [f64; 9] {
    let (s, c) = t.sin_cos();
    [1.0, 0.0, 0.0, 0.0, c, -s, 0.0, s, c]
}
fn rot_y(t: f64) -> [f64; 9] {
    let (s, c) = t.sin_cos();
    [c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c]
}
fn mat_mul(a: &[f64; 9], b: &[f64; 9]) -> [f64; 9] {
    std::array::from_fn(|idx| {
        let (r, c) = (idx / 3, idx % 3);
        (0..3).map(|k| a[3 * r + k] * b[3 * k + c]).sum()
    })
}

/// Patches of `indices` (augmented when `augment` is given) and their labels.
pub fn batch(
    ds: &Dataset,
    indices: &[usize],
    config: &PreprocessConfig,
    augment: Option<(&mut Rng, ModelKind, f64)>,
) -> (Vec<f32>, Vec<f32>) {
    let mut patches = Vec::with_capacity(indices.len() * config.patch_len());
    let mut labels = Vec::with_capacity(indices.len());
    let mut augment = augment;
    for &i in indices {
        let s = &ds.samples[i];
        let t = match augment.as_mut() {
            Some((rng, kind, strength)) => random_transform(rng, *kind, *strength, s),
            None => PatchTransform::default(),
        };
        preprocess::extract_views_into(&ds.volumes[s.volume], s.center, config, &t, &mut patches);
        labels.push(s.soft_target.unwrap_or(if s.label { 1.0 } else { 0.0 }));
    }
    (patches, labels)
}

/// The [`AUX_TARGETS`] of `indices`, row by row, and where each is known (1) or not (0).
pub fn aux_batch(ds: &Dataset, indices: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let mut values = Vec::with_capacity(indices.len() * AUX_TARGETS.len());
    let mut mask = Vec::with_capacity(values.capacity());
    for &i in indices {
        let targets = ds.samples[i].aux.unwrap_or([None; AUX_TARGETS.len()]);
        for t in targets {
            values.push(t.unwrap_or(0.0));
            mask.push(if t.is_some() { 1.0 } else { 0.0 });
        }
    }
    (values, mask)
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_patient_is_test_in_exactly_one_fold() {
        let patients: Vec<String> = (0..400).map(|i| format!("LIDC-IDRI-{i:04}")).collect();
        let folds: Vec<super::Fold> = (0..5)
            .map(|k| super::Fold::parse(&format!("{k}/5")).expect("fold"))
            .collect();
        let mut per_fold = [0usize; 5];
        for p in &patients {
            let tests: Vec<usize> = (0..5)
                .filter(|&k| folds[k].split_of(p, 42) == Split::Test)
                .collect();
            assert_eq!(tests.len(), 1, "{p}");
            per_fold[tests[0]] += 1;
        }
        assert!(
            per_fold.iter().all(|&n| (50..=110).contains(&n)),
            "{per_fold:?}"
        );
        let val = patients
            .iter()
            .filter(|p| folds[0].split_of(p, 42) == Split::Val)
            .count();
        assert!(
            (40..=100).contains(&val),
            "{val} validation patients in fold 0"
        );
        assert!(super::Fold::parse("5/5").is_err() && super::Fold::parse("1/1").is_err());
    }

    use super::*;

    #[test]
    fn split_is_by_patient_stable_and_roughly_proportional() {
        let dealt = scan_splits(&["A".into(), "B".into(), "C".into(), "D".into()], 42);
        let mut counts = HashMap::new();
        for i in 0..2000 {
            let p = format!("LIDC-IDRI-{i:04}");
            let s = split_of(&p, 42, &dealt);
            assert_eq!(s, split_of(&p, 42, &dealt));
            *counts.entry(s).or_insert(0usize) += 1;
        }
        let frac = |s| counts[&s] as f64 / 2000.0;
        assert!((frac(Split::Train) - TRAIN_FRACTION).abs() < 0.05);
        assert!((frac(Split::Val) - VAL_FRACTION).abs() < 0.05);
        let mut scan_counts = HashMap::new();
        for s in dealt.values() {
            *scan_counts.entry(*s).or_insert(0) += 1;
        }
        assert_eq!(scan_counts[&Split::Train], 2);
        assert_eq!(scan_counts[&Split::Val], 1);
        assert_eq!(scan_counts[&Split::Test], 1);
        // Another seed moves patients.
        let moved = (0..200)
            .filter(|i| {
                let p = format!("P{i}");
                split_of(&p, 1, &dealt) != split_of(&p, 2, &dealt)
            })
            .count();
        assert!(moved > 20);
    }

    /// An 8 mm nodule of a training patient at the origin of volume 0.
    fn training_nodule() -> Sample {
        Sample {
            volume: 0,
            center: [0.0; 3],
            label: true,
            patient: "p".into(),
            split: Split::Train,
            name: "n".into(),
            diameter_mm: 8.0,
            source: Source::Nodule,
            aux: None,
            soft_target: None,
        }
    }

    #[test]
    fn an_indeterminate_sample_trains_on_its_soft_target_and_counts_in_neither_class() {
        let volume = preprocess::synthetic_volume([16, 16, 8], [1.0; 3], [0.0; 3], |_, _, _| -800);
        let sample = |label: bool, soft_target: Option<f32>| Sample {
            center: [8.0, 8.0, 4.0],
            label,
            soft_target,
            ..training_nodule()
        };
        let ds = Dataset {
            volumes: vec![volume],
            samples: vec![
                sample(true, None),
                sample(false, None),
                sample(false, Some(0.5)),
            ],
        };
        let (patches, labels) = batch(&ds, &[0, 1, 2], &PreprocessConfig::default(), None);
        assert_eq!(labels, vec![1.0, 0.0, 0.5]);
        assert_eq!(patches.len(), 3 * PreprocessConfig::default().patch_len());
        assert_eq!(ds.count(Some(Split::Train), true), 1);
        assert_eq!(ds.count(Some(Split::Train), false), 1);
    }

    #[test]
    fn augmentation_rotation_is_orthonormal() {
        let mut rng = Rng::new(1);
        let sample = training_nodule();
        for _ in 0..50 {
            let t = random_transform(&mut rng, ModelKind::Nodule, 1.0, &sample);
            let r = t.rotation;
            for a in 0..3 {
                for b in 0..3 {
                    let dot: f64 = (0..3).map(|k| r[3 * k + a] * r[3 * k + b]).sum();
                    let expected = if a == b { 1.0 } else { 0.0 };
                    assert!((dot - expected).abs() < 1e-9);
                }
            }
            assert!((0.85..=1.15).contains(&t.scale));
            assert!(t.shift_mm.iter().map(|v| v * v).sum::<f64>().sqrt() <= 2.0 + 1e-9);
        }
        assert_eq!(
            random_transform(&mut rng, ModelKind::Nodule, 0.0, &sample),
            PatchTransform::default()
        );
    }

    #[test]
    fn negatives_avoid_marks_and_lie_in_the_lungs() {
        // The pipeline's synthetic chest, one of its nodules marked.
        let vol = nodulens_detect::phantom::chest();
        let ([i, j, k], d) = nodulens_detect::phantom::NODULES[1];
        let marks = vec![Mark::Sphere {
            center: vol.voxel_to_world([i as f64, j as f64, k as f64]),
            radius_mm: d as f64 / 2.0,
        }];
        let sites = mine_negatives(&vol, &marks, 40);
        assert!(!sites.is_empty());
        assert_eq!(sites, mine_negatives(&vol, &marks, 40), "deterministic");
        let lungs = nodulens_detect::lung_mask(&vol);
        for site in &sites {
            let p = site.center_mm;
            assert!(marks[0].distance(p) > 10.0, "{p:?}");
            // The candidate is in the lungs; a segmentation reaching into the wall may move
            // the centroid of a mass against the pleura just outside.
            let c = site.candidate.center_mm;
            assert!(lungs.contains(&vol, c), "{c:?} outside the lungs");
        }
        // Each is cut to its own slices, as the pipeline cuts it.
        let s = &sites[0];
        let context = preprocess::nodule_context(&vol, s.center_mm, s.measurement.slices).unwrap();
        let slices = s.measurement.slices[1] - s.measurement.slices[0] + 1;
        let width = 2 * preprocess::CONTEXT_HALF_WIDTH + 1;
        assert!(context.dims()[0] <= width && context.dims()[2] == slices);
    }
}
