//! The origin of each request (client IP address and user agent), handed to the domain for the
//! audit log and the per-client limit on failures. The address is the TCP peer's, unless the
//! peer is a configured trusted proxy and a client-address header is configured: then it comes
//! from that header (see [`ClientIpSettings::client_ip`]). A header from any other peer is
//! ignored, so no client can choose the address it is counted under.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::http::header::{self, HeaderName};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use twofold_core::audit::{RequestContext, with_context};

use crate::state::AppState;

/// Which peers may name the client, and in which header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpSettings {
    /// Reverse proxies (addresses or networks) whose client-address header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The header they put the client's address in; `None`: the peer is the client.
    pub header: Option<HeaderName>,
}

impl ClientIpSettings {
    /// Reads `trusted_proxies` (comma-separated addresses or CIDR networks; empty for none)
    /// and the header name. A header without trusted proxies is refused: it would be believed
    /// from nobody, which is surely not what was meant.
    pub fn parse(trusted_proxies: &str, header: Option<&str>) -> Result<Self, String> {
        let trusted_proxies = trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|network| network.trunc())
                    .map_err(|_| {
                        format!(
                            "TWOFOLD_TRUSTED_PROXIES: {entry:?} is not an IP address or a CIDR network like 10.0.0.0/8"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let header =
            match header.map(str::trim).filter(|name| !name.is_empty()) {
                None => None,
                Some(name) => Some(HeaderName::try_from(name).map_err(|_| {
                    format!("TWOFOLD_CLIENT_IP_HEADER: {name:?} is not a header name")
                })?),
            };
        if header.is_some() && trusted_proxies.is_empty() {
            return Err("TWOFOLD_CLIENT_IP_HEADER needs TWOFOLD_TRUSTED_PROXIES".to_owned());
        }
        Ok(Self {
            trusted_proxies,
            header,
        })
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.trusted_proxies
            .iter()
            .any(|network| network.contains(&address))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy and the configured
    /// header names a client. `X-Forwarded-For` is read from the right (each proxy appends the
    /// address it received from), skipping trusted proxies: the first other address is the
    /// client, as the last trusted proxy saw it; what lies further left is the client's own
    /// say and is not believed. Any other header is one address. A missing or garbled header
    /// leaves the peer.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        let Some(name) = &self.header else {
            return peer;
        };
        if !self.is_trusted(peer) {
            return peer;
        }
        let values: Vec<&str> = match headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str())
            .collect::<Result<_, _>>()
        {
            Ok(values) => values,
            Err(_) => return peer,
        };
        if name == "x-forwarded-for" {
            let mut entries = values.iter().flat_map(|value| value.split(',')).rev();
            entries
                .find_map(|entry| match parse_address(entry) {
                    Some(address) if self.is_trusted(address) => None,
                    Some(address) => Some(Some(address)),
                    None => Some(None),
                })
                .flatten()
                .unwrap_or(peer)
        } else {
            match values.as_slice() {
                [value] => parse_address(value).unwrap_or(peer),
                _ => peer,
            }
        }
    }
}

/// One address from a header: bare, or with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()
        .map(|address| address.to_canonical())
}

pub async fn request_context(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| {
            state
                .http
                .client_ip
                .client_ip(peer.ip(), request.headers())
                .to_string()
        });
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    with_context(RequestContext { ip, user_agent }, next.run(request)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(HeaderName::try_from(name).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn forwarded_for() -> ClientIpSettings {
        ClientIpSettings::parse("10.0.0.0/8, 192.0.2.1", Some("X-Forwarded-For")).unwrap()
    }

    #[test]
    fn without_a_header_the_peer_is_the_client() {
        let settings = ClientIpSettings::default();
        let spoofed = headers("x-forwarded-for", &["198.51.100.9"]);
        assert_eq!(settings.client_ip(ip("10.0.0.1"), &spoofed), ip("10.0.0.1"));
        let trusted_only = ClientIpSettings::parse("10.0.0.0/8", None).unwrap();
        assert_eq!(
            trusted_only.client_ip(ip("10.0.0.1"), &spoofed),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        let spoofed = headers("x-forwarded-for", &["198.51.100.9"]);
        assert_eq!(
            forwarded_for().client_ip(ip("203.0.113.5"), &spoofed),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_past_trusted_proxies() {
        let settings = forwarded_for();
        let peer = ip("10.1.2.3");
        // The client put a made-up address first; the proxies appended what they saw.
        let chain = headers("x-forwarded-for", &["1.1.1.1, 198.51.100.9, 10.9.9.9"]);
        assert_eq!(settings.client_ip(peer, &chain), ip("198.51.100.9"));
        // Split over several header lines, in order.
        let lines = headers("x-forwarded-for", &["1.1.1.1", "198.51.100.9, 192.0.2.1"]);
        assert_eq!(settings.client_ip(peer, &lines), ip("198.51.100.9"));
        // Ports and IPv4-mapped IPv6 are read too.
        let port = headers("x-forwarded-for", &["[2001:db8::7]:4711"]);
        assert_eq!(settings.client_ip(peer, &port), ip("2001:db8::7"));
        let mapped = headers("x-forwarded-for", &["::ffff:198.51.100.9"]);
        assert_eq!(settings.client_ip(peer, &mapped), ip("198.51.100.9"));
        // A trusted IPv4-mapped peer is trusted.
        let single = headers("x-forwarded-for", &["198.51.100.9"]);
        assert_eq!(
            settings.client_ip(ip("::ffff:10.1.2.3"), &single),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn a_missing_or_garbled_header_leaves_the_peer() {
        let settings = forwarded_for();
        let peer = ip("10.1.2.3");
        assert_eq!(settings.client_ip(peer, &HeaderMap::new()), peer);
        for garbage in ["", "unknown", "198.51.100.9, nonsense", "300.1.1.1"] {
            let garbled = headers("x-forwarded-for", &[garbage]);
            assert_eq!(settings.client_ip(peer, &garbled), peer, "{garbage:?}");
        }
        // Only trusted proxies in the chain: nobody else named.
        let proxies = headers("x-forwarded-for", &["10.0.0.7, 192.0.2.1"]);
        assert_eq!(settings.client_ip(peer, &proxies), peer);
    }

    #[test]
    fn a_single_value_header_names_the_client() {
        let settings = ClientIpSettings::parse("127.0.0.1", Some("X-Real-IP")).unwrap();
        let peer = ip("127.0.0.1");
        let real = headers("x-real-ip", &[" 198.51.100.9 "]);
        assert_eq!(settings.client_ip(peer, &real), ip("198.51.100.9"));
        let two = headers("x-real-ip", &["198.51.100.9", "198.51.100.10"]);
        assert_eq!(settings.client_ip(peer, &two), peer);
        let list = headers("x-real-ip", &["198.51.100.9, 198.51.100.10"]);
        assert_eq!(settings.client_ip(peer, &list), peer);
        // Another header is not read.
        let other = headers("x-forwarded-for", &["198.51.100.9"]);
        assert_eq!(settings.client_ip(peer, &other), peer);
    }

    #[test]
    fn settings_are_checked() {
        let parsed =
            ClientIpSettings::parse(" 10.0.0.0/8 ,192.0.2.1,2001:db8::/32,", None).unwrap();
        assert_eq!(parsed.trusted_proxies.len(), 3);
        assert!(parsed.is_trusted(ip("10.255.0.1")));
        assert!(parsed.is_trusted(ip("192.0.2.1")));
        assert!(!parsed.is_trusted(ip("192.0.2.2")));
        assert!(parsed.is_trusted(ip("2001:db8:ffff::1")));
        // Host bits set in a network are dropped, not refused.
        let loose = ClientIpSettings::parse("10.1.2.3/8", None).unwrap();
        assert!(loose.is_trusted(ip("10.200.0.1")));
        assert_eq!(
            ClientIpSettings::parse("", None).unwrap(),
            ClientIpSettings::default()
        );

        for bad in ["10.0.0.0/33", "proxy.example.com", "10.0.0.0/8;192.0.2.1"] {
            let error = ClientIpSettings::parse(bad, None).unwrap_err();
            assert!(error.contains("TWOFOLD_TRUSTED_PROXIES"), "{error}");
        }
        let error = ClientIpSettings::parse("", Some("X-Forwarded-For")).unwrap_err();
        assert_eq!(
            error,
            "TWOFOLD_CLIENT_IP_HEADER needs TWOFOLD_TRUSTED_PROXIES"
        );
        let error = ClientIpSettings::parse("10.0.0.1", Some("not a header")).unwrap_err();
        assert!(error.contains("TWOFOLD_CLIENT_IP_HEADER"), "{error}");
    }
}
