//! Loopback addresses for what a cluster would give an IP: pods get `127.10.x.y`
//! (allocated by the kubelet stand-in), gateways `127.20.0.n` (by the istiod stand-in).
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so a process can bind any
//! of them without configuration, and nothing listens beyond loopback.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

/// A pool of loopback addresses, each handed out once until released. Like the
/// host-local IPAM plugin of CNI (containernetworking/plugins
/// `plugins/ipam/host-local/backend/allocator`), it hands out the next free address
/// after the last one it gave, not the lowest: an address is reused only after the
/// whole range, so a proxy still holding a deleted pod's address does not reach a new
/// pod by it.
#[derive(Debug)]
pub struct AddressPool {
    what: &'static str,
    /// The addresses in the pool, first to last, as `u32`.
    first: u32,
    last: u32,
    state: Mutex<Allocations>,
}

#[derive(Debug, Default)]
struct Allocations {
    in_use: BTreeSet<u32>,
    last_given: Option<u32>,
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
            state: Mutex::default(),
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

    /// The next free address after the last one handed out (wrapping), now taken.
    pub fn allocate(&self) -> Result<Ipv4Addr, PoolExhausted> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let start = match state.last_given {
            Some(last) if last < self.last => last + 1,
            _ => self.first,
        };
        let free = (start..=self.last)
            .chain(self.first..start)
            .find(|a| !state.in_use.contains(a));
        match free {
            Some(address) => {
                state.in_use.insert(address);
                state.last_given = Some(address);
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
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .in_use
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

    #[test]
    fn a_released_address_is_reused_only_after_the_rest_of_the_range() {
        let pool = AddressPool::new(
            "test",
            Ipv4Addr::new(127, 10, 0, 1),
            Ipv4Addr::new(127, 10, 0, 3),
        );
        let a = pool.allocate().unwrap();
        pool.release(a);
        assert_eq!(pool.allocate().unwrap(), Ipv4Addr::new(127, 10, 0, 2));
        assert_eq!(pool.allocate().unwrap(), Ipv4Addr::new(127, 10, 0, 3));
        // Wrapped around: the first is free again.
        assert_eq!(pool.allocate().unwrap(), a);
    }
}
