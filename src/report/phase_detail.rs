//! How reporters say what a suite is doing in a phase.

use std::fmt;

use crate::runner::{PhaseDetail, RequestOrigin};
use crate::suite::Entry;
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
            PhaseDetail::Substituted {
                object,
                image,
                delay,
                stand_in,
                text,
            } => write!(
                f,
                "{object}: {image} -delay={}ms runs as {stand_in} (an echo server that can delay; it answers with the request body, not `{text}`)",
                delay.as_millis()
            ),
            PhaseDetail::MeshClientAdded { object, image } => {
                write!(f, "{object}: in-mesh client for east-west cases ({image})")
            }
            PhaseDetail::Applying { objects } => write!(f, "applying {objects} objects"),
            PhaseDetail::WaitingForReadiness => f.write_str("waiting for readiness"),
            PhaseDetail::RemovingPartialEnvironment => {
                f.write_str("removing what this suite created so far")
            }
            PhaseDetail::StoppingSuite => f.write_str("stopping what this suite started"),
            PhaseDetail::FindingEntry { case, entry, port } => match entry {
                Entry::Gateway(gateway) => write!(
                    f,
                    "{case}: finding the address of {gateway} for port {port}"
                ),
                Entry::Service { service, from } => write!(
                    f,
                    "{case}: finding the in-mesh client pod in {from} that calls {service} port {port}"
                ),
                Entry::Pod { deployment, from } => write!(
                    f,
                    "{case}: finding the in-mesh client pod in {from} and the address of a pod of {deployment} for port {port}"
                ),
            },
            PhaseDetail::Converging {
                case,
                consecutive,
                url,
                origin,
            } => write!(
                f,
                "{case}: waiting for {consecutive} good responses in a row from {url} {}",
                Origin(origin)
            ),
            PhaseDetail::Measuring {
                case,
                max_requests,
                url,
                origin,
                concurrency,
            } => write!(
                f,
                "{case}: up to {max_requests} requests to {url} {}, concurrency {concurrency}",
                Origin(origin)
            ),
            PhaseDetail::Burst {
                case,
                requests,
                concurrency,
                cluster,
            } => write!(
                f,
                "{case}: a burst of {requests} requests, {concurrency} at once, against the limits of {cluster}"
            ),
            PhaseDetail::Ejecting {
                case,
                ejected_hosts,
                hosts,
                cluster,
                within,
            } => write!(
                f,
                "{case}: one request at a time until {ejected_hosts} of {hosts} hosts of {cluster} are ejected (within {})",
                humantime::format_duration(*within)
            ),
            PhaseDetail::Ejected {
                case,
                ejected_hosts,
                after_requests,
                measured_requests,
            } => write!(
                f,
                "{case}: {ejected_hosts} host(s) ejected after {after_requests} requests; {measured_requests} measured requests"
            ),
        }
    }
}

/// Where a case's requests come from, as progress lines say it.
struct Origin<'a>(&'a RequestOrigin);

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            RequestOrigin::Engine { address } => write!(f, "via {address}"),
            RequestOrigin::MeshClient { namespace, pod } => {
                write!(f, "from the in-mesh client pod {namespace}/{pod}")
            }
        }
    }
}
