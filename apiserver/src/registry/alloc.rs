//! Service ClusterIP and NodePort allocation. The in-memory sets are the allocators' state; they
//! are rebuilt from the stored services at start-up (as Kubernetes' repair loops do), and a value
//! is reserved before the service that holds it is written, so no two services ever share one.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use rand::Rng;

#[derive(Debug, PartialEq, Eq)]
pub enum AllocError {
    Taken,
    OutOfRange(String),
    Full,
}

/// Addresses of an IPv4 CIDR, minus its network and broadcast addresses.
pub struct IpAllocator {
    base: u32,
    size: u32,
    cidr: String,
    used: Mutex<HashSet<u32>>,
}

impl IpAllocator {
    pub fn new(cidr: &str) -> Result<IpAllocator, String> {
        let parsed = tinykube_machinery::cidr::Cidr::parse(cidr).map_err(|e| e.to_string())?;
        let Some(network) = parsed.network_v4() else {
            return Err(format!("{cidr:?} is not an IPv4 CIDR"));
        };
        let bits = u32::from(parsed.prefix);
        if !(8..=30).contains(&bits) {
            return Err(format!(
                "{cidr:?}: the prefix length must be between 8 and 30"
            ));
        }
        Ok(IpAllocator {
            base: u32::from(network),
            size: 1 << (32 - bits),
            cidr: cidr.to_string(),
            used: Mutex::new(HashSet::new()),
        })
    }

    pub fn cidr(&self) -> &str {
        &self.cidr
    }

    /// The n-th usable address (1 is the first: 10.96.0.1 in 10.96.0.0/12).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + n)
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let v = u32::from(ip);
        (v > self.base && v < self.base + self.size - 1).then(|| v - self.base)
    }

    pub fn allocate(&self, ip: Ipv4Addr) -> Result<(), AllocError> {
        let off = self.offset(ip).ok_or_else(|| {
            AllocError::OutOfRange(format!(
                "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                self.cidr
            ))
        })?;
        if self.used.lock().unwrap().insert(off) {
            Ok(())
        } else {
            Err(AllocError::Taken)
        }
    }

    /// A free address, chosen at random so a freed one is not handed out again at once.
    pub fn allocate_next(&self) -> Result<Ipv4Addr, AllocError> {
        let mut used = self.used.lock().unwrap();
        let usable = self.size - 2;
        if used.len() as u32 >= usable {
            return Err(AllocError::Full);
        }
        let start = rand::rng().random_range(0..usable);
        for i in 0..usable {
            let off = 1 + (start + i) % usable;
            if used.insert(off) {
                return Ok(Ipv4Addr::from(self.base + off));
            }
        }
        Err(AllocError::Full)
    }

    pub fn release(&self, ip: Ipv4Addr) {
        if let Some(off) = self.offset(ip) {
            self.used.lock().unwrap().remove(&off);
        }
    }

    pub fn in_use(&self) -> usize {
        self.used.lock().unwrap().len()
    }
}

/// Ports of a range such as 30000-32767.
pub struct PortAllocator {
    first: u16,
    last: u16,
    used: Mutex<HashSet<u16>>,
}

impl PortAllocator {
    pub fn new(range: &str) -> Result<PortAllocator, String> {
        let (a, b) = range
            .split_once('-')
            .ok_or_else(|| format!("{range:?} is not a port range like 30000-32767"))?;
        let first: u16 = a
            .trim()
            .parse()
            .map_err(|_| format!("bad port range {range:?}"))?;
        let last: u16 = b
            .trim()
            .parse()
            .map_err(|_| format!("bad port range {range:?}"))?;
        if first == 0 || first > last {
            return Err(format!("bad port range {range:?}"));
        }
        Ok(PortAllocator {
            first,
            last,
            used: Mutex::new(HashSet::new()),
        })
    }

    pub fn range(&self) -> String {
        format!("{}-{}", self.first, self.last)
    }

    pub fn allocate(&self, port: i32) -> Result<(), AllocError> {
        if port < self.first as i32 || port > self.last as i32 {
            return Err(AllocError::OutOfRange(format!(
                "provided port is not in the valid range. The range of valid ports is {}",
                self.range()
            )));
        }
        if self.used.lock().unwrap().insert(port as u16) {
            Ok(())
        } else {
            Err(AllocError::Taken)
        }
    }

    pub fn allocate_next(&self) -> Result<i32, AllocError> {
        let mut used = self.used.lock().unwrap();
        let count = (self.last - self.first) as u32 + 1;
        let start = rand::rng().random_range(0..count);
        for i in 0..count {
            let port = self.first + ((start + i) % count) as u16;
            if used.insert(port) {
                return Ok(port as i32);
            }
        }
        Err(AllocError::Full)
    }

    pub fn release(&self, port: i32) {
        if let Ok(p) = u16::try_from(port) {
            self.used.lock().unwrap().remove(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_are_unique_and_in_range() {
        let a = IpAllocator::new("10.96.0.0/28").unwrap();
        assert_eq!(a.nth(1), Ipv4Addr::new(10, 96, 0, 1));
        a.allocate(a.nth(1)).unwrap();
        assert_eq!(a.allocate(a.nth(1)), Err(AllocError::Taken));
        assert!(matches!(
            a.allocate(Ipv4Addr::new(10, 96, 0, 0)),
            Err(AllocError::OutOfRange(_))
        ));
        assert!(matches!(
            a.allocate(Ipv4Addr::new(10, 96, 0, 15)),
            Err(AllocError::OutOfRange(_))
        ));
        let mut seen = HashSet::new();
        for _ in 0..13 {
            assert!(seen.insert(a.allocate_next().unwrap()));
        }
        assert_eq!(a.allocate_next(), Err(AllocError::Full));
        a.release(a.nth(3));
        assert_eq!(a.allocate_next().unwrap(), a.nth(3));
    }

    #[test]
    fn ports_are_unique_and_in_range() {
        let p = PortAllocator::new("30000-30002").unwrap();
        p.allocate(30001).unwrap();
        assert_eq!(p.allocate(30001), Err(AllocError::Taken));
        assert!(matches!(p.allocate(80), Err(AllocError::OutOfRange(_))));
        let a = p.allocate_next().unwrap();
        let b = p.allocate_next().unwrap();
        assert_ne!(a, b);
        assert_eq!(p.allocate_next(), Err(AllocError::Full));
    }
}
