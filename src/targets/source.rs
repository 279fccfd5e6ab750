//! The sample source every target has: meshcheck's own engine, connecting to an
//! address the target chose (a gateway listener, or the local sidecar's outbound
//! listener for a Service).

use std::net::SocketAddr;

use super::{DiagnosticSection, RequestOrigin, SampleSource, SendError};
use crate::traffic::{Flow, LoadSpec, Sample, Tally, run_load};

/// meshcheck's engine, connecting to `address`; with `authority`, the requests name
/// that `host:port` instead of the URL's (see [`SampleSource::authority`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EngineSource {
    pub(crate) address: SocketAddr,
    pub(crate) authority: Option<String>,
}

impl EngineSource {
    pub(crate) fn to(address: SocketAddr) -> EngineSource {
        EngineSource {
            address,
            authority: None,
        }
    }
}

impl SampleSource for EngineSource {
    fn connect_to(&self) -> Option<SocketAddr> {
        Some(self.address)
    }

    fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    fn origin(&self) -> RequestOrigin {
        RequestOrigin::Engine {
            address: self.address,
        }
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
