//! HTTPS through the real binary: certificates chosen by SNI (exact names,
//! wildcards, the first as default), TLS 1.3 and 1.2, ALPN http/1.1,
//! resumption across connections and shards, certificates reloaded on
//! SIGHUP (a bad one keeps the running ones), HTTPS origins verified
//! against a CA file with pooled connections, and the `--https`/`--cert`
//! flags. Certificates are made by rcgen when the tests run.

mod support;

use std::time::Duration;
use support::tls::{TestCert, TlsClient, TlsFront, get_tls, trusting, trusting_anything};
use support::*;

fn origin() -> Origin {
    Origin::start(|seen| {
        Script::ok(
            "max-age=600",
            format!("body of {}", seen.target).into_bytes(),
        )
    })
}

/// An edge with HTTPS on a free port and these certificates, first the
/// default, from the command-line flags.
fn edge_with_certs(origin: &Origin, dir: &std::path::Path, certs: &[(&TestCert, &str)]) -> Edge {
    let mut b = Edge::builder()
        .origin(origin.addr)
        .args(["--https", "127.0.0.1:0"]);
    for (cert, name) in certs {
        let (chain, key) = cert.write(dir, name);
        b = b
            .arg("--cert")
            .arg(format!("{}:{}", chain.display(), key.display()));
    }
    b.start()
}

fn https_addr(edge: &Edge) -> std::net::SocketAddr {
    edge.https.expect("an HTTPS listener")
}

#[test]
fn sni_picks_the_certificate_and_https_serves_and_caches() {
    let origin = origin();
    let dir = TempDir::new("tls-sni");
    let default = TestCert::new(&["default.test"]);
    let wildcard = TestCert::new(&["*.b.test"]);
    let exact = TestCert::new(&["a.test", "www.a.test"]);
    let edge = edge_with_certs(
        &origin,
        dir.path(),
        &[
            (&default, "default"),
            (&wildcard, "wild"),
            (&exact, "exact"),
        ],
    );
    let addr = https_addr(&edge);
    let any = trusting_anything();
    for (sni, want) in [
        ("a.test", &exact),
        ("WWW.A.TEST", &exact),
        ("img.b.test", &wildcard),
        ("deep.img.b.test", &default),
        ("unknown.test", &default),
    ] {
        let c = TlsClient::connect(addr, sni, &any).unwrap();
        assert!(c.peer_leaf() == want.der, "{sni} got another certificate");
        assert_eq!(c.alpn().as_deref(), Some(&b"http/1.1"[..]));
    }

    // A verifying client: the certificate holds for its name, HTTP works,
    // and what HTTPS viewers fetch is cached like anything else.
    let strict = trusting(&[&exact], rustls::DEFAULT_VERSIONS);
    let r = get_tls(addr, "a.test", &strict, "/x");
    assert_eq!((r.status, r.text()), (200, "body of /x".to_string()));
    assert!(!r.is_hit());
    assert!(get_tls(addr, "a.test", &strict, "/x").is_hit());
    let plain = request(
        edge.addr,
        b"GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    );
    assert!(plain.is_hit(), "plain and HTTPS share the cache");
    assert_eq!(origin.count("/x"), 1);
    // A client that trusts another certificate refuses this one.
    let wrong = trusting(&[&default], rustls::DEFAULT_VERSIONS);
    assert!(TlsClient::connect(addr, "a.test", &wrong).is_err());
}

#[test]
fn tls_12_and_13_resume_and_plain_http_on_the_tls_port_fails_cleanly() {
    let origin = origin();
    let dir = TempDir::new("tls-versions");
    let cert = TestCert::new(&["a.test"]);
    let edge = edge_with_certs(&origin, dir.path(), &[(&cert, "a")]);
    let addr = https_addr(&edge);
    for (versions, want) in [
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
    ] {
        // One client config keeps its sessions: the second connection
        // resumes (on whichever shard accepts it).
        let config = trusting(&[&cert], versions);
        let mut first = TlsClient::connect(addr, "a.test", &config).unwrap();
        assert_eq!(first.version(), Some(want));
        assert!(!first.resumed());
        assert_eq!(first.get("a.test", "/v").status, 200);
        let mut resumed = 0;
        for _ in 0..4 {
            let mut c = TlsClient::connect(addr, "a.test", &config).unwrap();
            assert_eq!(c.get("a.test", "/v").status, 200);
            resumed += usize::from(c.resumed());
        }
        assert_eq!(resumed, 4, "{want:?}: every later connection resumes");
    }
    // Plain HTTP to the HTTPS port: the handshake fails, counted, and the
    // edge serves on.
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert!(c.is_closed(Duration::from_secs(5)));
    // Counted as the handshake gives up, which may be just after the close.
    assert!(eventually(Duration::from_secs(5), || metric_sum(
        &edge.metrics(),
        "edgeslab_tls_failed_handshakes_total"
    ) >= 1));
    let text = edge.metrics();
    assert!(metric_sum(&text, "edgeslab_tls_resumed_handshakes_total") >= 8);
    assert!(metric_sum(&text, "edgeslab_tls_handshakes_total") >= 2);
    let strict = trusting(&[&cert], rustls::DEFAULT_VERSIONS);
    assert_eq!(get_tls(addr, "a.test", &strict, "/after").status, 200);
}

#[test]
fn certificates_reload_on_sighup_and_a_bad_one_keeps_the_running_ones() {
    let origin = origin();
    let dir = TempDir::new("tls-reload");
    let v1 = TestCert::new(&["a.test"]);
    let (chain, key) = v1.write(dir.path(), "a");
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml(&format!(
            "[tls]\naddr = \"127.0.0.1:0\"\ncerts = [{{ chain = \"{}\", key = \"{}\" }}]\n",
            chain.display(),
            key.display()
        ))
        .start();
    let addr = https_addr(&edge);
    let any = trusting_anything();
    assert!(
        TlsClient::connect(addr, "a.test", &any)
            .unwrap()
            .peer_leaf()
            == v1.der
    );

    // Renewed: the same files, a new certificate.
    let v2 = TestCert::new(&["a.test"]);
    v2.write(dir.path(), "a");
    let generation = edge.metric("edgeslab_config_generation");
    edge.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(5), || TlsClient::connect(
            addr, "a.test", &any
        )
        .unwrap()
        .peer_leaf()
            == v2.der),
        "the renewed certificate is served"
    );
    assert_eq!(edge.metric("edgeslab_config_generation"), generation + 1);

    // A broken key: the reload is refused, the log names the key, and the
    // running certificate stays.
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    edge.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(5), || edge
            .stderr()
            .contains("configuration reload refused")),
        "{}",
        edge.stderr()
    );
    assert!(edge.stderr().contains("tls.certs[0]"), "{}", edge.stderr());
    assert_eq!(edge.metric("edgeslab_config_generation"), generation + 1);
    let strict = trusting(&[&v2], rustls::DEFAULT_VERSIONS);
    assert_eq!(get_tls(addr, "a.test", &strict, "/still").status, 200);
}

#[test]
fn https_origins_are_verified_and_their_connections_pooled() {
    let backend = origin();
    let cert = TestCert::new(&["localhost"]);
    let front = TlsFront::start(backend.addr, &cert);
    let dir = TempDir::new("tls-origin");
    let (ca, _) = cert.write(dir.path(), "origin-ca");
    let url = format!("https://localhost:{}", front.addr.port());
    let edge = Edge::builder()
        .origin(backend.addr)
        .toml(&format!(
            "[origin]\nurl = \"{url}\"\nca_file = \"{}\"\n",
            ca.display()
        ))
        .start();
    for i in 0..6 {
        let r = get(edge.addr, &format!("/o{i}"));
        assert_eq!((r.status, r.text()), (200, format!("body of /o{i}")));
    }
    assert_eq!(backend.requests(), 6);
    assert!(
        front.connections() <= edge.shards,
        "{} TLS connections for 6 requests on {} shards: pooled",
        front.connections(),
        edge.shards
    );

    // Trusting another CA: the origin's certificate is refused, the viewer
    // gets a 502, and nothing is stored.
    let other = TestCert::new(&["localhost"]);
    let (other_ca, _) = other.write(dir.path(), "other-ca");
    let untrusting = Edge::builder()
        .origin(backend.addr)
        .toml(&format!(
            "[origin]\nurl = \"{url}\"\nca_file = \"{}\"\n",
            other_ca.display()
        ))
        .start();
    let before = backend.requests();
    assert_eq!(get(untrusting.addr, "/o1").status, 502);
    assert_eq!(get(untrusting.addr, "/o1").status, 502);
    assert_eq!(
        backend.requests(),
        before,
        "no request went to an unverified origin"
    );
}

#[test]
fn check_config_reads_the_certificates() {
    let dir = TempDir::new("tls-check");
    let cert = TestCert::new(&["a.test"]);
    let (chain, _) = cert.write(dir.path(), "a");
    let other = TestCert::new(&["b.test"]);
    let (_, wrong_key) = other.write(dir.path(), "b");
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        format!(
            "[origin]\nurl = \"http://127.0.0.1:9\"\nca_file = \"{}\"\n[cache]\npath = \"{}\"\nsize = \"64MiB\"\n[tls]\naddr = \"127.0.0.1:8443\"\ncerts = [{{ chain = \"{}\", key = \"{}\" }}]\n",
            dir.path().join("missing-ca.pem").display(),
            dir.path().join("c.slab").display(),
            chain.display(),
            wrong_key.display()
        ),
    )
    .unwrap();
    let out = run_bin(
        &["check-config", file.to_str().unwrap()],
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("tls.certs[0]") && stderr.contains("not usable"),
        "{stderr}"
    );
    assert!(stderr.contains("origin.ca_file"), "{stderr}");
}

#[test]
fn https_parents_are_verified_too() {
    let backend = origin();
    let cert = TestCert::new(&["localhost"]);
    let front = TlsFront::start(backend.addr, &cert);
    let dir = TempDir::new("tls-parent");
    let (ca, _) = cert.write(dir.path(), "parent-ca");
    // The origin itself is unreachable: a fill can only come through the
    // parent, over TLS.
    let edge = Edge::builder()
        .origin(backend.addr)
        .toml(&format!(
            "[origin]\nurl = \"http://127.0.0.1:1\"\nca_file = \"{}\"\n[parents]\naddrs = [\"https://localhost:{}\"]\n",
            ca.display(),
            front.addr.port()
        ))
        .start();
    let r = get(edge.addr, "/via-parent");
    assert_eq!(
        (r.status, r.text()),
        (200, "body of /via-parent".to_string())
    );
    assert!(front.connections() >= 1);
    assert!(get(edge.addr, "/via-parent").is_hit());
}
