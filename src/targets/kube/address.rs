//! Where a Gateway can be reached: the address choice is IO-free (Gateway status, then
//! the `<gateway>-istio` Service), and a hostname (an EKS NLB, say) is resolved through
//! DNS with retries while the record propagates, as the seed does with `dig +short`.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use serde_json::Value;

/// An address as published by the cluster, before DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishedAddress {
    Ip(IpAddr),
    Hostname(String),
}

/// Picks the Gateway's address: `status.addresses` first (IPAddress or Hostname), then
/// the load balancer ingress of the Service Istio created for it. IPs win over
/// hostnames in each list since they need no DNS. `None` when nothing is published yet.
pub fn choose_address(gateway: &Value, service: Option<&Value>) -> Option<PublishedAddress> {
    let from_gateway = gateway
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .map(|addresses| {
            addresses
                .iter()
                .filter_map(|a| {
                    let value = a.get("value")?.as_str()?.trim();
                    // The type defaults to IPAddress in the Gateway API schema.
                    match a.get("type").and_then(Value::as_str).unwrap_or("IPAddress") {
                        "IPAddress" => value.parse().ok().map(PublishedAddress::Ip),
                        "Hostname" if !value.is_empty() => {
                            Some(PublishedAddress::Hostname(value.to_owned()))
                        }
                        _ => None,
                    }
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let from_service = service
        .and_then(|s| s.pointer("/status/loadBalancer/ingress"))
        .and_then(Value::as_array)
        .map(|ingress| {
            ingress
                .iter()
                .flat_map(|i| {
                    let ip = i
                        .get("ip")
                        .and_then(Value::as_str)
                        .and_then(|v| v.parse().ok())
                        .map(PublishedAddress::Ip);
                    let host = i
                        .get("hostname")
                        .and_then(Value::as_str)
                        .filter(|h| !h.is_empty())
                        .map(|h| PublishedAddress::Hostname(h.to_owned()));
                    [ip, host]
                })
                .flatten()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for list in [from_gateway, from_service] {
        if let Some(ip) = list.iter().find(|a| matches!(a, PublishedAddress::Ip(_))) {
            return Some(ip.clone());
        }
        if let Some(first) = list.into_iter().next() {
            return Some(first);
        }
    }
    None
}

/// The name of the Service Istio's deployment controller creates for a Gateway.
pub fn gateway_service_name(gateway: &str) -> String {
    format!("{gateway}-istio")
}

/// The delays between DNS attempts: doubling from `initial`, capped at `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    fn next(&self, current: Duration) -> Duration {
        (current * 2).min(self.max)
    }
}

/// Why a hostname could not be resolved before the deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveFailure {
    pub attempts: u32,
    pub last_error: String,
}

/// Resolves `hostname` until it yields an address or `timeout` passes. NXDOMAIN and
/// empty answers are retried too: a fresh load balancer's record commonly does not
/// exist for the first minutes. Each attempt is itself bounded by the time left, so a
/// server that never answers cannot hold us past the deadline.
pub async fn resolve_with_backoff(
    resolver: &TokioResolver,
    hostname: &str,
    timeout: Duration,
    backoff: Backoff,
) -> Result<IpAddr, ResolveFailure> {
    let deadline = tokio::time::Instant::now() + timeout;
    // A trailing dot makes the name absolute, so search domains are never appended.
    let fqdn = if hostname.ends_with('.') {
        hostname.to_owned()
    } else {
        format!("{hostname}.")
    };
    let mut delay = backoff.initial;
    let mut attempts = 0;
    let mut last_error = "no attempt finished before the deadline".to_owned();
    loop {
        attempts += 1;
        if attempts > 1 {
            // The NXDOMAIN we just got is cached for the SOA's negative TTL; while the
            // record propagates we want to ask again, not read the cache.
            resolver.clear_cache();
        }
        match tokio::time::timeout_at(deadline, resolver.lookup_ip(fqdn.as_str())).await {
            Ok(Ok(lookup)) => {
                // Prefer IPv4: kind and cloud load balancers publish it first and the
                // test machine may have no IPv6 route.
                let ips: Vec<IpAddr> = lookup.iter().collect();
                if let Some(ip) = ips.iter().find(|ip| ip.is_ipv4()).or(ips.first()) {
                    return Ok(*ip);
                }
                last_error = "answer had no addresses".to_owned();
            }
            Ok(Err(err)) if err.is_nx_domain() => last_error = "NXDOMAIN".to_owned(),
            Ok(Err(err)) if err.is_no_records_found() => {
                last_error = "no A/AAAA records".to_owned()
            }
            Ok(Err(err)) => last_error = err.to_string(),
            Err(_elapsed) => {
                if attempts == 1 {
                    last_error = "no answer before the deadline".to_owned();
                }
                return Err(ResolveFailure {
                    attempts,
                    last_error,
                });
            }
        }
        if tokio::time::Instant::now() + delay >= deadline {
            return Err(ResolveFailure {
                attempts,
                last_error,
            });
        }
        tokio::time::sleep(delay).await;
        delay = backoff.next(delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateway_ip_address_is_used() {
        let gw = json!({"status": {"addresses": [{"type": "IPAddress", "value": "172.18.0.3"}]}});
        assert_eq!(
            choose_address(&gw, None),
            Some(PublishedAddress::Ip("172.18.0.3".parse().unwrap()))
        );
    }

    #[test]
    fn untyped_address_defaults_to_ip() {
        let gw = json!({"status": {"addresses": [{"value": "10.0.0.9"}]}});
        assert_eq!(
            choose_address(&gw, None),
            Some(PublishedAddress::Ip("10.0.0.9".parse().unwrap()))
        );
    }

    #[test]
    fn eks_hostname_is_kept_for_dns() {
        let host = "ad8805f370c854e749a18ed03f2bb2e0-4940c029a9c83906.elb.us-west-2.amazonaws.com";
        let gw = json!({"status": {"addresses": [{"type": "Hostname", "value": host}]}});
        assert_eq!(
            choose_address(&gw, None),
            Some(PublishedAddress::Hostname(host.into()))
        );
    }

    #[test]
    fn ip_preferred_over_hostname() {
        let gw = json!({"status": {"addresses": [
            {"type": "Hostname", "value": "lb.example"}, {"type": "IPAddress", "value": "192.0.2.1"}]}});
        assert_eq!(
            choose_address(&gw, None),
            Some(PublishedAddress::Ip("192.0.2.1".parse().unwrap()))
        );
    }

    #[test]
    fn falls_back_to_the_istio_service() {
        let gw = json!({"status": {"addresses": []}});
        let svc = json!({"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}});
        assert_eq!(
            choose_address(&gw, Some(&svc)),
            Some(PublishedAddress::Hostname("lb.example".into()))
        );
        let svc = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}});
        assert_eq!(
            choose_address(&json!({}), Some(&svc)),
            Some(PublishedAddress::Ip("192.0.2.7".parse().unwrap()))
        );
    }

    #[test]
    fn nothing_published_yet() {
        let svc = json!({"status": {"loadBalancer": {}}});
        assert_eq!(choose_address(&json!({"status": {}}), Some(&svc)), None);
        // A garbage IPAddress value is ignored rather than misparsed.
        let gw = json!({"status": {"addresses": [{"type": "IPAddress", "value": "not-an-ip"}]}});
        assert_eq!(choose_address(&gw, None), None);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
        };
        assert_eq!(
            b.next(Duration::from_millis(100)),
            Duration::from_millis(200)
        );
        assert_eq!(
            b.next(Duration::from_millis(200)),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn service_name_follows_istio() {
        assert_eq!(gateway_service_name("istio-gateway"), "istio-gateway-istio");
    }
}
