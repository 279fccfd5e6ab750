//! Reading Gateway and HTTPRoute status from the cluster for `expect.conditions`:
//! waits (bounded) until each object's status describes its current generation, then
//! reads it into the views the local target computes (`route_status`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use kube::runtime::wait::await_condition;

use super::environment::KubeEnvironment;
use super::error::KubeError;
use super::route_status::{
    gateway_class_status, gateway_class_status_current, gateway_status, gateway_status_current,
    route_status, route_status_current,
};
use super::status::Readiness;
use crate::fixtures::IstioStatus;
use crate::manifest::{GATEWAY_API_GROUP, ObjectKey};

impl KubeEnvironment {
    /// The status of `objects` (Gateways, HTTPRoutes, GatewayClasses), each read once Istio has
    /// written it for the object's current generation; `timeout` bounds the wait for
    /// all of them together.
    pub async fn istio_status(
        &self,
        objects: &[ObjectKey],
        timeout: Duration,
    ) -> Result<IstioStatus, KubeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut status = IstioStatus::default();
        for key in objects {
            let current: fn(&serde_json::Value) -> Readiness = match key.kind.as_str() {
                "Gateway" => gateway_status_current,
                "GatewayClass" => gateway_class_status_current,
                _ => route_status_current,
            };
            let object = self.await_status(key, current, deadline).await?;
            match key.kind.as_str() {
                "Gateway" => status.gateways.push(gateway_status(key, &object)),
                "GatewayClass" => status
                    .gateway_classes
                    .push(gateway_class_status(key, &object)),
                _ => status.routes.push(route_status(key, &object)),
            }
        }
        Ok(status)
    }

    async fn await_status(
        &self,
        key: &ObjectKey,
        current: fn(&serde_json::Value) -> Readiness,
        deadline: tokio::time::Instant,
    ) -> Result<serde_json::Value, KubeError> {
        let gvk = GroupVersionKind::gvk(GATEWAY_API_GROUP, "v1", &key.kind);
        let (resource, _) = pinned_kind(self.client(), &gvk).await.map_err(|e| {
            self.api_error(
                "discover",
                format!("{GATEWAY_API_GROUP}/v1 {}", key.kind),
                &e,
            )
        })?;
        let api: Api<DynamicObject> = match (key.namespace.as_deref(), key.kind.as_str()) {
            // Cluster-scoped.
            (_, "GatewayClass") => Api::all_with(self.client().clone(), &resource),
            (Some(namespace), _) => {
                Api::namespaced_with(self.client().clone(), namespace, &resource)
            }
            (None, _) => {
                return Err(KubeError::NoNamespace {
                    object: key.to_string(),
                });
            }
        };
        let last_seen = Arc::new(Mutex::new("not found".to_string()));
        let seen = last_seen.clone();
        let condition = move |obj: Option<&DynamicObject>| {
            let verdict = match obj {
                None => Readiness::Pending("not found".into()),
                Some(o) => current(&serde_json::to_value(o).unwrap_or_default()),
            };
            if let Ok(mut last) = seen.lock() {
                *last = verdict.describe();
            }
            verdict.is_ready()
        };
        let timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(timeout, await_condition(api, &key.name, condition)).await {
            Ok(Ok(Some(object))) => Ok(serde_json::to_value(&object).unwrap_or_default()),
            Ok(Ok(None)) => Err(KubeError::WaitTimeout {
                waited_for: format!("{key} status"),
                timeout,
                last_seen: "deleted".into(),
            }),
            Ok(Err(e)) => Err(self.api_error("watch", key, &e)),
            Err(_elapsed) => Err(KubeError::WaitTimeout {
                waited_for: format!("{key} status for its current generation"),
                timeout,
                last_seen: last_seen.lock().map(|s| s.clone()).unwrap_or_default(),
            }),
        }
    }
}
