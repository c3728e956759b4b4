//! Series grouping and the one-pass stream: which series leads, which files to decode.

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use super::*;

/// A set of planes that can form one volume: same series, size and orientation.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) key: String,
    pub(super) first: FileHeader,
    pub(super) planes: Vec<Plane>,
    pub(super) files: usize,
}

pub(super) fn group_key(h: &FileHeader) -> String {
    let orientation = h
        .orientation
        .map(|o| {
            o.iter()
                .map(|v| format!("{:.3}", v))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    format!(
        "{}|{}x{}|{}",
        h.series_uid, h.layout.columns, h.layout.rows, orientation
    )
}

pub(super) fn describe(group: &Group) -> String {
    format!(
        "series {} ({}, {} image{}, {}×{}{})",
        group.first.series_uid,
        group.first.modality.as_deref().unwrap_or("no modality"),
        group.planes.len(),
        if group.planes.len() == 1 { "" } else { "s" },
        group.first.layout.columns,
        group.first.layout.rows,
        group
            .first
            .metadata
            .series_description
            .as_deref()
            .map(|d| format!(", \"{d}\""))
            .unwrap_or_default()
    )
}

/// Reads the DICOM images among `source`'s files into one volume: each file is read once,
/// in order, and decoded as it comes (see [`DicomStream`]).
pub(crate) fn read(
    source: &dyn FileSource,
    options: &OpenOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<Volume, ReadError> {
    let total = source.count();
    let mut stream = DicomStream::new(total, options);
    let mut slices = SliceBuffer::default();
    for file in 0..total {
        report(progress, Stage::Decoding, file, total)?;
        let bytes = source.read(file)?;
        stream.add_file(file, source.name(file), &bytes, &mut slices)?;
    }
    for file in stream.files_to_decode_late()? {
        let bytes = source.read(file)?;
        stream.decode_late(file, source.name(file), &bytes, &mut slices)?;
    }
    report(progress, Stage::Decoding, total, total)?;
    let (header, order) = stream.finish()?;
    let slice_len = header.dims[0].saturating_mul(header.dims[1]);
    let mut voxels = slices.voxels;
    arrange_slices(&mut voxels, &slices.lengths, &order, slice_len)
        .map_err(|reason| ReadError::NoImage(format!("internal: {reason}")))?;
    // The header's geometry was checked by `finish`; only the arrangement could fail here.
    Volume::new(header, voxels).map_err(|e| ReadError::NoImage(format!("internal: {e}")))
}

/// What [`DicomStream::add_file`] did with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Its slices went to the sink.
    Decoded,
    /// An image of another series than the leading one: keep its bytes at hand, in case
    /// [`DicomStream::files_to_decode_late`] names it.
    Deferred,
    /// Not an image, unreadable, or not decodable (noted for the warnings or the error).
    SetAside,
}

/// What became of one file given to [`DicomStream`].
#[derive(Debug)]
pub(super) enum FileState {
    /// Its frames are arrivals `first..first + count` (by frame number).
    Decoded { first: usize, clamped: u64 },
    /// An image of a series that was not the leading one when it came: decoded once the
    /// series is chosen, if it is this file's.
    Later,
    /// An image whose pixels could not be decoded: an error if its series is chosen.
    Failed(ReadError),
}

/// DICOM files decoded one at a time, in the order they come, without first reading every
/// header: the browser reads a file once and decodes it while later files are still being
/// read, and native reads each file once too. A file is decoded on arrival when its series
/// leads so far (CT first, then most slices: the rule that finally picks the series shown);
/// files of other series wait, and are decoded only if their series wins in the end. Once
/// every file is in, [`finish`](Self::finish) sorts the chosen series and says which
/// arrival goes in which slot ([`arrange_slices`]).
#[derive(Debug)]
pub struct DicomStream {
    pub(super) total_files: usize,
    pub(super) max_voxels: u64,
    pub(super) groups: BTreeMap<String, Group>,
    pub(super) names: BTreeMap<usize, String>,
    pub(super) states: BTreeMap<usize, FileState>,
    pub(super) skipped_not_dicom: Vec<String>,
    pub(super) skipped_no_image: Vec<String>,
    pub(super) first_error: Option<ReadError>,
    pub(super) errors: usize,
    pub(super) arrivals: usize,
    pub(super) decoded_voxels: u64,
}

/// Which group leads: CT before anything else, then most planes.
pub(super) fn leading_key(groups: &BTreeMap<String, Group>) -> Option<String> {
    groups
        .values()
        .max_by_key(|g| (g.first.modality.as_deref() == Some("CT"), g.planes.len()))
        .map(|g| g.key.clone())
}

impl DicomStream {
    /// A stream for `total_files` files (a hint for reserving memory).
    pub fn new(total_files: usize, options: &OpenOptions) -> Self {
        Self {
            total_files,
            max_voxels: options.max_voxels,
            groups: BTreeMap::new(),
            names: BTreeMap::new(),
            states: BTreeMap::new(),
            skipped_not_dicom: Vec::new(),
            skipped_no_image: Vec::new(),
            first_error: None,
            errors: 0,
            arrivals: 0,
            decoded_voxels: 0,
        }
    }

    /// Reads file `file` (all its `bytes`); decodes its slices into `sink` now if its series
    /// leads. Files that are not DICOM images are set aside with a warning, as in a folder;
    /// the error returned is only what stops the whole open (cancelling, the voxel limit).
    pub fn add_file(
        &mut self,
        file: usize,
        name: &str,
        bytes: &[u8],
        sink: &mut dyn ArrivalSink,
    ) -> Result<Added, ReadError> {
        let parsed = match parse(bytes, name, false) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                self.skipped_not_dicom.push(name.to_owned());
                return Ok(Added::SetAside);
            }
            Err(e) => {
                // A readable header with unreadable pixel data belongs to its series, and
                // is an error only if that series is shown.
                match parse(bytes, name, true) {
                    Ok(Some(header_only)) => {
                        if self.add_header(&header_only, file, name).is_some() {
                            self.states.insert(file, FileState::Failed(e));
                        }
                    }
                    _ => {
                        self.errors = self.errors.saturating_add(1);
                        self.first_error.get_or_insert(e);
                    }
                }
                return Ok(Added::SetAside);
            }
        };
        let Some(h) = self.add_header(&parsed, file, name) else {
            return Ok(Added::SetAside);
        };
        if leading_key(&self.groups).as_deref() == Some(group_key(&h).as_str()) {
            self.decode(file, name, &parsed, &h, sink)?;
            Ok(match self.states.get(&file) {
                Some(FileState::Decoded { .. }) => Added::Decoded,
                _ => Added::SetAside,
            })
        } else {
            self.states.insert(file, FileState::Later);
            Ok(Added::Deferred)
        }
    }

    /// Files whose series is the one shown but which were not decoded on arrival: read
    /// each again and give it to [`decode_late`](Self::decode_late).
    pub fn files_to_decode_late(&self) -> Result<Vec<usize>, ReadError> {
        let group = self.chosen()?;
        let mut files: Vec<usize> = group.planes.iter().map(|p| p.file).collect();
        files.dedup();
        Ok(files
            .into_iter()
            .filter(|f| matches!(self.states.get(f), Some(FileState::Later)))
            .collect())
    }

    /// Decodes a file [`files_to_decode_late`](Self::files_to_decode_late) named.
    pub fn decode_late(
        &mut self,
        file: usize,
        name: &str,
        bytes: &[u8],
        sink: &mut dyn ArrivalSink,
    ) -> Result<(), ReadError> {
        let parsed = parse(bytes, name, false)?
            .ok_or_else(|| ReadError::malformed(name, "no longer a DICOM file"))?;
        let h = header(parsed.dataset(), file, name)?
            .ok_or_else(|| ReadError::malformed(name, "no longer a DICOM image"))?;
        self.decode(file, name, &parsed, &h, sink)
    }

    /// The chosen series, sorted: its header (every warning included) and, for each slot
    /// along the slice normal, the arrival that fills it.
    pub fn finish(mut self) -> Result<(VolumeHeader, Vec<usize>), ReadError> {
        let group_key = self.chosen()?.key.clone();
        let group = self
            .groups
            .remove(&group_key)
            .ok_or_else(|| ReadError::NoImage("internal: chosen series vanished".into()))?;
        let mut warnings = Vec::new();
        let mut other_series: Vec<String> = self.groups.values().map(describe).collect();
        other_series.sort();
        if !other_series.is_empty() {
            warnings.push(Warning::new(
                WarningKind::OtherSeries,
                format!(
                    "{} other series found and not shown; showing the {} (most slices)",
                    other_series.len(),
                    if group.first.modality.as_deref() == Some("CT") {
                        "CT series"
                    } else {
                        "image series"
                    }
                ),
            ));
        }
        if group.first.modality.as_deref() != Some("CT") {
            warnings.push(Warning::new(
                WarningKind::NotHounsfield,
                format!(
                    "modality is {}, not CT: values may not be Hounsfield units",
                    group.first.modality.as_deref().unwrap_or("missing")
                ),
            ));
        }
        if self.errors > 0 {
            warnings.push(Warning::new(
                WarningKind::SkippedFiles,
                format!(
                    "{} file(s) could not be read and were skipped; first: {}",
                    self.errors,
                    self.first_error
                        .as_ref()
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                ),
            ));
        }
        if !self.skipped_not_dicom.is_empty() {
            warnings.push(Warning::new(
                WarningKind::SkippedFiles,
                format!(
                    "{} file(s) are not DICOM and were ignored (e.g. {})",
                    self.skipped_not_dicom.len(),
                    self.skipped_not_dicom[0]
                ),
            ));
        }
        if !self.skipped_no_image.is_empty() {
            warnings.push(Warning::new(
                WarningKind::SkippedFiles,
                format!(
                    "{} DICOM object(s) without images were ignored (e.g. {})",
                    self.skipped_no_image.len(),
                    self.skipped_no_image[0]
                ),
            ));
        }

        let geometry = arrange(&group, &mut warnings);
        let layout = &group.first.layout;
        let first_name = self
            .names
            .get(&group.planes[0].file)
            .cloned()
            .unwrap_or_default();
        ReadError::check_voxels(
            &first_name,
            (layout.rows as u64)
                .saturating_mul(layout.columns as u64)
                .saturating_mul(geometry.planes.len() as u64),
            self.max_voxels,
        )?;
        let mut order = Vec::with_capacity(geometry.planes.len());
        let mut clamped = 0u64;
        let mut counted = std::collections::BTreeSet::new();
        for plane in &geometry.planes {
            match self.states.get(&plane.file) {
                Some(FileState::Decoded { first, clamped: c }) => {
                    // A multi-frame file's clamp count is counted once.
                    if counted.insert(plane.file) {
                        clamped = clamped.saturating_add(*c);
                    }
                    order.push(first.saturating_add(plane.frame as usize));
                }
                Some(FileState::Failed(e)) => return Err(e.clone()),
                Some(FileState::Later) | None => {
                    return Err(ReadError::NoImage(format!(
                        "internal: {} was not decoded",
                        self.names.get(&plane.file).cloned().unwrap_or_default()
                    )));
                }
            }
        }
        warnings.extend(clamp_warning(clamped));
        warnings.extend(decoded_warnings(&group));
        let mut metadata = group.first.metadata.clone();
        metadata.other_series = other_series;
        metadata.slices = geometry.planes.iter().map(|p| p.source.clone()).collect();
        let header = VolumeHeader {
            format: Format::Dicom,
            dims: [layout.columns, layout.rows, geometry.planes.len()],
            spacing: geometry.spacing,
            origin: geometry.origin,
            direction: geometry.direction,
            units: IntensityUnits::Hounsfield,
            metadata,
            warnings,
        };
        header
            .validate()
            .map_err(|e| ReadError::invalid_volume(&first_name, &e))?;
        Ok((header, order))
    }

    /// The series to show: CT first, then most slices.
    pub(super) fn chosen(&self) -> Result<&Group, ReadError> {
        if let Some(group) = leading_key(&self.groups).and_then(|k| self.groups.get(&k)) {
            return Ok(group);
        }
        if let Some(e) = &self.first_error {
            return Err(e.clone());
        }
        let first = self
            .skipped_no_image
            .first()
            .or(self.skipped_not_dicom.first())
            .cloned()
            .unwrap_or_default();
        Err(ReadError::NoImage(if !self.skipped_no_image.is_empty() {
            format!(
                "{first}: a DICOM object without pixel data (a report or index, not a CT image)"
            )
        } else {
            format!("{first}: not a DICOM file, nor any other supported scan format")
        }))
    }

    /// Adds a parsed file's header to its group; `None` (with the reason noted) if the file
    /// is not an image or its header is unusable.
    pub(super) fn add_header(
        &mut self,
        parsed: &Parsed,
        file: usize,
        name: &str,
    ) -> Option<FileHeader> {
        match header(parsed.dataset(), file, name) {
            Ok(Some(h)) => {
                let key = group_key(&h);
                let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
                    key,
                    first: h.clone(),
                    planes: Vec::new(),
                    files: 0,
                });
                group.planes.extend(h.planes.iter().cloned());
                group.files = group.files.saturating_add(1);
                self.names.insert(file, name.to_owned());
                Some(h)
            }
            Ok(None) => {
                self.skipped_no_image.push(name.to_owned());
                None
            }
            Err(e) => {
                self.errors = self.errors.saturating_add(1);
                self.first_error.get_or_insert(e);
                None
            }
        }
    }

    /// Decodes every frame of a file into `sink`, in frame order.
    pub(super) fn decode(
        &mut self,
        file: usize,
        name: &str,
        parsed: &Parsed,
        h: &FileHeader,
        sink: &mut dyn ArrivalSink,
    ) -> Result<(), ReadError> {
        let slice_len = (h.layout.rows as u64).saturating_mul(h.layout.columns as u64);
        let voxels = slice_len.saturating_mul(h.planes.len() as u64);
        ReadError::check_voxels(
            name,
            self.decoded_voxels.saturating_add(voxels),
            self.max_voxels,
        )?;
        if self.decoded_voxels == 0 {
            // Most folders are one series of one frame per file.
            let files = self.total_files.max(1) as u64;
            let expected = voxels.saturating_mul(files).min(self.max_voxels);
            sink.expect(usize::try_from(expected).unwrap_or(usize::MAX));
        }
        self.decoded_voxels = self.decoded_voxels.saturating_add(voxels);
        let mut decoder = match FrameDecoder::new(parsed, name, &h.layout) {
            Ok(decoder) => decoder,
            Err(e) => {
                self.states.insert(file, FileState::Failed(e));
                return Ok(());
            }
        };
        let first = self.arrivals;
        let mut clamped = 0u64;
        for plane in &h.planes {
            let out = sink.slice(h.layout.columns, h.layout.rows)?;
            let decoded = decoder.decode(plane, out, &mut clamped);
            sink.done()?;
            self.arrivals = self.arrivals.saturating_add(1);
            if let Err(e) = decoded {
                self.states.insert(file, FileState::Failed(e));
                return Ok(());
            }
        }
        self.states
            .insert(file, FileState::Decoded { first, clamped });
        Ok(())
    }
}

pub(super) fn decoded_warnings(group: &Group) -> Vec<Warning> {
    let mut warnings = Vec::new();
    if group.first.pixel_spacing.is_none() {
        warnings.push(Warning::new(
            WarningKind::AssumedGeometry,
            "no Pixel Spacing: 1 mm assumed in-plane".to_owned(),
        ));
    }
    warnings
}
