//! The client's address for audits and per-IP limits.
//!
//! The socket peer is the truth unless it is a configured proxy; only then is
//! `X-Forwarded-For` read, from the right, skipping further trusted proxies, so
//! a client cannot choose its own address by sending the header itself.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address for a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(s) = value.to_str() else {
                return peer;
            };
            for part in s.split(',') {
                match part.trim().parse::<IpAddr>() {
                    Ok(ip) => hops.push(canonical(ip)),
                    // An unparsable hop ends what can be believed.
                    Err(_) => return peer,
                }
            }
        }
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
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
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert("x-forwarded-for", v.parse().unwrap());
        m
    }

    #[test]
    fn forwarded_only_from_trusted_peers() {
        let t = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let peer: IpAddr = "10.1.1.1".parse().unwrap();
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(t.client_ip(outsider, &h("1.2.3.4")), outsider);
        assert_eq!(
            t.client_ip(peer, &h("1.2.3.4")),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        // spoofed leftmost entry ignored: rightmost untrusted hop wins
        assert_eq!(
            t.client_ip(peer, &h("6.6.6.6, 1.2.3.4, 10.2.2.2")),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(t.client_ip(peer, &h("garbage")), peer);
        assert_eq!(t.client_ip(peer, &HeaderMap::new()), peer);
        let mapped: IpAddr = "::ffff:10.1.1.1".parse().unwrap();
        assert_eq!(
            t.client_ip(mapped, &h("1.2.3.4")),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }
}
