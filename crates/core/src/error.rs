use thiserror::Error;

/// Why a scan could not be opened. Every variant names the file (or files) at fault,
/// so the message alone tells a user what to fix.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ReadError {
    #[error("no files were given")]
    NoFiles,
    #[error("{file}: {reason}")]
    Malformed { file: String, reason: String },
    #[error("{file}: not supported: {reason}")]
    Unsupported { file: String, reason: String },
    #[error(
        "{file}: the volume would hold {voxels} voxels, more than the limit of {limit} \
         ({} MiB as int16)",
        limit * 2 / (1024 * 1024)
    )]
    TooLarge {
        file: String,
        voxels: u64,
        limit: u64,
    },
    #[error("no image found: {0}")]
    NoImage(String),
    #[error("{file}: could not be read: {reason}")]
    Io { file: String, reason: String },
    #[error("cancelled")]
    Cancelled,
}

impl ReadError {
    pub(crate) fn malformed(file: &str, reason: impl Into<String>) -> Self {
        ReadError::Malformed {
            file: file.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(file: &str, reason: impl Into<String>) -> Self {
        ReadError::Unsupported {
            file: file.to_owned(),
            reason: reason.into(),
        }
    }

    /// A reader's header and voxels that do not make a volume (non-finite geometry, say).
    pub(crate) fn invalid_volume(file: &str, error: &crate::VolumeError) -> Self {
        ReadError::malformed(file, format!("not a usable volume: {error}"))
    }

    /// Checks a voxel count against the limit *before* anything that size is allocated.
    pub(crate) fn check_voxels(file: &str, voxels: u64, limit: u64) -> Result<(), Self> {
        if voxels > limit {
            Err(ReadError::TooLarge {
                file: file.to_owned(),
                voxels,
                limit,
            })
        } else {
            Ok(())
        }
    }
}
