//! The data plane: one Envoy for every Gateway, configured through files it watches
//! (`path_config_source` for LDS and CDS).
//!
//! Why file-based xDS and not a restart per change: a restarted Envoy drops every
//! connection of every Gateway, so one suite applying its fixtures would break the
//! traffic of another running at the same time, and the new process could not bind the
//! addresses until the old one let go of them. With xDS files Envoy swaps only what
//! changed, drains old listeners gracefully, and reports which version it accepted
//! (`/config_dump`), which is what Programmed waits for. Each update is written to a
//! temporary file and renamed over the watched one, the move Envoy reloads on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::process::ChildProcess;

use super::error::IstiodError;

/// How long Envoy may take to start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// The running Envoy and what it was last given.
pub struct DataPlane {
    process: ChildProcess,
    admin: SocketAddr,
    dir: PathBuf,
    version: u64,
    written: Option<(Vec<Value>, Vec<Value>)>,
}

/// What Envoy reports of one listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenerState {
    /// Active at the version last written: it listens with the current configuration.
    Active,
    /// Not yet: still warming, or Envoy has not loaded the version yet.
    Pending,
    /// Envoy refused it (a bind failure, say), with its words.
    Failed(String),
}

impl DataPlane {
    pub async fn start(envoy: &Path, dir: &Path) -> Result<DataPlane, IstiodError> {
        let lds = dir.join("lds.json");
        let cds = dir.join("cds.json");
        write_atomically(&cds, &discovery_response(0, CLUSTER_TYPE, &[]))?;
        write_atomically(&lds, &discovery_response(0, LISTENER_TYPE, &[]))?;
        let config = json!({
            "node": {"id": "kube-tier-istiod", "cluster": "istio-ingressgateway"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "dynamic_resources": {
                "lds_config": {"path_config_source": {"path": lds.display().to_string()}, "resource_api_version": "V3"},
                "cds_config": {"path_config_source": {"path": cds.display().to_string()}, "resource_api_version": "V3"},
            },
        });
        let bootstrap = dir.join("envoy.json");
        write_atomically(&bootstrap, &config)?;
        let admin_path = dir.join("envoy-admin-address.txt");
        let _ = std::fs::remove_file(&admin_path);
        let args: Vec<String> = vec![
            "-c".into(),
            bootstrap.display().to_string(),
            "--disable-hot-restart".into(),
            "--admin-address-path".into(),
            admin_path.display().to_string(),
            "--log-level".into(),
            "warning".into(),
            "--concurrency".into(),
            "2".into(),
        ];
        let mut process = ChildProcess::spawn(
            "istiod stand-in Envoy".into(),
            envoy,
            &args,
            &BTreeMap::new(),
            &[],
            None,
        )
        .map_err(IstiodError::EnvoyStart)?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let admin = loop {
            if let Some(admin) = std::fs::read_to_string(&admin_path)
                .ok()
                .and_then(|t| t.trim().parse::<SocketAddr>().ok())
                && admin_get(admin, "/ready")
                    .await
                    .is_ok_and(|body| body.trim() == "LIVE")
            {
                break admin;
            }
            if Instant::now() >= deadline {
                let tail = process.exited().await;
                return Err(IstiodError::EnvoyNotReady {
                    timeout: STARTUP_TIMEOUT,
                    tail,
                });
            }
            // Envoy offers no start-up signal but its admin API: a bounded poll.
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok(DataPlane {
            process,
            admin,
            dir: dir.to_owned(),
            version: 0,
            written: None,
        })
    }

    /// Writes the resources if they differ from the last written ones: clusters first,
    /// so the listeners' routes find them.
    pub fn program(
        &mut self,
        listeners: Vec<Value>,
        clusters: Vec<Value>,
    ) -> Result<(), IstiodError> {
        let wanted = (listeners, clusters);
        if self.written.as_ref() == Some(&wanted) {
            return Ok(());
        }
        self.version += 1;
        write_atomically(
            &self.dir.join("cds.json"),
            &discovery_response(self.version, CLUSTER_TYPE, &wanted.1),
        )?;
        write_atomically(
            &self.dir.join("lds.json"),
            &discovery_response(self.version, LISTENER_TYPE, &wanted.0),
        )?;
        self.written = Some(wanted);
        Ok(())
    }

    /// Each listener's state as Envoy tells it: active once Envoy has accepted the
    /// version last written (`listener_manager.lds.version_text`; a listener the update
    /// did not change keeps the version it was loaded at, so the listener's own version
    /// cannot tell) and the listener is neither warming nor refused. An unreadable
    /// admin API leaves every listener pending (and the controller asks again).
    pub async fn listener_states(&self) -> BTreeMap<String, ListenerState> {
        let mut states = BTreeMap::new();
        let Ok(stats) = admin_get(
            self.admin,
            "/stats?filter=^listener_manager.lds.version_text$",
        )
        .await
        else {
            return states;
        };
        let loaded = stats
            .split_once(':')
            .map(|(_, v)| v.trim().trim_matches('"').to_owned())
            .unwrap_or_default();
        let current = loaded == self.version.to_string();
        let Ok(body) = admin_get(self.admin, "/config_dump?resource=dynamic_listeners").await
        else {
            return states;
        };
        let Ok(dump) = serde_json::from_str::<Value>(&body) else {
            return states;
        };
        for listener in dump["configs"].as_array().into_iter().flatten() {
            let Some(name) = listener["name"].as_str() else {
                continue;
            };
            let state = if let Some(error) = listener.get("error_state") {
                ListenerState::Failed(error["details"].as_str().unwrap_or("rejected").to_owned())
            } else if current
                && listener.get("warming_state").is_none()
                && listener.get("active_state").is_some()
            {
                ListenerState::Active
            } else {
                ListenerState::Pending
            };
            states.insert(name.to_owned(), state);
        }
        states
    }

    pub async fn stop(self) {
        self.process.stop().await;
    }
}

/// A DiscoveryResponse as the file sources read it.
fn discovery_response(version: u64, type_url: &str, resources: &[Value]) -> Value {
    json!({
        "version_info": version.to_string(),
        "resources": resources.iter().map(|r| {
            let mut r = r.clone();
            r["@type"] = json!(type_url);
            r
        }).collect::<Vec<_>>(),
    })
}

/// Writes `value` next to `path` and renames it over `path`: Envoy reloads on the move
/// and never reads a half-written file.
fn write_atomically(path: &Path, value: &Value) -> Result<(), IstiodError> {
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).unwrap_or_default();
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|source| IstiodError::Write {
            path: path.to_owned(),
            source,
        })
}

/// GETs an admin path (HTTP/1.1, one connection).
async fn admin_get(admin: SocketAddr, path: &str) -> Result<String, String> {
    let stream = TcpStream::connect(admin).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, admin.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    driver.abort();
    if !status.is_success() {
        return Err(format!("{path}: {status}"));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}
