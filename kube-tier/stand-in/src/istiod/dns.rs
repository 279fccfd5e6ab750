//! A DNS server on 127.0.0.1 (UDP, kernel-chosen port) for Gateways whose address is a
//! hostname: it answers `<gateway>.<namespace>.kube-tier.test` with the Gateway's
//! loopback address, as a cloud's DNS answers for its load balancer's name.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::UdpSocket;

use super::error::IstiodError;

/// The zone the server is authoritative for.
pub const ZONE: &str = "kube-tier.test.";

pub struct GatewayDns {
    address: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    serial: AtomicU32,
    /// What each name answers now, so an unchanged one is not written again.
    published: Mutex<BTreeMap<String, Ipv4Addr>>,
    _server: Server<Catalog>,
}

/// The hostname published for a Gateway.
pub fn hostname(namespace: &str, gateway: &str) -> String {
    format!("{gateway}.{namespace}.{}", ZONE.trim_end_matches('.'))
}

impl GatewayDns {
    pub async fn start() -> Result<GatewayDns, IstiodError> {
        let origin =
            Name::from_ascii(ZONE).map_err(|e| IstiodError::DnsBind(std::io::Error::other(e)))?;
        let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        // A negative TTL (SOA minimum) of 0: a name asked for before its Gateway is
        // programmed is not remembered as missing.
        let soa = SOA::new(
            Name::from_ascii(format!("ns.{ZONE}"))
                .map_err(|e| IstiodError::DnsBind(std::io::Error::other(e)))?,
            Name::from_ascii(format!("admin.{ZONE}"))
                .map_err(|e| IstiodError::DnsBind(std::io::Error::other(e)))?,
            1,
            60,
            60,
            60,
            0,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&origin),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );
        let mut server = Server::new(catalog);
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(IstiodError::DnsBind)?;
        let address = socket.local_addr().map_err(IstiodError::DnsBind)?;
        server.register_socket(socket);
        Ok(GatewayDns {
            address,
            zone,
            serial: AtomicU32::new(1),
            published: Mutex::default(),
            _server: server,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Answers `hostname` with `ip` (only) from now on: a Gateway made again under the
    /// same name gets a new address, and the old one must not be answered too.
    pub async fn publish(&self, hostname: &str, ip: Ipv4Addr) {
        {
            let published = self
                .published
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if published.get(hostname) == Some(&ip) {
                return;
            }
        }
        let Ok(name) = Name::from_ascii(format!("{hostname}.")) else {
            eprintln!("istiod stand-in: {hostname:?} is not a DNS name");
            return;
        };
        self.zone
            .records_mut()
            .await
            .remove(&RrKey::new(LowerName::new(&name), RecordType::A));
        let serial = self.serial.fetch_add(1, Ordering::SeqCst) + 1;
        self.zone
            .upsert(Record::from_rdata(name, 5, RData::A(A(ip))), serial)
            .await;
        self.published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(hostname.to_owned(), ip);
    }
}
