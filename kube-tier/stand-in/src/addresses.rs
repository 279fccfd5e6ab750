//! Loopback addresses for what a cluster would give an IP: pods get `127.10.x.y`
//! (allocated by the kubelet stand-in), gateways `127.20.0.n` (by the istiod stand-in).
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so a process can bind any
//! of them without configuration, and nothing listens beyond loopback.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

/// A pool of loopback addresses, each handed out once until released.
#[derive(Debug)]
pub struct AddressPool {
    what: &'static str,
    /// The addresses in the pool, first to last, as `u32`.
    first: u32,
    last: u32,
    in_use: Mutex<BTreeSet<u32>>,
}

/// The pool ran dry: more pods (or gateways) at once than it holds.
#[derive(Debug, thiserror::Error)]
#[error("no free {what} address left in {first}-{last}")]
pub struct PoolExhausted {
    pub what: &'static str,
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl AddressPool {
    fn new(what: &'static str, first: Ipv4Addr, last: Ipv4Addr) -> AddressPool {
        AddressPool {
            what,
            first: u32::from(first),
            last: u32::from(last),
            in_use: Mutex::default(),
        }
    }

    /// Pod IPs: 127.10.0.1 to 127.10.255.254.
    pub fn pods() -> AddressPool {
        AddressPool::new(
            "pod",
            Ipv4Addr::new(127, 10, 0, 1),
            Ipv4Addr::new(127, 10, 255, 254),
        )
    }

    /// Gateway (LoadBalancer) addresses: 127.20.0.1 to 127.20.0.254.
    pub fn gateways() -> AddressPool {
        AddressPool::new(
            "gateway",
            Ipv4Addr::new(127, 20, 0, 1),
            Ipv4Addr::new(127, 20, 0, 254),
        )
    }

    /// The lowest free address, now taken.
    pub fn allocate(&self) -> Result<Ipv4Addr, PoolExhausted> {
        let mut in_use = self
            .in_use
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let free = (self.first..=self.last).find(|a| !in_use.contains(a));
        match free {
            Some(address) => {
                in_use.insert(address);
                Ok(Ipv4Addr::from(address))
            }
            None => Err(PoolExhausted {
                what: self.what,
                first: Ipv4Addr::from(self.first),
                last: Ipv4Addr::from(self.last),
            }),
        }
    }

    /// Gives `address` back (a no-op for one the pool did not hand out).
    pub fn release(&self, address: Ipv4Addr) {
        self.in_use
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&u32::from(address));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_until_released_and_the_pool_says_when_it_is_dry() {
        let pool = AddressPool::new(
            "test",
            Ipv4Addr::new(127, 10, 0, 1),
            Ipv4Addr::new(127, 10, 0, 2),
        );
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(127, 10, 0, 1), Ipv4Addr::new(127, 10, 0, 2))
        );
        let dry = pool.allocate().unwrap_err().to_string();
        assert_eq!(dry, "no free test address left in 127.10.0.1-127.10.0.2");
        pool.release(a);
        assert_eq!(pool.allocate().unwrap(), a);
    }
}
