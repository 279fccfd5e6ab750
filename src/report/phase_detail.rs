//! How reporters say what a suite is doing in a phase.

use std::fmt;

use crate::runner::PhaseDetail;
use crate::targets::local::installing_message;

impl fmt::Display for PhaseDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhaseDetail::InstallingEnvoy { dir } => f.write_str(&installing_message(dir)),
            PhaseDetail::StartingLocal { objects } => {
                write!(f, "starting Envoy and echo backends for {objects} objects")
            }
            PhaseDetail::LocalReady {
                envoy_startup,
                echo_processes,
            } => write!(
                f,
                "Envoy ready in {} ms with {echo_processes} echo processes",
                envoy_startup.as_millis()
            ),
            PhaseDetail::Substituted { note } => f.write_str(note),
            PhaseDetail::MeshClientAdded { object, image } => {
                write!(f, "{object}: in-mesh client for east-west cases ({image})")
            }
            PhaseDetail::Applying { objects } => write!(f, "applying {objects} objects"),
            PhaseDetail::WaitingForReadiness => f.write_str("waiting for readiness"),
            PhaseDetail::RemovingPartialEnvironment => {
                f.write_str("removing what this suite created so far")
            }
            PhaseDetail::StoppingSuite => f.write_str("stopping what this suite started"),
            PhaseDetail::Text(text) => f.write_str(text),
        }
    }
}
