// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::borrow::Cow;

use crate::ReadError;

/// A set of named files a scan is opened from. Readers ask for bytes one file at a
/// time, so a source can read lazily (from disk natively, from `Blob`s in a Web Worker)
/// and a decode never has to hold every file and the volume at once.
pub trait FileSource {
    /// Number of files.
    fn count(&self) -> usize;
    /// Display name of file `index` (a path or a file name); used in messages.
    fn name(&self, index: usize) -> &str;
    /// Size in bytes of file `index`, known without reading it.
    fn size(&self, index: usize) -> u64;
    /// All bytes of file `index`.
    fn read(&self, index: usize) -> Result<Cow<'_, [u8]>, ReadError>;
    /// A file named `sibling` that sits beside file `index` (the `.raw` of an `.mhd`).
    /// By default it is looked up by base name among the source's own files.
    fn read_sibling(&self, index: usize, sibling: &str) -> Result<Cow<'_, [u8]>, ReadError> {
        let wanted = base_name(sibling);
        (0..self.count())
            .find(|&i| base_name(self.name(i)) == wanted)
            .ok_or_else(|| {
                ReadError::malformed(
                    self.name(index),
                    format!("its data file `{sibling}` was not given alongside it"),
                )
            })
            .and_then(|i| self.read(i))
    }
}

/// The last component of a `/`- or `\`-separated path.
pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Lower-cased file name, for extension checks.
pub(crate) fn lower_name(path: &str) -> String {
    base_name(path).to_ascii_lowercase()
}

/// Files already in memory: tests, unpacked zips, and the browser's drop.
#[derive(Debug, Default, Clone)]
pub struct MemoryFiles {
    files: Vec<(String, Vec<u8>)>,
}

impl MemoryFiles {
    pub fn new(files: Vec<(String, Vec<u8>)>) -> Self {
        Self { files }
    }
    pub fn push(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.files.push((name.into(), bytes));
    }
}

impl FileSource for MemoryFiles {
    fn count(&self) -> usize {
        self.files.len()
    }
    fn name(&self, index: usize) -> &str {
        &self.files[index].0
    }
    fn size(&self, index: usize) -> u64 {
        self.files[index].1.len() as u64
    }
    fn read(&self, index: usize) -> Result<Cow<'_, [u8]>, ReadError> {
        Ok(Cow::Borrowed(&self.files[index].1))
    }
}

/// Files on a native file system, read on demand. Folders are walked recursively,
/// in name order, skipping hidden entries.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub struct DiskFiles {
    paths: Vec<std::path::PathBuf>,
    names: Vec<String>,
    sizes: Vec<u64>,
}

#[cfg(not(target_arch = "wasm32"))]
impl DiskFiles {
    /// Expands files and folders into the list of files they hold.
    pub fn from_paths<P: AsRef<std::path::Path>>(inputs: &[P]) -> Result<Self, ReadError> {
        let mut paths = Vec::new();
        for input in inputs {
            collect(input.as_ref(), &mut paths)?;
        }
        let mut sizes = Vec::with_capacity(paths.len());
        for path in &paths {
            let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
            sizes.push(meta.len());
        }
        let names = paths.iter().map(|p| p.display().to_string()).collect();
        Ok(Self {
            paths,
            names,
            sizes,
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn io_error(path: &std::path::Path, e: std::io::Error) -> ReadError {
    ReadError::Io {
        file: path.display().to_string(),
        reason: e.to_string(),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn collect(path: &std::path::Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), ReadError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| io_error(path, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'))
            })
            .collect();
        entries.sort();
        for entry in entries {
            collect(&entry, out)?;
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
impl FileSource for DiskFiles {
    fn count(&self) -> usize {
        self.paths.len()
    }
    fn name(&self, index: usize) -> &str {
        &self.names[index]
    }
    fn size(&self, index: usize) -> u64 {
        self.sizes[index]
    }
    fn read(&self, index: usize) -> Result<Cow<'_, [u8]>, ReadError> {
        let path = &self.paths[index];
        std::fs::read(path)
            .map(Cow::Owned)
            .map_err(|e| io_error(path, e))
    }
    fn read_sibling(&self, index: usize, sibling: &str) -> Result<Cow<'_, [u8]>, ReadError> {
        let dir = self.paths[index]
            .parent()
            .unwrap_or_else(|| std::path::Path::new("."));
        let path = dir.join(base_name(sibling));
        std::fs::read(&path).map(Cow::Owned).map_err(|e| {
            ReadError::malformed(
                self.name(index),
                format!("its data file `{}` could not be read: {e}", path.display()),
            )
        })
    }
}
