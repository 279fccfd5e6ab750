//! The pod watch: every pod of the cluster, as kube-scheduler and the kubelet see
//! them. Unscheduled pods are bound to the stand-in node (the binding subresource, as
//! kube-scheduler's DefaultBinder does: `pkg/scheduler/framework/plugins/defaultbinder`);
//! pods bound to it are run ([`super::pod_run`]) until they are deleted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::task::JoinSet;

use crate::context::Context;

use super::pod_run::{PodRun, StopReason, delete_now};

/// What the watch keeps per pod UID.
#[derive(Default)]
struct Pods {
    running: HashMap<String, PodRun>,
    /// Pods a binding or a deletion was sent for, so repeated events do not repeat it.
    binding: HashSet<String>,
    deleting: HashSet<String>,
    /// UIDs seen in the current re-list.
    relisted: HashSet<String>,
}

/// Watches pods until shutdown, then stops every pod it runs.
pub async fn watch(ctx: Arc<Context>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    let mut pods = Pods::default();
    // Bindings, deletions and finished runs proceed in the background.
    let mut background = JoinSet::new();
    loop {
        let event = tokio::select! {
            event = stream.next() => event,
            () = ctx.shutdown.cancelled() => break,
        };
        match event {
            None => break,
            // The watcher backs off and re-lists by itself.
            Some(Err(err)) => eprintln!("kube-stand-in: pod watch: {err}"),
            Some(Ok(watcher::Event::Init)) => pods.relisted.clear(),
            Some(Ok(watcher::Event::InitApply(pod))) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    pods.relisted.insert(uid);
                }
                seen(&ctx, &mut pods, pod, &mut background);
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let gone: Vec<String> = pods
                    .running
                    .keys()
                    .filter(|uid| !pods.relisted.contains(*uid))
                    .cloned()
                    .collect();
                for uid in gone {
                    forget(&mut pods, &uid, &mut background);
                }
            }
            Some(Ok(watcher::Event::Apply(pod))) => seen(&ctx, &mut pods, pod, &mut background),
            Some(Ok(watcher::Event::Delete(pod))) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    forget(&mut pods, uid, &mut background);
                }
            }
        }
        // Reap what finished, so the set does not grow.
        while background.try_join_next().is_some() {}
    }
    for (_, run) in pods.running.drain() {
        background.spawn(run.finish(StopReason::Gone));
    }
    while background.join_next().await.is_some() {}
}

fn forget(pods: &mut Pods, uid: &str, background: &mut JoinSet<()>) {
    pods.binding.remove(uid);
    pods.deleting.remove(uid);
    if let Some(run) = pods.running.remove(uid) {
        background.spawn(run.finish(StopReason::Gone));
    }
}

/// One pod as it is now.
fn seen(ctx: &Arc<Context>, pods: &mut Pods, pod: Pod, background: &mut JoinSet<()>) {
    let (Some(uid), Some(name), Some(namespace)) = (
        pod.metadata.uid.clone(),
        pod.metadata.name.clone(),
        pod.metadata.namespace.clone(),
    ) else {
        return;
    };
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let ours = node.as_deref() == Some(ctx.options.node_name.as_str());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    if pod.metadata.deletion_timestamp.is_some() {
        // Only the kubelet of a pod's node finishes its deletion; an unbound pod the
        // API server deletes at once.
        if ours && pods.deleting.insert(uid.clone()) {
            match pods.running.remove(&uid) {
                Some(run) => {
                    background.spawn(run.finish(StopReason::Deleting));
                }
                None => {
                    background.spawn(async move { delete_now(&api, &name, &uid).await });
                }
            }
        }
        return;
    }
    match node {
        None => {
            if pods.binding.insert(uid.clone()) {
                let node = ctx.options.node_name.clone();
                background.spawn(async move { bind(&api, &name, &uid, &node).await });
            }
        }
        Some(_) if ours => {
            pods.binding.remove(&uid);
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            let finished = matches!(phase, Some("Succeeded" | "Failed"));
            if !finished && !pods.running.contains_key(&uid) {
                pods.running.insert(uid, PodRun::start(ctx.clone(), pod));
            }
        }
        // Bound to another node: not ours to run.
        Some(_) => {}
    }
}

/// POSTs the pod's Binding to the stand-in node.
async fn bind(api: &Api<Pod>, name: &str, uid: &str, node: &str) {
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "uid": uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    match api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => {}
        // Bound already (409), or gone (404): nothing to do.
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
        Err(err) => eprintln!("kube-stand-in: could not bind pod {name} to {node}: {err}"),
    }
}
