//! The manifest model: Kubernetes objects read from fixture files, with source
//! positions, free of any IO beyond reading the files.

mod document;
mod error;
mod kind;
mod location;
pub mod yaml;

pub use document::{
    DEFAULT_NAMESPACE, DecodeFailure, MAX_FILE_BYTES, Manifest, ObjectKey, apply_order,
    check_unique, decode_located, invalid_field, load_file, load_str, parse_documents, read_source,
};
pub use error::ManifestError;
pub use kind::{GATEWAY_API_GROUP, GroupKind};
pub use location::SourceLocation;
