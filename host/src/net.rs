//! Client addresses: who a request comes from, and whether a rule lets it in.
//!
//! The client is the peer, unless the peer is a trusted proxy (`--trusted-proxy`): then the
//! addresses it forwarded (`Forwarded: for=…`, else `X-Forwarded-For`) are read right to left,
//! skipping trusted proxies, and the first other one is the client. Headers from anyone else
//! are ignored, so a client cannot claim another address. Rules are CIDR lists
//! (`--allow-from`, `--admin-allow-from`, a function's `allow_from`); an empty list lets
//! everyone in. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are their IPv4 selves.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::error::{Error, Kind};

/// Whether `ip` is in `net`, an IPv4 address matching IPv6 nets through its mapped form (so
/// `::/0` and `::ffff:0:0/96` cover IPv4 clients too).
pub fn in_net(net: &IpNet, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    net.contains(&ip)
        || match (net, ip) {
            (IpNet::V6(_), IpAddr::V4(v4)) => net.contains(&IpAddr::V6(v4.to_ipv6_mapped())),
            _ => false,
        }
}

/// Whether `rule` lets `ip` in (an empty rule lets everyone in).
pub fn allows(rule: &[IpNet], ip: IpAddr) -> bool {
    rule.is_empty() || rule.iter().any(|net| in_net(net, ip))
}

/// Whether every net of `inner` lies within some net of `outer` (an empty `outer` is
/// everything; an empty `inner` is everything too, so only an empty `outer` contains it).
pub fn within(inner: &[IpNet], outer: &[IpNet]) -> bool {
    if outer.is_empty() {
        return true;
    }
    !inner.is_empty()
        && inner.iter().all(|i| {
            outer.iter().any(|o| {
                o.contains(i)
                    || matches!((o, i), (IpNet::V6(_), IpNet::V4(v4))
                        if o.contains(&IpAddr::V6(v4.network().to_ipv6_mapped()))
                            && o.prefix_len() <= 96 + v4.prefix_len())
            })
        })
}

/// The client of a request that arrived from `peer` with `headers`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !allows_nonempty(trusted, peer) {
        return peer;
    }
    let forwarded = forwarded_for(headers);
    let chain = if forwarded.is_empty() {
        x_forwarded_for(headers)
    } else {
        forwarded
    };
    // Right to left: the nearest hop first. The first address that is not a trusted proxy is
    // the client; if every one is, the farthest is.
    let mut client = peer;
    for ip in chain.into_iter().rev() {
        client = ip;
        if !allows_nonempty(trusted, ip) {
            break;
        }
    }
    client
}

/// Whether `rule` lets `ip` in, an empty rule letting no one in.
pub fn allows_nonempty(rule: &[IpNet], ip: IpAddr) -> bool {
    rule.iter().any(|net| in_net(net, ip))
}

/// The addresses of every `X-Forwarded-For` header, in order; a garbled entry ends the list
/// there (what lies left of it cannot be trusted to be what a proxy wrote).
fn x_forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return out;
        };
        for item in text.split(',') {
            match parse_addr(item.trim()) {
                Some(ip) => out.push(ip),
                None => out.clear(),
            }
        }
    }
    out
}

/// The `for=` addresses of every `Forwarded` header (RFC 7239), in order.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for value in headers.get_all("forwarded") {
        let Ok(text) = value.to_str() else {
            return out;
        };
        for element in text.split(',') {
            for pair in element.split(';') {
                let Some((key, val)) = pair.split_once('=') else {
                    continue;
                };
                if key.trim().eq_ignore_ascii_case("for") {
                    match parse_addr(val.trim().trim_matches('"')) {
                        Some(ip) => out.push(ip),
                        None => out.clear(),
                    }
                }
            }
        }
    }
    out
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:80`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sock) = s.parse::<std::net::SocketAddr>() {
        return Some(sock.ip().to_canonical());
    }
    let bracketed = s.strip_prefix('[')?.split(']').next()?;
    bracketed.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Parses CIDRs (`10.0.0.0/8`, `2001:db8::/32`; a bare address is one host) given for `flag`.
pub fn parse_rule(flag: &'static str, items: &[String]) -> Result<Vec<IpNet>, (String, String)> {
    items
        .iter()
        .flat_map(|i| i.split(','))
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    (
                        flag.to_owned(),
                        format!("{item:?} is not an address or a CIDR (10.0.0.0/8, 2001:db8::/32)"),
                    )
                })
        })
        .collect()
}

/// The `forbidden` answer for a client address a rule refuses.
pub fn refused(ip: IpAddr, what: &str) -> Error {
    Error::new(
        Kind::Forbidden,
        format!("the client address {ip} may not {what}"),
    )
    .with("reason", "address_not_allowed")
    .with("client", ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        parse_rule("--x", &s.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_v6_and_mapped_addresses_match() {
        let rule = nets(&["10.0.0.0/8", "2001:db8::/32"]);
        assert!(allows(&rule, ip("10.1.2.3")));
        assert!(allows(&rule, ip("::ffff:10.1.2.3")), "mapped is v4");
        assert!(allows(&rule, ip("2001:db8::7")));
        assert!(!allows(&rule, ip("11.0.0.1")));
        assert!(!allows(&rule, ip("2001:db9::1")));
        assert!(allows(&[], ip("1.2.3.4")), "empty lets everyone in");
        assert!(allows(&nets(&["::/0"]), ip("1.2.3.4")), "::/0 covers IPv4");
        assert!(allows(&nets(&["::ffff:0:0/96"]), ip("8.8.8.8")));
        assert!(
            allows(&nets(&["127.0.0.1"]), ip("127.0.0.1")),
            "a bare address"
        );
        assert!(!allows(&nets(&["127.0.0.1"]), ip("127.0.0.2")));
        assert!(parse_rule("--allow-from", &["10.0.0.0/33".into()]).is_err());
        let (flag, why) = parse_rule("--allow-from", &["nope".into()]).unwrap_err();
        assert_eq!(flag, "--allow-from");
        assert!(why.contains("\"nope\""), "{why}");
    }

    #[test]
    fn rules_nest() {
        assert!(within(&nets(&["10.1.0.0/16"]), &nets(&["10.0.0.0/8"])));
        assert!(!within(&nets(&["10.0.0.0/7"]), &nets(&["10.0.0.0/8"])));
        assert!(
            within(&nets(&["10.1.0.0/16"]), &[]),
            "the host allows everyone"
        );
        assert!(!within(&[], &nets(&["10.0.0.0/8"])), "everyone is wider");
        assert!(within(&nets(&["10.1.0.0/16"]), &nets(&["::/0"])));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let trusted = nets(&["127.0.0.1", "10.9.0.0/16"]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
        assert_eq!(client_ip(ip("192.0.2.1"), &h, &trusted), ip("192.0.2.1"));
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &[]), ip("127.0.0.1"));
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.7"));
        // A chain of trusted proxies is walked through; what the client wrote itself is not.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.9.1.1")]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &h, &trusted),
            ip("203.0.113.7")
        );
        let h = headers(&[(
            "forwarded",
            "for=198.51.100.4;proto=https, for=\"[2001:db8::5]:443\"",
        )]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("2001:db8::5"));
        let h = headers(&[("x-forwarded-for", "junk")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
    }
}
