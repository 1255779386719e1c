//! The PROXY protocol through the real binary: version 1 and 2 headers
//! from a trusted load balancer carry the viewer's address to the origin
//! (`X-Forwarded-For`) and the access log, before plain HTTP and before a
//! TLS handshake alike; `LOCAL` keeps the balancer's own; a connection
//! without a header, with a malformed one, or from an untrusted peer is
//! closed unanswered and counted.

mod support;

use std::time::Duration;
use support::tls::{TestCert, TlsClient, trusting};
use support::*;

fn origin() -> Origin {
    Origin::start(|seen| Script::ok("no-store", seen.target.clone().into_bytes()))
}

/// A version 2 PROXY header for TCP over IPv4 (`local` = the LOCAL command).
fn v2(source: [u8; 4], port: u16, local: bool) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(if local { 0x20 } else { 0x21 });
    h.push(0x11);
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&source);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h
}

const GET: &[u8] = b"GET /p HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n";

/// Sends `prefix` then a GET; returns the response, if any.
fn through(addr: std::net::SocketAddr, prefix: &[u8]) -> Option<Response> {
    let mut c = Client::connect(addr);
    c.send(&[prefix, GET].concat());
    c.read_response()
}

fn edge(origin: &Origin, trusted: &str, extra: &str) -> Edge {
    Edge::builder()
        .origin(origin.addr)
        .toml(&format!(
            "[listen]\nproxy_protocol = true\nproxy_trusted = [{trusted}]\n{extra}"
        ))
        .start()
}

#[test]
fn both_versions_carry_the_viewers_address() {
    let origin = origin();
    let edge = edge(&origin, "\"127.0.0.0/8\"", "");
    let r = through(edge.addr, b"PROXY TCP4 192.0.2.7 127.0.0.1 56324 80\r\n").expect("v1");
    assert_eq!(r.status, 200);
    assert_eq!(
        origin.last().unwrap().header("x-forwarded-for"),
        Some("192.0.2.7")
    );
    let r = through(edge.addr, &v2([192, 0, 2, 9], 4000, false)).expect("v2");
    assert_eq!(r.status, 200);
    assert_eq!(
        origin.last().unwrap().header("x-forwarded-for"),
        Some("192.0.2.9")
    );
    // LOCAL (a balancer's health check): the connection's own address.
    let r = through(edge.addr, &v2([192, 0, 2, 10], 4000, true)).expect("local");
    assert_eq!(r.status, 200);
    assert_eq!(
        origin.last().unwrap().header("x-forwarded-for"),
        Some("127.0.0.1")
    );
    assert!(
        eventually(Duration::from_secs(5), || edge
            .stderr()
            .contains("192.0.2.9")),
        "the access log names the viewer:\n{}",
        edge.stderr()
    );
    let text = edge.metrics();
    assert_eq!(
        metric_sum(&text, "edgeslab_proxy_protocol_refused_total"),
        0
    );
    let kinds = "edgeslab_proxy_protocol_connections_total";
    for kind in ["v1", "v2", "local"] {
        let total: u64 = (0..edge.shards)
            .map(|i| metric_sum(&text, &format!("{kinds}{{shard=\"{i}\",kind=\"{kind}\"")))
            .sum();
        assert_eq!(total, 1, "{kind}");
    }
}

#[test]
fn missing_malformed_and_untrusted_headers_are_refused() {
    let origin = origin();
    let edge = edge(&origin, "\"127.0.0.0/8\"", "");
    let seen = origin.requests();
    assert!(through(edge.addr, b"").is_none(), "no header");
    assert!(
        through(edge.addr, b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n").is_none(),
        "malformed"
    );
    let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
    assert!(through(edge.addr, long.as_bytes()).is_none(), "overlong v1");
    assert_eq!(
        metric_sum(&edge.metrics(), "edgeslab_proxy_protocol_refused_total"),
        3
    );

    // Loopback is not among the trusted networks: even a good header is
    // refused.
    let strict = self::edge(&origin, "\"10.0.0.0/8\"", "");
    assert!(through(strict.addr, &v2([192, 0, 2, 9], 4000, false)).is_none());
    assert_eq!(
        metric_sum(&strict.metrics(), "edgeslab_proxy_protocol_refused_total"),
        1
    );
    assert_eq!(
        origin.requests(),
        seen,
        "nothing refused reached the origin"
    );
    assert!(
        strict
            .stderr()
            .contains("not a trusted PROXY protocol sender")
    );
}

#[test]
fn a_header_before_a_tls_handshake() {
    let origin = origin();
    let dir = TempDir::new("proxy-tls");
    let cert = TestCert::new(&["a.test"]);
    let (chain, key) = cert.write(dir.path(), "a");
    let edge = edge(
        &origin,
        "\"127.0.0.1/32\"",
        &format!(
            "[tls]\naddr = \"127.0.0.1:0\"\ncerts = [{{ chain = \"{}\", key = \"{}\" }}]\n",
            chain.display(),
            key.display()
        ),
    );
    let https = edge.https.expect("an HTTPS listener");
    let config = trusting(&[&cert], rustls::DEFAULT_VERSIONS);
    for header in [
        b"PROXY TCP4 198.51.100.4 127.0.0.1 5000 443\r\n".to_vec(),
        v2([198, 51, 100, 5], 5001, false),
    ] {
        let mut c = TlsClient::connect_after(https, &header, "a.test", &config).unwrap();
        assert_eq!(c.get("a.test", "/t").status, 200);
    }
    let seen = origin.seen();
    let xff: Vec<_> = seen
        .iter()
        .rev()
        .take(2)
        .filter_map(|s| s.header("x-forwarded-for").map(str::to_string))
        .collect();
    assert_eq!(xff, ["198.51.100.5", "198.51.100.4"]);
}

#[test]
fn check_config_refuses_the_switch_without_trusted_networks() {
    let dir = TempDir::new("proxy-check");
    let check = |listen: &str| {
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            format!(
                "[origin]\nurl = \"http://127.0.0.1:9\"\n[cache]\npath = \"{}\"\nsize = \"64MiB\"\n[listen]\nproxy_protocol = true\n{listen}",
                dir.path().join("c.slab").display()
            ),
        )
        .unwrap();
        let out = run_bin(
            &["check-config", file.to_str().unwrap()],
            Duration::from_secs(30),
        );
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let bad_net = check("proxy_trusted = [\"10.0.0.0/33\"]\n");
    assert!(bad_net.contains("listen.proxy_trusted"), "{bad_net}");
    let none = check("");
    assert!(
        none.contains("listen.proxy_trusted") && none.contains("refuse every"),
        "{none}"
    );
}
