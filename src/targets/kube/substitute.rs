//! Fixtures written for `meshcheck echo` on a cluster. The local target runs
//! `meshcheck echo` for hashicorp/http-echo containers, which adds `-delay` (a slow
//! backend for circuit-breaking suites). The real image exits on that flag, so the kube
//! target runs such a container as fortio's echo server instead, which can delay every
//! answer by itself (`-echo-server-default-params delay=...`), and says so.
//!
//! What differs, and why it is acceptable where `-delay` is used: fortio answers with
//! the request's body (empty for a GET), not the `-text`, so a delayed backend cannot be
//! told apart by its body on a cluster. Circuit breaking counts served and overflowed
//! responses, never identities.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::echo::{EchoArgs, meshcheck_only_flag};
use crate::fixtures::{Fixtures, WorkloadFixture};
use crate::manifest::{GroupKind, Manifest, ObjectKey, load_str};

/// fortio's echo server, pinned: 1.69.5 has `-echo-server-default-params` and
/// `-max-echo-delay`.
pub const DELAY_IMAGE: &str = "fortio/fortio:1.69.5";

/// A fixture container this target cannot run as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{location}: {object} passes `-{flag}` to {image}, which only `meshcheck echo` understands: {reason}"
)]
pub struct SubstitutionError {
    pub location: String,
    pub object: String,
    pub flag: &'static str,
    pub image: String,
    pub reason: String,
}

/// One fixture container run as [`DELAY_IMAGE`] instead of as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Substitution {
    /// The Deployment whose container is replaced.
    pub object: ObjectKey,
    /// The image the fixture names.
    pub image: String,
    /// The echo `-delay` the stand-in serves with.
    pub delay: Duration,
    /// The echo `-text`, which the stand-in does not answer with.
    pub text: String,
}

/// The manifests to apply, with every hashicorp/http-echo container that uses a
/// meshcheck-only flag replaced by fortio's echo server, and one [`Substitution`] per
/// replacement.
pub fn substitute_delayed_echo(
    fixtures: &Fixtures,
) -> Result<(Vec<Manifest>, Vec<Substitution>), SubstitutionError> {
    let mut out = Vec::with_capacity(fixtures.manifests().len());
    let mut notes = Vec::new();
    for manifest in fixtures.manifests() {
        let replaced = match fixtures.workload(&manifest.key()) {
            Some(workload) if manifest.is(GroupKind::DEPLOYMENT) => {
                substitute_one(workload, &mut notes)?
            }
            _ => None,
        };
        out.push(replaced.unwrap_or_else(|| manifest.clone()));
    }
    Ok((out, notes))
}

fn substitute_one(
    workload: &WorkloadFixture,
    notes: &mut Vec<Substitution>,
) -> Result<Option<Manifest>, SubstitutionError> {
    let manifest = &workload.manifest;
    let mut body = manifest.to_json();
    let mut changed = false;
    for (index, container) in workload.containers.iter().enumerate() {
        let image = container.image.clone().unwrap_or_default();
        if !image.contains("hashicorp/http-echo") {
            continue;
        }
        let args = container.args.clone().unwrap_or_default();
        let Some(flag) = meshcheck_only_flag(&args) else {
            continue;
        };
        let echo = EchoArgs::parse(args).map_err(|err| SubstitutionError {
            location: manifest
                .location_of("spec.template.spec.containers")
                .to_string(),
            object: manifest.key().to_string(),
            flag,
            image: image.clone(),
            reason: format!("its arguments do not parse: {err}"),
        })?;
        // fortio cannot hang up without answering; running the fixture anyway would
        // turn a failing backend into a healthy one.
        if echo.hangup {
            return Err(SubstitutionError {
                location: manifest
                    .location_of("spec.template.spec.containers")
                    .to_string(),
                object: manifest.key().to_string(),
                flag: "hangup",
                image,
                reason: "a backend that hangs up has no stand-in on a cluster; run this fixture on the local target".into(),
            });
        }
        // The decoded containers are the JSON array's, in order.
        let Some(written) = body
            .pointer_mut(&format!("/spec/template/spec/containers/{index}"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        written.insert("image".into(), json!(DELAY_IMAGE));
        written.insert("args".into(), json!(fortio_args(&echo)));
        written.remove("command");
        changed = true;
        notes.push(Substitution {
            object: manifest.key(),
            image,
            delay: echo.delay,
            text: echo.text,
        });
    }
    if !changed {
        return Ok(None);
    }
    // Positions in the rewritten object would not match the fixture file, so errors
    // name the file with a note instead of pointing at a wrong line.
    let file = format!("{} (as run on the kube target)", manifest.file.display());
    let text = serde_json::to_string_pretty(&body).unwrap_or_default();
    let mut replaced = load_str(&text, Path::new(&file)).map_err(|err| SubstitutionError {
        location: manifest.location().to_string(),
        object: manifest.key().to_string(),
        flag: "delay",
        image: DELAY_IMAGE.to_owned(),
        reason: format!("its arguments do not parse: {err}"),
    })?;
    Ok(replaced.pop())
}

/// Go's duration syntax, which fortio parses: whole milliseconds, e.g. `500ms`.
fn go_duration(delay: Duration) -> String {
    format!("{}ms", delay.as_millis())
}

fn fortio_args(echo: &EchoArgs) -> Vec<String> {
    let delay = go_duration(echo.delay);
    [
        "server",
        "-http-port",
        &echo.listen.port().to_string(),
        "-grpc-port",
        "disabled",
        "-redirect-port",
        "disabled",
        // fortio caps `delay=` at 1.5s unless told otherwise.
        "-max-echo-delay",
        &delay,
        "-echo-server-default-params",
        &format!("delay={delay}&status={}", echo.status.as_u16()),
    ]
    .map(str::to_owned)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests(args: &str) -> Fixtures {
        let text = format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{ name: slow-backend, namespace: istio-test }}
spec:
  selector: {{ matchLabels: {{ app: slow-backend }} }}
  template:
    metadata: {{ labels: {{ app: slow-backend }} }}
    spec:
      containers:
      - name: echo
        image: hashicorp/http-echo
        args: {args}
        ports: [{{ containerPort: 5678 }}]
---
apiVersion: v1
kind: Service
metadata: {{ name: slow-backend, namespace: istio-test }}
"
        );
        Fixtures::new(&load_str(&text, Path::new("fixtures/backend.yaml")).unwrap()).unwrap()
    }

    #[test]
    fn a_delayed_echo_runs_as_fortio_with_the_same_port_delay_and_status() {
        let (out, notes) = substitute_delayed_echo(&manifests(
            r#"["-text=slow", "-delay=500ms", "-status-code=202"]"#,
        ))
        .unwrap();
        assert_eq!(out.len(), 2);
        let container = &out[0].to_json()["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], DELAY_IMAGE);
        assert_eq!(
            container["args"],
            json!([
                "server",
                "-http-port",
                "5678",
                "-grpc-port",
                "disabled",
                "-redirect-port",
                "disabled",
                "-max-echo-delay",
                "500ms",
                "-echo-server-default-params",
                "delay=500ms&status=202"
            ])
        );
        assert_eq!(container["ports"][0]["containerPort"], 5678);
        assert_eq!(
            out[0].key().to_string(),
            "Deployment istio-test/slow-backend"
        );
        assert!(
            out[0]
                .file
                .display()
                .to_string()
                .ends_with("(as run on the kube target)")
        );
        assert_eq!(
            notes,
            [Substitution {
                object: out[0].key(),
                image: "hashicorp/http-echo".into(),
                delay: Duration::from_millis(500),
                text: "slow".into(),
            }]
        );
    }

    #[test]
    fn plain_http_echo_is_left_as_written() {
        let input = manifests(r#"["-text=hello from backend v1"]"#);
        let (out, notes) = substitute_delayed_echo(&input).unwrap();
        assert!(notes.is_empty());
        assert_eq!(out[0].to_json(), input.manifests()[0].to_json());
        assert_eq!(out[0].file, input.manifests()[0].file);
    }

    #[test]
    fn unparsable_arguments_are_refused_with_the_location() {
        let err = substitute_delayed_echo(&manifests(r#"["-text=a", "-delay=soon"]"#)).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("fixtures/backend.yaml:"), "{text}");
        assert!(
            text.contains("Deployment istio-test/slow-backend passes `-delay`"),
            "{text}"
        );
        assert!(text.contains("invalid -delay `soon`"), "{text}");
    }

    #[test]
    fn a_hanging_up_echo_is_refused_rather_than_run_healthy() {
        let err = substitute_delayed_echo(&manifests(r#"["-text=a", "-hangup"]"#)).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("fixtures/backend.yaml:"), "{text}");
        assert!(
            text.contains("passes `-hangup` to hashicorp/http-echo"),
            "{text}"
        );
        assert!(
            text.contains("run this fixture on the local target"),
            "{text}"
        );
    }
}
