//! The one error type of every fallible data operation.

use std::path::PathBuf;

/// Why reading, fetching or batching data failed.
///
/// Every variant that concerns a file names it, so a message read far from the call
/// site still says which file is wrong and how.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused an operation on a file or folder.
    #[error("{}: {action}: {source}", .path.display())]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What was being done, e.g. "reading".
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A required file does not exist.
    #[error("{}: missing: {reason}", .path.display())]
    Missing {
        /// The path that was looked for.
        path: PathBuf,
        /// Why the file was expected there.
        reason: String,
    },
    /// A file exists but its content is malformed.
    #[error("{}: {reason}", .path.display())]
    Format {
        /// The malformed file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A fetched file does not match its manifest entry; the partial file was removed.
    #[error(
        "{name} from {source_desc}: checksum mismatch of the decompressed payload: expected {}, \
         got sha256 {actual_sha256} ({actual_size} bytes){}; the partial file was removed",
        expected_digest(.expected_sha256, .expected_size),
        .also_accepted.as_deref().map_or("", String::as_str)
    )]
    Checksum {
        /// The manifest file name.
        name: String,
        /// Where the bytes came from (a URL or a mirror path).
        source_desc: String,
        /// The sha256 the manifest expects.
        expected_sha256: String,
        /// The sha256 of what was received.
        actual_sha256: String,
        /// The payload size the manifest expects.
        expected_size: u64,
        /// The payload size received.
        actual_size: u64,
        /// The entry's other accepted versions and the received md5 (`"; also accepted:
        /// ..."`), when the entry has any; boxed to keep the error small.
        also_accepted: Option<Box<String>>,
    },
    /// An HTTP download failed.
    #[error("downloading {url} to {}: {reason}", .path.display())]
    Download {
        /// The URL requested.
        url: String,
        /// The file being written.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A sample index is outside the dataset.
    #[error("sample index {index} is out of range for a dataset of {len} samples")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
    /// An argument is meaningless, e.g. labels that do not fit the images.
    #[error("{context}: {reason}")]
    Invalid {
        /// The function or type that refused the argument.
        context: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// A [`DataError::Format`] for `path`.
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A [`DataError::Invalid`].
    pub(crate) fn invalid(context: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            context,
            reason: reason.into(),
        }
    }
}

/// Result alias for data operations.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// What a checksum error says was expected: the sha256 (or its published prefix) and the
/// size when known.
fn expected_digest(sha256: &str, size: &u64) -> String {
    let digest = if sha256.len() < 64 {
        format!("a sha256 starting {sha256}")
    } else {
        format!("sha256 {sha256}")
    };
    match size {
        0 => digest,
        size => format!("{digest} ({size} bytes)"),
    }
}
