//! A small Kubernetes API server on loopback for the kube target's tests: discovery
//! (built-in kinds, plus kinds of CRDs applied to it), server-side apply with
//! generations, get/list/watch with field and label selectors, delete with uid
//! preconditions, pod logs, and injected failures. It plays the controllers too:
//! applied CRDs become Established at once; everything else waits for the test to
//! write a status.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

type Body = BoxBody<Bytes, Infallible>;

#[derive(Clone, Debug)]
pub struct Kind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
}

/// A failure to answer with, `times` times, for requests whose method matches and whose
/// path and query contain `contains`.
#[derive(Clone, Debug)]
pub struct Fault {
    pub method: Method,
    pub contains: String,
    pub code: u16,
    pub times: usize,
    /// Matching requests answered normally before the fault starts.
    pub skip: usize,
    /// Put the request's Authorization header into the message, as a careless proxy
    /// might; the client must redact it.
    pub echo_authorization: bool,
}

type ObjKey = (String, String, Option<String>, String); // group, plural, namespace, name

#[derive(Default)]
pub struct State {
    pub kinds: Vec<Kind>,
    pub objects: BTreeMap<ObjKey, Value>,
    pub requests: Vec<Seen>,
    pub faults: Vec<Fault>,
    pub resource_version: u64,
    pub next_uid: u64,
    /// When set, deletes only mark the object; [`FakeApi::release_deletions`] removes them.
    pub hold_deletions: bool,
    pub logs: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
struct WatchEvent {
    group: String,
    plural: String,
    namespace: Option<String>,
    type_: &'static str,
    object: Value,
}

#[derive(Clone)]
pub struct FakeApi {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    events: broadcast::Sender<WatchEvent>,
    changed: Arc<Notify>,
    /// Ends every open watch stream when notified, as an API server or a load balancer
    /// in front of it does at times.
    drop_watches: Arc<Notify>,
}

fn builtin_kinds() -> Vec<Kind> {
    let k = |group: &str, kind: &str, plural: &str, namespaced: bool| Kind {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
    };
    vec![
        k("", "Namespace", "namespaces", false),
        k("", "Service", "services", true),
        k("", "Pod", "pods", true),
        k("", "Event", "events", true),
        k("", "ConfigMap", "configmaps", true),
        k("", "Secret", "secrets", true),
        k("apps", "Deployment", "deployments", true),
        k(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        ),
    ]
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": if code < 300 {"Success"} else {"Failure"},
        "message": message, "reason": reason, "code": code})
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        500 => "InternalError",
        _ => "",
    }
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

fn query_map(query: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn labels_match(obj: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    let labels = obj.pointer("/metadata/labels");
    selector.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => labels.and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v),
        // A bare key asks for the label to exist, whatever its value.
        None => labels.and_then(|l| l.get(term)).is_some(),
    })
}

fn fields_match(obj: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| match term.split_once('=') {
        Some(("metadata.name", v)) => {
            obj.pointer("/metadata/name").and_then(Value::as_str) == Some(v)
        }
        Some(("metadata.namespace", v)) => {
            obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(v)
        }
        _ => true,
    })
}

/// The parts of an object that define its generation: everything but metadata and status.
fn spec_of(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
    }
    copy
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, _) = broadcast::channel(4096);
        let api = FakeApi {
            addr,
            state: Arc::new(Mutex::new(State {
                kinds: builtin_kinds(),
                ..Default::default()
            })),
            events,
            changed: Arc::new(Notify::new()),
            drop_watches: Arc::new(Notify::new()),
        };
        let server = api.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        api
    }

    /// A kubeconfig for this server with a bearer token, written to `dir`.
    pub fn write_kubeconfig(&self, dir: &std::path::Path, token: &str) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: default\nusers:\n- name: tester\n  user:\n    token: {token}\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn fault(&self, method: Method, contains: &str, code: u16, times: usize) {
        self.state.lock().unwrap().faults.push(Fault {
            method,
            contains: contains.into(),
            code,
            times,
            skip: 0,
            echo_authorization: false,
        });
    }

    /// Like [`FakeApi::fault`], forever, after answering `skip` matching requests
    /// normally (a `/version` that answers the connection check, then fails).
    pub fn fault_after(&self, skip: usize, method: Method, contains: &str, code: u16) {
        self.state.lock().unwrap().faults.push(Fault {
            method,
            contains: contains.into(),
            code,
            times: usize::MAX,
            skip,
            echo_authorization: false,
        });
    }

    pub fn fault_echoing_authorization(&self, method: Method, contains: &str, code: u16) {
        self.state.lock().unwrap().faults.push(Fault {
            method,
            contains: contains.into(),
            code,
            times: usize::MAX,
            skip: 0,
            echo_authorization: true,
        });
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn get(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let key = (
            group.to_owned(),
            plural.to_owned(),
            namespace.map(str::to_owned),
            name.to_owned(),
        );
        self.state.lock().unwrap().objects.get(&key).cloned()
    }

    /// Stores an object as if someone else had created it.
    pub fn insert(&self, group: &str, plural: &str, namespace: Option<&str>, mut obj: Value) {
        let mut st = self.state.lock().unwrap();
        st.resource_version += 1;
        st.next_uid += 1;
        let rv = st.resource_version.to_string();
        let uid = format!("uid-{}", st.next_uid);
        let meta = obj["metadata"].as_object_mut().unwrap();
        meta.entry("uid").or_insert(json!(uid));
        meta.insert("resourceVersion".into(), json!(rv));
        meta.entry("generation").or_insert(json!(1));
        if let Some(ns) = namespace {
            meta.insert("namespace".into(), json!(ns));
        }
        let name = meta["name"].as_str().unwrap().to_owned();
        st.objects.insert(
            (
                group.into(),
                plural.into(),
                namespace.map(str::to_owned),
                name,
            ),
            obj.clone(),
        );
        drop(st);
        self.emit(group, plural, namespace, "ADDED", obj);
    }

    /// Writes an object's status, as its controller would.
    pub fn set_status(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
        status: Value,
    ) {
        let mut st = self.state.lock().unwrap();
        st.resource_version += 1;
        let rv = st.resource_version.to_string();
        let key = (
            group.to_owned(),
            plural.to_owned(),
            namespace.map(str::to_owned),
            name.to_owned(),
        );
        let obj = st
            .objects
            .get_mut(&key)
            .unwrap_or_else(|| panic!("no {plural} {name}"));
        obj["status"] = status;
        obj["metadata"]["resourceVersion"] = json!(rv);
        let obj = obj.clone();
        drop(st);
        self.emit(group, plural, namespace, "MODIFIED", obj);
    }

    pub fn set_log(&self, pod: &str, text: &str) {
        self.state
            .lock()
            .unwrap()
            .logs
            .insert(pod.into(), text.into());
    }

    /// Removes objects whose deletion was held.
    /// Closes every watch stream that is open now; clients must watch again.
    pub fn drop_watches(&self) {
        self.drop_watches.notify_waiters();
    }

    pub fn release_deletions(&self) {
        let mut st = self.state.lock().unwrap();
        let held: Vec<ObjKey> = st
            .objects
            .iter()
            .filter(|(_, o)| o.pointer("/metadata/deletionTimestamp").is_some())
            .map(|(k, _)| k.clone())
            .collect();
        let removed: Vec<(ObjKey, Value)> = held
            .into_iter()
            .filter_map(|k| st.objects.remove(&k).map(|o| (k, o)))
            .collect();
        drop(st);
        for ((group, plural, ns, _), obj) in removed {
            self.emit(&group, &plural, ns.as_deref(), "DELETED", obj);
        }
    }

    /// Waits (without sleeping) until the state satisfies `check`; every request and
    /// change wakes it.
    pub async fn until(&self, check: impl Fn(&State) -> bool) {
        loop {
            let notified = self.changed.notified();
            if check(&self.state.lock().unwrap()) {
                return;
            }
            notified.await;
        }
    }

    fn emit(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        type_: &'static str,
        object: Value,
    ) {
        let _ = self.events.send(WatchEvent {
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.map(str::to_owned),
            type_,
            object,
        });
        self.changed.notify_waiters();
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let authorization = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let fault = {
            let mut st = self.state.lock().unwrap();
            st.requests.push(Seen {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                content_type: content_type.clone(),
            });
            let target = format!("{path}?{query}");
            let hit = st
                .faults
                .iter_mut()
                .find(|f| f.method == method && f.times > 0 && target.contains(&f.contains));
            hit.and_then(|f| {
                if f.skip > 0 {
                    f.skip -= 1;
                    return None;
                }
                f.times = f.times.saturating_sub(1);
                Some((f.code, f.echo_authorization))
            })
        };
        self.changed.notify_waiters();
        if let Some((code, echo)) = fault {
            let message = if echo {
                format!(
                    "request with Authorization: {authorization} is not allowed to {method} {path}"
                )
            } else {
                format!("injected failure for {method} {path}")
            };
            return json_response(code, &status(code, reason_for(code), &message));
        }
        self.route(method, &path, &query, &content_type, &body)
            .await
    }

    async fn route(
        &self,
        method: Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: &Bytes,
    ) -> Response<Body> {
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let q = query_map(query);
        match segments.as_slice() {
            ["version"] => json_response(
                200,
                &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.1", "gitCommit": "fake", "gitTreeState": "clean",
                "buildDate": "2025-05-15T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
            ),
            ["api"] => json_response(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            ),
            ["apis"] => {
                let st = self.state.lock().unwrap();
                let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for k in st.kinds.iter().filter(|k| !k.group.is_empty()) {
                    let versions = groups.entry(k.group.clone()).or_default();
                    if !versions.contains(&k.version) {
                        versions.push(k.version.clone());
                    }
                }
                let groups: Vec<Value> = groups
                    .into_iter()
                    .map(|(g, vs)| {
                        let versions: Vec<Value> = vs
                            .iter()
                            .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                            .collect();
                        json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
                    })
                    .collect();
                json_response(
                    200,
                    &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                )
            }
            ["api", version, rest @ ..] => {
                self.resource(method, "", version, rest, &q, content_type, body)
                    .await
            }
            ["apis", group, version, rest @ ..] => {
                self.resource(method, group, version, rest, &q, content_type, body)
                    .await
            }
            _ => json_response(
                404,
                &status(
                    404,
                    "NotFound",
                    &format!("the server could not find the requested resource ({path})"),
                ),
            ),
        }
    }

    fn kind(&self, group: &str, version: &str, plural: &str) -> Option<Kind> {
        let st = self.state.lock().unwrap();
        st.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
            .cloned()
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "a request's parts, passed once from the router"
    )]
    async fn resource(
        &self,
        method: Method,
        group: &str,
        version: &str,
        rest: &[&str],
        q: &BTreeMap<String, String>,
        content_type: &str,
        body: &Bytes,
    ) -> Response<Body> {
        if rest.is_empty() {
            let st = self.state.lock().unwrap();
            let resources: Vec<Value> = st
                .kinds
                .iter()
                .filter(|k| k.group == group && k.version == version)
                .map(|k| json!({"name": k.plural, "singularName": k.kind.to_lowercase(), "namespaced": k.namespaced, "kind": k.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}))
                .collect();
            let gv = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            if resources.is_empty() {
                return json_response(
                    404,
                    &status(
                        404,
                        "NotFound",
                        &format!("the server could not find the requested resource ({gv})"),
                    ),
                );
            }
            return json_response(
                200,
                &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
            );
        }
        // Namespaced paths: namespaces/{ns}/{plural}[/{name}[/{sub}]]; the namespace object
        // itself is namespaces[/{name}].
        let (namespace, plural, name, sub) = match rest {
            ["namespaces", ns, plural, tail @ ..] => (
                Some(ns.to_string()),
                plural.to_string(),
                tail.first().map(|s| s.to_string()),
                tail.get(1).map(|s| s.to_string()),
            ),
            [plural, tail @ ..] => (
                None,
                plural.to_string(),
                tail.first().map(|s| s.to_string()),
                tail.get(1).map(|s| s.to_string()),
            ),
            [] => unreachable!("handled above"),
        };
        let Some(kind) = self.kind(group, version, &plural) else {
            return json_response(
                404,
                &status(
                    404,
                    "NotFound",
                    &format!("the server could not find the requested resource ({plural})"),
                ),
            );
        };
        let key = |name: &str| {
            (
                group.to_owned(),
                plural.clone(),
                namespace.clone(),
                name.to_owned(),
            )
        };
        match (method, name, sub.as_deref()) {
            (Method::GET, Some(name), Some("log")) => {
                let text = self
                    .state
                    .lock()
                    .unwrap()
                    .logs
                    .get(&name)
                    .cloned()
                    .unwrap_or_default();
                Response::builder()
                    .status(200)
                    .header("content-type", "text/plain")
                    .body(Full::new(Bytes::from(text)).boxed())
                    .unwrap()
            }
            (Method::GET, Some(name), None) => {
                match self.state.lock().unwrap().objects.get(&key(&name)) {
                    Some(obj) => json_response(200, obj),
                    None => json_response(
                        404,
                        &status(404, "NotFound", &format!("{plural} \"{name}\" not found")),
                    ),
                }
            }
            (Method::GET, None, None) if q.get("watch").map(String::as_str) == Some("true") => {
                self.watch(group, &plural, namespace, q)
            }
            (Method::GET, None, None) => {
                let st = self.state.lock().unwrap();
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|((g, p, ns, _), _)| {
                        g == group && *p == plural && (namespace.is_none() || *ns == namespace)
                    })
                    .map(|(_, o)| o.clone())
                    .filter(|o| {
                        labels_match(o, q.get("labelSelector"))
                            && fields_match(o, q.get("fieldSelector"))
                    })
                    .collect();
                json_response(
                    200,
                    &json!({"kind": format!("{}List", kind.kind), "apiVersion": if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") },
                    "metadata": {"resourceVersion": st.resource_version.to_string()}, "items": items}),
                )
            }
            (Method::PATCH, Some(name), None) => {
                if content_type != "application/apply-patch+yaml" {
                    return json_response(
                        415,
                        &status(
                            415,
                            "UnsupportedMediaType",
                            &format!("unsupported patch type {content_type}"),
                        ),
                    );
                }
                if q.get("fieldManager").is_none_or(String::is_empty) {
                    return json_response(
                        422,
                        &status(
                            422,
                            "Invalid",
                            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value",
                        ),
                    );
                }
                let Ok(applied) = serde_json::from_slice::<Value>(body) else {
                    return json_response(400, &status(400, "BadRequest", "body is not JSON"));
                };
                let obj = self.apply(&kind, key(&name), namespace.clone(), applied);
                json_response(200, &obj)
            }
            (Method::DELETE, Some(name), None) => {
                let options: Value = serde_json::from_slice(body).unwrap_or(json!({}));
                let mut st = self.state.lock().unwrap();
                let Some(obj) = st.objects.get(&key(&name)).cloned() else {
                    return json_response(
                        404,
                        &status(404, "NotFound", &format!("{plural} \"{name}\" not found")),
                    );
                };
                if let Some(uid) = options
                    .pointer("/preconditions/uid")
                    .and_then(Value::as_str)
                    && obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid)
                {
                    return json_response(
                        409,
                        &status(
                            409,
                            "Conflict",
                            &format!("Precondition failed: UID in precondition: {uid}"),
                        ),
                    );
                }
                st.resource_version += 1;
                if st.hold_deletions {
                    let rv = st.resource_version.to_string();
                    let held = st.objects.get_mut(&key(&name)).unwrap();
                    held["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                    held["metadata"]["resourceVersion"] = json!(rv);
                    let held = held.clone();
                    drop(st);
                    self.emit(
                        group,
                        &plural,
                        namespace.as_deref(),
                        "MODIFIED",
                        held.clone(),
                    );
                    json_response(200, &held)
                } else {
                    st.objects.remove(&key(&name));
                    drop(st);
                    self.emit(group, &plural, namespace.as_deref(), "DELETED", obj);
                    json_response(200, &status(200, "", "deleted"))
                }
            }
            (m, _, _) => json_response(
                405,
                &status(
                    405,
                    "MethodNotAllowed",
                    &format!("{m} not supported by the fake"),
                ),
            ),
        }
    }

    /// Server-side apply, simplified: the applied fields replace the stored spec, labels
    /// and annotations merge, status is kept, generation moves when the spec changes.
    fn apply(&self, kind: &Kind, key: ObjKey, namespace: Option<String>, applied: Value) -> Value {
        let mut st = self.state.lock().unwrap();
        st.resource_version += 1;
        let rv = st.resource_version.to_string();
        let existing = st.objects.get(&key).cloned();
        let (obj, type_) = match existing {
            Some(mut obj) => {
                let generation = obj
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                let changed = spec_of(&obj) != spec_of(&applied);
                let meta = obj["metadata"].clone();
                let status = obj.get("status").cloned();
                obj = applied.clone();
                obj["metadata"] = meta;
                for field in ["labels", "annotations"] {
                    if let Some(map) = applied
                        .pointer(&format!("/metadata/{field}"))
                        .and_then(Value::as_object)
                    {
                        for (k, v) in map {
                            obj["metadata"][field][k] = v.clone();
                        }
                    }
                }
                if let Some(status) = status {
                    obj["status"] = status;
                }
                obj["metadata"]["generation"] =
                    json!(if changed { generation + 1 } else { generation });
                obj["metadata"]["resourceVersion"] = json!(rv);
                (obj, "MODIFIED")
            }
            None => {
                st.next_uid += 1;
                let uid = format!("uid-{}", st.next_uid);
                let mut obj = applied.clone();
                obj.as_object_mut().unwrap().remove("status");
                let meta = obj["metadata"].as_object_mut().unwrap();
                meta.insert("uid".into(), json!(uid));
                meta.insert("generation".into(), json!(1));
                meta.insert("resourceVersion".into(), json!(rv));
                meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
                if let Some(ns) = &namespace {
                    meta.insert("namespace".into(), json!(ns));
                }
                (obj, "ADDED")
            }
        };
        let mut obj = obj;
        if kind.kind == "CustomResourceDefinition" {
            // The apiextensions controller: serve the new kind and mark it Established.
            let spec = obj["spec"].clone();
            for v in spec["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["served"] == json!(true))
            {
                let new = Kind {
                    group: spec["group"].as_str().unwrap_or_default().into(),
                    version: v["name"].as_str().unwrap_or_default().into(),
                    kind: spec["names"]["kind"].as_str().unwrap_or_default().into(),
                    plural: spec["names"]["plural"].as_str().unwrap_or_default().into(),
                    namespaced: spec["scope"] == json!("Namespaced"),
                };
                if !st.kinds.iter().any(|k| {
                    k.group == new.group && k.version == new.version && k.plural == new.plural
                }) {
                    st.kinds.push(new);
                }
            }
            obj["status"] = json!({"conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]});
        }
        st.objects.insert(key.clone(), obj.clone());
        drop(st);
        self.emit(&key.0, &key.1, key.2.as_deref(), type_, obj.clone());
        obj
    }

    fn watch(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<String>,
        q: &BTreeMap<String, String>,
    ) -> Response<Body> {
        // Subscribe before taking the snapshot so nothing falls between the two.
        let rx = self.events.subscribe();
        let since: u64 = q
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (labels, fields) = (
            q.get("labelSelector").cloned(),
            q.get("fieldSelector").cloned(),
        );
        let matches = {
            let (group, plural, namespace, labels, fields) = (
                group.to_owned(),
                plural.to_owned(),
                namespace.clone(),
                labels.clone(),
                fields.clone(),
            );
            move |g: &str, p: &str, ns: &Option<String>, o: &Value| {
                g == group
                    && p == plural
                    && (namespace.is_none() || *ns == namespace)
                    && labels_match(o, labels.as_ref())
                    && fields_match(o, fields.as_ref())
            }
        };
        // Replay what changed after the client's list, as a real watch from a
        // resourceVersion does.
        let replay: Vec<Bytes> = {
            let st = self.state.lock().unwrap();
            st.objects
                .iter()
                .filter(|((g, p, ns, _), o)| {
                    let rv: u64 = o
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    rv > since && matches(g, p, ns, o)
                })
                .map(|(_, o)| {
                    Bytes::from(format!("{}\n", json!({"type": "MODIFIED", "object": o})))
                })
                .collect()
        };
        self.changed.notify_waiters();
        let dropped = Arc::clone(&self.drop_watches);
        let live = futures::stream::unfold(
            (rx, matches, dropped),
            |(mut rx, matches, dropped)| async move {
                loop {
                    let received = tokio::select! {
                        received = rx.recv() => received,
                        () = dropped.notified() => return None,
                    };
                    match received {
                        Ok(e) if matches(&e.group, &e.plural, &e.namespace, &e.object) => {
                            let line = Bytes::from(format!(
                                "{}\n",
                                json!({"type": e.type_, "object": e.object})
                            ));
                            return Some((
                                Ok::<_, Infallible>(Frame::data(line)),
                                (rx, matches, dropped),
                            ));
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        );
        let replay = futures::stream::iter(
            replay
                .into_iter()
                .map(|b| Ok::<_, Infallible>(Frame::data(b))),
        );
        let stream = futures::StreamExt::chain(replay, live);
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap()
    }
}
