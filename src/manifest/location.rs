use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::yaml::Position;

/// Where something came from: `file:line:column`, the form editors and CI annotations
/// understand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: Arc<Path>,
    pub position: Position,
}

impl SourceLocation {
    pub fn new(file: impl Into<PathBuf>, position: Position) -> Self {
        SourceLocation {
            file: Arc::from(file.into().into_boxed_path()),
            position,
        }
    }

    /// The start of a file, for errors about the file as a whole.
    pub fn file_start(file: &Path) -> Self {
        SourceLocation::new(file, Position { line: 1, column: 1 })
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.position)
    }
}
