//! The PROXY protocol (HAProxy's, versions 1 and 2) on a viewer listener:
//! a load balancer in front of edgeslab sends the viewer's real address
//! in a header before the connection's own bytes. Only peers listed as
//! trusted may send it, and with the switch on every connection must (an
//! untrusted peer could otherwise claim any address). The header is read
//! exactly, never a byte beyond it, so a TLS handshake that follows finds
//! its first byte on the socket. Parsing is the `ppp` crate's.

use super::conn::Conn;
use ipnet::IpNet;
use std::net::SocketAddr;
use std::time::Instant;

/// A version 1 header is at most this long, CRLF included.
const V1_MAX: usize = 107;
/// The first bytes of a version 2 header (its signature's start), and
/// enough of a version 1 header ("PROXY ") to tell which it is.
const SNIFF: usize = 8;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A version 2 header's fixed part: signature, version and command,
/// family, length.
const V2_FIXED: usize = 16;

/// Why a connection was refused before HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0} is not a trusted PROXY protocol sender (listen.proxy_trusted)")]
    Untrusted(SocketAddr),
    #[error("no PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Which header a connection came with, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    /// Version 1 (text) naming a viewer.
    V1,
    /// Version 2 (binary) naming a viewer.
    V2,
    /// `LOCAL`, `UNKNOWN` or an address family without one: the
    /// balancer's own connection (a health check).
    Local,
}

/// Reads the header from a connection accepted from `peer`; returns the
/// viewer's address (the peer's own for a `LOCAL` or `UNKNOWN` header,
/// which a balancer sends for its health checks) and the header's kind.
pub async fn accept(
    conn: &mut Conn,
    peer: SocketAddr,
    trusted: &[IpNet],
    deadline: Instant,
) -> Result<(SocketAddr, HeaderKind), ProxyError> {
    if !trusted.iter().any(|net| net.contains(&peer.ip())) {
        return Err(ProxyError::Untrusted(peer));
    }
    fill_to(conn, SNIFF, deadline).await?;
    let sniffed = &conn.buffered()[..SNIFF];
    let (len, kind) = if sniffed == &V2_SIGNATURE[..SNIFF] {
        fill_to(conn, V2_FIXED, deadline).await?;
        let b = conn.buffered();
        let len = V2_FIXED + usize::from(u16::from_be_bytes([b[14], b[15]]));
        (len, HeaderKind::V2)
    } else if sniffed.starts_with(b"PROXY ") {
        (v1_length(conn, deadline).await?, HeaderKind::V1)
    } else {
        return Err(ProxyError::Missing);
    };
    fill_to(conn, len, deadline).await?;
    let source = source_of(&conn.buffered()[..len])?;
    conn.consume(len);
    Ok(match source {
        Some(viewer) => (viewer, kind),
        None => (peer, HeaderKind::Local),
    })
}

/// Reads a version 1 line one byte at a time up to its CRLF (it may be
/// followed by a TLS handshake that must stay on the socket).
async fn v1_length(conn: &mut Conn, deadline: Instant) -> Result<usize, ProxyError> {
    loop {
        let have = conn.buffered();
        if let Some(at) = have.windows(2).position(|w| w == b"\r\n") {
            return Ok(at + 2);
        }
        if have.len() >= V1_MAX {
            return Err(ProxyError::Malformed(format!(
                "a version 1 line longer than {V1_MAX} bytes"
            )));
        }
        let want = have.len() + 1;
        fill_to(conn, want, deadline).await?;
    }
}

/// Reads until `len` bytes are buffered, asking for no more than that.
async fn fill_to(conn: &mut Conn, len: usize, deadline: Instant) -> Result<(), ProxyError> {
    while conn.buffered().len() < len {
        let missing = len - conn.buffered().len();
        if conn.read_at_most(missing, deadline).await? == 0 {
            return Err(ProxyError::Missing);
        }
    }
    Ok(())
}

/// The source address a whole header names (None: `LOCAL`, `UNKNOWN`, or
/// a family without one, such as UNIX sockets).
fn source_of(header: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    use ppp::HeaderResult;
    match HeaderResult::parse(header) {
        HeaderResult::V2(Ok(h)) => {
            if h.command == ppp::v2::Command::Local {
                return Ok(None);
            }
            Ok(match h.addresses {
                ppp::v2::Addresses::IPv4(a) => Some((a.source_address, a.source_port).into()),
                ppp::v2::Addresses::IPv6(a) => Some((a.source_address, a.source_port).into()),
                ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
            })
        }
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
            ppp::v1::Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
            ppp::v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Err(e)) => Err(ProxyError::Malformed(e.to_string())),
        HeaderResult::V1(Err(e)) => Err(ProxyError::Malformed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addrs: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
        h.extend_from_slice(addrs);
        h
    }

    #[test]
    fn sources_of_both_versions() {
        let v1 = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n";
        assert_eq!(
            source_of(v1).unwrap(),
            Some("192.0.2.7:56324".parse().unwrap())
        );
        let v1_6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 80\r\n";
        assert_eq!(
            source_of(v1_6).unwrap(),
            Some("[2001:db8::7]:4000".parse().unwrap())
        );
        assert_eq!(source_of(b"PROXY UNKNOWN\r\n").unwrap(), None);
        let addrs = [192, 0, 2, 9, 10, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb];
        assert_eq!(
            source_of(&v2(1, 0x11, &addrs)).unwrap(),
            Some("192.0.2.9:8080".parse().unwrap())
        );
        assert_eq!(source_of(&v2(0, 0x11, &addrs)).unwrap(), None, "LOCAL");
        assert!(source_of(b"PROXY TCP4 nonsense\r\n").is_err());
        assert!(
            source_of(&v2(1, 0x11, &addrs[..5])).is_err(),
            "short addresses"
        );
    }
}
