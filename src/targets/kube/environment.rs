//! The kube target's client side: connect, apply, wait, find the gateway, clean up.
//! Decisions (ordering, readiness, address choice, redaction) live in the IO-free
//! modules next to this one; here we only talk to the API server.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use hickory_resolver::TokioResolver;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Service};
use kube::api::{
    Api, AttachParams, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
    Preconditions,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Scope, pinned_kind};
use kube::runtime::wait::{await_condition, conditions::is_deleted};
use kube::runtime::watcher;
use kube::{Client, Config};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::address::{
    Backoff, PublishedAddress, choose_address, gateway_service_name, resolve_with_backoff,
};
use super::error::{ApiFailure, KubeError};
use super::options::{KubeOptions, KubeTimeouts, ReadinessDeadline};
use super::redact::Redactor;
use super::run_id::{self, RunId};
use super::status::{
    Readiness, Rejections, WaitKind, gateway_class_accepted, pod_ready, pods_progress,
};
use super::versions::{
    self, ClusterVersions, GATEWAY_API_CRD, ISTIOD_DEPLOYMENT, ISTIOD_NAMESPACE,
};
use crate::manifest::{Manifest, ObjectKey, apply_order};
// kube-rs errors can quote credentials, so they are never kept as a `source`: they
// are flattened by the one error renderer and redacted right away.
use crate::error_chain::one_line;
use crate::runner::{KindReady, Pending};
use crate::targets::{CleanupReport, DiagnosticSection};

/// The field manager of every server-side apply, so `kubectl get --show-managed-fields`
/// tells which fields meshcheck owns.
pub const FIELD_MANAGER: &str = "meshcheck";

// The label Istio puts on the pods and Service of a Gateway it deploys.
use crate::fixtures::GATEWAY_NAME_LABEL;

/// One object this run applied.
#[derive(Clone, Debug)]
pub struct AppliedObject {
    pub key: ObjectKey,
    /// Whether this run created it; objects that already existed are never deleted.
    pub created: bool,
    uid: Option<String>,
    resource: ApiResource,
    namespace: Option<String>,
}

/// Output of a command run in a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// The exit status as the kubelet reported it: 0 on success.
    pub status: i32,
}

/// One preflight check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreflightCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What the cluster has and lacks before any test runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preflight {
    pub checks: Vec<PreflightCheck>,
}

impl Preflight {
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn missing(&self) -> Vec<&PreflightCheck> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }
}

impl std::fmt::Display for Preflight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.checks {
            writeln!(
                f,
                "{} {}: {}",
                if c.ok { "ok     " } else { "MISSING" },
                c.name,
                c.detail
            )?;
        }
        Ok(())
    }
}

/// CRDs the seed scenario needs: the Gateway API standard channel and Istio's
/// DestinationRule.
pub const REQUIRED_CRDS: &[&str] = &[
    "gatewayclasses.gateway.networking.k8s.io",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    "referencegrants.gateway.networking.k8s.io",
    "grpcroutes.gateway.networking.k8s.io",
    "destinationrules.networking.istio.io",
];

/// A connected cluster and what this run applied to it.
pub struct KubeEnvironment {
    client: Client,
    redactor: Redactor,
    server_url: String,
    timeouts: KubeTimeouts,
    keep: bool,
    run_id: Option<RunId>,
    keep_on_failure: bool,
    /// `meshcheck cleanup --run-id ID` with this run's connection flags.
    cleanup_command: Option<String>,
    kinds: HashMap<(String, String, String), (ApiResource, bool)>,
    applied: Vec<AppliedObject>,
    resolver: Option<TokioResolver>,
    backoff: Backoff,
}

// Debug shows where we are connected and what we applied, never the client's auth.
impl std::fmt::Debug for KubeEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeEnvironment")
            .field("server_url", &self.server_url)
            .field(
                "applied",
                &self
                    .applied
                    .iter()
                    .map(|a| a.key.to_string())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl KubeEnvironment {
    /// Connects as kubectl would: the given kubeconfig file or `KUBECONFIG`/`~/.kube/config`,
    /// the given context or the current one. Checks the server answers before returning.
    pub async fn connect(options: KubeOptions) -> Result<Self, KubeError> {
        let kubeconfig_error = |message: String| KubeError::Kubeconfig {
            path: options.kubeconfig.clone(),
            message,
        };
        let kubeconfig = match &options.kubeconfig {
            Some(path) => Kubeconfig::read_from(path),
            None => Kubeconfig::read(),
        }
        .map_err(|e| kubeconfig_error(one_line(&e)))?;
        let redactor =
            Redactor::from_kubeconfig_json(&serde_json::to_value(&kubeconfig).unwrap_or_default());
        let config_options = KubeConfigOptions {
            context: options.context.clone(),
            ..Default::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &config_options)
            .await
            .map_err(|e| kubeconfig_error(redactor.redact(&one_line(&e))))?;
        let server_url = config.cluster_url.to_string();
        let client = Client::try_from(config)
            .map_err(|e| kubeconfig_error(redactor.redact(&one_line(&e))))?;
        let env = Self::from_client(client, server_url, redactor, options);
        env.client
            .apiserver_version()
            .await
            .map_err(|e| KubeError::Unreachable {
                url: env.server_url.clone(),
                failure: env.failure(&e),
            })?;
        Ok(env)
    }

    /// Wraps an existing client (tests, or callers with their own auth). The redactor
    /// should know the client's secrets.
    pub fn from_client(
        client: Client,
        server_url: String,
        redactor: Redactor,
        options: KubeOptions,
    ) -> Self {
        KubeEnvironment {
            client,
            redactor,
            server_url,
            timeouts: options.timeouts,
            keep: options.keep,
            keep_on_failure: options.keep_on_failure,
            cleanup_command: options
                .run_id
                .as_ref()
                .map(|run| cleanup_command(run, &options)),
            run_id: options.run_id,
            kinds: HashMap::new(),
            applied: Vec::new(),
            resolver: None,
            backoff: Backoff::default(),
        }
    }

    /// Resolves gateway hostnames through this resolver instead of the system's.
    pub fn with_resolver(mut self, resolver: TokioResolver, backoff: Backoff) -> Self {
        self.resolver = Some(resolver);
        self.backoff = backoff;
        self
    }

    /// The id this run's objects are labelled with, if they are.
    pub fn run_id(&self) -> Option<&RunId> {
        self.run_id.as_ref()
    }

    /// What this run has applied so far, in order.
    pub fn applied(&self) -> &[AppliedObject] {
        &self.applied
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    pub(super) fn failure(&self, err: &(dyn std::error::Error + 'static)) -> ApiFailure {
        // Walk the chain for the kube error that carries the server's Status.
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = current {
            if let Some(kube::Error::Api(status)) = e.downcast_ref::<kube::Error>() {
                return ApiFailure {
                    code: Some(status.code),
                    reason: status.reason.clone(),
                    message: self.redactor.redact(&status.message),
                };
            }
            current = e.source();
        }
        ApiFailure {
            code: None,
            reason: String::new(),
            message: self.redactor.redact(&one_line(err)),
        }
    }

    pub(super) fn api_error(
        &self,
        action: &'static str,
        object: impl ToString,
        err: &(dyn std::error::Error + 'static),
    ) -> KubeError {
        KubeError::Api {
            action,
            object: object.to_string(),
            failure: self.failure(err),
        }
    }

    /// The API resource for a manifest's group/version/kind, through discovery, cached.
    async fn resource_for(
        &mut self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<(ApiResource, bool), kube::Error> {
        let cache_key = (group.to_owned(), version.to_owned(), kind.to_owned());
        if let Some(found) = self.kinds.get(&cache_key) {
            return Ok(found.clone());
        }
        let (resource, caps) =
            pinned_kind(&self.client, &GroupVersionKind::gvk(group, version, kind)).await?;
        let found = (resource, caps.scope == Scope::Namespaced);
        self.kinds.insert(cache_key, found.clone());
        Ok(found)
    }

    async fn manifest_api(
        &mut self,
        m: &Manifest,
    ) -> Result<(Api<DynamicObject>, ApiResource, Option<String>), KubeError> {
        let (resource, namespaced) = self
            .resource_for(m.group(), m.version(), &m.kind)
            .await
            .map_err(|e| KubeError::UnknownKind {
                location: m.location(),
                kind: m.kind.clone(),
                api_version: m.api_version.clone(),
                failure: self.failure(&e),
            })?;
        let namespace = if namespaced {
            Some(
                m.namespace
                    .clone()
                    .unwrap_or_else(|| self.client.default_namespace().to_owned()),
            )
        } else {
            None
        };
        let api = match &namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        Ok((api, resource, namespace))
    }

    /// Server-side applies the manifests (field manager `meshcheck`), CRDs and Namespaces
    /// first, waiting for each CRD to be Established before anything after it, so kinds
    /// it defines are discoverable. Remembers what it created for [`Self::cleanup`].
    pub async fn apply(&mut self, manifests: &[Manifest]) -> Result<(), KubeError> {
        for m in apply_order(manifests) {
            let (api, resource, namespace) = self.manifest_api(m).await?;
            let key = m.key();
            let live = api
                .get_opt(&m.name)
                .await
                .map_err(|e| self.api_error("get", &key, &e))?;
            let mut body = m.to_json();
            if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                if let Some(ns) = &namespace {
                    meta.insert("namespace".into(), Value::String(ns.clone()));
                }
                match (&live, &self.run_id) {
                    // Only what this run creates carries its id, so `meshcheck cleanup`
                    // never deletes an object someone else made. A leftover of an
                    // earlier run keeps that run's stamp.
                    (None, Some(run)) => run_id::stamp(meta, run, std::time::SystemTime::now()),
                    (None, None) => {}
                    (Some(live), _) => {
                        run_id::keep_stamp(meta, &serde_json::to_value(live).unwrap_or_default())
                    }
                }
            }
            let existed = live.is_some();
            let applied = api
                .patch(
                    &m.name,
                    &PatchParams::apply(FIELD_MANAGER),
                    &Patch::Apply(&body),
                )
                .await
                .map_err(|e| KubeError::Apply {
                    location: m.location(),
                    object: key.to_string(),
                    failure: self.failure(&e),
                })?;
            if !self.applied.iter().any(|a| a.key == key) {
                self.applied.push(AppliedObject {
                    key: key.clone(),
                    created: !existed,
                    uid: applied.metadata.uid.clone(),
                    resource,
                    namespace,
                });
            }
            if m.is(crate::manifest::GroupKind::CUSTOM_RESOURCE_DEFINITION) {
                self.wait_object(
                    api,
                    &key,
                    WaitKind::CrdEstablished,
                    self.timeouts.crd_established,
                    &|_| {},
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn wait_object(
        &self,
        api: Api<DynamicObject>,
        key: &ObjectKey,
        kind: WaitKind,
        timeout: Duration,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<(), KubeError> {
        let last_seen = Arc::new(Mutex::new("not found".to_owned()));
        let seen = last_seen.clone();
        let condition = move |obj: Option<&DynamicObject>| {
            let verdict = match obj {
                None => Readiness::Pending("not found".into()),
                Some(o) => kind.evaluate(&serde_json::to_value(o).unwrap_or_default()),
            };
            if !verdict.is_ready() {
                progress(&verdict.describe());
            }
            if let Ok(mut last) = seen.lock() {
                *last = verdict.describe();
            }
            verdict.is_ready()
        };
        match tokio::time::timeout(timeout, await_condition(api, &key.name, condition)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.api_error("watch", key, &e)),
            Err(_elapsed) => Err(KubeError::WaitTimeout {
                waited_for: format!("{key} {}", kind.goal()),
                timeout,
                last_seen: self
                    .redactor
                    .redact(&last_seen.lock().map(|s| s.clone()).unwrap_or_default()),
            }),
        }
    }

    /// Takes the suite's readiness bound into the kinds' bounds
    /// ([`KubeTimeouts::for_suite`]): a suite that writes a longer `readiness.timeout`
    /// than a built-in kind bound is not cut short by it.
    pub fn bound_readiness_by(&mut self, deadline: &ReadinessDeadline) {
        self.timeouts = self.timeouts.for_suite(deadline);
    }

    fn timeout_for(&self, kind: WaitKind) -> Duration {
        match kind {
            WaitKind::CrdEstablished => self.timeouts.crd_established,
            WaitKind::DeploymentAvailable => self.timeouts.deployment,
            WaitKind::GatewayProgrammed | WaitKind::GatewayClassAccepted => self.timeouts.gateway,
            WaitKind::GatewayStatusWritten => self.timeouts.gateway,
            WaitKind::RouteAccepted | WaitKind::RouteStatusWritten => self.timeouts.route,
            WaitKind::Present => self.timeouts.present,
        }
    }

    /// Waits for one object that this run did not necessarily apply (istiod, the
    /// `istio` GatewayClass) to be ready by its kind's rule, within `timeout`.
    pub async fn wait_for(
        &self,
        api_version: &str,
        key: &ObjectKey,
        timeout: Duration,
    ) -> Result<(), KubeError> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let (resource, caps) = pinned_kind(
            &self.client,
            &GroupVersionKind::gvk(group, version, &key.kind),
        )
        .await
        .map_err(|e| self.api_error("discover", format!("{api_version} {}", key.kind), &e))?;
        let api: Api<DynamicObject> = match (&key.namespace, caps.scope == Scope::Namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &resource),
            (None, true) => {
                return Err(KubeError::NoNamespace {
                    object: key.to_string(),
                });
            }
            (_, false) => Api::all_with(self.client.clone(), &resource),
        };
        self.wait_object(
            api,
            key,
            WaitKind::for_kind(group, &key.kind),
            timeout,
            &|_| {},
        )
        .await
    }

    /// Waits until every manifest is ready by its kind's rule (see [`WaitKind`]); for
    /// Deployments also until their pods are Ready, with the Istio sidecar where the
    /// namespace asks for injection. The objects are awaited all at once, each within
    /// its kind's timeout, so a slow load balancer does not hold up the Deployments.
    /// `progress` hears, whenever that changes, every object still pending and what it
    /// lacks (redacted, like the timeout error), in apply order. Returns how long each
    /// kind took, the kinds in apply order.
    pub async fn wait_ready(
        &self,
        manifests: &[Manifest],
        progress: &(dyn Fn(&[Pending]) + Sync),
    ) -> Result<Vec<KindReady>, KubeError> {
        self.wait_ready_within(manifests, None, &Rejections::default(), progress)
            .await
    }

    /// [`KubeEnvironment::wait_ready`], the whole wait also bounded by a suite's
    /// `readiness.timeout` (`deadline`): when that runs out first, the error names it,
    /// where the suite sets it, and every object still pending with what it lacked.
    /// The objects in `rejections` are awaited only until Istio has written their
    /// status.
    pub async fn wait_ready_within(
        &self,
        manifests: &[Manifest],
        deadline: Option<&ReadinessDeadline>,
        rejections: &Rejections,
        progress: &(dyn Fn(&[Pending]) + Sync),
    ) -> Result<Vec<KindReady>, KubeError> {
        let started = tokio::time::Instant::now();
        let ordered = apply_order(manifests);
        let pending = Mutex::new(
            ordered
                .iter()
                .map(|m| Pending {
                    object: m.key().to_string(),
                    reason: format!("waiting for {}", rejections.wait_kind(m).goal()),
                })
                .collect::<Vec<_>>(),
        );
        // `None` says the object is ready and no longer pending.
        let tell = |object: &str, reason: Option<String>| {
            let now_pending = {
                let mut list = pending.lock().unwrap_or_else(|e| e.into_inner());
                match reason {
                    Some(reason) => {
                        if let Some(entry) = list.iter_mut().find(|p| p.object == object) {
                            entry.reason = reason;
                        }
                    }
                    None => list.retain(|p| p.object != object),
                }
                list.clone()
            };
            progress(&now_pending);
        };
        progress(&pending.lock().unwrap_or_else(|e| e.into_inner()));
        let waits = ordered.iter().map(|m| {
            let tell = &tell;
            async move {
                let object = m.key().to_string();
                let seen = |pending: Pending| tell(&pending.object, Some(pending.reason));
                match self.wait_one_ready(m, rejections.wait_kind(m), &seen).await {
                    Ok(()) => {
                        tell(&object, None);
                        Ok((m.kind.clone(), started.elapsed()))
                    }
                    Err(error) => Err((object, error)),
                }
            }
        });
        let all = futures::future::try_join_all(waits);
        let joined = match deadline {
            None => all.await,
            Some(deadline) => match tokio::time::timeout(deadline.timeout, all).await {
                Ok(joined) => joined,
                Err(_elapsed) => {
                    return Err(KubeError::ReadinessDeadline {
                        deadline: deadline.clone(),
                        still_pending: pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .iter()
                            .map(|p| format!("{}: {}", p.object, p.reason))
                            .collect(),
                    });
                }
            },
        };
        let ready = match joined {
            Ok(ready) => ready,
            Err((failed, first)) => {
                // The others were cancelled with the first failure: say what they lacked.
                let others: Vec<String> = pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .filter(|p| p.object != failed)
                    .map(|p| format!("{}: {}", p.object, p.reason))
                    .collect();
                return Err(if others.is_empty() {
                    first
                } else {
                    KubeError::NotAllReady {
                        still_pending: others,
                        first: Box::new(first),
                    }
                });
            }
        };
        let mut by_kind: Vec<KindReady> = Vec::new();
        for (kind, after) in ready {
            let seconds = after.as_secs_f64();
            match by_kind.iter_mut().find(|k| k.kind == kind) {
                Some(known) => known.seconds = known.seconds.max(seconds),
                None => by_kind.push(KindReady { kind, seconds }),
            }
        }
        Ok(by_kind)
    }

    /// Waits for one manifest to be ready by its kind's rule, and for a Deployment's
    /// pods; `progress` hears what it still lacks each time it is seen.
    async fn wait_one_ready(
        &self,
        m: &Manifest,
        kind: WaitKind,
        progress: &(dyn Fn(Pending) + Sync),
    ) -> Result<(), KubeError> {
        let (resource, namespaced) =
            match self
                .kinds
                .get(&(m.group().to_owned(), m.version().to_owned(), m.kind.clone()))
            {
                Some(found) => found.clone(),
                None => {
                    let (r, caps) = pinned_kind(
                        &self.client,
                        &GroupVersionKind::gvk(m.group(), m.version(), &m.kind),
                    )
                    .await
                    .map_err(|e| KubeError::UnknownKind {
                        location: m.location(),
                        kind: m.kind.clone(),
                        api_version: m.api_version.clone(),
                        failure: self.failure(&e),
                    })?;
                    (r, caps.scope == Scope::Namespaced)
                }
            };
        let namespace = namespaced.then(|| {
            m.namespace
                .clone()
                .unwrap_or_else(|| self.client.default_namespace().to_owned())
        });
        let api: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let key = m.key();
        let object = key.to_string();
        let seen = |reason: &str| {
            progress(Pending {
                object: object.clone(),
                reason: self.redactor.redact(reason),
            })
        };
        self.wait_object(api, &key, kind, self.timeout_for(kind), &seen)
            .await?;
        if kind == WaitKind::DeploymentAvailable
            && let Some(ns) = &namespace
        {
            self.wait_pods(m, ns, progress).await?;
        }
        Ok(())
    }

    /// Waits for the pods of a Deployment to be Ready, with a sidecar if injection is on
    /// for the namespace and not switched off in the pod template.
    async fn wait_pods(
        &self,
        m: &Manifest,
        namespace: &str,
        progress: &(dyn Fn(Pending) + Sync),
    ) -> Result<(), KubeError> {
        let spec = m.to_json();
        let selector = spec
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        if selector.is_empty() {
            return Ok(());
        }
        let ns_api: Api<Namespace> = Api::all(self.client.clone());
        let ns = ns_api
            .get_opt(namespace)
            .await
            .map_err(|e| self.api_error("get", format!("Namespace {namespace}"), &e))?;
        let ns_labels = ns.and_then(|n| n.metadata.labels).unwrap_or_default();
        let opted_out = spec
            .pointer("/spec/template/metadata/labels/sidecar.istio.io~1inject")
            .and_then(Value::as_str)
            == Some("false");
        let expect_sidecar = !opted_out
            && (ns_labels.get("istio-injection").map(String::as_str) == Some("enabled")
                || ns_labels.contains_key("istio.io/rev"));
        let what = format!(
            "pods of {} ({selector}) Ready{}",
            m.key(),
            if expect_sidecar {
                " with the istio-proxy sidecar"
            } else {
                ""
            }
        );
        let object = m.key().to_string();
        let seen_pods = |reason: &str| {
            progress(Pending {
                object: object.clone(),
                reason: self.redactor.redact(reason),
            })
        };
        seen_pods("no pods yet");
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let last_seen = Arc::new(Mutex::new("no pods yet".to_owned()));
        let seen = last_seen.clone();
        let watch = async move {
            let mut known: BTreeMap<String, Value> = BTreeMap::new();
            let mut initial: BTreeMap<String, Value> = BTreeMap::new();
            let mut stream =
                std::pin::pin!(watcher(pods, watcher::Config::default().labels(&selector)));
            while let Some(event) = stream.try_next().await? {
                let settled = match event {
                    watcher::Event::Init => {
                        initial.clear();
                        false
                    }
                    watcher::Event::InitApply(p) => {
                        initial.insert(
                            p.metadata.name.clone().unwrap_or_default(),
                            serde_json::to_value(&p).unwrap_or_default(),
                        );
                        false
                    }
                    watcher::Event::InitDone => {
                        known = std::mem::take(&mut initial);
                        true
                    }
                    watcher::Event::Apply(p) => {
                        known.insert(
                            p.metadata.name.clone().unwrap_or_default(),
                            serde_json::to_value(&p).unwrap_or_default(),
                        );
                        true
                    }
                    watcher::Event::Delete(p) => {
                        known.remove(&p.metadata.name.clone().unwrap_or_default());
                        true
                    }
                };
                if !settled {
                    continue;
                }
                // Pods being replaced by a rollout are on their way out; ignore them.
                let live: Vec<&Value> = known
                    .values()
                    .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
                    .collect();
                let verdicts: Vec<Readiness> =
                    live.iter().map(|p| pod_ready(p, expect_sidecar)).collect();
                let pending: Vec<String> = verdicts
                    .iter()
                    .filter(|v| !v.is_ready())
                    .map(Readiness::describe)
                    .collect();
                if live.is_empty() || !pending.is_empty() {
                    seen_pods(&pods_progress(&live, expect_sidecar));
                }
                if let Ok(mut last) = seen.lock() {
                    *last = if live.is_empty() {
                        "no pods yet".to_owned()
                    } else if pending.is_empty() {
                        "ready".to_owned()
                    } else {
                        pending.join("; ")
                    };
                }
                if !live.is_empty() && pending.is_empty() {
                    return Ok(());
                }
            }
            Ok::<(), watcher::Error>(())
        };
        match tokio::time::timeout(self.timeouts.pods, watch).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.api_error("watch", format!("pods of {}", m.key()), &e)),
            Err(_elapsed) => Err(KubeError::WaitTimeout {
                waited_for: what,
                timeout: self.timeouts.pods,
                last_seen: self
                    .redactor
                    .redact(&last_seen.lock().map(|s| s.clone()).unwrap_or_default()),
            }),
        }
    }

    async fn gateway_api(&self, namespace: &str) -> Result<Api<DynamicObject>, KubeError> {
        let (resource, _) = pinned_kind(
            &self.client,
            &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "Gateway"),
        )
        .await
        .map_err(|e| self.api_error("discover", "gateway.networking.k8s.io/v1 Gateway", &e))?;
        Ok(Api::namespaced_with(
            self.client.clone(),
            namespace,
            &resource,
        ))
    }

    /// The address to send traffic for `gateway`'s listener on `listener_port`: the
    /// Gateway's published address or its Service's load balancer, a hostname resolved
    /// through DNS with retries until the address timeout.
    pub async fn gateway_address(
        &self,
        gateway: &ObjectKey,
        listener_port: u16,
    ) -> Result<SocketAddr, KubeError> {
        let timeout = self.timeouts.address;
        let deadline = tokio::time::Instant::now() + timeout;
        let namespace = gateway
            .namespace
            .clone()
            .unwrap_or_else(|| self.client.default_namespace().to_owned());
        let gateways = self.gateway_api(&namespace).await?;
        let services: Api<k8s_openapi::api::core::v1::Service> =
            Api::namespaced(self.client.clone(), &namespace);
        let service_name = gateway_service_name(&gateway.name);
        let mut delay = self.backoff.initial;
        let published = loop {
            let gw = gateways
                .get(&gateway.name)
                .await
                .map_err(|e| self.api_error("get", gateway, &e))?;
            let svc = services.get_opt(&service_name).await.map_err(|e| {
                self.api_error("get", format!("Service {namespace}/{service_name}"), &e)
            })?;
            let gw_json = serde_json::to_value(&gw).unwrap_or_default();
            let svc_json = svc.map(|s| serde_json::to_value(&s).unwrap_or_default());
            if let Some(address) = choose_address(&gw_json, svc_json.as_ref()) {
                break address;
            }
            // Nothing published yet: a load balancer is still being provisioned.
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(KubeError::NoAddress {
                    gateway: gateway.to_string(),
                    timeout,
                    last_seen: format!(
                        "no status.addresses on the Gateway and no load balancer ingress on Service {service_name}"
                    ),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.backoff.max);
        };
        let ip = match published {
            PublishedAddress::Ip(ip) => ip,
            PublishedAddress::Hostname(hostname) => {
                let resolver = match &self.resolver {
                    Some(r) => r.clone(),
                    None => hickory_resolver::Resolver::builder_tokio()
                        .and_then(|b| b.build())
                        .map_err(|e| KubeError::Resolve {
                            gateway: gateway.to_string(),
                            hostname: hostname.clone(),
                            timeout,
                            attempts: 0,
                            last_error: format!("no system resolver: {e}"),
                        })?,
                };
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                resolve_with_backoff(&resolver, &hostname, left, self.backoff)
                    .await
                    .map_err(|f| KubeError::Resolve {
                        gateway: gateway.to_string(),
                        hostname: hostname.clone(),
                        timeout,
                        attempts: f.attempts,
                        last_error: f.last_error,
                    })?
            }
        };
        Ok(SocketAddr::new(ip, listener_port))
    }

    async fn gateway_pod(&self, gateway: &ObjectKey) -> Result<(String, String), KubeError> {
        let namespace = gateway
            .namespace
            .clone()
            .unwrap_or_else(|| self.client.default_namespace().to_owned());
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let list = pods
            .list(&ListParams::default().labels(&format!("{GATEWAY_NAME_LABEL}={}", gateway.name)))
            .await
            .map_err(|e| self.api_error("list", format!("pods of {gateway}"), &e))?;
        list.items
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .and_then(|p| p.metadata.name)
            .map(|name| (namespace, name))
            .ok_or_else(|| KubeError::NoGatewayPod {
                gateway: gateway.to_string(),
            })
    }

    /// The IP of a running pod of `deployment` (the first the API lists among those
    /// its `spec.selector.matchLabels` select), for a case that calls a pod.
    pub async fn deployment_pod_ip(&self, deployment: &ObjectKey) -> Result<String, KubeError> {
        use k8s_openapi::api::apps::v1::Deployment;
        let namespace = deployment
            .namespace
            .clone()
            .unwrap_or_else(|| self.client.default_namespace().to_owned());
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
        let object = deployments
            .get(&deployment.name)
            .await
            .map_err(|e| self.api_error("get", deployment, &e))?;
        let selector: String = object
            .spec
            .and_then(|s| s.selector.match_labels)
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.api_error("list", format!("pods of {deployment}"), &e))?;
        list.items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.status)
            .filter(|s| s.phase.as_deref() == Some("Running"))
            .find_map(|s| s.pod_ip)
            .ok_or_else(|| KubeError::NoPodIp {
                deployment: deployment.to_string(),
            })
    }

    /// What the cluster's gateway controller deployed for `gateway`: the
    /// ServiceAccounts, Pods and Services in its namespace labelled with its name,
    /// as the conformance test GatewayInfrastructure finds them.
    pub async fn generated_objects(
        &self,
        gateway: &ObjectKey,
    ) -> Result<Vec<crate::fixtures::GeneratedObjectView>, KubeError> {
        use k8s_openapi::api::core::v1::{Service, ServiceAccount};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let namespace = gateway
            .namespace
            .clone()
            .unwrap_or_else(|| self.client.default_namespace().to_owned());
        let params =
            ListParams::default().labels(&format!("{GATEWAY_NAME_LABEL}={}", gateway.name));
        let view = |kind: &str, meta: ObjectMeta| crate::fixtures::GeneratedObjectView {
            kind: kind.to_owned(),
            name: meta.name.unwrap_or_default(),
            labels: meta.labels.unwrap_or_default(),
            annotations: meta.annotations.unwrap_or_default(),
        };
        let failed = |what: &str, e: &kube::Error| {
            self.api_error(
                "list",
                format!(
                    "{what} labelled {GATEWAY_NAME_LABEL}={} in {namespace}",
                    gateway.name
                ),
                e,
            )
        };
        let mut objects = Vec::new();
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &namespace);
        for account in accounts
            .list(&params)
            .await
            .map_err(|e| failed("ServiceAccounts", &e))?
        {
            objects.push(view("ServiceAccount", account.metadata));
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        for pod in pods.list(&params).await.map_err(|e| failed("Pods", &e))? {
            objects.push(view("Pod", pod.metadata));
        }
        let services: Api<Service> = Api::namespaced(self.client.clone(), &namespace);
        for service in services
            .list(&params)
            .await
            .map_err(|e| failed("Services", &e))?
        {
            objects.push(view("Service", service.metadata));
        }
        Ok(objects)
    }

    /// Envoy's `/stats` from the gateway's proxy: `pilot-agent request GET stats` in
    /// its `istio-proxy` container, since Envoy's admin port listens on localhost only.
    pub async fn proxy_stats(&self, gateway: &ObjectKey) -> Result<String, KubeError> {
        self.proxy_admin(gateway, "stats").await
    }

    /// Any admin path (`stats`, `clusters`) of the gateway's proxy, through
    /// `pilot-agent request GET PATH`.
    pub async fn proxy_admin(&self, gateway: &ObjectKey, path: &str) -> Result<String, KubeError> {
        let (namespace, pod) = self.gateway_pod(gateway).await?;
        self.pod_proxy_admin(&namespace, &pod, path).await
    }

    /// A running pod with the `istio-proxy` sidecar among those matching `selector`
    /// (the in-mesh client of east-west cases). A pod without the sidecar is refused:
    /// its requests would bypass the mesh, and GAMMA routes would not apply to them.
    pub async fn mesh_client_pod(
        &self,
        namespace: &str,
        selector: &str,
    ) -> Result<String, KubeError> {
        let no_client = |reason: String| KubeError::NoMeshClient {
            namespace: namespace.to_owned(),
            selector: selector.to_owned(),
            reason,
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| self.api_error("list", format!("pods {selector} in {namespace}"), &e))?;
        let running: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect();
        let Some(pod) = running.first() else {
            return Err(no_client("no running pod".into()));
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        if !has_istio_proxy(pod) {
            return Err(no_client(format!(
                "pod {name} has no istio-proxy sidecar; label the namespace istio-injection=enabled"
            )));
        }
        Ok(name)
    }

    /// The `/stats` of the sidecar of every running pod behind `service` (its
    /// selector's pods in its namespace), for the counters the receiving side keeps: a
    /// DestinationRule's connection pool also limits each pod's inbound cluster, so a
    /// circuit-breaking 503 may come from there. Pods without a sidecar are left out.
    pub async fn server_sidecar_stats(
        &self,
        service: &ObjectKey,
    ) -> Result<Vec<String>, KubeError> {
        let namespace = service.namespace_or_default();
        let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let found = services
            .get(&service.name)
            .await
            .map_err(|e| self.api_error("get", format!("Service {service}"), &e))?;
        let selector: Vec<String> = found
            .spec
            .and_then(|s| s.selector)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if selector.is_empty() {
            return Ok(Vec::new());
        }
        let selector = selector.join(",");
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.api_error("list", format!("pods {selector} in {namespace}"), &e))?;
        let mut stats = Vec::new();
        for pod in list.items {
            let running = pod.metadata.deletion_timestamp.is_none()
                && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if running && has_istio_proxy(&pod) {
                let name = pod.metadata.name.unwrap_or_default();
                stats.push(self.pod_proxy_admin(namespace, &name, "stats").await?);
            }
        }
        Ok(stats)
    }

    /// Any admin path of the Envoy in `pod`'s `istio-proxy` container.
    pub async fn pod_proxy_admin(
        &self,
        namespace: &str,
        pod: &str,
        path: &str,
    ) -> Result<String, KubeError> {
        let command = ["pilot-agent", "request", "GET", path];
        let out = self.exec(namespace, pod, "istio-proxy", &command).await?;
        if out.status != 0 {
            return Err(KubeError::Exec {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
                container: "istio-proxy".into(),
                command: command.iter().map(|s| s.to_string()).collect(),
                message: format!("exit status {}: {}", out.status, out.stderr.trim()),
            });
        }
        Ok(out.stdout)
    }

    /// Runs a command in a container and collects its output (GAMMA traffic from an
    /// in-mesh client pod).
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> Result<ExecOutput, KubeError> {
        let exec_error = |message: String| KubeError::Exec {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
            command: command.iter().map(|s| s.to_string()).collect(),
            message,
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = AttachParams::default()
            .container(container)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut process = pods
            .exec(pod, command.iter().copied(), &params)
            .await
            .map_err(|e| exec_error(self.failure(&e).to_string()))?;
        let mut stdout = String::new();
        let mut stderr = String::new();
        let status = process.take_status();
        let (out, err) = (process.stdout(), process.stderr());
        let read_out = async {
            if let Some(mut s) = out {
                s.read_to_string(&mut stdout).await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let read_err = async {
            if let Some(mut s) = err {
                s.read_to_string(&mut stderr).await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let (a, b) = tokio::join!(read_out, read_err);
        a.and(b).map_err(|e| exec_error(e.to_string()))?;
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        process
            .join()
            .await
            .map_err(|e| exec_error(self.redactor.redact(&one_line(&e))))?;
        Ok(ExecOutput {
            stdout: self.redactor.redact(&stdout),
            stderr: self.redactor.redact(&stderr),
            status: exit_status(status.as_ref()),
        })
    }

    /// Checks the cluster has what the scenario needs, reporting each item.
    pub async fn preflight(&self) -> Result<Preflight, KubeError> {
        let mut checks = Vec::new();
        let crd_resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        );
        let crds: Api<DynamicObject> = Api::all_with(self.client.clone(), &crd_resource);
        for name in REQUIRED_CRDS {
            checks.push(
                self.check(&crds, name, &format!("CRD {name} Established"), |o| {
                    WaitKind::CrdEstablished.evaluate(o)
                })
                .await?,
            );
        }
        let deployments = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        );
        let istiod: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), "istio-system", &deployments);
        checks.push(
            self.check(
                &istiod,
                "istiod",
                "istiod Deployment available in istio-system",
                |o| WaitKind::DeploymentAvailable.evaluate(o),
            )
            .await?,
        );
        let classes = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "GatewayClass"),
            "gatewayclasses",
        );
        let classes: Api<DynamicObject> = Api::all_with(self.client.clone(), &classes);
        checks.push(
            self.check(
                &classes,
                "istio",
                "GatewayClass istio Accepted",
                gateway_class_accepted,
            )
            .await?,
        );
        Ok(Preflight { checks })
    }

    /// What the cluster runs: the server's `/version`, the Gateway API bundle named by
    /// the HTTPRoute CRD's annotations, istiod's image tag. Whatever cannot be read is
    /// unknown with the reason (credentials redacted), never an error: versions are
    /// for the reports, not a condition of the run.
    pub async fn versions(&self) -> ClusterVersions {
        let kubernetes = self
            .get_json("/version")
            .await
            .and_then(|info| versions::kubernetes_version(&info));
        let gateway_api = self
            .get_json(&format!(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{GATEWAY_API_CRD}"
            ))
            .await
            .and_then(|crd| versions::gateway_api_bundle(&crd));
        let istio = self
            .get_json(&format!(
                "/apis/apps/v1/namespaces/{ISTIOD_NAMESPACE}/deployments/{ISTIOD_DEPLOYMENT}"
            ))
            .await
            .and_then(|deployment| versions::istio_version(&deployment));
        ClusterVersions {
            kubernetes,
            gateway_api,
            istio,
        }
    }

    /// GETs a path of the API as JSON; the error is a one-line reason.
    async fn get_json(&self, path: &str) -> Result<Value, String> {
        let request = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| format!("GET {path}: {e}"))?;
        self.client
            .request::<Value>(request)
            .await
            .map_err(|e| format!("GET {path}: {}", self.failure(&e)))
    }

    async fn check(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        label: &str,
        rule: impl Fn(&Value) -> Readiness,
    ) -> Result<PreflightCheck, KubeError> {
        let (ok, detail) = match api.get_opt(name).await {
            Ok(Some(obj)) => match rule(&serde_json::to_value(&obj).unwrap_or_default()) {
                Readiness::Ready => (true, "present".to_owned()),
                Readiness::Pending(seen) => (false, seen),
            },
            Ok(None) => (false, "not found".to_owned()),
            // The whole check is pointless when the server is unreachable; report that once.
            Err(e) if !matches!(e, kube::Error::Api(_)) => {
                return Err(KubeError::Unreachable {
                    url: self.server_url.clone(),
                    failure: self.failure(&e),
                });
            }
            Err(e) => (false, format!("cannot check: {}", self.failure(&e))),
        };
        Ok(PreflightCheck {
            name: label.to_owned(),
            ok,
            detail,
        })
    }

    /// What helps explain a failed case: route and gateway conditions, recent events,
    /// pod states and the gateway proxy's log tail, for each namespace. Errors while
    /// collecting become part of the text rather than hiding the rest.
    pub async fn diagnostics(&self, namespaces: &[String]) -> Vec<DiagnosticSection> {
        let mut sections = Vec::new();
        for ns in namespaces {
            let mut conditions = String::new();
            for (kind, plural) in [("Gateway", "gateways"), ("HTTPRoute", "httproutes")] {
                let resource = ApiResource::from_gvk_with_plural(
                    &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind),
                    plural,
                );
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), ns, &resource);
                match api.list(&ListParams::default()).await {
                    Ok(list) => {
                        for obj in list.items {
                            let json = serde_json::to_value(&obj).unwrap_or_default();
                            conditions.push_str(&describe_conditions(kind, &json));
                        }
                    }
                    Err(e) => {
                        conditions.push_str(&format!("{kind}: cannot list: {}\n", self.failure(&e)))
                    }
                }
            }
            sections.push(DiagnosticSection {
                title: format!("gateway and route conditions in {ns}"),
                body: self.redactor.redact(&conditions),
            });

            let events: Api<Event> = Api::namespaced(self.client.clone(), ns);
            let body = match events.list(&ListParams::default()).await {
                Ok(list) => {
                    let mut items = list.items;
                    items.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
                    let start = items.len().saturating_sub(20);
                    items[start..]
                        .iter()
                        .map(|e| {
                            format!(
                                "{} {}/{}: {} {}\n",
                                e.type_.as_deref().unwrap_or("?"),
                                e.involved_object.kind.as_deref().unwrap_or("?"),
                                e.involved_object.name.as_deref().unwrap_or("?"),
                                e.reason.as_deref().unwrap_or(""),
                                e.message.as_deref().unwrap_or("")
                            )
                        })
                        .collect()
                }
                Err(e) => format!("cannot list events: {}", self.failure(&e)),
            };
            sections.push(DiagnosticSection {
                title: format!("recent events in {ns}"),
                body: self.redactor.redact(&body),
            });

            let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let (body, gateway_pods) = match pods.list(&ListParams::default()).await {
                Ok(list) => {
                    let text = list
                        .items
                        .iter()
                        .map(|p| describe_pod(&serde_json::to_value(p).unwrap_or_default()))
                        .collect();
                    let gw: Vec<String> = list
                        .items
                        .iter()
                        .filter(|p| {
                            p.metadata
                                .labels
                                .as_ref()
                                .is_some_and(|l| l.contains_key(GATEWAY_NAME_LABEL))
                        })
                        .filter_map(|p| p.metadata.name.clone())
                        .collect();
                    (text, gw)
                }
                Err(e) => (
                    format!("cannot list pods: {}", self.failure(&e)),
                    Vec::new(),
                ),
            };
            sections.push(DiagnosticSection {
                title: format!("pods in {ns}"),
                body: self.redactor.redact(&body),
            });

            for pod in gateway_pods {
                let params = LogParams {
                    container: Some("istio-proxy".into()),
                    tail_lines: Some(50),
                    ..Default::default()
                };
                let body = match pods.logs(&pod, &params).await {
                    Ok(text) => text,
                    Err(e) => format!("cannot read log: {}", self.failure(&e)),
                };
                sections.push(DiagnosticSection {
                    title: format!("gateway proxy log {ns}/{pod} (last 50 lines)"),
                    body: self.redactor.redact(&body),
                });
            }
        }
        sections
    }

    /// [`Self::cleanup`] after a failure: with `keep_on_failure` (and a run id to find
    /// them by later), what this run created stays, and the report says how to remove it.
    pub async fn cleanup_after_failure(self) -> CleanupReport {
        match (&self.cleanup_command, self.keep_on_failure) {
            (Some(command), true) => CleanupReport {
                kept: self
                    .applied
                    .iter()
                    .filter(|a| a.created)
                    .map(|a| a.key.to_string())
                    .collect(),
                remove_later_with: Some(command.clone()),
                ..CleanupReport::default()
            },
            _ => self.cleanup().await,
        }
    }

    /// Deletes what this run created, newest first, waiting for each to be gone. Objects
    /// that existed before the run are left alone; with `keep`, nothing is deleted.
    pub async fn cleanup(self) -> CleanupReport {
        let mut report = CleanupReport::default();
        if self.keep {
            return report;
        }
        for applied in self.applied.iter().rev() {
            if !applied.created {
                continue;
            }
            let api: Api<DynamicObject> = match &applied.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &applied.resource),
                None => Api::all_with(self.client.clone(), &applied.resource),
            };
            // The uid precondition makes sure we delete our object, not a namesake
            // someone created after ours went away.
            let params = DeleteParams {
                preconditions: applied.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match api.delete(&applied.key.name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    report
                        .removed
                        .push(format!("{} (already gone)", applied.key));
                    continue;
                }
                Err(e) => {
                    report
                        .failed
                        .push(format!("{}: {}", applied.key, self.failure(&e)));
                    continue;
                }
            }
            let uid = applied.uid.clone().unwrap_or_default();
            match tokio::time::timeout(
                self.timeouts.deletion,
                await_condition(api, &applied.key.name, is_deleted(&uid)),
            )
            .await
            {
                Ok(Ok(_)) => report.removed.push(applied.key.to_string()),
                Ok(Err(e)) => report.failed.push(format!(
                    "{}: waiting for deletion: {}",
                    applied.key,
                    self.failure(&e)
                )),
                Err(_) => report.failed.push(format!(
                    "{}: still present {} after deletion (finalizers?)",
                    applied.key,
                    humantime::format_duration(self.timeouts.deletion)
                )),
            }
        }
        report
    }
}

/// The command that removes one run's objects, reaching the cluster the run reached,
/// quoted for a POSIX shell so that it can be pasted as printed (a kubeconfig path
/// with spaces, a context named with quotes).
fn cleanup_command(run: &RunId, options: &KubeOptions) -> String {
    let mut words = vec![
        "meshcheck".to_owned(),
        "cleanup".to_owned(),
        "--run-id".to_owned(),
        run.to_string(),
    ];
    if let Some(kubeconfig) = &options.kubeconfig {
        words.push("--kubeconfig".to_owned());
        words.push(kubeconfig.to_string_lossy().into_owned());
    }
    if let Some(context) = &options.context {
        words.push("--context".to_owned());
        words.push(context.clone());
    }
    words
        .iter()
        // Only a NUL byte cannot be quoted, and no path or context holds one.
        .map(|word| shlex::try_quote(word).map_or_else(|_| word.clone(), |q| q.into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn exit_status(status: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> i32 {
    let Some(status) = status else { return -1 };
    if status.status.as_deref() == Some("Success") {
        return 0;
    }
    // Non-zero exits come as reason NonZeroExitCode with the code in details.causes.
    status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse().ok())
        .unwrap_or(1)
}

fn describe_conditions(kind: &str, obj: &Value) -> String {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut out = format!("{kind} {name} (generation {generation})\n");
    let line = |c: &Value| {
        format!(
            "{}={} reason={} observedGeneration={} {}\n",
            c.get("type").and_then(Value::as_str).unwrap_or("?"),
            c.get("status").and_then(Value::as_str).unwrap_or("?"),
            c.get("reason").and_then(Value::as_str).unwrap_or(""),
            c.get("observedGeneration")
                .and_then(Value::as_i64)
                .map_or("-".to_owned(), |g| g.to_string()),
            c.get("message").and_then(Value::as_str).unwrap_or("")
        )
    };
    for c in obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str("  ");
        out.push_str(&line(c));
    }
    // A Gateway's listeners carry their own conditions; an HTTPS listener whose
    // certificate Secret is missing or broken says so only here (ResolvedRefs=False).
    for listener in obj
        .pointer("/status/listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = listener.get("name").and_then(Value::as_str).unwrap_or("?");
        let attached = listener
            .get("attachedRoutes")
            .and_then(Value::as_i64)
            .map_or("?".to_owned(), |n| n.to_string());
        for c in listener
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push_str(&format!(
                "  listener {name} (attachedRoutes {attached}): {}",
                line(c)
            ));
        }
    }
    for p in obj
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let parent = p
            .pointer("/parentRef/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        for c in p
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push_str(&format!("  parent {parent}: {}", line(c)));
        }
    }
    out
}

fn describe_pod(pod: &Value) -> String {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let mut out = format!("{name}: {phase}");
    for c in pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
        let ready = c.get("ready").and_then(Value::as_bool).unwrap_or(false);
        let restarts = c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        let waiting = c.pointer("/state/waiting/reason").and_then(Value::as_str);
        out.push_str(&format!(
            " [{cname} ready={ready} restarts={restarts}{}]",
            waiting.map(|w| format!(" waiting={w}")).unwrap_or_default()
        ));
    }
    out.push('\n');
    out
}

/// Whether `pod` runs Istio's sidecar: an `istio-proxy` container, or a native sidecar
/// (Kubernetes 1.29+), an init container of that name that keeps running.
fn has_istio_proxy(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| c.name == "istio-proxy")
            || s.init_containers
                .iter()
                .flatten()
                .any(|c| c.name == "istio-proxy")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_cleanup_command_reaches_the_cluster_the_run_reached() {
        let run = RunId::from_label_value("r1").unwrap();
        assert_eq!(
            cleanup_command(&run, &KubeOptions::default()),
            "meshcheck cleanup --run-id r1"
        );
        let options = KubeOptions {
            kubeconfig: Some("/tmp/kc".into()),
            context: Some("kind-meshcheck".into()),
            ..KubeOptions::default()
        };
        assert_eq!(
            cleanup_command(&run, &options),
            "meshcheck cleanup --run-id r1 --kubeconfig /tmp/kc --context kind-meshcheck"
        );
    }

    #[test]
    fn the_cleanup_command_survives_a_shell_with_spaces_and_quotes() {
        let run = RunId::from_label_value("r1").unwrap();
        let options = KubeOptions {
            kubeconfig: Some("/home/a user/my configs/kube config".into()),
            context: Some("it's-mine".into()),
            ..KubeOptions::default()
        };
        let command = cleanup_command(&run, &options);
        assert_eq!(
            shlex::split(&command).unwrap(),
            [
                "meshcheck",
                "cleanup",
                "--run-id",
                "r1",
                "--kubeconfig",
                "/home/a user/my configs/kube config",
                "--context",
                "it's-mine"
            ],
            "{command}"
        );
    }

    #[test]
    fn exit_status_reads_kubelet_status() {
        let ok: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status =
            serde_json::from_value(json!({"status": "Success"})).unwrap();
        assert_eq!(exit_status(Some(&ok)), 0);
        let failed: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status = serde_json::from_value(json!({"status": "Failure", "code": 0, "message": "command terminated with non-zero exit code", "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}}))
        .unwrap();
        assert_eq!(exit_status(Some(&failed)), 7);
        assert_eq!(exit_status(None), -1);
    }

    #[test]
    fn diagnostics_text_shows_conditions_and_generations() {
        let route = json!({"metadata": {"name": "backend-route", "generation": 2}, "status": {"parents": [
            {"parentRef": {"name": "istio-gateway"}, "conditions": [{"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners", "observedGeneration": 2, "message": "no listener"}]}]}});
        let text = describe_conditions("HTTPRoute", &route);
        assert_eq!(
            text,
            "HTTPRoute backend-route (generation 2)\n  parent istio-gateway: Accepted=False reason=NotAllowedByListeners observedGeneration=2 no listener\n"
        );
        let gateway = json!({"metadata": {"name": "tls-gateway", "generation": 1}, "status": {
            "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed", "observedGeneration": 1}],
            "listeners": [{"name": "https", "attachedRoutes": 1, "conditions": [
                {"type": "ResolvedRefs", "status": "False", "reason": "InvalidCertificateRef", "observedGeneration": 1, "message": "invalid certificate reference /Secret/test-devopscube-tls"}]}]}});
        assert_eq!(
            describe_conditions("Gateway", &gateway),
            "Gateway tls-gateway (generation 1)\n  Programmed=True reason=Programmed observedGeneration=1 \n  listener https (attachedRoutes 1): ResolvedRefs=False reason=InvalidCertificateRef observedGeneration=1 invalid certificate reference /Secret/test-devopscube-tls\n"
        );
        let pod = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending", "containerStatuses": [
            {"name": "echo", "ready": false, "restartCount": 3, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        assert_eq!(
            describe_pod(&pod),
            "p: Pending [echo ready=false restarts=3 waiting=ImagePullBackOff]\n"
        );
    }
}
