//! The run id every object a run applies carries, so `meshcheck cleanup` can find what
//! a run killed with SIGKILL (or a cancelled CI job) left behind. IO-free.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

/// The label holding the id of the run that applied an object.
pub const RUN_ID_LABEL: &str = "meshcheck.dev/run-id";
/// The recommended label naming the tool that manages an object
/// (kubernetes.io/docs/concepts/overview/working-with-objects/common-labels).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "meshcheck";
/// When the run applied the object, RFC 3339. An object's `creationTimestamp` says the
/// same on a real API server; the annotation keeps the age readable where it is not set.
pub const APPLIED_AT_ANNOTATION: &str = "meshcheck.dev/applied-at";

/// One id per run: generated once, cloned into every suite's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunId(String);

impl RunId {
    /// A fresh id: the start time in seconds and its sub-second part mixed with the
    /// process id, so two runs started in the same second differ. A valid label value
    /// (at most 63 characters of `[a-z0-9-]`).
    pub fn generate() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let salt = since_epoch.subsec_nanos() ^ std::process::id().rotate_left(16);
        RunId(format!("{}-{salt:08x}", since_epoch.as_secs()))
    }

    /// An id given on the command line (`meshcheck cleanup --run-id ID`).
    pub fn from_label_value(value: &str) -> Result<Self, InvalidRunId> {
        let valid = !value.is_empty()
            && value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(RunId(value.to_owned()))
        } else {
            Err(InvalidRunId(value.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RunId {
    fn default() -> Self {
        RunId::generate()
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a run id (up to 63 letters, digits, `-`, `_` or `.`)")]
pub struct InvalidRunId(String);

/// The label selector for what meshcheck applied: every run's, or one run's.
pub fn selector(run: Option<&RunId>) -> String {
    match run {
        Some(run) => format!("{MANAGED_BY_LABEL}={MANAGED_BY},{RUN_ID_LABEL}={run}"),
        None => format!("{MANAGED_BY_LABEL}={MANAGED_BY},{RUN_ID_LABEL}"),
    }
}

/// Puts the run's labels and the applied-at annotation into an object's `metadata`.
pub fn stamp(metadata: &mut Map<String, Value>, run: &RunId, applied_at: SystemTime) {
    let labels = object_entry(metadata, "labels");
    labels.insert(RUN_ID_LABEL.into(), Value::String(run.to_string()));
    labels.insert(MANAGED_BY_LABEL.into(), Value::String(MANAGED_BY.into()));
    let annotations = object_entry(metadata, "annotations");
    annotations.insert(
        APPLIED_AT_ANNOTATION.into(),
        Value::String(humantime::format_rfc3339_seconds(applied_at).to_string()),
    );
}

/// The stamp an object already carries (`metadata` of the live object), copied into
/// the body about to be applied: server-side apply would otherwise remove labels the
/// field manager set before, and an object an earlier run left would lose its run id.
pub fn keep_stamp(body_metadata: &mut Map<String, Value>, live: &Value) {
    for (field, keys) in [
        ("labels", &[RUN_ID_LABEL, MANAGED_BY_LABEL][..]),
        ("annotations", &[APPLIED_AT_ANNOTATION][..]),
    ] {
        let Some(live_values) = live
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        for key in keys {
            if let Some(value) = live_values.get(*key) {
                object_entry(body_metadata, field).insert((*key).into(), value.clone());
            }
        }
    }
}

/// How old a labelled object is: from the applied-at annotation, else its
/// `creationTimestamp`; `None` when neither is readable.
pub fn age(object: &Value, now: SystemTime) -> Option<Duration> {
    let stamp = object
        .pointer(&format!(
            "/metadata/annotations/{}",
            APPLIED_AT_ANNOTATION.replace('/', "~1")
        ))
        .or_else(|| object.pointer("/metadata/creationTimestamp"))
        .and_then(Value::as_str)?;
    let at = humantime::parse_rfc3339_weak(stamp).ok()?;
    Some(now.duration_since(at).unwrap_or_default())
}

/// The run id label of a live object, if it has one.
pub fn run_id_of(object: &Value) -> Option<&str> {
    object
        .pointer(&format!(
            "/metadata/labels/{}",
            RUN_ID_LABEL.replace('/', "~1")
        ))
        .and_then(Value::as_str)
}

fn object_entry<'m>(
    metadata: &'m mut Map<String, Value>,
    field: &str,
) -> &'m mut Map<String, Value> {
    let entry = metadata
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("made an object above")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generated_ids_are_label_values_and_differ() {
        let a = RunId::generate();
        assert!(RunId::from_label_value(a.as_str()).is_ok(), "{a}");
        assert!(RunId::from_label_value("a b").is_err());
        assert!(RunId::from_label_value("").is_err());
    }

    #[test]
    fn stamping_adds_labels_and_keeps_the_fixtures_own() {
        let run = RunId::from_label_value("r1").unwrap();
        let mut metadata = json!({"name": "x", "labels": {"app": "web"}})
            .as_object()
            .cloned()
            .unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        stamp(&mut metadata, &run, at);
        let object = json!({ "metadata": metadata });
        assert_eq!(object["metadata"]["labels"]["app"], "web");
        assert_eq!(run_id_of(&object), Some("r1"));
        assert_eq!(object["metadata"]["labels"][MANAGED_BY_LABEL], "meshcheck");
        assert_eq!(
            age(&object, at + Duration::from_secs(90)),
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn an_earlier_runs_stamp_is_carried_over() {
        let live = json!({"metadata": {"labels": {RUN_ID_LABEL: "old", "app": "web"}}});
        let mut body = Map::new();
        keep_stamp(&mut body, &live);
        assert_eq!(
            Value::Object(body),
            json!({"labels": {RUN_ID_LABEL: "old"}})
        );
    }

    #[test]
    fn age_falls_back_to_the_creation_timestamp() {
        let object = json!({"metadata": {"creationTimestamp": "2023-11-14T22:13:20Z"}});
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 60);
        assert_eq!(age(&object, at), Some(Duration::from_secs(60)));
        assert_eq!(age(&json!({}), at), None);
    }

    #[test]
    fn selectors_ask_for_the_label() {
        let run = RunId::from_label_value("r1").unwrap();
        assert_eq!(
            selector(Some(&run)),
            "app.kubernetes.io/managed-by=meshcheck,meshcheck.dev/run-id=r1"
        );
        assert_eq!(
            selector(None),
            "app.kubernetes.io/managed-by=meshcheck,meshcheck.dev/run-id"
        );
    }
}
