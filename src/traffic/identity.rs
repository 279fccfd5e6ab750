//! Identity extraction and per-worker interning.
//!
//! Identities recur (a mesh usually has a handful of backends), so each worker maps
//! the bytes it sees to small numbers and ships a string to the collector only the
//! first time; in steady state a response costs a hash lookup, not an allocation.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{IdentityRule, MAX_IDENTITIES, MAX_IDENTITY_LEN};
use crate::echo::EchoedRequest;

/// The identity part of a record sent from a worker to the collector.
#[derive(Debug)]
pub(crate) enum IdentityMsg {
    /// The response had no identity.
    None,
    /// The worker's identity number `id`, announced earlier by [`IdentityMsg::New`].
    Known(u32),
    /// First sighting in this worker: number `id` stands for this text from now on.
    New(u32, Box<str>),
    /// The worker already tracks [`MAX_IDENTITIES`] identities.
    Other,
}

/// A worker's identity table. Records from one worker reach the collector in order,
/// so `New(id, ..)` always arrives before any `Known(id)`.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<Box<[u8]>, u32>,
}

impl Interner {
    pub(crate) fn intern(&mut self, identity: Option<&[u8]>) -> IdentityMsg {
        let Some(bytes) = identity else {
            return IdentityMsg::None;
        };
        if let Some(&id) = self.ids.get(bytes) {
            return IdentityMsg::Known(id);
        }
        if self.ids.len() >= MAX_IDENTITIES {
            return IdentityMsg::Other;
        }
        let id = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.ids.insert(bytes.into(), id);
        IdentityMsg::New(id, String::from_utf8_lossy(bytes).into())
    }
}

/// Which backend answered an echo-basic response: `namespace/deployment`, the
/// Deployment read from the pod name (`crate::echo::deployment_of_pod`), or the
/// Deployment alone when the JSON names no namespace. A pod that is no Deployment's
/// (a bare pod, a StatefulSet's) stands for itself; no pod, no identity.
pub fn echo_basic_identity(echoed: &EchoedRequest) -> Option<String> {
    if echoed.pod.is_empty() {
        return None;
    }
    let workload = echoed.deployment().unwrap_or(&echoed.pod);
    Some(if echoed.namespace.is_empty() {
        workload.to_owned()
    } else {
        format!("{}/{workload}", echoed.namespace)
    })
}

/// Borrowed inputs of [`extract`]: the kept body prefix and the identity header.
pub(crate) struct Response<'a> {
    pub(crate) body: &'a [u8],
    pub(crate) header: Option<&'a [u8]>,
}

/// Applies `rule` to a response. `locations` is the worker's reusable capture buffer
/// (regex matching would otherwise allocate one per call). Only the echo-basic rule
/// builds its identity (from two JSON fields); the others borrow it from the response.
pub(crate) fn extract<'a>(
    rule: &IdentityRule,
    response: &Response<'a>,
    locations: &mut Option<regex::CaptureLocations>,
) -> Option<Cow<'a, [u8]>> {
    let found = match rule {
        IdentityRule::Body => Some(response.body.trim_ascii()),
        IdentityRule::Header(_) => response.header.map(<[u8]>::trim_ascii),
        IdentityRule::EchoBasic => {
            let echoed = EchoedRequest::parse_body(response.body).ok()?;
            let mut identity = echo_basic_identity(&echoed)?.into_bytes();
            identity.truncate(MAX_IDENTITY_LEN);
            return Some(Cow::Owned(identity));
        }
        IdentityRule::BodyRegex(re) => {
            let text = match std::str::from_utf8(response.body) {
                Ok(text) => text,
                // A body cut at MAX_IDENTITY_BODY may end mid-character; match the
                // valid prefix rather than nothing.
                Err(e) => std::str::from_utf8(&response.body[..e.valid_up_to()]).unwrap_or(""),
            };
            let locs = locations.get_or_insert_with(|| re.capture_locations());
            re.captures_read(locs, text).and_then(|_| {
                let (start, end) = locs.get(1).or_else(|| locs.get(0))?;
                Some(&text.as_bytes()[start..end])
            })
        }
    };
    found
        .filter(|bytes| !bytes.is_empty())
        .map(|bytes| Cow::Borrowed(&bytes[..bytes.len().min(MAX_IDENTITY_LEN)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(rule: &IdentityRule, body: &[u8]) -> Option<String> {
        let mut locs = None;
        extract(rule, &Response { body, header: None }, &mut locs)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    #[test]
    fn body_rule_trims_and_skips_empty() {
        assert_eq!(
            body(&IdentityRule::Body, b"hello from backend v1\n").as_deref(),
            Some("hello from backend v1")
        );
        assert_eq!(body(&IdentityRule::Body, b" \r\n"), None);
    }

    #[test]
    fn regex_rule_prefers_first_group() {
        let group = IdentityRule::BodyRegex(regex::Regex::new(r"backend (v\d+)").unwrap());
        assert_eq!(
            body(&group, b"hello from backend v2\n").as_deref(),
            Some("v2")
        );
        let whole = IdentityRule::BodyRegex(regex::Regex::new(r"v\d+").unwrap());
        assert_eq!(
            body(&whole, b"hello from backend v7").as_deref(),
            Some("v7")
        );
        assert_eq!(body(&whole, b"no version here"), None);
    }

    #[test]
    fn regex_rule_matches_valid_prefix_of_cut_utf8() {
        let re = IdentityRule::BodyRegex(regex::Regex::new(r"pod=(\w+)").unwrap());
        // "é" is two bytes; cutting after the first leaves invalid UTF-8 at the end.
        assert_eq!(body(&re, b"pod=abc \xc3").as_deref(), Some("abc"));
    }

    #[test]
    fn header_rule_reads_header_only() {
        let rule = IdentityRule::Header("x-backend".into());
        let mut locs = None;
        let response = Response {
            body: b"ignored",
            header: Some(b" v1 "),
        };
        assert_eq!(
            extract(&rule, &response, &mut locs).as_deref(),
            Some(&b"v1"[..])
        );
        let missing = Response {
            body: b"ignored",
            header: None,
        };
        assert_eq!(extract(&rule, &missing, &mut locs), None);
    }

    #[test]
    fn echo_basic_rule_names_the_deployment_from_the_json() {
        let json = |namespace: &str, pod: &str| {
            format!(
                r#"{{"path":"/","host":"h","method":"GET","proto":"HTTP/1.1","namespace":"{namespace}","pod":"{pod}"}}"#
            )
        };
        let rule = IdentityRule::EchoBasic;
        assert_eq!(
            body(&rule, json("infra", "backend-v2-5f7c9-abcde").as_bytes()).as_deref(),
            Some("infra/backend-v2")
        );
        assert_eq!(
            body(&rule, json("", "backend-v2-5f7c9-abcde").as_bytes()).as_deref(),
            Some("backend-v2")
        );
        assert_eq!(
            body(&rule, json("infra", "web-0").as_bytes()).as_deref(),
            Some("infra/web-0")
        );
        assert_eq!(body(&rule, json("infra", "").as_bytes()), None);
        assert_eq!(body(&rule, b"hello from backend v1"), None);
    }

    #[test]
    fn long_identities_are_cut() {
        let long = vec![b'a'; MAX_IDENTITY_LEN + 10];
        assert_eq!(
            body(&IdentityRule::Body, &long).map(|s| s.len()),
            Some(MAX_IDENTITY_LEN)
        );
    }

    #[test]
    fn interner_numbers_then_caps() {
        let mut interner = Interner::default();
        assert!(matches!(interner.intern(None), IdentityMsg::None));
        assert!(matches!(interner.intern(Some(b"v1")), IdentityMsg::New(0, ref s) if &**s == "v1"));
        assert!(matches!(
            interner.intern(Some(b"v2")),
            IdentityMsg::New(1, _)
        ));
        assert!(matches!(
            interner.intern(Some(b"v1")),
            IdentityMsg::Known(0)
        ));
        for i in 2..MAX_IDENTITIES {
            let text = format!("backend {i}");
            assert!(matches!(
                interner.intern(Some(text.as_bytes())),
                IdentityMsg::New(_, _)
            ));
        }
        assert!(matches!(
            interner.intern(Some(b"one too many")),
            IdentityMsg::Other
        ));
        assert!(matches!(
            interner.intern(Some(b"v2")),
            IdentityMsg::Known(1)
        ));
    }
}
