//! What earlier runs left on a cluster, found by the run-id label and removed by
//! `meshcheck cleanup`. Only objects carrying meshcheck's labels are ever listed, so an
//! object without them (a namesake someone else made) is never deleted.

use std::time::{Duration, SystemTime};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Preconditions};
use kube::core::ApiResource;
use kube::discovery::{Discovery, Scope, verbs};

use super::environment::KubeEnvironment;
use super::error::KubeError;
use super::run_id::{self, RunId};
use crate::manifest::ObjectKey;

/// Which leftovers to select: one run's, those older than an age, or both at once.
#[derive(Clone, Debug, Default)]
pub struct LeftoverQuery {
    pub run_id: Option<RunId>,
    pub older_than: Option<Duration>,
}

/// One labelled object an earlier run applied.
#[derive(Clone, Debug)]
pub struct Leftover {
    pub key: ObjectKey,
    pub run_id: String,
    /// From the applied-at annotation or `creationTimestamp`; `None` when unreadable.
    pub age: Option<Duration>,
    uid: Option<String>,
    resource: ApiResource,
    namespaced: bool,
}

/// What a search found besides the leftovers: kinds it could not list.
#[derive(Debug, Default)]
pub struct Found {
    pub leftovers: Vec<Leftover>,
    /// `plural.group: reason`, for kinds the credentials may not list.
    pub unlisted: Vec<String>,
}

/// What a deletion did, one line per object.
#[derive(Debug, Default)]
pub struct Removal {
    pub deleted: Vec<String>,
    pub failed: Vec<String>,
}

impl KubeEnvironment {
    /// Lists every object of every listable kind carrying meshcheck's labels that the
    /// query selects. An age filter skips objects whose age cannot be read.
    pub async fn find_leftovers(&self, query: &LeftoverQuery) -> Result<Found, KubeError> {
        let discovery = Discovery::new(self.client().clone())
            .run()
            .await
            .map_err(|e| self.api_error("discover", "the API's kinds", &e))?;
        let selector = run_id::selector(query.run_id.as_ref());
        let now = SystemTime::now();
        let mut found = Found::default();
        for group in discovery.groups() {
            for (resource, caps) in group.recommended_resources() {
                if !caps.supports_operation(verbs::LIST) || !caps.supports_operation(verbs::DELETE)
                {
                    continue;
                }
                let api: Api<DynamicObject> = Api::all_with(self.client().clone(), &resource);
                let listed = match api.list(&ListParams::default().labels(&selector)).await {
                    Ok(listed) => listed,
                    Err(e) => {
                        found.unlisted.push(format!(
                            "{}.{}: {}",
                            resource.plural,
                            resource.group,
                            self.failure(&e)
                        ));
                        continue;
                    }
                };
                for object in listed.items {
                    let json = serde_json::to_value(&object).unwrap_or_default();
                    let age = run_id::age(&json, now);
                    if let Some(min_age) = query.older_than
                        && age.is_none_or(|age| age < min_age)
                    {
                        continue;
                    }
                    let Some(name) = object.metadata.name.clone() else {
                        continue;
                    };
                    found.leftovers.push(Leftover {
                        key: ObjectKey {
                            kind: resource.kind.clone(),
                            namespace: object.metadata.namespace.clone(),
                            name,
                        },
                        run_id: run_id::run_id_of(&json).unwrap_or_default().to_owned(),
                        age,
                        uid: object.metadata.uid.clone(),
                        resource: resource.clone(),
                        namespaced: caps.scope == Scope::Namespaced,
                    });
                }
            }
        }
        // Namespaced objects first, then cluster-scoped ones (Namespaces, CRDs), so a
        // CRD outlives the objects of its kind and a Namespace its contents' listing.
        found.leftovers.sort_by(|a, b| {
            (!a.namespaced, &a.key.to_string()).cmp(&(!b.namespaced, &b.key.to_string()))
        });
        Ok(found)
    }

    /// Deletes the leftovers (in background propagation, not waiting for finalizers),
    /// each with a uid precondition, so an object recreated since the listing is spared.
    pub async fn delete_leftovers(&self, leftovers: &[Leftover]) -> Removal {
        let mut removal = Removal::default();
        for leftover in leftovers {
            let api: Api<DynamicObject> = match (&leftover.key.namespace, leftover.namespaced) {
                (Some(ns), true) => {
                    Api::namespaced_with(self.client().clone(), ns, &leftover.resource)
                }
                _ => Api::all_with(self.client().clone(), &leftover.resource),
            };
            let params = DeleteParams {
                preconditions: leftover.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match api.delete(&leftover.key.name, &params).await {
                Ok(_) => removal.deleted.push(leftover.key.to_string()),
                Err(kube::Error::Api(status)) if status.code == 404 => removal
                    .deleted
                    .push(format!("{} (already gone)", leftover.key)),
                Err(e) => removal
                    .failed
                    .push(format!("{}: {}", leftover.key, self.failure(&e))),
            }
        }
        removal
    }
}
