//! A minimal client for Envoy's admin API (GET only, HTTP/1.1, one connection a
//! request): readiness, listener addresses, stats.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::LocalError;

/// GETs `path` from the admin listener, returning the status and body.
pub(crate) async fn get(admin: SocketAddr, path: &str) -> Result<(StatusCode, String), LocalError> {
    let error = |message: String| LocalError::Admin {
        path: path.to_string(),
        message,
    };
    let stream = TcpStream::connect(admin)
        .await
        .map_err(|e| error(format!("connect to {admin}: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| error(e.to_string()))?;
    let driver = tokio::spawn(connection);
    let request = Request::get(path)
        .header(http::header::HOST, admin.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| error(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| error(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| error(e.to_string()))?
        .to_bytes();
    driver.abort();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Listener name to bound address, from `/listeners?format=json`.
pub(crate) fn parse_listeners(json: &str) -> Result<Vec<(String, SocketAddr)>, LocalError> {
    let error = |message: String| LocalError::Admin {
        path: "/listeners?format=json".into(),
        message,
    };
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| error(e.to_string()))?;
    let mut out = Vec::new();
    for status in value["listener_statuses"].as_array().into_iter().flatten() {
        let name = status["name"].as_str().unwrap_or_default().to_string();
        let socket = &status["local_address"]["socket_address"];
        let (Some(ip), Some(port)) = (socket["address"].as_str(), socket["port_value"].as_u64())
        else {
            return Err(error(format!(
                "listener {name} has no socket address: {status}"
            )));
        };
        let ip = ip
            .parse()
            .map_err(|_| error(format!("listener {name}: bad address {ip}")))?;
        let port =
            u16::try_from(port).map_err(|_| error(format!("listener {name}: bad port {port}")))?;
        out.push((name, SocketAddr::new(ip, port)));
    }
    Ok(out)
}
