//! CIDR blocks as Kubernetes' flags and fields take them (Go's `net.ParseCIDR`): the pod CIDR,
//! the service range, the proxy's matches.

use std::net::{IpAddr, Ipv4Addr};

/// An address and a prefix length that fits it (`10.244.0.0/24`, `fd00::/64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Go's wording: `invalid CIDR address: 10.0.0.0/99`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address: {0}")]
pub struct CidrError(pub String);

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match len.parse::<u8>() {
            Ok(prefix) if prefix <= max => Ok(Cidr { addr, prefix }),
            _ => Err(bad()),
        }
    }

    /// The IPv4 netmask (None for IPv6).
    pub fn mask_v4(&self) -> Option<u32> {
        match self.addr {
            IpAddr::V4(_) if self.prefix == 0 => Some(0),
            IpAddr::V4(_) => Some(u32::MAX << (32 - u32::from(self.prefix))),
            IpAddr::V6(_) => None,
        }
    }

    /// The first address of an IPv4 block (its network address).
    pub fn network_v4(&self) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(a) => Some(Ipv4Addr::from(u32::from(a) & self.mask_v4()?)),
            IpAddr::V6(_) => None,
        }
    }

    /// Whether `ip` is in the (IPv4) block.
    pub fn contains_v4(&self, ip: Ipv4Addr) -> bool {
        match (self.network_v4(), self.mask_v4()) {
            (Some(net), Some(mask)) => u32::from(ip) & mask == u32::from(net),
            _ => false,
        }
    }

    /// Whether `ip` is in the block (either family).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(v4)) => self.contains_v4(v4),
            (IpAddr::V6(net), IpAddr::V6(v6)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(v6) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_either_family_contain_their_addresses() {
        let v4 = Cidr::parse("10.244.0.0/24").unwrap();
        assert!(v4.contains("10.244.0.9".parse().unwrap()));
        assert!(!v4.contains("10.244.1.9".parse().unwrap()));
        assert!(!v4.contains("fd00::1".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/64").unwrap();
        assert!(v6.contains("fd00::1".parse().unwrap()));
        assert!(!v6.contains("fd01::1".parse().unwrap()));
        assert!(Cidr::parse("::/0")
            .unwrap()
            .contains("fd01::1".parse().unwrap()));
    }

    #[test]
    fn go_takes_these_and_refuses_those() {
        for ok in [
            "10.244.0.0/24",
            "10.0.0.0/8",
            "fd00::/64",
            "1.2.3.4/32",
            "0.0.0.0/0",
        ] {
            assert!(Cidr::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.244.0.0/99",
            "10.244.0.0",
            "x/24",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "fd00::/129",
            "10.0.0.0/-1",
            "10.0.0.0/ 8",
        ] {
            assert_eq!(
                Cidr::parse(bad).unwrap_err().to_string(),
                format!("invalid CIDR address: {bad}")
            );
        }
    }

    #[test]
    fn blocks_contain_their_addresses() {
        let c = Cidr::parse("10.96.0.7/12").unwrap();
        assert_eq!(c.network_v4(), Some(Ipv4Addr::new(10, 96, 0, 0)));
        assert!(c.contains_v4(Ipv4Addr::new(10, 111, 255, 255)));
        assert!(!c.contains_v4(Ipv4Addr::new(10, 112, 0, 0)));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains_v4(Ipv4Addr::new(8, 8, 8, 8)));
        assert_eq!(Cidr::parse("fd00::/64").unwrap().network_v4(), None);
    }
}
