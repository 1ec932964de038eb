//! The client's address for audits and per-IP limits, shared by every
//! service behind the same proxies.
//!
//! The socket peer is the truth unless it is a configured trusted proxy
//! (`<SERVICE>_TRUSTED_PROXIES`, IPs or CIDRs). Only then is
//! `X-Forwarded-For` read: every header line, in order, as one comma list.
//! The walk goes from the right (the hop our proxy appended) to the left,
//! skipping hops that are trusted proxies; the first untrusted hop is the
//! client. A client can prepend whatever it likes, but it cannot get past the
//! hop our proxy wrote, so it cannot choose its own address.
//!
//! Hops may carry a port (`1.2.3.4:5678`, `[2001:db8::1]:443`); IPv4-mapped
//! IPv6 addresses count as IPv4. If every hop is a trusted proxy, the leftmost
//! one is the client (a request from inside).
//!
//! A hop that cannot be parsed (garbage, an empty list entry, a non-UTF-8
//! header) met during the walk makes the client **unknown**: the real client
//! is somewhere at or left of that hop and nothing there can be believed.
//! It is deliberately *not* the proxy's own address: otherwise one client
//! sending garbage would land in the proxy's bucket and rate-limit everyone
//! behind that proxy (or, with per-IP allowances, borrow them). Unknown
//! clients share one fixed bucket, [`ClientIp::UNKNOWN`] (`unknown`), for
//! rate limits, and are audited as such. Garbage left of the client's hop is
//! never reached and does not matter.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::{ConfigError, Env};

/// Who sent a request, as far as can be believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientIp {
    /// A believable address.
    Ip(IpAddr),
    /// A trusted proxy forwarded a hop that cannot be parsed.
    Unknown,
}

impl ClientIp {
    /// The rate-limit bucket and audit value of [`ClientIp::Unknown`].
    pub const UNKNOWN: &'static str = "unknown";

    /// The address, when known.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            ClientIp::Ip(ip) => Some(ip),
            ClientIp::Unknown => None,
        }
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientIp::Ip(ip) => ip.fmt(f),
            ClientIp::Unknown => f.write_str(Self::UNKNOWN),
        }
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// Reads `var`: a comma list of IPs and CIDRs; empty or unset trusts none.
    pub fn from_env(env: &Env, var: &str) -> Result<Self, ConfigError> {
        let raw = env.get(var).unwrap_or_default();
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::invalid(
                            var,
                            format!("{s:?} is neither an IP address nor a CIDR"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// The configured networks.
    pub fn into_inner(self) -> Vec<IpNet> {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client for a request from `peer` with `headers` (see the module doc).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> ClientIp {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return ClientIp::Ip(peer);
        }
        let mut hops: Vec<&str> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            match value.to_str() {
                Ok(s) => hops.extend(s.split(',')),
                // The whole line is unreadable: garbage at its rightmost hop.
                Err(_) => hops.push(""),
            }
        }
        let mut client = ClientIp::Ip(peer);
        for hop in hops.into_iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return ClientIp::Unknown;
            };
            client = ClientIp::Ip(ip);
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port
/// (`[v6]:port` for IPv6).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    // `[v6]` without a port.
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<std::net::Ipv6Addr>().ok())
        .map(|v6| canonical(IpAddr::V6(v6)))
}

/// `::ffff:1.2.3.4` is `1.2.3.4` (dual-stack listeners report both forms).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(lines: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for l in lines {
            m.append("x-forwarded-for", l.parse().unwrap());
        }
        m
    }

    fn ip(s: &str) -> ClientIp {
        ClientIp::Ip(s.parse().unwrap())
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8:ffff::/48".parse().unwrap(),
        ])
    }

    const PEER: &str = "10.1.1.1";

    fn walk(lines: &[&str]) -> ClientIp {
        proxies().client_ip(PEER.parse().unwrap(), &h(lines))
    }

    #[test]
    fn header_is_believed_only_from_trusted_peers() {
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            proxies().client_ip(outsider, &h(&["1.2.3.4"])),
            ClientIp::Ip(outsider)
        );
        assert_eq!(
            proxies().client_ip(outsider, &h(&["garbage"])),
            ClientIp::Ip(outsider)
        );
        assert_eq!(walk(&["1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(
            proxies().client_ip(PEER.parse().unwrap(), &HeaderMap::new()),
            ip(PEER)
        );
        let mapped: IpAddr = "::ffff:10.1.1.1".parse().unwrap();
        assert_eq!(proxies().client_ip(mapped, &h(&["1.2.3.4"])), ip("1.2.3.4"));
    }

    #[test]
    fn multiple_hops_stop_at_the_first_untrusted_from_the_right() {
        // a spoofed leftmost entry is never reached
        assert_eq!(walk(&["6.6.6.6, 1.2.3.4, 10.2.2.2"]), ip("1.2.3.4"));
        assert_eq!(walk(&["6.6.6.6,1.2.3.4,10.2.2.2,10.3.3.3"]), ip("1.2.3.4"));
        assert_eq!(walk(&["1.2.3.4, 5.6.7.8"]), ip("5.6.7.8"));
    }

    #[test]
    fn all_trusted_hops_give_the_leftmost() {
        assert_eq!(walk(&["10.9.9.9, 10.2.2.2"]), ip("10.9.9.9"));
    }

    #[test]
    fn garbage_during_the_walk_makes_the_client_unknown_never_the_proxy() {
        assert_eq!(walk(&["garbage"]), ClientIp::Unknown);
        assert_eq!(walk(&["1.2.3.4, garbage"]), ClientIp::Unknown);
        // in the middle, reached after a trusted hop
        assert_eq!(walk(&["1.2.3.4, garbage, 10.2.2.2"]), ClientIp::Unknown);
        assert_eq!(walk(&["1.2.3.4,,10.2.2.2"]), ClientIp::Unknown);
        assert_eq!(walk(&["1.2.3.4, 10.2.2.2, "]), ClientIp::Unknown);
        // left of the client: never reached
        assert_eq!(walk(&["garbage, 1.2.3.4, 10.2.2.2"]), ip("1.2.3.4"));
        let mut bin = HeaderMap::new();
        bin.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.2.3.4, \xff").unwrap(),
        );
        assert_eq!(
            proxies().client_ip(PEER.parse().unwrap(), &bin),
            ClientIp::Unknown
        );
        assert_eq!(ClientIp::Unknown.to_string(), "unknown");
        assert_eq!(ClientIp::Unknown.ip(), None);
    }

    #[test]
    fn ipv6_and_ports() {
        assert_eq!(walk(&["2001:db8::7"]), ip("2001:db8::7"));
        assert_eq!(walk(&["[2001:db8::7]:4711"]), ip("2001:db8::7"));
        assert_eq!(walk(&["[2001:db8::7]"]), ip("2001:db8::7"));
        assert_eq!(walk(&["1.2.3.4:5678, 10.2.2.2:80"]), ip("1.2.3.4"));
        assert_eq!(
            walk(&["2001:db8::7, [2001:db8:ffff::1]:443"]),
            ip("2001:db8::7")
        );
        assert_eq!(walk(&["::ffff:1.2.3.4"]), ip("1.2.3.4"));
        let v6peer: IpAddr = "2001:db8:ffff::9".parse().unwrap();
        assert_eq!(
            proxies().client_ip(v6peer, &h(&["198.51.100.1"])),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn multiple_header_lines_are_one_list_in_order() {
        // the last line is the nearest hop
        assert_eq!(walk(&["6.6.6.6", "1.2.3.4", "10.2.2.2"]), ip("1.2.3.4"));
        assert_eq!(walk(&["1.2.3.4, 10.5.5.5", "10.2.2.2"]), ip("1.2.3.4"));
        assert_eq!(walk(&["1.2.3.4", "garbage", "10.2.2.2"]), ClientIp::Unknown);
        assert_eq!(walk(&["garbage", "1.2.3.4"]), ip("1.2.3.4"));
    }

    #[test]
    fn from_env_parses_ips_and_cidrs() {
        let env = Env::from_pairs([("P", "10.0.0.0/8, 127.0.0.1 ,::1")]);
        assert_eq!(TrustedProxies::from_env(&env, "P").unwrap().len(), 3);
        assert!(
            TrustedProxies::from_env(&Env::from_pairs([("Q", "")]), "P")
                .unwrap()
                .is_empty()
        );
        let e = TrustedProxies::from_env(&Env::from_pairs([("P", "10.0.0.0/8,nope")]), "P")
            .unwrap_err();
        assert!(e.to_string().starts_with("P"), "{e}");
    }
}
