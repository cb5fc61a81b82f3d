//! The library's error type. Every variant names the file, line or record it is about,
//! so a user can find the offending input without a debugger.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid pipeline config: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}:{line}: {message}")]
    Input {
        path: PathBuf,
        /// 1-based line (or data row for tabular formats); 0 when the whole file is at fault.
        line: u64,
        message: String,
    },
    #[error("{path}: {message}")]
    Arrow { path: PathBuf, message: String },
    #[error("{path}: corrupt or unreadable manifest: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error(
        "{rejected} of {total} input records rejected ({share:.2}%), above the allowed {max_share:.2}%; \
         reasons are listed in {rejects_file}"
    )]
    TooManyRejects {
        rejected: u64,
        total: u64,
        share: f64,
        max_share: f64,
        rejects_file: PathBuf,
    },
    #[error("stage {stage}: {message}")]
    Stage { stage: String, message: String },
    /// A translation backend failed (subprocess died, timed out, model error).
    #[error("translator {backend}: {message}")]
    Translate { backend: String, message: String },
    /// An index could not be built or queried.
    #[error("index: {message}")]
    Index { message: String },
    /// The BM25 text index could not be built, opened or searched.
    #[error("text index {path}: {message}")]
    TextIndex { path: PathBuf, message: String },
    /// A model could not be loaded or run; `path` is its folder or file.
    #[error("model {path}: {message}")]
    Model { path: PathBuf, message: String },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn input(path: impl Into<PathBuf>, line: u64, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    pub fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn translate(backend: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Translate {
            backend: backend.into(),
            message: message.to_string(),
        }
    }

    pub fn model(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Error::Model {
            path: path.into(),
            message: message.to_string(),
        }
    }

    pub fn arrow(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Error::Arrow {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
