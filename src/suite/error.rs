use std::path::PathBuf;

use crate::manifest::{ManifestError, SourceLocation};

/// Why a suite could not be loaded. Each names a place in a file, so `meshcheck lint`
/// and `meshcheck run` can point the user at it; all of them exit with `BAD_INPUT`.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{location}: field `{field}`: {message}")]
    Decode {
        location: SourceLocation,
        field: String,
        message: String,
    },
    #[error("{location}: {message}")]
    Invalid {
        location: SourceLocation,
        message: String,
    },
    #[error("{}: no such file or directory", path.display())]
    NotFound { path: PathBuf },
    #[error("no suite files (*.yaml) found in {}", path.display())]
    NoSuites { path: PathBuf },
    #[error("suite `{name}` is defined twice: {first} and {second}")]
    DuplicateSuite {
        name: String,
        first: SourceLocation,
        second: SourceLocation,
    },
}
