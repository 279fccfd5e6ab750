//! Status as Istio's gateway controller writes it (istio/istio
//! `pilot/pkg/config/kube/gateway/conditions.go`): conditions with a reason, a message
//! and `observedGeneration`, `lastTransitionTime` kept while a condition's status stays
//! the same, and a status written only when it changes.
//!
//! What the conditions say (which routes attach, with which reasons) is not decided
//! here: it is Istio's status computed from the objects by
//! [`meshcheck::fixtures::Fixtures::istio_status`] (issue 12); the stand-in adds what
//! only it knows (whether its Envoy runs a Gateway) and its failure modes.

use serde_json::{Value, json};

/// One condition to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub type_: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl From<&meshcheck::fixtures::StatusCondition> for Condition {
    fn from(c: &meshcheck::fixtures::StatusCondition) -> Condition {
        Condition::new(&c.type_, c.is_true(), c.reason.clone(), c.message.clone())
    }
}

impl Condition {
    pub fn new(
        type_: &str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The `conditions` array for `wanted` at `generation`, keeping each existing
/// condition's `lastTransitionTime` when its status did not change.
pub fn conditions(existing: Option<&Value>, wanted: &[Condition], generation: i64) -> Value {
    let now = now();
    Value::Array(
        wanted
            .iter()
            .map(|c| {
                let status = if c.status { "True" } else { "False" };
                let previous = existing
                    .and_then(Value::as_array)
                    .and_then(|list| list.iter().find(|e| e["type"] == c.type_.as_str()));
                let since = previous
                    .filter(|p| p["status"] == status)
                    .and_then(|p| p.get("lastTransitionTime").cloned())
                    .unwrap_or_else(|| json!(now));
                json!({
                    "type": c.type_,
                    "status": status,
                    "reason": c.reason,
                    "message": c.message,
                    "observedGeneration": generation,
                    "lastTransitionTime": since,
                })
            })
            .collect(),
    )
}

/// RFC 3339 UTC, seconds precision, as metav1.Time serializes.
fn now() -> String {
    let now = std::time::SystemTime::now();
    humantime::format_rfc3339_seconds(now).to_string()
}

/// Whether two statuses differ other than in `lastTransitionTime` (which [`conditions`]
/// keeps anyway): writing an equal status would only bump the resourceVersion and wake
/// every watcher.
pub fn differs(current: Option<&Value>, wanted: &Value) -> bool {
    fn strip(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| k.as_str() != "lastTransitionTime")
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    let current = current.cloned().unwrap_or(Value::Null);
    // Only the fields we write count: a status with more (another controller's) is
    // not ours to rewrite.
    let Value::Object(wanted_map) = wanted else {
        return true;
    };
    wanted_map
        .iter()
        .any(|(k, v)| strip(current.get(k).unwrap_or(&Value::Null)) != strip(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_is_kept_while_the_status_stays() {
        let existing = json!([{"type": "Accepted", "status": "True", "reason": "Accepted",
            "message": "", "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        let same = conditions(
            Some(&existing),
            &[Condition::new("Accepted", true, "Accepted", "")],
            2,
        );
        assert_eq!(same[0]["lastTransitionTime"], "2026-01-01T00:00:00Z");
        assert_eq!(same[0]["observedGeneration"], 2);
        let flipped = conditions(
            Some(&existing),
            &[Condition::new("Accepted", false, "Invalid", "")],
            2,
        );
        assert_ne!(flipped[0]["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn only_written_fields_other_than_transition_times_count() {
        let current = json!({"conditions": [{"type": "A", "status": "True", "lastTransitionTime": "x"}], "other": 1});
        let wanted =
            json!({"conditions": [{"type": "A", "status": "True", "lastTransitionTime": "y"}]});
        assert!(!differs(Some(&current), &wanted));
        let changed =
            json!({"conditions": [{"type": "A", "status": "False", "lastTransitionTime": "x"}]});
        assert!(differs(Some(&current), &changed));
        assert!(differs(None, &wanted));
    }
}
