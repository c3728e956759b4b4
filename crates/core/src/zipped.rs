//! Zip archives (a zipped DICOM folder, or a zipped `.mhd`+`.raw` pair).

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::io::{Cursor, Read};

use crate::source::base_name;
use crate::{FileSource, MemoryFiles, OpenOptions, ReadError};

/// Unpacks every file entry of the given zips into memory, refusing archives whose
/// declared contents exceed what the voxel limit could ever need (a zip bomb).
pub(crate) fn unpack(
    source: &dyn FileSource,
    zips: &[usize],
    options: &OpenOptions,
) -> Result<MemoryFiles, ReadError> {
    // Headers and padding may double the voxel bytes; anything beyond that is refused.
    let budget = options
        .max_voxels
        .saturating_mul(4)
        .saturating_add(64 << 20);
    let mut total: u64 = 0;
    let mut out = MemoryFiles::default();
    for &index in zips {
        let name = source.name(index);
        let bytes = source.read(index)?;
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes.as_ref()))
            .map_err(|e| ReadError::malformed(name, format!("not a readable zip archive ({e})")))?;
        for entry_index in 0..archive.len() {
            let mut entry = archive
                .by_index(entry_index)
                .map_err(|e| ReadError::malformed(name, format!("zip entry {entry_index}: {e}")))?;
            if !entry.is_file() {
                continue;
            }
            let entry_name = entry
                .name()
                .map(|n| n.into_owned())
                .unwrap_or_else(|_| format!("entry {entry_index}"));
            let base = base_name(&entry_name);
            // macOS resource forks and hidden files are never scan data.
            if entry_name.starts_with("__MACOSX/") || base.starts_with('.') || base.is_empty() {
                continue;
            }
            let declared = entry.size();
            total = total.saturating_add(declared);
            if total > budget {
                return Err(ReadError::TooLarge {
                    file: format!("{name}/{entry_name}"),
                    voxels: total / 2,
                    limit: options.max_voxels,
                });
            }
            let mut data = Vec::with_capacity(declared.min(1 << 30) as usize);
            // `take` guards against entries that inflate past their declared size.
            (&mut entry)
                .take(declared.saturating_add(1))
                .read_to_end(&mut data)
                .map_err(|e| {
                    ReadError::malformed(
                        &format!("{name}/{entry_name}"),
                        format!("corrupt zip entry ({e})"),
                    )
                })?;
            if data.len() as u64 != declared {
                return Err(ReadError::malformed(
                    &format!("{name}/{entry_name}"),
                    "zip entry size does not match its header",
                ));
            }
            out.push(format!("{name}/{entry_name}"), data);
        }
    }
    Ok(out)
}
