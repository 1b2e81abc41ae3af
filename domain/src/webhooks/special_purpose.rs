//! The address blocks a webhook must not reach, from the IANA IPv4 and IPv6 Special-Purpose
//! Address Registries (RFC 6890), and the IPv4 addresses that IPv6 forms carry inside them.
//!
//! Every block of both registries is here, whether or not the registry calls it globally
//! reachable: no tenant hosts a webhook receiver on an anycast relay, an AS112 sink or a
//! translator prefix, and refusing them is the simple, safe reading. On top of the
//! registries: IPv4 multicast, the deprecated IPv6 site-local and IPv4-compatible blocks, the
//! SIIT IPv4-translated block, and every IPv6 address outside global unicast (`2000::/3`).
//! Within a table the more specific block comes first, so the name returned is the
//! narrowest one.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(s: [u16; 8], prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        prefix,
    )
}

/// IANA IPv4 Special-Purpose Address Registry, plus multicast.
const IPV4: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 32), "this host on this network [RFC1122]"),
    (v4(0, 0, 0, 0, 8), "this network [RFC791]"),
    (v4(10, 0, 0, 0, 8), "private-use [RFC1918]"),
    (v4(100, 64, 0, 0, 10), "shared address space [RFC6598]"),
    (v4(127, 0, 0, 0, 8), "loopback [RFC1122]"),
    (v4(169, 254, 0, 0, 16), "link local [RFC3927]"),
    (v4(172, 16, 0, 0, 12), "private-use [RFC1918]"),
    (
        v4(192, 0, 0, 0, 29),
        "IPv4 service continuity prefix [RFC7335]",
    ),
    (v4(192, 0, 0, 8, 32), "IPv4 dummy address [RFC7600]"),
    (
        v4(192, 0, 0, 9, 32),
        "port control protocol anycast [RFC7723]",
    ),
    (v4(192, 0, 0, 10, 32), "TURN anycast [RFC8155]"),
    (v4(192, 0, 0, 170, 31), "NAT64/DNS64 discovery [RFC8880]"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments [RFC6890]"),
    (v4(192, 0, 2, 0, 24), "documentation TEST-NET-1 [RFC5737]"),
    (v4(192, 31, 196, 0, 24), "AS112-v4 [RFC7535]"),
    (v4(192, 52, 193, 0, 24), "AMT [RFC7450]"),
    (v4(192, 88, 99, 2, 32), "6a44-relay anycast [RFC6751]"),
    (
        v4(192, 88, 99, 0, 24),
        "deprecated 6to4 relay anycast [RFC7526]",
    ),
    (v4(192, 168, 0, 0, 16), "private-use [RFC1918]"),
    (
        v4(192, 175, 48, 0, 24),
        "direct delegation AS112 service [RFC7534]",
    ),
    (v4(198, 18, 0, 0, 15), "benchmarking [RFC2544]"),
    (
        v4(198, 51, 100, 0, 24),
        "documentation TEST-NET-2 [RFC5737]",
    ),
    (v4(203, 0, 113, 0, 24), "documentation TEST-NET-3 [RFC5737]"),
    (v4(224, 0, 0, 0, 4), "multicast [RFC5771]"),
    (v4(255, 255, 255, 255, 32), "limited broadcast [RFC8190]"),
    (v4(240, 0, 0, 0, 4), "reserved [RFC1112]"),
];

/// IANA IPv6 Special-Purpose Address Registry, plus the deprecated and embedding blocks of
/// the addressing architecture.
const IPV6: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback [RFC4291]"),
    (v6([0; 8], 128), "unspecified [RFC4291]"),
    (
        v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),
        "IPv4-mapped [RFC4291]",
    ),
    (
        v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96),
        "IPv4-translated (SIIT) [RFC2765]",
    ),
    (v6([0; 8], 96), "IPv4-compatible, deprecated [RFC4291]"),
    (
        v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96),
        "IPv4-IPv6 translation [RFC6052]",
    ),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "IPv4-IPv6 translation, local use [RFC8215]",
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        "discard-only [RFC6666]",
    ),
    (
        v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64),
        "dummy IPv6 prefix [RFC9780]",
    ),
    (
        v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128),
        "port control protocol anycast [RFC7723]",
    ),
    (
        v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128),
        "TURN anycast [RFC8155]",
    ),
    (
        v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128),
        "DNS-SD service registration protocol anycast [RFC9665]",
    ),
    (
        v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48),
        "benchmarking [RFC5180]",
    ),
    (v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32), "AMT [RFC7450]"),
    (
        v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48),
        "AS112-v6 [RFC7535]",
    ),
    (
        v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28),
        "deprecated, previously ORCHID [RFC4843]",
    ),
    (
        v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28),
        "ORCHIDv2 [RFC7343]",
    ),
    (
        v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28),
        "drone remote ID entity tags [RFC9374]",
    ),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), "Teredo [RFC4380]"),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "IETF protocol assignments [RFC2928]",
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "documentation [RFC3849]",
    ),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), "6to4 [RFC3056]"),
    (
        v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48),
        "direct delegation AS112 service [RFC7534]",
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        "documentation [RFC9637]",
    ),
    (v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), "SRv6 SIDs [RFC9602]"),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "unique-local [RFC4193]",
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        "link-local unicast [RFC4291]",
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "site-local, deprecated [RFC3879]",
    ),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast [RFC4291]"),
];

/// IANA assigns unicast only from `2000::/3` (RFC 4291 §2.4, IANA IPv6 Address Space); the
/// rest is reserved, unique-local, link-local or multicast.
const GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// The special-purpose block `ip` lies in (its name and RFC), if any.
pub fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    IPV4.iter().find(|(n, _)| n.contains(&ip)).map(|(_, r)| *r)
}

/// The special-purpose block `ip` lies in (its name and RFC), if any. The address itself
/// only: the IPv4 addresses it carries are [`embedded_v4`]'s business.
pub fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    match IPV6.iter().find(|(n, _)| n.contains(&ip)) {
        Some((_, r)) => Some(r),
        None if !GLOBAL_UNICAST.contains(&ip) => Some("not global unicast [RFC4291]"),
        None => None,
    }
}

/// Every IPv4 address that `ip` carries, where a connection to it may end up (through a
/// translator, a tunnel relay or the stack itself). IPv4-mapped addresses are not listed:
/// they *are* their IPv4 address and are judged as one before this is asked.
///
/// - IPv4-compatible `::a.b.c.d` (RFC 4291 §2.5.5.1; `::` and `::1` are not: RFC 4291 gives
///   them their own meaning), SIIT `::ffff:0:a.b.c.d` (RFC 2765) and the NAT64 well-known
///   prefix `64:ff9b::a.b.c.d` (RFC 6052): the last 32 bits.
/// - The NAT64 local-use prefix `64:ff9b:1::/48` (RFC 8215): its network picks a prefix of
///   /48 to /96, which decides where RFC 6052 §2.2 puts the address, so every position a
///   prefix of /48, /56, /64 or /96 would use is listed.
/// - 6to4 `2002:AABB:CCDD::` (RFC 3056): bits 16..48.
/// - Teredo `2001:0:SSSS:SSSS:…:CCCC:CCCC` (RFC 4380 §4): the server in bits 32..64 and the
///   client in the last 32 bits, stored inverted.
pub fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let o = ip.octets();
    let at = |i: [usize; 4]| Ipv4Addr::new(o[i[0]], o[i[1]], o[i[2]], o[i[3]]);
    let last = at([12, 13, 14, 15]);
    let s = ip.segments();
    let nat64_local = v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48);
    match s {
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => Vec::new(),
        [0, 0, 0, 0, 0, 0, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => vec![last],
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => vec![last],
        _ if nat64_local.contains(&ip) => vec![
            at([6, 7, 9, 10]),
            at([7, 9, 10, 11]),
            at([9, 10, 11, 12]),
            last,
        ],
        [0x2002, ..] => vec![at([2, 3, 4, 5])],
        [0x2001, 0, ..] => vec![at([4, 5, 6, 7]), Ipv4Addr::from(!u32::from(last))],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    //! The tables below are written from the registries themselves (IANA IPv4 and IPv6
    //! Special-Purpose Address Registries, as of 2025-10), not from the code's tables: each
    //! row's first, a middle and its last address must be refused.

    use super::*;
    use std::str::FromStr;

    /// (block, name, RFC) of the IANA IPv4 Special-Purpose Address Registry.
    const IANA_IPV4: &[(&str, &str, &str)] = &[
        ("0.0.0.0/8", "\"This network\"", "RFC 791 §3.2"),
        (
            "0.0.0.0/32",
            "\"This host on this network\"",
            "RFC 1122 §3.2.1.3",
        ),
        ("10.0.0.0/8", "Private-Use", "RFC 1918"),
        ("100.64.0.0/10", "Shared Address Space", "RFC 6598"),
        ("127.0.0.0/8", "Loopback", "RFC 1122 §3.2.1.3"),
        ("169.254.0.0/16", "Link Local", "RFC 3927"),
        ("172.16.0.0/12", "Private-Use", "RFC 1918"),
        ("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890 §2.1"),
        ("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335"),
        ("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
        ("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723"),
        (
            "192.0.0.10/32",
            "Traversal Using Relays around NAT Anycast",
            "RFC 8155",
        ),
        (
            "192.0.0.170/32",
            "NAT64/DNS64 Discovery",
            "RFC 8880, RFC 7050 §2.2",
        ),
        (
            "192.0.0.171/32",
            "NAT64/DNS64 Discovery",
            "RFC 8880, RFC 7050 §2.2",
        ),
        ("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737"),
        ("192.31.196.0/24", "AS112-v4", "RFC 7535"),
        ("192.52.193.0/24", "AMT", "RFC 7450"),
        (
            "192.88.99.0/24",
            "Deprecated (6to4 Relay Anycast)",
            "RFC 7526",
        ),
        ("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751"),
        ("192.168.0.0/16", "Private-Use", "RFC 1918"),
        (
            "192.175.48.0/24",
            "Direct Delegation AS112 Service",
            "RFC 7534",
        ),
        ("198.18.0.0/15", "Benchmarking", "RFC 2544"),
        ("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737"),
        ("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737"),
        ("240.0.0.0/4", "Reserved", "RFC 1112 §4"),
        (
            "255.255.255.255/32",
            "Limited Broadcast",
            "RFC 8190, RFC 919 §7",
        ),
        // Not in the registry, restricted all the same.
        ("224.0.0.0/4", "Multicast", "RFC 5771"),
    ];

    /// (block, name, RFC) of the IANA IPv6 Special-Purpose Address Registry.
    const IANA_IPV6: &[(&str, &str, &str)] = &[
        ("::1/128", "Loopback Address", "RFC 4291"),
        ("::/128", "Unspecified Address", "RFC 4291"),
        ("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291"),
        ("64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052"),
        ("64:ff9b:1::/48", "IPv4-IPv6 Translat.", "RFC 8215"),
        ("100::/64", "Discard-Only Address Block", "RFC 6666"),
        ("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780"),
        ("2001::/23", "IETF Protocol Assignments", "RFC 2928"),
        ("2001::/32", "TEREDO", "RFC 4380, RFC 8190"),
        ("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723"),
        (
            "2001:1::2/128",
            "Traversal Using Relays around NAT Anycast",
            "RFC 8155",
        ),
        (
            "2001:1::3/128",
            "DNS-SD Service Registration Protocol Anycast",
            "RFC 9665",
        ),
        ("2001:2::/48", "Benchmarking", "RFC 5180"),
        ("2001:3::/32", "AMT", "RFC 7450"),
        ("2001:4:112::/48", "AS112-v6", "RFC 7535"),
        ("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843"),
        ("2001:20::/28", "ORCHIDv2", "RFC 7343"),
        (
            "2001:30::/28",
            "Drone Remote ID Protocol Entity Tags (DETs)",
            "RFC 9374",
        ),
        ("2001:db8::/32", "Documentation", "RFC 3849"),
        ("2002::/16", "6to4", "RFC 3056"),
        (
            "2620:4f:8000::/48",
            "Direct Delegation AS112 Service",
            "RFC 7534",
        ),
        ("3fff::/20", "Documentation", "RFC 9637"),
        ("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602"),
        ("fc00::/7", "Unique-Local", "RFC 4193, RFC 8190"),
        ("fe80::/10", "Link-Local Unicast", "RFC 4291"),
        // Not in the registry, restricted all the same.
        ("::/96", "IPv4-compatible (deprecated)", "RFC 4291 §2.5.5.1"),
        ("::ffff:0:0:0/96", "IPv4-translated (SIIT)", "RFC 2765 §2.1"),
        ("fec0::/10", "Site-local (deprecated)", "RFC 3879"),
        ("ff00::/8", "Multicast", "RFC 4291 §2.7"),
        (
            "4000::/2",
            "Reserved by IETF (outside 2000::/3)",
            "RFC 4291 §2.4",
        ),
        (
            "::/3",
            "Reserved by IETF (outside 2000::/3)",
            "RFC 4291 §2.4",
        ),
    ];

    #[test]
    fn every_ipv4_registry_block_is_special() {
        for (block, name, rfc) in IANA_IPV4 {
            let net = Ipv4Net::from_str(block).unwrap();
            let (lo, hi) = (u32::from(net.network()), u32::from(net.broadcast()));
            for ip in [lo, lo + (hi - lo) / 2, hi].map(Ipv4Addr::from) {
                assert!(special_v4(ip).is_some(), "{ip} in {block} {name} ({rfc})");
            }
        }
    }

    #[test]
    fn every_ipv6_registry_block_is_special() {
        for (block, name, rfc) in IANA_IPV6 {
            let net = Ipv6Net::from_str(block).unwrap();
            let (lo, hi) = (u128::from(net.network()), u128::from(net.broadcast()));
            for ip in [lo, lo + (hi - lo) / 2, hi].map(Ipv6Addr::from) {
                assert!(special_v6(ip).is_some(), "{ip} in {block} {name} ({rfc})");
            }
        }
    }

    #[test]
    fn the_narrowest_block_names_the_address() {
        let v4 = |s: &str| special_v4(s.parse().unwrap());
        let v6 = |s: &str| special_v6(s.parse().unwrap());
        assert_eq!(v4("127.0.0.1"), Some("loopback [RFC1122]"));
        assert_eq!(v4("0.0.0.0"), Some("this host on this network [RFC1122]"));
        assert_eq!(v4("255.255.255.255"), Some("limited broadcast [RFC8190]"));
        assert_eq!(
            v4("192.0.0.9"),
            Some("port control protocol anycast [RFC7723]")
        );
        assert_eq!(v6("2001::1"), Some("Teredo [RFC4380]"));
        assert_eq!(
            v6("2001:1::1"),
            Some("port control protocol anycast [RFC7723]")
        );
        assert_eq!(v6("2001:1::4"), Some("IETF protocol assignments [RFC2928]"));
        assert_eq!(v6("::1"), Some("loopback [RFC4291]"));
        assert_eq!(v6("100::1"), Some("discard-only [RFC6666]"));
        assert_eq!(v6("4000::1"), Some("not global unicast [RFC4291]"));
    }

    #[test]
    fn ordinary_unicast_is_not_special() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.88.98.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(special_v4(s.parse().unwrap()), None, "{s}");
        }
        for s in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2001:200::1",
            "2003::1",
            "2620:4f:8001::1",
            "3fff:1000::1",
            "3ffe::1",
        ] {
            assert_eq!(special_v6(s.parse().unwrap()), None, "{s}");
        }
    }

    fn embedded(s: &str) -> Vec<String> {
        embedded_v4(s.parse().unwrap())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn embedded_ipv4_of_each_form() {
        // (form, address, the IPv4 addresses it carries)
        let table: &[(&str, &str, &[&str])] = &[
            ("IPv4-compatible, RFC 4291", "::127.0.0.1", &["127.0.0.1"]),
            ("IPv4-compatible, RFC 4291", "::10.0.0.1", &["10.0.0.1"]),
            ("IPv4-compatible, RFC 4291", "::8.8.8.8", &["8.8.8.8"]),
            ("unspecified is not compatible", "::", &[]),
            ("loopback is not compatible", "::1", &[]),
            ("SIIT, RFC 2765", "::ffff:0:7f00:1", &["127.0.0.1"]),
            (
                "NAT64 well-known, RFC 6052",
                "64:ff9b::a00:1",
                &["10.0.0.1"],
            ),
            (
                "NAT64 well-known, RFC 6052",
                "64:ff9b::808:808",
                &["8.8.8.8"],
            ),
            (
                "NAT64 local /48, RFC 8215",
                "64:ff9b:1:7f00:0:100::",
                &["127.0.0.1", "0.0.1.0", "0.1.0.0", "0.0.0.0"],
            ),
            (
                "NAT64 local /96, RFC 8215",
                "64:ff9b:1::a9fe:a9fe",
                &["0.0.0.0", "0.0.0.0", "0.0.0.169", "169.254.169.254"],
            ),
            (
                "NAT64 local /64, RFC 8215",
                "64:ff9b:1:0:a:0:100:0",
                &["0.0.10.0", "0.10.0.0", "10.0.0.1", "1.0.0.0"],
            ),
            ("6to4, RFC 3056", "2002:7f00:1::1", &["127.0.0.1"]),
            ("6to4, RFC 3056", "2002:c000:204::1", &["192.0.2.4"]),
            (
                "Teredo, RFC 4380 (server, inverted client)",
                "2001:0:4136:e378:8000:63bf:3f57:fdf2",
                &["65.54.227.120", "192.168.2.13"],
            ),
            ("no embedding", "2606:4700::1111", &[]),
            ("mapped is judged as IPv4 first", "::ffff:127.0.0.1", &[]),
        ];
        for (form, addr, want) in table {
            assert_eq!(embedded(addr), *want, "{form}: {addr}");
        }
    }
}
