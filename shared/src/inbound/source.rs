//! Where a call comes from, and whether that address may call a webhook.
//!
//! The source is the TCP peer (`serve`) or API Gateway's `sourceIp` (Lambda).
//! `X-Forwarded-For` is believed only as far as it was written by proxies the
//! operator named (`HOOKFLOW_TRUSTED_PROXIES`): walking the chain from the
//! right, the first address that is not a trusted proxy is the caller. Anything
//! left of it could have been written by the caller itself.

use std::net::IpAddr;

use ipnet::IpNet;

/// The address a request came from, as the shell that received it saw it.
/// Shells put it in the request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub IpAddr);

/// An IPv4 address carried in IPv6 (`::ffff:a.b.c.d`) as the IPv4 address, so
/// one rule covers a dual-stack listener.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn within(addr: IpAddr, ranges: &[IpNet]) -> bool {
    let addr = canonical(addr);
    ranges.iter().any(|range| range.contains(&addr))
}

/// The caller's address: `peer`, or, when `peer` is a trusted proxy, the
/// rightmost address of `forwarded_for` that is not one.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let mut client = canonical(peer);
    if !within(client, trusted) {
        return client;
    }
    for entry in forwarded_for
        .iter()
        .rev()
        .flat_map(|header| header.split(',').rev())
    {
        let Some(addr) = parse_forwarded(entry) else {
            // A malformed entry ends what can be believed: the last good hop stands.
            return client;
        };
        client = canonical(addr);
        if !within(client, trusted) {
            return client;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Some(addr);
    }
    if let Ok(socket) = entry.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|inner| inner.parse().ok())
}

/// Whether `addr` may call a webhook whose allowlist is `allowed` (empty: anyone).
pub fn is_allowed(addr: IpAddr, allowed: &[IpNet]) -> bool {
    allowed.is_empty() || within(addr, allowed)
}

/// Parses a list of CIDRs (a bare address is a range of one).
pub fn parse_ranges<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Vec<IpNet>, String> {
    items
        .into_iter()
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| format!("{item:?} is not an address range like 192.0.2.0/24"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn ranges(items: &[&str]) -> Vec<IpNet> {
        parse_ranges(items.iter().copied()).unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_through_trusted_proxies() {
        let trusted = ranges(&["10.0.0.0/8"]);
        // Not from a proxy: the peer is the caller, whatever the header says.
        assert_eq!(
            client_address(ip("203.0.113.9"), &["198.51.100.1"], &trusted),
            ip("203.0.113.9")
        );
        // From a proxy: the rightmost untrusted entry; a spoofed left part is ignored.
        assert_eq!(
            client_address(
                ip("10.0.0.2"),
                &["1.2.3.4, 198.51.100.7, 10.0.0.5"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Several headers read as one list, in order.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["1.2.3.4", "198.51.100.8"], &trusted),
            ip("198.51.100.8")
        );
        // Ports and brackets.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["[2001:db8::1]:443"], &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &["192.0.2.4:5000"], &trusted),
            ip("192.0.2.4")
        );
        // Garbage stops the walk at the last believable hop.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["198.51.100.7, junk"], &trusted),
            ip("10.0.0.2")
        );
        // No trusted proxies configured: the header is never read.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["198.51.100.7"], &[]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn allowlists_cover_mapped_addresses() {
        let github = ranges(&["192.30.252.0/22", "2606:50c0::/32"]);
        assert!(is_allowed(ip("192.30.252.10"), &github));
        assert!(is_allowed(ip("::ffff:192.30.252.10"), &github));
        assert!(is_allowed(ip("2606:50c0::1"), &github));
        assert!(!is_allowed(ip("192.30.251.255"), &github));
        assert!(is_allowed(ip("8.8.8.8"), &[]));
        assert!(parse_ranges(["10.0.0.1/33"]).is_err());
        assert_eq!(ranges(&["10.1.2.3/8"])[0].to_string(), "10.0.0.0/8");
    }
}
