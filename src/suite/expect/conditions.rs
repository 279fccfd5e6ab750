//! `expect.conditions`: the status conditions of route parents, Gateways and listeners
//! (and a listener's `attachedRoutes`), as the Gateway API conformance tests check them
//! (kubernetes-sigs/gateway-api `conformance/utils/kubernetes/helpers.go`:
//! `HTTPRouteMustHaveCondition`, `GatewayMustHaveCondition`,
//! `GatewayStatusMustHaveListeners`, `parentsForRouteMatch`). Each expected condition
//! must be present with its status, and with its reason when one is given; what is not
//! named is not checked. Judged against an [`IstioStatus`]: computed on the local target
//! ([`crate::fixtures::Fixtures::istio_status`]), read from the objects on a cluster.

use std::collections::BTreeMap;

use crate::fixtures::{
    Fixtures, GATEWAY_NAME_LABEL, GeneratedObjectView, IstioStatus, StatusCondition,
};
use crate::manifest::{ObjectKey, SourceLocation};
use crate::suite::error::SuiteError;
use crate::suite::model::{ConditionSpec, GeneratedMetadataSpec, ObjectConditionsSpec};
use crate::suite::parse_ref;

/// Every entry of a case's `expect.conditions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedConditions {
    pub objects: Vec<ExpectedObjectConditions>,
}

/// The conditions of one status entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedObjectConditions {
    pub target: StatusTarget,
    pub conditions: Vec<ExpectedCondition>,
    /// Only for a listener.
    pub attached_routes: Option<u32>,
    /// Only for a listener: kinds of the Gateway API group that `supportedKinds` must
    /// list, or, when empty, that it lists none (upstream `listenersMatch`: the
    /// implementation may support more kinds than a test names).
    pub supported_kinds: Option<Vec<String>>,
    /// The object's `metadata.generation`, at which every condition of the entry must
    /// have been observed: the status describes the spec as the case's `apply` left it
    /// (upstream `HTTPRouteMustHaveLatestConditions`, `GatewayMustHaveLatestConditions`
    /// and the tests' check that an update moved the generation on).
    pub generation: Option<i64>,
    /// Only for a Gateway: the listeners its status lists, sorted (upstream
    /// `GatewayStatusMustHaveListeners` wants exactly the listeners it names).
    pub listeners: Option<Vec<String>>,
    /// Only for a Gateway: its status lists at least one address (upstream
    /// `WaitForGatewayAddress`).
    pub address_assigned: bool,
    /// Only for a Gateway: what every object deployed for it must carry.
    pub generated: Option<ExpectedGenerated>,
}

/// `generated`: labels and annotations with their values that every object the
/// control plane deployed for a Gateway carries (upstream GatewayInfrastructure checks
/// the first ServiceAccount, Pod and Service labelled with the Gateway's name, and
/// wants one of them at least).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedGenerated {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl ExpectedGenerated {
    fn failure(&self, objects: &[GeneratedObjectView]) -> Option<String> {
        if objects.is_empty() {
            return Some(format!(
                "expected objects deployed for the Gateway (labelled {GATEWAY_NAME_LABEL}), found none"
            ));
        }
        let missing = |want: &BTreeMap<String, String>, has: &BTreeMap<String, String>| {
            want.iter()
                .filter(|(k, v)| has.get(*k) != Some(*v))
                .map(|(k, v)| match has.get(k) {
                    Some(seen) => format!("{k}={v} (it has {k}={seen})"),
                    None => format!("{k}={v}"),
                })
                .collect::<Vec<_>>()
        };
        let wrong: Vec<String> = objects
            .iter()
            .filter_map(|object| {
                let labels = missing(&self.labels, &object.labels);
                let annotations = missing(&self.annotations, &object.annotations);
                if labels.is_empty() && annotations.is_empty() {
                    return None;
                }
                let mut parts = Vec::new();
                if !labels.is_empty() {
                    parts.push(format!("label {}", labels.join(", ")));
                }
                if !annotations.is_empty() {
                    parts.push(format!("annotation {}", annotations.join(", ")));
                }
                Some(format!(
                    "{} {} lacks {}",
                    object.kind,
                    object.name,
                    parts.join("; ")
                ))
            })
            .collect();
        (!wrong.is_empty()).then(|| wrong.join("; "))
    }
}

/// Whose status entry a check reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusTarget {
    /// A route's entry for one parent (`status.parents[]`).
    RouteParent {
        route: ObjectKey,
        /// The parent (kind Gateway or Service).
        parent: ObjectKey,
        section_name: Option<String>,
    },
    /// A Gateway's own `status.conditions`.
    Gateway(ObjectKey),
    /// One entry of a Gateway's `status.listeners`.
    Listener { gateway: ObjectKey, name: String },
    /// A GatewayClass's `status.conditions`.
    GatewayClass(ObjectKey),
}

impl std::fmt::Display for StatusTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusTarget::RouteParent {
                route,
                parent,
                section_name,
            } => {
                write!(f, "{route} parent {parent}")?;
                if let Some(section) = section_name {
                    write!(f, " section {section}")?;
                }
                Ok(())
            }
            StatusTarget::Gateway(gateway) | StatusTarget::GatewayClass(gateway) => {
                write!(f, "{gateway}")
            }
            StatusTarget::Listener { gateway, name } => {
                write!(f, "{gateway} listener {name}")
            }
        }
    }
}

/// One expected condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedCondition {
    pub type_: String,
    pub status: &'static str,
    pub reason: Option<String>,
}

impl ExpectedCondition {
    fn describe(&self) -> String {
        match &self.reason {
            Some(reason) => format!("{}={} ({reason})", self.type_, self.status),
            None => format!("{}={}", self.type_, self.status),
        }
    }
}

/// A condition as seen, for messages.
fn seen(condition: &StatusCondition) -> String {
    format!(
        "{}={} ({})",
        condition.type_, condition.status, condition.reason
    )
}

impl ExpectedConditions {
    /// Resolves `expect.conditions`; `at` locates a field under it (`[0].route`).
    pub(in crate::suite) fn load(
        specs: &[ObjectConditionsSpec],
        fixtures: &Fixtures,
        at: &dyn Fn(&str) -> SourceLocation,
    ) -> Result<ExpectedConditions, SuiteError> {
        if specs.is_empty() {
            return Err(SuiteError::Invalid {
                location: at(""),
                message: "`conditions` needs at least one entry".into(),
            });
        }
        let objects = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| load_one(spec, fixtures, &|f: &str| at(&format!("[{i}]{f}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ExpectedConditions { objects })
    }

    /// The Gateways, HTTPRoutes and GatewayClasses whose status the checks read.
    pub fn objects(&self) -> Vec<ObjectKey> {
        let mut keys: Vec<ObjectKey> = self
            .objects
            .iter()
            .map(|o| match &o.target {
                StatusTarget::RouteParent { route, .. } => route.clone(),
                StatusTarget::Gateway(gateway) | StatusTarget::Listener { gateway, .. } => {
                    gateway.clone()
                }
                StatusTarget::GatewayClass(class) => class.clone(),
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The Gateways whose deployed objects a `generated` check reads.
    pub fn generated_gateways(&self) -> Vec<ObjectKey> {
        let mut keys: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|o| o.generated.is_some())
            .filter_map(|o| match &o.target {
                StatusTarget::Gateway(gateway) => Some(gateway.clone()),
                _ => None,
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// What is wrong with `status`, one line per failed check; empty when it all holds.
    pub fn failures(&self, status: &IstioStatus) -> Vec<String> {
        self.objects
            .iter()
            .filter_map(|o| o.failure(status).map(|why| format!("{}: {why}", o.target)))
            .collect()
    }

    /// The pass message's fragment.
    pub fn describe(&self) -> String {
        let checked: usize = self
            .objects
            .iter()
            .map(|o| {
                o.conditions.len()
                    + usize::from(o.generation.is_some())
                    + usize::from(o.listeners.is_some())
                    + usize::from(o.attached_routes.is_some())
                    + usize::from(o.supported_kinds.is_some())
                    + usize::from(o.address_assigned)
                    + usize::from(o.generated.is_some())
            })
            .sum();
        format!(
            "status as expected ({checked} check{} on {} status entr{})",
            if checked == 1 { "" } else { "s" },
            self.objects.len(),
            if self.objects.len() == 1 { "y" } else { "ies" }
        )
    }
}

impl ExpectedObjectConditions {
    fn failure(&self, status: &IstioStatus) -> Option<String> {
        let mut kinds: Option<Vec<String>> = None;
        let mut listed: Option<Vec<String>> = None;
        let mut addresses: Option<usize> = None;
        let mut generated: &[GeneratedObjectView] = &[];
        let (conditions, attached_routes, generation): (&[StatusCondition], Option<u32>, _) =
            match &self.target {
                StatusTarget::RouteParent {
                    route,
                    parent,
                    section_name,
                } => {
                    let route_status = status.route(route);
                    let Some(parent_status) = route_status.and_then(|r| {
                        r.parent(
                            &parent.kind,
                            parent.namespace_or_default(),
                            &parent.name,
                            section_name.as_deref(),
                        )
                    }) else {
                        return Some("no status entry for this parent".into());
                    };
                    (
                        &parent_status.conditions,
                        None,
                        route_status.and_then(|r| r.generation),
                    )
                }
                StatusTarget::Gateway(gateway) => match status.gateway(gateway) {
                    Some(view) => {
                        let mut names: Vec<String> =
                            view.listeners.iter().map(|l| l.name.clone()).collect();
                        names.sort();
                        listed = Some(names);
                        addresses = Some(view.addresses.len());
                        generated = &view.generated;
                        (&view.conditions, None, view.generation)
                    }
                    None => return Some("no status".into()),
                },
                StatusTarget::GatewayClass(class) => match status.gateway_class(class) {
                    Some(view) => (&view.conditions, None, view.generation),
                    None => return Some("no status".into()),
                },
                StatusTarget::Listener { gateway, name } => {
                    let gateway_status = status.gateway(gateway);
                    match gateway_status.and_then(|g| g.listener(name)) {
                        Some(view) => {
                            kinds = Some(
                                view.supported_kinds
                                    .iter()
                                    .filter(|k| k.group == crate::manifest::GATEWAY_API_GROUP)
                                    .map(|k| k.kind.clone())
                                    .collect(),
                            );
                            (
                                &view.conditions,
                                Some(view.attached_routes),
                                gateway_status.and_then(|g| g.generation),
                            )
                        }
                        None => return Some("no listener status".into()),
                    }
                }
            };
        let mut wrong: Vec<String> = Vec::new();
        if let Some(expected) = self.generation {
            match generation {
                Some(seen) if seen != expected => wrong.push(format!(
                    "expected the object at generation {expected}, it is at {seen}"
                )),
                None => wrong.push(format!(
                    "expected the object at generation {expected}, its generation is not known"
                )),
                Some(_) => {
                    for condition in conditions {
                        if condition.observed_generation != Some(expected) {
                            wrong.push(format!(
                                "expected {} observed at generation {expected}, it was observed at {}",
                                condition.type_,
                                condition
                                    .observed_generation
                                    .map_or("none".to_string(), |g| g.to_string())
                            ));
                        }
                    }
                }
            }
        }
        for expected in &self.conditions {
            match conditions.iter().find(|c| c.type_ == expected.type_) {
                None => wrong.push(format!(
                    "expected {}, there is no {} condition",
                    expected.describe(),
                    expected.type_
                )),
                Some(condition)
                    if condition.status != expected.status
                        || expected
                            .reason
                            .as_ref()
                            .is_some_and(|r| *r != condition.reason) =>
                {
                    wrong.push(format!(
                        "expected {}, saw {}{}",
                        expected.describe(),
                        seen(condition),
                        if condition.message.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", condition.message)
                        }
                    ));
                }
                Some(_) => {}
            }
        }
        if let (Some(expected), Some(seen)) = (&self.listeners, &listed)
            && expected != seen
        {
            wrong.push(format!(
                "expected listeners [{}], saw [{}]",
                expected.join(", "),
                seen.join(", ")
            ));
        }
        if self.address_assigned && addresses == Some(0) {
            wrong.push("expected an address in the Gateway's status, it lists none".into());
        }
        if let Some(why) = self.generated.as_ref().and_then(|g| g.failure(generated)) {
            wrong.push(why);
        }
        if let (Some(expected), Some(seen)) = (self.attached_routes, attached_routes)
            && expected != seen
        {
            wrong.push(format!("expected attachedRoutes {expected}, saw {seen}"));
        }
        if let (Some(expected), Some(seen)) = (&self.supported_kinds, &kinds) {
            let missing: Vec<&String> = expected.iter().filter(|k| !seen.contains(k)).collect();
            if (expected.is_empty() && !seen.is_empty()) || !missing.is_empty() {
                wrong.push(format!(
                    "expected supportedKinds {}, saw [{}]",
                    if expected.is_empty() {
                        "[] (none)".to_string()
                    } else {
                        format!("with {}", expected.join(", "))
                    },
                    seen.join(", ")
                ));
            }
        }
        (!wrong.is_empty()).then(|| wrong.join("; "))
    }
}

fn load_one(
    spec: &ObjectConditionsSpec,
    fixtures: &Fixtures,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<ExpectedObjectConditions, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let only_with = |given: bool, field: &str, with: &str| -> Result<(), SuiteError> {
        if given {
            Err(invalid(
                &format!(".{field}"),
                format!("`{field}` goes with `{with}` only"),
            ))
        } else {
            Ok(())
        }
    };
    let target = match (&spec.route, &spec.gateway, &spec.gateway_class) {
        (None, None, Some(class)) => {
            for (given, field) in [
                (spec.parent.is_some(), "parent"),
                (spec.parent_kind.is_some(), "parentKind"),
                (spec.section_name.is_some(), "sectionName"),
                (spec.listener.is_some(), "listener"),
                (spec.listeners.is_some(), "listeners"),
                (spec.attached_routes.is_some(), "attachedRoutes"),
                (spec.supported_kinds.is_some(), "supportedKinds"),
                (spec.address.is_some(), "address"),
                (spec.generated.is_some(), "generated"),
            ] {
                if given {
                    return Err(invalid(
                        &format!(".{field}"),
                        format!("`{field}` does not apply to a GatewayClass"),
                    ));
                }
            }
            let key = ObjectKey {
                kind: "GatewayClass".into(),
                namespace: None,
                name: class.clone(),
            };
            if !fixtures
                .of_kind(crate::manifest::GroupKind::GATEWAY_CLASS)
                .any(|m| m.name == *class)
            {
                return Err(invalid(
                    ".gatewayClass",
                    format!("GatewayClass {class} is not in the suite's fixtures"),
                ));
            }
            StatusTarget::GatewayClass(key)
        }
        (Some(route), None, None) => {
            only_with(spec.listener.is_some(), "listener", "gateway")?;
            only_with(spec.attached_routes.is_some(), "attachedRoutes", "listener")?;
            only_with(spec.supported_kinds.is_some(), "supportedKinds", "listener")?;
            only_with(spec.listeners.is_some(), "listeners", "gateway")?;
            only_with(spec.address.is_some(), "address", "gateway")?;
            only_with(spec.generated.is_some(), "generated", "gateway")?;
            let route_key = parse_ref("HTTPRoute", route).map_err(|m| invalid(".route", m))?;
            let Some(fixture) = fixtures.route(&route_key) else {
                return Err(invalid(
                    ".route",
                    format!("{route_key} is not in the suite's fixtures"),
                ));
            };
            let Some(parent) = &spec.parent else {
                return Err(invalid(
                    "",
                    "a route's conditions are per parent: name it with `parent: namespace/name`"
                        .into(),
                ));
            };
            let kind = spec.parent_kind.as_deref().unwrap_or("Gateway");
            if !matches!(kind, "Gateway" | "Service") {
                return Err(invalid(
                    ".parentKind",
                    format!("`{kind}`: a parent is a `Gateway` or a `Service`"),
                ));
            }
            let parent_key = parse_ref(kind, parent).map_err(|m| invalid(".parent", m))?;
            let named = fixture.parent_refs.iter().any(|p| {
                p.kind == kind
                    && Some(p.namespace.as_str()) == parent_key.namespace.as_deref()
                    && p.name == parent_key.name
                    && p.section_name == spec.section_name
            });
            if !named {
                return Err(invalid(
                    ".parent",
                    format!(
                        "{route_key} has no parentRef to {parent_key}{}",
                        spec.section_name
                            .as_ref()
                            .map_or(" without a sectionName".to_string(), |s| format!(
                                " with sectionName {s}"
                            ))
                    ),
                ));
            }
            StatusTarget::RouteParent {
                route: route_key,
                parent: parent_key,
                section_name: spec.section_name.clone(),
            }
        }
        (None, Some(gateway), None) => {
            only_with(spec.parent.is_some(), "parent", "route")?;
            only_with(spec.parent_kind.is_some(), "parentKind", "route")?;
            only_with(spec.section_name.is_some(), "sectionName", "route")?;
            let key = parse_ref("Gateway", gateway).map_err(|m| invalid(".gateway", m))?;
            let Some(fixture) = fixtures.gateway(&key) else {
                return Err(invalid(
                    ".gateway",
                    format!("{key} is not in the suite's fixtures"),
                ));
            };
            match &spec.listener {
                Some(name) => {
                    if spec.listeners.is_some() {
                        return Err(invalid(
                            ".listeners",
                            "`listeners` lists a Gateway's listeners: give it without `listener`"
                                .into(),
                        ));
                    }
                    if spec.address.is_some() {
                        return Err(invalid(
                            ".address",
                            "a Gateway has addresses, its listeners do not: give `address` without `listener`"
                                .into(),
                        ));
                    }
                    if spec.generated.is_some() {
                        return Err(invalid(
                            ".generated",
                            "objects are deployed for a Gateway, not for a listener: give `generated` without `listener`"
                                .into(),
                        ));
                    }
                    if !fixture.listeners().iter().any(|l| l.name == *name) {
                        return Err(invalid(
                            ".listener",
                            format!("{key} has no listener `{name}`"),
                        ));
                    }
                    StatusTarget::Listener {
                        gateway: key,
                        name: name.clone(),
                    }
                }
                None => {
                    only_with(spec.attached_routes.is_some(), "attachedRoutes", "listener")?;
                    only_with(spec.supported_kinds.is_some(), "supportedKinds", "listener")?;
                    if let Some(unknown) = spec
                        .listeners
                        .iter()
                        .flatten()
                        .find(|name| !fixture.listeners().iter().any(|l| l.name == **name))
                    {
                        return Err(invalid(
                            ".listeners",
                            format!("{key} has no listener `{unknown}`"),
                        ));
                    }
                    StatusTarget::Gateway(key)
                }
            }
        }
        (None, None, None) => {
            return Err(invalid(
                "",
                "name whose status is checked: `route: namespace/name` with `parent`, `gateway: namespace/name` (with `listener`), or `gatewayClass: name`".into(),
            ));
        }
        (_, _, class) => {
            return Err(invalid(
                if class.is_some() {
                    ".gatewayClass"
                } else {
                    ".gateway"
                },
                "give one of `route` (a route parent's conditions), `gateway` (a Gateway's or a listener's) and `gatewayClass`".into(),
            ));
        }
    };
    if spec.conditions.is_empty()
        && spec.attached_routes.is_none()
        && spec.supported_kinds.is_none()
        && spec.generation.is_none()
        && spec.listeners.is_none()
        && spec.address.is_none()
        && spec.generated.is_none()
    {
        return Err(invalid(
            "",
            "nothing to check: give `conditions`, `generation` (or, for a listener, `attachedRoutes`)".into(),
        ));
    }
    let address_assigned = match spec.address.as_deref() {
        None => false,
        Some("assigned") => true,
        Some(other) => {
            return Err(invalid(
                ".address",
                format!(
                    "`address: {other}`: the one value is `assigned` (the Gateway's status lists an address)"
                ),
            ));
        }
    };
    let generated = spec
        .generated
        .as_ref()
        .map(|g| load_generated(g, &|f: &str| at(&format!(".generated{f}"))))
        .transpose()?;
    let listeners = match &spec.listeners {
        Some(names) => {
            let mut sorted = names.clone();
            sorted.sort();
            if let Some(twice) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(invalid(
                    ".listeners",
                    format!("listener `{}` is listed twice", twice[0]),
                ));
            }
            Some(sorted)
        }
        None => None,
    };
    if spec.generation == Some(0) {
        return Err(invalid(
            ".generation",
            "generations start at 1 (the API server sets 1 when it creates an object)".into(),
        ));
    }
    let mut conditions: Vec<ExpectedCondition> = Vec::new();
    for (j, condition) in spec.conditions.iter().enumerate() {
        conditions.push(load_condition(condition, &|f: &str| {
            at(&format!(".conditions[{j}]{f}"))
        })?);
        if conditions[..j].iter().any(|c| c.type_ == condition.type_) {
            return Err(invalid(
                &format!(".conditions[{j}].type"),
                format!("condition `{}` is expected twice", condition.type_),
            ));
        }
    }
    Ok(ExpectedObjectConditions {
        target,
        conditions,
        attached_routes: spec.attached_routes,
        supported_kinds: spec.supported_kinds.clone(),
        generation: spec.generation.map(i64::from),
        listeners,
        address_assigned,
        generated,
    })
}

/// `generated`: label keys and values, and annotation keys, as the API server would
/// take them on an object (apimachinery `validation.IsQualifiedName`,
/// `IsValidLabelValue`); one label or annotation at least.
fn load_generated(
    spec: &GeneratedMetadataSpec,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<ExpectedGenerated, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    if spec.labels.is_empty() && spec.annotations.is_empty() {
        return Err(invalid(
            "",
            "nothing to check: give `labels` or `annotations`".into(),
        ));
    }
    for (field, keys) in [("labels", &spec.labels), ("annotations", &spec.annotations)] {
        for key in keys.keys() {
            if let Err(why) = qualified_name(key) {
                return Err(invalid(
                    &format!(".{field}"),
                    format!("`{key}` is not a valid {field} key: {why}"),
                ));
            }
        }
    }
    for (key, value) in &spec.labels {
        if !label_name(value) {
            return Err(invalid(
                ".labels",
                format!(
                    "the value of label `{key}` is not a label value: 63 characters at most, alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric"
                ),
            ));
        }
    }
    Ok(ExpectedGenerated {
        labels: spec.labels.clone(),
        annotations: spec.annotations.clone(),
    })
}

/// A label or annotation key: an optional DNS subdomain prefix (253 characters at
/// most) and `/`, then a name of 1 to 63 characters.
fn qualified_name(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let dns_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(dns_label) {
            return Err("the prefix before `/` must be a DNS subdomain");
        }
    }
    if name.is_empty() || !label_name(name) {
        return Err(
            "the name must be 1 to 63 characters, alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric",
        );
    }
    Ok(())
}

/// A label value, or the name part of a key: 63 characters at most, alphanumerics,
/// `-`, `_` and `.`, starting and ending alphanumeric (empty is a valid value).
fn label_name(text: &str) -> bool {
    text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && text
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric())
}

fn load_condition(
    spec: &ConditionSpec,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<ExpectedCondition, SuiteError> {
    // Condition types and reasons are CamelCase identifiers
    // (`metav1.Condition`: `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$` for the reason).
    let identifier = |text: &str| {
        text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !identifier(&spec.type_) {
        return Err(SuiteError::Invalid {
            location: at(".type"),
            message: format!("`{}` is not a condition type", spec.type_),
        });
    }
    if let Some(reason) = &spec.reason
        && !identifier(reason)
    {
        return Err(SuiteError::Invalid {
            location: at(".reason"),
            message: format!("`{reason}` is not a condition reason"),
        });
    }
    Ok(ExpectedCondition {
        type_: spec.type_.clone(),
        status: spec.status.as_str(),
        reason: spec.reason.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{GatewayAddressView, GatewayStatusView, ListenerStatusView};

    fn gateway_key() -> ObjectKey {
        ObjectKey {
            kind: "Gateway".into(),
            namespace: Some("ns".into()),
            name: "gw".into(),
        }
    }

    fn condition(type_: &str, observed: Option<i64>) -> StatusCondition {
        StatusCondition {
            type_: type_.into(),
            status: "True".into(),
            reason: type_.into(),
            message: String::new(),
            observed_generation: observed,
        }
    }

    /// A Gateway at `generation`, its Accepted observed at `accepted_at`, with the
    /// listeners named.
    fn status(generation: i64, accepted_at: Option<i64>, listeners: &[&str]) -> IstioStatus {
        IstioStatus {
            gateways: vec![GatewayStatusView {
                gateway: gateway_key(),
                generation: Some(generation),
                addresses: Vec::new(),
                generated: Vec::new(),
                conditions: vec![
                    condition("Accepted", accepted_at),
                    condition("Programmed", Some(generation)),
                ],
                listeners: listeners
                    .iter()
                    .map(|name| ListenerStatusView {
                        name: (*name).into(),
                        supported_kinds: Vec::new(),
                        attached_routes: 0,
                        conditions: Vec::new(),
                    })
                    .collect(),
            }],
            routes: Vec::new(),
            gateway_classes: Vec::new(),
        }
    }

    fn expected(generation: Option<i64>, listeners: Option<&[&str]>) -> ExpectedConditions {
        ExpectedConditions {
            objects: vec![ExpectedObjectConditions {
                target: StatusTarget::Gateway(gateway_key()),
                conditions: Vec::new(),
                attached_routes: None,
                supported_kinds: None,
                generation,
                listeners: listeners.map(|l| l.iter().map(|n| n.to_string()).collect()),
                address_assigned: false,
                generated: None,
            }],
        }
    }

    /// The generation check wants the object at the generation and every condition of
    /// the entry observed there: a status left from the spec before does not pass.
    #[test]
    fn a_generation_needs_the_object_there_and_every_condition_observed_there() {
        let want = expected(Some(2), None);
        assert_eq!(
            want.failures(&status(2, Some(2), &[])),
            Vec::<String>::new()
        );
        assert_eq!(
            want.failures(&status(1, Some(1), &[])),
            ["Gateway ns/gw: expected the object at generation 2, it is at 1"]
        );
        assert_eq!(
            want.failures(&status(2, Some(1), &[])),
            ["Gateway ns/gw: expected Accepted observed at generation 2, it was observed at 1"]
        );
        assert_eq!(
            want.failures(&status(2, None, &[])),
            ["Gateway ns/gw: expected Accepted observed at generation 2, it was observed at none"]
        );
    }

    /// `listeners` wants exactly the listeners named, in any order.
    #[test]
    fn listeners_must_be_exactly_the_ones_named() {
        let want = expected(None, Some(&["a", "b"]));
        assert!(want.failures(&status(1, Some(1), &["b", "a"])).is_empty());
        assert_eq!(
            want.failures(&status(1, Some(1), &["a", "b", "c"])),
            ["Gateway ns/gw: expected listeners [a, b], saw [a, b, c]"]
        );
        assert_eq!(
            want.failures(&status(1, Some(1), &["a"])),
            ["Gateway ns/gw: expected listeners [a, b], saw [a]"]
        );
    }

    /// `address: assigned` wants one address at least in the Gateway's status, of
    /// either type.
    #[test]
    fn an_assigned_address_needs_one_in_the_status() {
        let mut want = expected(None, None);
        want.objects[0].address_assigned = true;
        let mut seen = status(1, Some(1), &[]);
        assert_eq!(
            want.failures(&seen),
            ["Gateway ns/gw: expected an address in the Gateway's status, it lists none"]
        );
        seen.gateways[0].addresses.push(GatewayAddressView {
            type_: "Hostname".into(),
            value: "gw-istio.ns.svc.cluster.local".into(),
        });
        assert!(want.failures(&seen).is_empty());
    }

    fn pairs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `generated` wants objects deployed for the Gateway, each carrying every label
    /// and annotation with its value; it names each object that does not.
    #[test]
    fn generated_objects_must_each_carry_the_metadata() {
        let mut want = expected(None, None);
        want.objects[0].generated = Some(ExpectedGenerated {
            labels: pairs(&[("key2", "value2")]),
            annotations: pairs(&[("key1", "value1")]),
        });
        let mut seen = status(1, Some(1), &[]);
        assert_eq!(
            want.failures(&seen),
            [
                "Gateway ns/gw: expected objects deployed for the Gateway (labelled gateway.networking.k8s.io/gateway-name), found none"
            ]
        );
        let object = |kind: &str, labels, annotations| GeneratedObjectView {
            kind: kind.into(),
            name: "gw-istio".into(),
            labels,
            annotations,
        };
        seen.gateways[0].generated = vec![
            object(
                "Service",
                pairs(&[("key2", "value2"), ("other", "x")]),
                pairs(&[("key1", "value1")]),
            ),
            object("Pod", pairs(&[("key2", "wrong")]), BTreeMap::new()),
        ];
        assert_eq!(
            want.failures(&seen),
            [
                "Gateway ns/gw: Pod gw-istio lacks label key2=value2 (it has key2=wrong); annotation key1=value1"
            ]
        );
        seen.gateways[0].generated.pop();
        assert!(want.failures(&seen).is_empty());
    }

    #[test]
    fn generated_keys_and_values_are_held_to_the_api_servers_rules() {
        for key in ["key1", "example.com/key", "a.b-c/x_y.z", "K8s"] {
            assert_eq!(qualified_name(key), Ok(()), "{key}");
        }
        for key in [
            "",
            "/x",
            "Example.com/x",
            "x/",
            "-x",
            "a/b/c",
            &"k".repeat(64),
        ] {
            assert!(qualified_name(key).is_err(), "{key}");
        }
        assert!(label_name("") && label_name("value-2") && label_name("v.1_a"));
        assert!(!label_name("-v") && !label_name("v v") && !label_name(&"v".repeat(64)));
    }
}
