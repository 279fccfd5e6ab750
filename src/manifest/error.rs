use std::path::PathBuf;

use super::location::SourceLocation;

/// Why a manifest file could not be turned into objects, or an object into what a
/// target needs. Every variant names where, so the user can go straight there.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("failed to read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{location}: file is {size} bytes, more than the {limit}-byte limit for manifests and suites"
    )]
    TooLarge {
        location: SourceLocation,
        size: u64,
        limit: u64,
    },
    #[error("{location}: file is not valid UTF-8")]
    NotUtf8 { location: SourceLocation },
    #[error("{location}: invalid YAML: {message}")]
    Yaml {
        location: SourceLocation,
        message: String,
    },
    #[error("{location}: {message}")]
    Invalid {
        location: SourceLocation,
        message: String,
    },
    /// `object` is `Kind name`, as in `HTTPRoute backend-route`.
    #[error("{location}: {object}: field `{field}`: {message}")]
    Decode {
        location: SourceLocation,
        object: String,
        field: String,
        message: String,
    },
    #[error("{location}: {object}: field `{field}` is not supported by the {target} target{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Unsupported {
        location: SourceLocation,
        object: String,
        field: String,
        target: &'static str,
        detail: Option<Box<str>>,
    },
    #[error("{location}: {kind} {name} is not supported by the {target} target")]
    UnsupportedKind {
        location: SourceLocation,
        kind: String,
        name: String,
        target: &'static str,
    },
    #[error("{location}: {object} is defined twice (first at {first})")]
    Duplicate {
        location: SourceLocation,
        first: SourceLocation,
        object: String,
    },
}

impl ManifestError {
    /// The location an error points at, when it has one (read errors do not).
    pub fn location(&self) -> Option<&SourceLocation> {
        match self {
            ManifestError::Read { .. } => None,
            ManifestError::TooLarge { location, .. }
            | ManifestError::NotUtf8 { location }
            | ManifestError::Yaml { location, .. }
            | ManifestError::Invalid { location, .. }
            | ManifestError::Decode { location, .. }
            | ManifestError::Unsupported { location, .. }
            | ManifestError::UnsupportedKind { location, .. }
            | ManifestError::Duplicate { location, .. } => Some(location),
        }
    }
}
