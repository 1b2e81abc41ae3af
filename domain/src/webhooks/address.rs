//! Which target addresses a webhook may be sent to (SSRF protection).
//!
//! An address is restricted when it lies in a special-purpose block (the IANA registries,
//! see [`special_purpose`](super::special_purpose)) or when an IPv4 address it carries
//! (IPv4-compatible, SIIT, NAT64, 6to4, Teredo) does: a connection to it can end up there.
//! An IPv4-mapped IPv6 address is the IPv4 address it carries and is judged as that one.
//! An operator can allow restricted networks explicitly (`allow`), e.g. `127.0.0.0/8` for
//! the demo and the tests; allowing an IPv6 translator or tunnel prefix (say `64:ff9b::/96`
//! on a DNS64 network) still refuses the restricted IPv4 addresses inside it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::special_purpose::{embedded_v4, special_v4, special_v6};

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare address is a /32 or /128.
///
/// The `ipnet` crate parses and matches; this type adds what the guard needs on top: a bare
/// address is accepted, host bits are dropped (`10.1.2.3/8` is `10.0.0.0/8`), and an
/// IPv4-mapped network (`::ffff:127.0.0.0/104`) is the IPv4 network it maps, because an
/// IPv4-mapped address is judged as its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet(ipnet::IpNet);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a network in CIDR notation: {0:?}")]
pub struct IpNetError(String);

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let net = match t.contains('/') {
            true => t.parse::<ipnet::IpNet>().ok(),
            false => t.parse::<IpAddr>().ok().map(ipnet::IpNet::from),
        };
        net.map(|n| IpNet(canonical_net(n.trunc())))
            .ok_or_else(|| IpNetError(s.to_string()))
    }
}

/// An IPv6 network inside `::ffff:0:0/96` as the IPv4 network it maps.
fn canonical_net(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(ipnet::IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl IpNet {
    /// Does the network hold `ip` (an IPv4-mapped address counting as its IPv4 address)?
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The special-purpose block an address lies in, judged as given (mapped as IPv4).
fn special(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

/// The address itself and every IPv4 address it carries: where a connection may end up.
fn destinations(ip: IpAddr) -> Vec<IpAddr> {
    let ip = canonical(ip);
    let mut all = vec![ip];
    if let IpAddr::V6(v6) = ip {
        all.extend(embedded_v4(v6).into_iter().map(IpAddr::V4));
    }
    all
}

/// Is `ip` in a range a webhook must not reach unless allowed?
pub fn is_restricted(ip: IpAddr) -> bool {
    !AddressPolicy::default().permits(ip)
}

/// Restricted ranges are refused unless one of `allow` contains the address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow: Vec<IpNet>,
}

impl AddressPolicy {
    /// A connection to `ip` may be made: the address and every IPv4 address it carries are
    /// each either outside the special-purpose blocks or inside an allowed network.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.refusal(ip).is_none()
    }

    /// Why `ip` is refused (the block it, or an IPv4 address inside it, lies in), if it is.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        destinations(ip)
            .into_iter()
            .filter(|d| !self.allow.iter().any(|n| n.contains(*d)))
            .find_map(special)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn restricted_ranges() {
        for s in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "127.9.9.9",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            // Issue 9 item 4: each of these reached connect() before.
            "::127.0.0.1",
            "::10.0.0.1",
            "2002:7f00:1::1",
            "::ffff:0:7f00:1",
            "100::1",
            // And their kin.
            "::169.254.169.254",
            "2002:a9fe:a9fe::1",
            "64:ff9b:1::a00:1",
            "2001:0:4136:e378:8000:63bf:3f57:fdf2",
            "2001:db8::1",
            "3fff::1",
            "5f00::1",
            "ff02::1",
            "fec0::1",
            "192.0.0.9",
            "192.88.99.1",
            "192.175.48.1",
        ] {
            assert!(is_restricted(ip(s)), "{s}");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_restricted(ip(s)), "{s}");
        }
    }

    #[test]
    fn allow_list_opens_only_its_networks() {
        let p = AddressPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
        };
        assert!(p.permits(ip("127.0.0.1")));
        assert!(p.permits(ip("::ffff:127.0.0.1")));
        assert!(p.permits(ip("::1")));
        assert!(p.permits(ip("8.8.8.8")));
        assert!(!p.permits(ip("10.0.0.1")));
        assert!(!p.permits(ip("169.254.169.254")));
        assert!(!AddressPolicy::default().permits(ip("127.0.0.1")));
    }

    #[test]
    fn allowing_a_translator_prefix_still_judges_the_ipv4_inside() {
        // A DNS64 network allows the NAT64 prefix: public IPv4 behind it is reachable,
        // private IPv4 behind it is not.
        let p = AddressPolicy {
            allow: vec!["64:ff9b::/96".parse().unwrap()],
        };
        assert!(p.permits(ip("64:ff9b::808:808")));
        assert!(!p.permits(ip("64:ff9b::a00:1")));
        assert_eq!(
            p.refusal(ip("64:ff9b::a00:1")),
            Some("private-use [RFC1918]")
        );
        assert!(!p.permits(ip("64:ff9b::7f00:1")));
        // Allowing the IPv4 network does not open the IPv6 forms that carry it, except
        // IPv4-mapped, which is the same address.
        let p = AddressPolicy {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
        };
        assert!(p.permits(ip("10.0.0.1")));
        assert!(p.permits(ip("::ffff:10.0.0.1")));
        assert!(!p.permits(ip("::10.0.0.1")));
        assert!(!p.permits(ip("2002:a00:1::1")));
        // Opening all of IPv6 leaves the embedded IPv4 judged.
        let p = AddressPolicy {
            allow: vec!["::/0".parse().unwrap()],
        };
        assert!(p.permits(ip("fd00::1")));
        assert!(!p.permits(ip("::127.0.0.1")));
        assert!(!p.permits(ip("2002:7f00:1::1")));
        assert!(!p.permits(ip("2001:0:4136:e378:8000:63bf:3f57:fdf2")));
        assert!(p.permits(ip("2002:808:808::1")));
    }

    #[test]
    fn refusal_names_the_block() {
        let p = AddressPolicy::default();
        assert_eq!(p.refusal(ip("8.8.8.8")), None);
        assert_eq!(
            p.refusal(ip("::ffff:127.0.0.1")),
            Some("loopback [RFC1122]")
        );
        assert_eq!(p.refusal(ip("100::1")), Some("discard-only [RFC6666]"));
        assert_eq!(p.refusal(ip("2002:7f00:1::1")), Some("6to4 [RFC3056]"));
    }

    #[test]
    fn cidr_parsing() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains(ip("10.255.0.1")));
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(!n.contains(ip("::1")));
        assert_eq!(n.to_string(), "10.0.0.0/8");
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("192.168.0.1")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "nope",
            "10.0.0/8",
            "1.2.3.4/x",
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "fe80::1%eth0",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_edge_cases() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        // A bare address is a single host, either family; spaces around are ignored.
        assert_eq!(net(" 127.0.0.1 ").to_string(), "127.0.0.1/32");
        assert_eq!(net("::1").to_string(), "::1/128");
        assert!(net("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        // Host bits are dropped: the network is what is shown and matched.
        assert_eq!(net("10.1.2.3/8"), net("10.0.0.0/8"));
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("fd12:3456::1/16").to_string(), "fd12::/16");
        // Boundaries of a network are inside it, the next address is not.
        let n = net("192.168.4.0/22");
        assert!(n.contains(ip("192.168.4.0")) && n.contains(ip("192.168.7.255")));
        assert!(!n.contains(ip("192.168.3.255")) && !n.contains(ip("192.168.8.0")));
        // /0 of one family holds nothing of the other.
        assert!(!net("0.0.0.0/0").contains(ip("fd00::1")));
        assert!(!net("::/0").contains(ip("10.0.0.1")));
        // An IPv4-mapped address is matched as its IPv4 address, by an IPv4 network and by
        // an IPv4-mapped network alike.
        assert!(net("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert_eq!(net("::ffff:127.0.0.0/104"), net("127.0.0.0/8"));
        assert!(net("::ffff:127.0.0.0/104").contains(ip("127.9.9.9")));
        assert!(net("::ffff:127.0.0.0/104").contains(ip("::ffff:127.9.9.9")));
        assert_eq!(net("::ffff:10.0.0.1").to_string(), "10.0.0.1/32");
        // A shorter prefix spanning the mapped block stays IPv6.
        assert_eq!(net("::ffff:0:0/95").to_string(), "::fffe:0:0/95");
    }

    #[test]
    fn an_ipv4_mapped_allow_entry_opens_its_ipv4_addresses() {
        // Before, this entry matched nothing: mapped addresses are judged as IPv4.
        let p = AddressPolicy {
            allow: vec!["::ffff:127.0.0.1".parse().unwrap()],
        };
        assert!(p.permits(ip("127.0.0.1")));
        assert!(p.permits(ip("::ffff:127.0.0.1")));
        assert!(!p.permits(ip("127.0.0.2")));
        assert!(
            !p.permits(ip("::127.0.0.1")),
            "IPv4-compatible is not mapped"
        );
    }
}
