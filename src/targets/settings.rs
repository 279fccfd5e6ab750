//! Which target a run uses, and its settings, as the CLI and the test harness give them.

use std::path::PathBuf;

use super::kube::KubeOptions;
use crate::runner::TargetKind;

/// Which target a run uses, and its settings.
#[derive(Clone, Debug)]
pub enum TargetSettings {
    Local(LocalSettings),
    Kube(KubeOptions),
}

impl TargetSettings {
    pub fn kind(&self) -> TargetKind {
        match self {
            TargetSettings::Local(_) => TargetKind::Local,
            TargetSettings::Kube(_) => TargetKind::Kube,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LocalSettings {
    /// Envoy binary; `None` installs it into the cache on first use.
    pub envoy: Option<PathBuf>,
    /// A binary with the `echo` subcommand: meshcheck itself.
    pub echo_program: PathBuf,
}
