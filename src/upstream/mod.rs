//! Upstreams: origin groups and regional parents. Owns address parsing
//! (here), what every shard shares (`map`: endpoints, groups, parents;
//! `resolve`: their addresses kept current; `health`: active checks), the
//! order parents are asked in (`rendezvous`), the per-shard client with its
//! plans, pools and passive failure marks (`client`), the pool of persistent
//! connections (`pool`, no HTTP) and the HTTP/1.1 exchange of a request for
//! a response head (`exchange`). Errors say what failed on the upstream side
//! so the proxy can pick 502 or 504.

mod client;
mod exchange;
pub mod health;
pub mod map;
mod pool;
pub mod rendezvous;
pub mod resolve;

pub use client::{Checkout, Hop, OriginSettings, UpstreamClient, UpstreamRoute, UpstreamStats};
pub use map::{EndpointKind, UpstreamMap, UpstreamPlan};

use std::fmt;

/// Where the origin is: from `http://host[:port][/]` or `https://…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginAddr {
    pub host: String,
    pub port: u16,
    /// `https://`: TLS, the certificate verified for `host`.
    pub tls: bool,
}

impl OriginAddr {
    pub fn parse(url: &str) -> Result<OriginAddr, String> {
        let (rest, tls) = match url.split_once("://") {
            Some(("http", rest)) => (rest, false),
            Some(("https", rest)) => (rest, true),
            Some((scheme, _)) => {
                return Err(format!(
                    "scheme {scheme:?} is not supported; use http://host:port or https://host:port"
                ));
            }
            None => return Err(format!("{url:?} is not a URL; use http://host:port")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "{url:?}: give only scheme, host and port (no path, query or user)"
            ));
        }
        let bracketed = authority.starts_with('[');
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed IPv6 bracket"))?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            None => Self::default_port(tls),
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{url:?}: invalid port {p:?}"))?,
        };
        if host.is_empty() {
            return Err(format!("{url:?}: missing host"));
        }
        if bracketed {
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("{url:?}: {host:?} is not an IPv6 address"))?;
        } else {
            check_host_name(&host).map_err(|e| format!("{url:?}: {e}"))?;
        }
        Ok(OriginAddr { host, port, tls })
    }

    fn default_port(tls: bool) -> u16 {
        if tls { 443 } else { 80 }
    }

    /// The Host header value that names this origin.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == Self::default_port(self.tls) {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// A parent's address: `host:port`, `http://host:port` or `https://host:port`.
    pub fn parse_host_port(spec: &str) -> Result<OriginAddr, String> {
        if spec.contains("://") {
            OriginAddr::parse(spec)
        } else {
            OriginAddr::parse(&format!("http://{spec}"))
        }
    }
}

/// A host name or IPv4 address as DNS and `Host` allow: labels of letters,
/// digits, `-` and `_`, separated by dots (RFC 1123 §2.1, RFC 3986 §3.2.2
/// reg-name without escapes), at most 253 bytes.
pub fn check_host_name(host: &str) -> Result<(), String> {
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > 253 || !name.split('.').all(ok_label) {
        return Err(format!(
            "{host:?} is not a host name (letters, digits, '-' and '_' in dot-separated labels)"
        ));
    }
    Ok(())
}

/// What went wrong talking to an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    ConnectRefused,
    ConnectTimeout,
    FirstByteTimeout,
    ReadTimeout,
    /// The connection closed before the response was complete.
    Closed,
    /// The response was not valid HTTP/1.1.
    BadResponse,
    WriteFailed,
}

#[derive(Clone, Debug)]
pub struct UpstreamError {
    pub kind: UpstreamErrorKind,
    pub detail: String,
}

impl UpstreamError {
    pub fn new(kind: UpstreamErrorKind, detail: impl Into<String>) -> Self {
        UpstreamError {
            kind,
            detail: detail.into(),
        }
    }

    pub fn from_io(e: std::io::Error, when: UpstreamErrorKind) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut => match when {
                UpstreamErrorKind::ConnectRefused | UpstreamErrorKind::ConnectTimeout => {
                    UpstreamErrorKind::ConnectTimeout
                }
                UpstreamErrorKind::FirstByteTimeout => UpstreamErrorKind::FirstByteTimeout,
                _ => UpstreamErrorKind::ReadTimeout,
            },
            std::io::ErrorKind::InvalidData => UpstreamErrorKind::BadResponse,
            _ if when == UpstreamErrorKind::FirstByteTimeout => UpstreamErrorKind::Closed,
            _ => when,
        };
        UpstreamError::new(kind, e.to_string())
    }

    /// The status a viewer gets: 504 when the origin was too slow, else 502.
    pub fn status(&self) -> u16 {
        match self.kind {
            UpstreamErrorKind::ConnectTimeout
            | UpstreamErrorKind::FirstByteTimeout
            | UpstreamErrorKind::ReadTimeout => 504,
            _ => 502,
        }
    }

    /// Short token for logs and Cache-Status details.
    pub fn token(&self) -> &'static str {
        self.kind.token()
    }
}

impl UpstreamErrorKind {
    /// What a viewer is told: no address, no parser's words.
    pub fn viewer_message(self) -> &'static str {
        match self {
            UpstreamErrorKind::ConnectRefused => "the origin could not be reached",
            UpstreamErrorKind::ConnectTimeout => "the origin could not be reached in time",
            UpstreamErrorKind::FirstByteTimeout | UpstreamErrorKind::ReadTimeout => {
                "the origin did not answer in time"
            }
            UpstreamErrorKind::Closed => "the origin closed the connection",
            UpstreamErrorKind::BadResponse => "the origin's response was not valid HTTP",
            UpstreamErrorKind::WriteFailed => "the request could not be sent to the origin",
        }
    }

    /// The RFC 9211 `detail` token for this failure.
    pub fn token(self) -> &'static str {
        match self {
            UpstreamErrorKind::ConnectRefused => "origin-connect-failed",
            UpstreamErrorKind::ConnectTimeout => "origin-connect-timeout",
            UpstreamErrorKind::FirstByteTimeout => "origin-first-byte-timeout",
            UpstreamErrorKind::ReadTimeout => "origin-read-timeout",
            UpstreamErrorKind::Closed => "origin-closed",
            UpstreamErrorKind::BadResponse => "origin-bad-response",
            UpstreamErrorKind::WriteFailed => "origin-write-failed",
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.token(), self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_urls() {
        assert_eq!(
            OriginAddr::parse("http://127.0.0.1:8000").unwrap(),
            OriginAddr {
                host: "127.0.0.1".into(),
                port: 8000,
                tls: false,
            }
        );
        assert_eq!(OriginAddr::parse("http://example.com/").unwrap().port, 80);
        let secure = OriginAddr::parse("https://example.com").unwrap();
        assert_eq!((secure.port, secure.tls), (443, true));
        assert_eq!(secure.authority(), "example.com");
        assert_eq!(
            OriginAddr::parse("https://example.com:8443")
                .unwrap()
                .authority(),
            "example.com:8443"
        );
        assert_eq!(OriginAddr::parse("http://[::1]:81").unwrap().host, "::1");
        assert_eq!(
            OriginAddr::parse("http://[::1]:81").unwrap().authority(),
            "[::1]:81"
        );
        for bad in [
            "ftp://x",
            "x:80",
            "http://",
            "http://h:99999",
            "http://h/path",
            "http://u@h",
        ] {
            assert!(OriginAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeouts_are_504_the_rest_502() {
        let t = UpstreamError::new(UpstreamErrorKind::FirstByteTimeout, "");
        assert_eq!(t.status(), 504);
        let c = UpstreamError::new(UpstreamErrorKind::ConnectRefused, "");
        assert_eq!(c.status(), 502);
    }
}
