//! The sample source every target has: meshcheck's own engine, connecting to an
//! address the target chose (a gateway listener, or the local sidecar's outbound
//! listener for a Service).

use std::net::SocketAddr;

use super::{DiagnosticSection, RequestOrigin, SampleSource, SendError};
use crate::traffic::{Flow, LoadSpec, Sample, Tally, run_load};

/// meshcheck's engine, connecting to this address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EngineSource(pub(crate) SocketAddr);

impl SampleSource for EngineSource {
    fn connect_to(&self) -> Option<SocketAddr> {
        Some(self.0)
    }

    fn origin(&self) -> RequestOrigin {
        RequestOrigin::Engine { address: self.0 }
    }

    async fn send(
        &mut self,
        load: &LoadSpec,
        observe: impl FnMut(&Sample<'_>) -> Flow,
    ) -> Result<Tally, SendError> {
        run_load(load, observe).await.map_err(SendError::Engine)
    }

    fn diagnostics(&self) -> Option<DiagnosticSection> {
        None
    }
}
