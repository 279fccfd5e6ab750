//! Gateway hostname resolution against a real DNS server on loopback: hickory's server
//! crate with an in-memory zone, behind a small UDP relay that counts queries and can
//! answer slowly. Covers A records, CNAME chains, NXDOMAIN, a record that appears while
//! we retry (load balancer DNS propagation) and slow answers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::fake_api::FakeApi;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, CNAME, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use meshcheck::manifest::{ObjectKey, load_file};
use meshcheck::targets::kube::address::{Backoff, resolve_with_backoff};
use meshcheck::targets::kube::{KubeEnvironment, KubeError, KubeOptions, KubeTimeouts};
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

const ZONE: &str = "test.meshcheck.";
const LB_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

struct Dns {
    /// Where resolvers send queries: the relay in front of the server.
    addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    queries: Arc<AtomicUsize>,
    query_seen: Arc<Notify>,
    delay_ms: Arc<AtomicU64>,
    _server: Server<Catalog>,
}

impl Dns {
    async fn start() -> Dns {
        let origin = name(ZONE);
        let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        // Negative TTL (SOA minimum) of 0 keeps NXDOMAIN answers from being cached long.
        let soa = SOA::new(
            name("ns.test.meshcheck."),
            name("admin.test.meshcheck."),
            1,
            60,
            60,
            60,
            0,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
        zone.upsert_mut(
            Record::from_rdata(name("lb.test.meshcheck."), 60, RData::A(A(LB_IP))),
            1,
        );
        zone.upsert_mut(
            Record::from_rdata(
                name("hop.test.meshcheck."),
                60,
                RData::CNAME(CNAME(name("lb.test.meshcheck."))),
            ),
            1,
        );
        zone.upsert_mut(
            Record::from_rdata(
                name("alias.test.meshcheck."),
                60,
                RData::CNAME(CNAME(name("hop.test.meshcheck."))),
            ),
            1,
        );
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&origin),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );
        let mut server = Server::new(catalog);
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let upstream = socket.local_addr().unwrap();
        server.register_socket(socket);

        let relay = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = relay.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let query_seen = Arc::new(Notify::new());
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (r, q, n, d) = (
            relay.clone(),
            queries.clone(),
            query_seen.clone(),
            delay_ms.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, client)) = r.recv_from(&mut buf).await else {
                    return;
                };
                let packet = buf[..len].to_vec();
                q.fetch_add(1, Ordering::SeqCst);
                n.notify_waiters();
                let (r, delay) = (r.clone(), d.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    // A slow server: the answer is held back, not lost.
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let hop = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    hop.send_to(&packet, upstream).await.unwrap();
                    let mut answer = vec![0u8; 4096];
                    let Ok(Ok(len)) =
                        tokio::time::timeout(Duration::from_secs(5), hop.recv(&mut answer)).await
                    else {
                        return;
                    };
                    let _ = r.send_to(&answer[..len], client).await;
                });
            }
        });
        Dns {
            addr,
            zone,
            queries,
            query_seen,
            delay_ms,
            _server: server,
        }
    }

    fn resolver(&self) -> TokioResolver {
        let mut connection = ConnectionConfig::udp();
        connection.port = self.addr.port();
        let server = NameServerConfig::new(self.addr.ip(), true, vec![connection]);
        let mut builder = hickory_resolver::Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![server]),
            TokioRuntimeProvider::default(),
        );
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = Duration::from_secs(2);
        options.attempts = 1;
        builder.build().unwrap()
    }

    /// Waits until the server has received more than `n` queries.
    async fn until_queries(&self, n: usize) {
        loop {
            let notified = self.query_seen.notified();
            if self.queries.load(Ordering::SeqCst) > n {
                return;
            }
            notified.await;
        }
    }
}

fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    }
}

#[tokio::test]
async fn a_record_resolves() {
    let dns = Dns::start().await;
    let ip = resolve_with_backoff(
        &dns.resolver(),
        "lb.test.meshcheck",
        Duration::from_secs(5),
        quick(),
    )
    .await
    .unwrap();
    assert_eq!(ip, IpAddr::V4(LB_IP));
}

#[tokio::test]
async fn cname_chain_is_followed() {
    let dns = Dns::start().await;
    let ip = resolve_with_backoff(
        &dns.resolver(),
        "alias.test.meshcheck",
        Duration::from_secs(5),
        quick(),
    )
    .await
    .unwrap();
    assert_eq!(ip, IpAddr::V4(LB_IP));
}

#[tokio::test]
async fn nxdomain_is_retried_until_the_deadline() {
    let dns = Dns::start().await;
    let failure = resolve_with_backoff(
        &dns.resolver(),
        "missing.test.meshcheck",
        Duration::from_millis(500),
        quick(),
    )
    .await
    .unwrap_err();
    assert_eq!(failure.last_error, "NXDOMAIN");
    assert!(failure.attempts >= 2, "{failure:?}");
    assert!(
        dns.queries.load(Ordering::SeqCst) >= 2,
        "retries must reach the server, not a cache"
    );
}

#[tokio::test]
async fn record_that_appears_while_retrying_is_found() {
    let dns = Dns::start().await;
    let resolver = dns.resolver();
    let lookup = resolve_with_backoff(
        &resolver,
        "late.test.meshcheck",
        Duration::from_secs(10),
        quick(),
    );
    let propagate = async {
        // Once the first attempt was answered NXDOMAIN (its A and AAAA queries) and a retry
        // began, the load balancer's record shows up.
        dns.until_queries(2).await;
        let record = Record::from_rdata(
            name("late.test.meshcheck."),
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 77))),
        );
        dns.zone.upsert(record, 2).await;
    };
    let (ip, ()) = tokio::join!(lookup, propagate);
    assert_eq!(ip.unwrap(), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77)));
}

#[tokio::test]
async fn slow_answers_within_the_deadline_are_accepted() {
    let dns = Dns::start().await;
    dns.delay_ms.store(300, Ordering::SeqCst);
    let ip = resolve_with_backoff(
        &dns.resolver(),
        "lb.test.meshcheck",
        Duration::from_secs(5),
        quick(),
    )
    .await
    .unwrap();
    assert_eq!(ip, IpAddr::V4(LB_IP));
}

#[tokio::test]
async fn answers_slower_than_the_deadline_do_not_hold_us() {
    let dns = Dns::start().await;
    dns.delay_ms.store(5_000, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let failure = resolve_with_backoff(
        &dns.resolver(),
        "lb.test.meshcheck",
        Duration::from_millis(300),
        quick(),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(failure.attempts, 1);
    assert_eq!(failure.last_error, "no answer before the deadline");
}

async fn gateway_with_hostname(
    hostname: &str,
    dns: &Dns,
    timeout: Duration,
) -> (FakeApi, KubeEnvironment, tempfile::TempDir) {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = KubeOptions {
        kubeconfig: Some(api.write_kubeconfig(dir.path(), "token-for-dns-tests")),
        timeouts: KubeTimeouts::uniform(timeout),
        ..Default::default()
    };
    let mut env = KubeEnvironment::connect(options)
        .await
        .unwrap()
        .with_resolver(dns.resolver(), quick());
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    env.apply(&load_file(&root.join("crds/gateway-api-v1.3.0-standard-install.yaml")).unwrap())
        .await
        .unwrap();
    let fixtures: Vec<_> = [
        load_file(&root.join("fixtures/ingress-canary/backends.yaml")).unwrap(),
        load_file(&root.join("fixtures/ingress-canary/gateway.yaml")).unwrap(),
    ]
    .concat()
    .into_iter()
    .filter(|m| m.kind == "Namespace" || m.kind == "Gateway")
    .collect();
    env.apply(&fixtures).await.unwrap();
    // As on EKS: the Gateway publishes the NLB's DNS name, not an IP.
    api.set_status(
        "gateway.networking.k8s.io",
        "gateways",
        Some("istio-test"),
        "istio-gateway",
        json!({"addresses": [{"type": "Hostname", "value": hostname}]}),
    );
    (api, env, dir)
}

fn gateway() -> ObjectKey {
    ObjectKey {
        kind: "Gateway".into(),
        namespace: Some("istio-test".into()),
        name: "istio-gateway".into(),
    }
}

#[tokio::test]
async fn gateway_hostname_is_resolved_like_dig() {
    let dns = Dns::start().await;
    let (_api, env, _dir) =
        gateway_with_hostname("alias.test.meshcheck", &dns, Duration::from_secs(5)).await;
    assert_eq!(
        env.gateway_address(&gateway(), 80).await.unwrap(),
        SocketAddr::new(IpAddr::V4(LB_IP), 80)
    );
}

#[tokio::test]
async fn gateway_hostname_that_never_resolves_names_it() {
    let dns = Dns::start().await;
    let (_api, env, _dir) =
        gateway_with_hostname("missing.test.meshcheck", &dns, Duration::from_millis(400)).await;
    let err = env.gateway_address(&gateway(), 80).await.unwrap_err();
    assert!(matches!(err, KubeError::Resolve { .. }), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("failed to resolve missing.test.meshcheck (address of gateway Gateway istio-test/istio-gateway) within 400ms after"), "{text}");
    assert!(text.ends_with("attempts: NXDOMAIN"), "{text}");
}
