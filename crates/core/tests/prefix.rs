//! Headers read from file prefixes (as the browser worker reads them) give exactly what
//! reading whole files gives, on every fixture and every malformed input, whatever the
//! prefix length; and with the default prefix, CT headers need no whole-file read.

mod common;

use std::borrow::Cow;
use std::cell::Cell;
use std::path::PathBuf;

use nodulens_core::{DiskFiles, FileSource, OpenOptions, ReadError, Volume};

/// A source that serves prefixes as asked and counts whole-file reads.
struct Prefixed {
    inner: DiskFiles,
    /// Serve at most this many bytes as a prefix (`None`: as many as asked for).
    cap: Option<usize>,
    whole_reads: Cell<usize>,
}

impl FileSource for Prefixed {
    fn count(&self) -> usize {
        self.inner.count()
    }
    fn name(&self, index: usize) -> &str {
        self.inner.name(index)
    }
    fn size(&self, index: usize) -> u64 {
        self.inner.size(index)
    }
    fn read(&self, index: usize) -> Result<Cow<'_, [u8]>, ReadError> {
        self.whole_reads.set(self.whole_reads.get() + 1);
        self.inner.read(index)
    }
    fn read_sibling(&self, index: usize, sibling: &str) -> Result<Cow<'_, [u8]>, ReadError> {
        self.inner.read_sibling(index, sibling)
    }
    fn read_prefix(&self, index: usize, len: usize) -> Result<Cow<'_, [u8]>, ReadError> {
        let bytes = self.inner.read(index)?.into_owned();
        let len = self.cap.map_or(len, |cap| cap.min(len)).min(bytes.len());
        Ok(Cow::Owned(bytes[..len].to_vec()))
    }
}

fn open(source: &dyn FileSource) -> Result<Volume, ReadError> {
    nodulens_core::open(source, &OpenOptions::default(), &mut |_| true)
}

fn cases() -> Vec<PathBuf> {
    let mut cases = Vec::new();
    for dir in ["tests/fixtures/dicom", "tests/malformed"] {
        let dir = common::repo().join(dir);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("fixture folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_none_or(|e| e != "json"))
            .collect();
        entries.sort();
        cases.extend(entries);
    }
    cases
}

#[test]
fn prefixes_of_any_length_read_as_whole_files_do() {
    let cases = cases();
    assert!(cases.len() > 40, "fixtures missing: {}", cases.len());
    let mut failures = Vec::new();
    for path in &cases {
        let whole = DiskFiles::from_paths(std::slice::from_ref(path)).and_then(|s| open(&s));
        for cap in [0, 8, 131, 132, 200, 700, 1500, 4096, 32 * 1024] {
            let source = Prefixed {
                inner: DiskFiles::from_paths(std::slice::from_ref(path)).expect("listable"),
                cap: Some(cap),
                whole_reads: Cell::new(0),
            };
            let prefixed = open(&source);
            let same = match (&whole, &prefixed) {
                (Ok(a), Ok(b)) => a == b,
                (Err(a), Err(b)) => a.to_string() == b.to_string(),
                _ => false,
            };
            if !same {
                failures.push(format!(
                    "{} with {cap}-byte prefixes: {:?} vs whole {:?}",
                    path.display(),
                    prefixed.as_ref().map(|v| v.dims),
                    whole.as_ref().map(|v| v.dims)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ct_headers_come_from_prefixes_alone() {
    // Uncompressed and compressed series: the scan reads no whole file, so each file is
    // read whole once, to decode it.
    for fixture in ["explicit_le", "implicit_le", "jpeg2000_lossless", "rle"] {
        let dir = common::repo().join("tests/fixtures/dicom").join(fixture);
        let source = Prefixed {
            inner: DiskFiles::from_paths(&[dir]).expect("fixture"),
            cap: None,
            whole_reads: Cell::new(0),
        };
        let volume = open(&source).expect("opens");
        assert_eq!(
            source.whole_reads.get(),
            source.count(),
            "{fixture}: {} files read whole {} times",
            source.count(),
            source.whole_reads.get()
        );
        assert_eq!(volume.dims[2], source.count(), "{fixture}");
    }
}
