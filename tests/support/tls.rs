//! TLS for tests: certificates made by rcgen at test time, a strict HTTPS
//! client (rustls under the harness's own HTTP rules), and a TLS front that
//! puts a scripted origin behind HTTPS.

use super::client::{Response, read_from};
use super::wire::{Asked, Inbound};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// A self-signed certificate for some names, and its key.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCert {
    pub fn new(names: &[&str]) -> TestCert {
        let made = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .expect("rcgen");
        TestCert {
            cert_pem: made.cert.pem(),
            key_pem: made.signing_key.serialize_pem(),
            der: made.cert.der().clone(),
        }
    }

    /// Writes `NAME.pem` and `NAME.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let chain = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&chain, &self.cert_pem).expect("write chain");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (chain, key)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that trusts exactly these certificates.
pub fn trusting(
    certs: &[&TestCert],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c.der.clone()).expect("root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A client that accepts any certificate, to see which one a server picks.
pub fn trusting_anything() -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCert;

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// One HTTPS connection to the edge.
pub struct TlsClient {
    inbound: Inbound<TlsStream>,
}

impl TlsClient {
    /// Connects and completes the handshake for `sni`.
    pub fn connect(
        addr: SocketAddr,
        sni: &str,
        config: &Arc<rustls::ClientConfig>,
    ) -> Result<TlsClient, String> {
        TlsClient::connect_after(addr, &[], sni, config)
    }

    /// Connects, sends `prefix` in the clear (a PROXY protocol header, as a
    /// load balancer would), then completes the handshake for `sni`.
    pub fn connect_after(
        addr: SocketAddr,
        prefix: &[u8],
        sni: &str,
        config: &Arc<rustls::ClientConfig>,
    ) -> Result<TlsClient, String> {
        let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.write_all(prefix)
            .map_err(|e| format!("send prefix: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(15)))
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
        let conn =
            rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| format!("handshake: {e}"))?;
        }
        Ok(TlsClient {
            inbound: Inbound::new(stream),
        })
    }

    fn tls(&self) -> &rustls::ClientConnection {
        &self.inbound.src.conn
    }

    /// The leaf certificate the server presented.
    pub fn peer_leaf(&self) -> CertificateDer<'static> {
        self.tls().peer_certificates().expect("certificates")[0].clone()
    }

    pub fn resumed(&self) -> bool {
        self.tls().handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.tls().protocol_version()
    }

    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.tls().alpn_protocol().map(<[u8]>::to_vec)
    }

    /// A GET on this connection (kept alive).
    pub fn get(&mut self, host: &str, path: &str) -> Response {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        self.inbound
            .src
            .write_all(raw.as_bytes())
            .expect("send over TLS");
        read_from(&mut self.inbound, Asked::default(), None).expect("a response over TLS")
    }
}

/// A GET over a fresh HTTPS connection.
pub fn get_tls(
    addr: SocketAddr,
    sni: &str,
    config: &Arc<rustls::ClientConfig>,
    path: &str,
) -> Response {
    TlsClient::connect(addr, sni, config)
        .unwrap_or_else(|e| panic!("{e}"))
        .get(sni, path)
}

/// HTTPS in front of a plain scripted origin: each TLS connection is
/// relayed to a fresh connection to `backend`.
pub struct TlsFront {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TlsFront {
    pub fn start(backend: SocketAddr, cert: &TestCert) -> TlsFront {
        use rustls::pki_types::pem::PemObject;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
            .expect("key pem");
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert.der.clone()], key)
                .expect("server config"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind front");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        let config = config.clone();
                        std::thread::spawn(move || relay(s, backend, config));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TlsFront {
            addr,
            accepted,
            stop,
        }
    }

    /// TLS connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Moves bytes both ways between a TLS client and the backend, polling
/// each side with short timeouts, until either closes (bounded: 60 s idle).
fn relay(tcp: TcpStream, backend: SocketAddr, config: Arc<rustls::ServerConfig>) {
    use std::io::Read;
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(5)));
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let Ok(mut back) = TcpStream::connect(backend) else {
        return;
    };
    let _ = back.set_read_timeout(Some(Duration::from_millis(5)));
    let mut buf = vec![0u8; 64 << 10];
    let mut idle = 0u32;
    loop {
        let mut moved = false;
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if back.write_all(&buf[..n]).is_err() {
                    return;
                }
                moved = true;
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
        match back.read(&mut buf) {
            Ok(0) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                return;
            }
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|_| tls.flush()).is_err() {
                    return;
                }
                moved = true;
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
        idle = if moved { 0 } else { idle + 1 };
        if idle > 6_000 {
            return;
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
