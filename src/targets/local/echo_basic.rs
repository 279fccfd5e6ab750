//! An echo-basic Deployment as the local target runs it: `meshcheck echo -echo-basic`
//! per replica, with the environment Kubernetes would give the pod.
//!
//! The kubelet resolves a container's `env` in order: `value` with `$(VAR)`
//! references to the variables defined before it expanded (`$$` is a literal `$`, an
//! unknown reference stays as written), `valueFrom.fieldRef` from the pod's own
//! object. We resolve `metadata.name` (the pod's name, `<deployment>-<hash>-<suffix>`
//! from [`crate::echo::replica_set_pod_names`], or a real pod's), `metadata.namespace` and
//! `metadata.labels['KEY']`; any other field path is refused at its line, as are the
//! features echo-basic has and `meshcheck echo -echo-basic` does not (its gRPC server,
//! its HTTPS server from mounted certificates).

use crate::manifest::invalid_field as invalid;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;

use crate::echo::basic_mode::{self, DEFAULT_HTTP_PORT, ENV_VARS};
use crate::fixtures::WorkloadFixture;
use crate::manifest::{Manifest, ManifestError};

use super::plan::PodPlan;

/// echo-basic's h2c port when `H2C_PORT` is unset.
const DEFAULT_H2C_PORT: u16 = 3001;

/// Where an environment variable's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum EnvSource {
    Value(String),
    PodName,
    Namespace,
    Label(String),
}

/// The planned pods of an echo-basic Deployment and the ports the real image opens.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct EchoBasicPods {
    /// The HTTP port (`HTTP_PORT`, default 3000): the one `meshcheck echo` serves.
    pub http_port: u16,
    /// The image's h2c port (`H2C_PORT`, default 3001), which is not served here.
    pub h2c_port: Option<u16>,
    pub pods: Vec<PodPlan>,
}

fn env_field(index: usize, rest: &str) -> String {
    format!("spec.template.spec.containers[0].env[{index}]{rest}")
}

/// The container's `env` as sources, in order, refusing what we cannot resolve.
fn sources(
    manifest: &Manifest,
    container: &Container,
) -> Result<Vec<(String, EnvSource)>, ManifestError> {
    let mut out = Vec::new();
    for (index, var) in container.env.iter().flatten().enumerate() {
        let source = match (&var.value, &var.value_from) {
            (Some(value), Some(_)) if !value.is_empty() => {
                return Err(invalid(
                    manifest,
                    &env_field(index, ".valueFrom"),
                    "`value` and `valueFrom` may not both be given".into(),
                ));
            }
            (_, Some(from)) => {
                let Some(field_ref) = &from.field_ref else {
                    // The field list lets only fieldRef through.
                    return Err(manifest.unsupported(
                        &env_field(index, ".valueFrom"),
                        "local",
                        Some("only valueFrom.fieldRef is resolved".into()),
                    ));
                };
                if let Some(version) = field_ref.api_version.as_deref().filter(|v| *v != "v1") {
                    return Err(invalid(
                        manifest,
                        &env_field(index, ".valueFrom.fieldRef.apiVersion"),
                        format!("`{version}`: a pod's fields are apiVersion v1"),
                    ));
                }
                field_source(&field_ref.field_path).ok_or_else(|| {
                    manifest.unsupported(
                        &env_field(index, ".valueFrom.fieldRef.fieldPath"),
                        "local",
                        Some(format!(
                            "fieldPath `{}`: the local target resolves metadata.name, metadata.namespace and metadata.labels['KEY']",
                            field_ref.field_path
                        )),
                    )
                })?
            }
            (value, None) => EnvSource::Value(value.clone().unwrap_or_default()),
        };
        out.push((var.name.clone(), source));
    }
    Ok(out)
}

fn field_source(path: &str) -> Option<EnvSource> {
    match path {
        "metadata.name" => Some(EnvSource::PodName),
        "metadata.namespace" => Some(EnvSource::Namespace),
        _ => {
            let key = path.strip_prefix("metadata.labels['")?.strip_suffix("']")?;
            Some(EnvSource::Label(key.to_string()))
        }
    }
}

/// Kubernetes' `$(VAR)` expansion (`third_party/forked/golang/expansion`): references
/// to variables defined earlier are replaced, `$$` is `$`, anything else is kept.
fn expand(value: &str, defined: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(reference) = after.strip_prefix('(')
            && let Some(end) = reference.find(')')
        {
            let name = &reference[..end];
            match defined.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &reference[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Every variable of one pod, resolved in order (a later definition wins).
fn resolve(
    sources: &[(String, EnvSource)],
    pod: &str,
    fixture: &WorkloadFixture,
) -> BTreeMap<String, String> {
    let mut defined = BTreeMap::new();
    for (name, source) in sources {
        let value = match source {
            EnvSource::Value(value) => expand(value, &defined),
            EnvSource::PodName => pod.to_string(),
            EnvSource::Namespace => fixture.namespace.clone(),
            EnvSource::Label(key) => fixture.pod_labels.get(key).cloned().unwrap_or_default(),
        };
        defined.insert(name.clone(), value);
    }
    defined
}

/// The index of the last `env` entry named `name` (the one that wins).
fn entry_of(sources: &[(String, EnvSource)], name: &str) -> Option<usize> {
    sources.iter().rposition(|(n, _)| n == name)
}

/// Plans an echo-basic Deployment's pods, named `names` (one per replica).
pub(super) fn plan_pods(
    fixture: &WorkloadFixture,
    container: &Container,
    names: &[String],
) -> Result<EchoBasicPods, ManifestError> {
    let manifest = &fixture.manifest;
    let sources = sources(manifest, container)?;
    // What does not depend on the pod's name is checked once, on a stand-in pod.
    let probe = resolve(&sources, names.first().map_or("", String::as_str), fixture);
    if let Some((variable, why)) = basic_mode::unsupported_feature(|name| probe.get(name).cloned())
    {
        let field = entry_of(&sources, variable).map_or_else(
            || "spec.template.spec.containers[0].env".to_string(),
            |index| env_field(index, ""),
        );
        return Err(manifest.unsupported(
            &field,
            "local",
            Some(format!("{variable} is set: {why}")),
        ));
    }
    let port_of = |name: &str, default: u16| -> Result<u16, ManifestError> {
        match probe
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
        {
            None => Ok(default),
            Some(value) => value.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                let field = entry_of(&sources, name).map_or_else(
                    || "spec.template.spec.containers[0].env".to_string(),
                    |i| env_field(i, ""),
                );
                invalid(
                    manifest,
                    &field,
                    format!("{name} `{value}` is not a TCP port, so echo-basic could not listen"),
                )
            }),
        }
    };
    let http_port = port_of("HTTP_PORT", DEFAULT_HTTP_PORT)?;
    let h2c_port = Some(port_of("H2C_PORT", DEFAULT_H2C_PORT)?).filter(|p| *p != http_port);
    let pods = names
        .iter()
        .map(|name| {
            let env = resolve(&sources, name, fixture)
                .into_iter()
                .filter(|(var, _)| ENV_VARS.contains(&var.as_str()))
                .collect();
            PodPlan {
                name: name.clone(),
                env,
            }
        })
        .collect();
    Ok(EchoBasicPods {
        http_port,
        h2c_port,
        pods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defined(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kubernetes_expansion() {
        let vars = defined(&[("POD", "web-abc-defgh"), ("NS", "infra")]);
        assert_eq!(expand("$(POD).$(NS)", &vars), "web-abc-defgh.infra");
        assert_eq!(expand("$$(POD)", &vars), "$(POD)");
        assert_eq!(expand("$(NOPE)", &vars), "$(NOPE)");
        assert_eq!(expand("a$b$", &vars), "a$b$");
        assert_eq!(expand("$(POD", &vars), "$(POD");
        assert_eq!(expand("plain", &vars), "plain");
    }

    #[test]
    fn field_paths() {
        assert_eq!(field_source("metadata.name"), Some(EnvSource::PodName));
        assert_eq!(
            field_source("metadata.namespace"),
            Some(EnvSource::Namespace)
        );
        assert_eq!(
            field_source("metadata.labels['app']"),
            Some(EnvSource::Label("app".into()))
        );
        assert_eq!(field_source("status.podIP"), None);
        assert_eq!(field_source("metadata.labels[app]"), None);
    }
}
