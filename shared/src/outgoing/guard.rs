//! The SSRF guard: which addresses outgoing webhook calls may reach.
//!
//! Outgoing calls go to URLs that users register, so without a guard they could
//! reach the gateway's own network: loopback services, private ranges, the cloud
//! metadata endpoint (169.254.169.254). [`Guard::check`] refuses every address
//! that is not globally routable unicast, including IPv6 forms that carry such an
//! IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64), unless it lies in a
//! range of the configured allow list (`HOOKFLOW_OUTGOING_ALLOW`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Decides which addresses outgoing calls may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guard {
    allow: Vec<IpNet>,
}

impl Guard {
    /// A guard that lets through, in addition to every public address, the
    /// addresses inside `allow` (and IPv6 forms embedding an IPv4 inside it).
    pub fn new(allow: Vec<IpNet>) -> Self {
        Guard { allow }
    }

    /// The configured allow list.
    pub fn allow(&self) -> &[IpNet] {
        &self.allow
    }

    /// `Ok` if a call may connect to `ip`; otherwise a short reason such as
    /// `"127.0.0.1 is a loopback address"`.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if self.is_allowed(ip) {
            return Ok(());
        }
        let Some(reason) = blocked_reason(ip) else {
            return Ok(());
        };
        match ip {
            IpAddr::V6(v6) => match embedded_ipv4(v6) {
                Some(v4) => Err(format!("{ip} embeds {v4}, {reason}")),
                None => Err(format!("{ip} is {reason}")),
            },
            IpAddr::V4(_) => Err(format!("{ip} is {reason}")),
        }
    }

    /// [`check`](Self::check) for a URL's host when it is an address literal
    /// (`127.0.0.1`, `[::1]`); a name passes here and is checked when resolved.
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match literal.parse::<IpAddr>() {
            Ok(ip) => self.check(ip),
            Err(_) => Ok(()),
        }
    }

    /// Whether `ip` (or the IPv4 address it embeds) lies in an allowed range.
    fn is_allowed(&self, ip: IpAddr) -> bool {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return true;
        }
        match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6)
                .map(IpAddr::V4)
                .is_some_and(|v4| self.allow.iter().any(|net| net.contains(&v4))),
            IpAddr::V4(_) => false,
        }
    }
}

/// Why `ip` is refused when no allow list applies, or `None` if it is a public
/// address. IPv6 forms that embed an IPv4 address are judged by that address.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => ipv4_reason(v4),
        IpAddr::V6(v6) => ipv6_reason(v6),
    }
}

/// The IPv4 address an IPv6 address carries, for the forms that reach (or are
/// translated to) that IPv4 address: IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated
/// `::ffff:0:a.b.c.d`, IPv4-compatible `::a.b.c.d` (not `::` and `::1`), 6to4
/// `2002:AABB:CCDD::/16` and NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let last32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let seg = ip.segments();
    // ::ffff:0:0/96, IPv4-mapped.
    if bits >> 32 == 0xffff {
        return Some(last32);
    }
    // ::ffff:0:0:0/96, IPv4-translated (SIIT).
    if bits >> 32 == 0xffff_0000 {
        return Some(last32);
    }
    // ::/96, IPv4-compatible (deprecated); `::` and `::1` are IPv6 addresses of their own.
    if bits >> 32 == 0 && bits > 1 {
        return Some(last32);
    }
    // 2002::/16, 6to4: the IPv4 address sits in bits 16..48.
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    // 64:ff9b::/96, the well-known NAT64 prefix.
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return Some(last32);
    }
    // 64:ff9b:1::/48, local-use NAT64.
    if seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 0x0001 {
        return Some(last32);
    }
    None
}

/// Whether `ip` lies in `prefix/len`.
fn in_v4(ip: Ipv4Addr, prefix: [u8; 4], len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(prefix)) & mask
}

fn ipv4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    // Order matters where ranges nest: the broadcast address lies inside 240/4.
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "an unspecified (\"this network\") address"),
        ([10, 0, 0, 0], 8, "a private address"),
        ([100, 64, 0, 0], 10, "a carrier-grade NAT address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([169, 254, 0, 0], 16, "a link-local address"),
        ([172, 16, 0, 0], 12, "a private address"),
        ([192, 0, 0, 0], 24, "an IETF protocol assignment address"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([198, 18, 0, 0], 15, "a benchmarking address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([255, 255, 255, 255], 32, "the broadcast address"),
        ([240, 0, 0, 0], 4, "a reserved address"),
    ];
    RANGES
        .iter()
        .find(|(prefix, len, _)| in_v4(ip, *prefix, *len))
        .map(|(_, _, reason)| *reason)
}

fn ipv6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if ip == Ipv6Addr::LOCALHOST {
        return Some("a loopback address");
    }
    if ip == Ipv6Addr::UNSPECIFIED {
        return Some("the unspecified address");
    }
    if let Some(v4) = embedded_ipv4(ip) {
        return ipv4_reason(v4);
    }
    let bits = u128::from(ip);
    // (prefix, length, reason), most specific first where ranges nest.
    const RANGES: &[(u128, u32, &str)] = &[
        (0x2001_0db8 << 96, 32, "a documentation address"),
        (0x2001_0000 << 96, 32, "a Teredo address"),
        (0x0100 << 112, 64, "a discard-only address"),
        (0xfe80 << 112, 10, "a link-local address"),
        (0xfec0 << 112, 10, "a site-local address"),
        (0xfc00 << 112, 7, "a unique local address"),
        (0xff00 << 112, 8, "a multicast address"),
    ];
    RANGES
        .iter()
        .find(|(prefix, len, _)| {
            let mask = u128::MAX << (128 - len);
            bits & mask == prefix & mask
        })
        .map(|(_, _, reason)| *reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("bad test address {s}"))
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn refuses_every_non_public_family() {
        let blocked = [
            // IPv4
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("169.254.0.1", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.255", "carrier-grade NAT"),
            ("0.0.0.0", "this network"),
            ("0.1.2.3", "this network"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("250.1.2.3", "reserved"),
            ("192.0.0.8", "IETF protocol"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            // IPv6
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("ff02::1", "multicast"),
            ("ff0e::1", "multicast"),
            ("fec0::1", "site-local"),
            ("2001:db8::1", "documentation"),
            ("100::1", "discard"),
            ("2001::1", "Teredo"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            // IPv6 forms embedding a refused IPv4
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:0:127.0.0.1", "loopback"),
            ("::127.0.0.1", "loopback"),
            ("::192.168.0.1", "private"),
            ("::0.0.0.2", "this network"),
            ("2002:7f00:1::", "loopback"),
            ("2002:a9fe:a9fe::1", "link-local"),
            ("2002:c0a8:101:1::1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("64:ff9b:1::a00:1", "private"),
            ("64:ff9b:1:abcd::7f00:1", "loopback"),
        ];
        let guard = Guard::new(Vec::new());
        for (addr, family) in blocked {
            let reason = blocked_reason(ip(addr))
                .unwrap_or_else(|| panic!("{addr} should be refused ({family})"));
            assert!(
                reason.contains(family),
                "{addr}: reason {reason:?} should mention {family:?}"
            );
            let err = guard.check(ip(addr)).unwrap_err();
            assert!(
                err.starts_with(&ip(addr).to_string()),
                "{addr}: message {err:?}"
            );
            assert!(err.contains(reason), "{addr}: message {err:?}");
        }
    }

    #[test]
    fn allows_public_addresses() {
        let allowed = [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.0.3.1",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82b::200e",
            "2001:4860:4860::8888",
            "::ffff:93.184.216.34",
            "::8.8.8.8",
            "64:ff9b::5db8:d822",
            "64:ff9b:1::101:101",
            "2002:5db8:d822::",
            "2002:5db8:d822:1::1",
        ];
        let guard = Guard::new(Vec::new());
        for addr in allowed {
            assert_eq!(blocked_reason(ip(addr)), None, "{addr}");
            assert_eq!(guard.check(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn the_messages_name_the_address_and_the_reason() {
        let guard = Guard::new(Vec::new());
        assert_eq!(
            guard.check(ip("127.0.0.1")).unwrap_err(),
            "127.0.0.1 is a loopback address"
        );
        assert_eq!(
            guard.check(ip("::ffff:169.254.169.254")).unwrap_err(),
            "::ffff:169.254.169.254 embeds 169.254.169.254, a link-local address"
        );
        assert_eq!(
            guard.check(ip("2001::1")).unwrap_err(),
            "2001::1 is a Teredo address"
        );
    }

    #[test]
    fn embedded_ipv4_extraction() {
        let cases = [
            ("::ffff:1.2.3.4", Some("1.2.3.4")),
            ("::1.2.3.4", Some("1.2.3.4")),
            ("2002:102:304::", Some("1.2.3.4")),
            ("64:ff9b::102:304", Some("1.2.3.4")),
            ("64:ff9b:1:ffff::102:304", Some("1.2.3.4")),
            ("::1", None),
            ("::", None),
            ("2606:4700:4700::1111", None),
            ("64:ff9b:2::102:304", None),
        ];
        for (v6, v4) in cases {
            let v6: Ipv6Addr = v6.parse().unwrap();
            let v4 = v4.map(|s| s.parse::<Ipv4Addr>().unwrap());
            assert_eq!(embedded_ipv4(v6), v4, "{v6}");
        }
    }

    #[test]
    fn the_allow_list_wins() {
        let guard = Guard::new(nets(&["127.0.0.0/8", "10.1.0.0/16", "fd00::/8"]));
        for addr in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "fd00::1",
            // embedded forms judged by their IPv4
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "2002:7f00:1::",
            "64:ff9b::a01:203",
            // public addresses stay allowed
            "1.1.1.1",
            "2606:4700:4700::1111",
        ] {
            assert_eq!(guard.check(ip(addr)), Ok(()), "{addr}");
        }
        for addr in [
            "10.2.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "::ffff:10.2.0.1",
            "fc00::1",
            "fe80::1",
        ] {
            assert!(guard.check(ip(addr)).is_err(), "{addr}");
        }
    }

    #[test]
    fn an_ipv6_allow_entry_covers_ipv6_only() {
        let guard = Guard::new(nets(&["::1/128", "::ffff:192.168.0.0/112"]));
        assert_eq!(guard.check(ip("::1")), Ok(()));
        assert_eq!(guard.check(ip("::ffff:192.168.1.1")), Ok(()));
        assert!(guard.check(ip("127.0.0.1")).is_err());
        assert!(guard.check(ip("192.168.1.1")).is_err());
    }

    #[test]
    fn the_metadata_endpoint_is_refused_in_every_form() {
        let guard = Guard::new(Vec::new());
        for addr in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "::ffff:0:169.254.169.254",
            "::169.254.169.254",
            "2002:a9fe:a9fe::",
            "64:ff9b::a9fe:a9fe",
            "fd00:ec2::254",
        ] {
            assert!(guard.check(ip(addr)).is_err(), "{addr}");
        }
    }
}
