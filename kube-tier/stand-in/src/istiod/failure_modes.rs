//! Misbehaviour tests switch on with an annotation on the object, to prove the kube
//! target's failure paths against a real API server:
//!
//! - `kube-tier.meshcheck.dev/never-accept: "true"` on an HTTPRoute: every parent is
//!   written Accepted=False (reason NotAllowedByListeners), as a controller that will
//!   not take the route would.
//! - `kube-tier.meshcheck.dev/address-type: Hostname` on a Gateway: its address is
//!   published as a DNS name (`<gateway>.<namespace>.kube-tier.test`, answered by the
//!   stand-in's DNS server), as on EKS.
//! - `kube-tier.meshcheck.dev/status-delay: 3s` on a Gateway or HTTPRoute: its status
//!   is written that long after it would have been, as a slow controller does.

use std::time::Duration;

use serde_json::Value;

use super::watch::annotation;

pub const NEVER_ACCEPT: &str = "kube-tier.meshcheck.dev/never-accept";
pub const ADDRESS_TYPE: &str = "kube-tier.meshcheck.dev/address-type";
pub const STATUS_DELAY: &str = "kube-tier.meshcheck.dev/status-delay";

pub fn never_accept(route: &Value) -> bool {
    annotation(route, NEVER_ACCEPT) == Some("true")
}

pub fn hostname_address(gateway: &Value) -> bool {
    annotation(gateway, ADDRESS_TYPE) == Some("Hostname")
}

/// The delay before the object's status is written; an unreadable value is said on
/// stderr and means no delay.
pub fn status_delay(object: &Value) -> Option<Duration> {
    let text = annotation(object, STATUS_DELAY)?;
    match humantime::parse_duration(text) {
        Ok(delay) => Some(delay),
        Err(err) => {
            eprintln!("istiod stand-in: ignoring {STATUS_DELAY}: {text:?}: {err}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotations_switch_the_modes_on() {
        let object = json!({"metadata": {"annotations": {
            NEVER_ACCEPT: "true", ADDRESS_TYPE: "Hostname", STATUS_DELAY: "1500ms"}}});
        assert!(never_accept(&object));
        assert!(hostname_address(&object));
        assert_eq!(status_delay(&object), Some(Duration::from_millis(1500)));
        let plain = json!({"metadata": {}});
        assert!(!never_accept(&plain) && !hostname_address(&plain));
        assert_eq!(status_delay(&plain), None);
        let bad = json!({"metadata": {"annotations": {STATUS_DELAY: "soon"}}});
        assert_eq!(status_delay(&bad), None);
    }
}
