//! TLS toward viewers and origins: rustls on the ring provider, TLS 1.3
//! and 1.2, ALPN `http/1.1`. Viewers get the certificate whose names match
//! the server name they ask for (SNI; exact names before wildcards), or the
//! first configured one. Session resumption works across shards and
//! reloads: one ticket key rotator and one session cache per process, put
//! into every configuration built from the certificates. Origins are
//! verified against a configured CA file or the system's trust roots.

use crate::config::CertPair;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};
use std::path::Path;
use std::sync::Arc;

/// Sessions kept for stateful (TLS 1.2 session id) resumption.
const SESSION_CACHE: usize = 16 * 1024;

/// The ALPN protocol spoken (`h2` is for a later HTTP/2 front end).
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why certificates, keys or trust roots cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {what}")]
    File { path: String, what: String },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error(
        "no trust roots: the system has none (install ca-certificates) and origin.ca_file is not set"
    )]
    NoRoots,
}

fn file_error(path: &Path, what: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        what: what.to_string(),
    }
}

/// Largest PEM file read (a system CA bundle is about 200 KiB).
const MAX_PEM: u64 = 4 << 20;

/// Refuses what is not a regular file of sane size before it is read (a
/// mistyped `/dev/zero` would never end).
fn check_pem_file(path: &Path) -> Result<(), TlsError> {
    let meta = std::fs::metadata(path).map_err(|e| file_error(path, e))?;
    if !meta.is_file() {
        return Err(file_error(path, "is not a regular file"));
    }
    if meta.len() > MAX_PEM {
        return Err(file_error(
            path,
            format!(
                "is {} bytes; a PEM file here is at most {MAX_PEM}",
                meta.len()
            ),
        ));
    }
    Ok(())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain with its key, and the names its leaf serves.
#[derive(Debug)]
pub struct LoadedCert {
    key: Arc<CertifiedKey>,
    /// DNS names from the leaf's subject alternative names, lower case;
    /// `*.example.com` for a wildcard.
    pub names: Vec<String>,
}

impl LoadedCert {
    fn serves_exactly(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// A wildcard covers exactly one leftmost label.
    fn serves_by_wildcard(&self, name: &str) -> bool {
        let Some((_, parent)) = name.split_once('.') else {
            return false;
        };
        self.names
            .iter()
            .filter_map(|n| n.strip_prefix("*."))
            .any(|n| n.eq_ignore_ascii_case(parent))
    }
}

/// Reads a chain and its key (PEM), and checks that they belong together.
pub fn load_pair(pair: &CertPair) -> Result<LoadedCert, TlsError> {
    check_pem_file(&pair.chain)?;
    check_pem_file(&pair.key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pair.chain)
        .map_err(|e| file_error(&pair.chain, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&pair.chain, e))?;
    let Some(leaf) = chain.first() else {
        return Err(file_error(&pair.chain, "holds no CERTIFICATE block"));
    };
    let names = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| file_error(&pair.chain, format!("the first certificate: {e}")))?
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pair.key).map_err(|e| file_error(&pair.key, e))?;
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        file_error(
            &pair.key,
            format!("not usable with {}: {e}", pair.chain.display()),
        )
    })?;
    Ok(LoadedCert {
        key: Arc::new(key),
        names,
    })
}

/// Picks a certificate by the server name a viewer asked for.
#[derive(Debug)]
struct BySni {
    /// Never empty; the first is the default.
    certs: Vec<LoadedCert>,
}

impl BySni {
    fn pick(&self, name: Option<&str>) -> &LoadedCert {
        let found = name.and_then(|n| {
            self.certs
                .iter()
                .find(|c| c.serves_exactly(n))
                .or_else(|| self.certs.iter().find(|c| c.serves_by_wildcard(n)))
        });
        found.unwrap_or(&self.certs[0])
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).key.clone())
    }
}

/// What outlives one set of certificates: the ticket keys (rotated every
/// six hours by rustls) and the session cache, so that a viewer resumes on
/// any shard and after a reload.
#[derive(Clone)]
pub struct Sessions {
    tickets: Arc<dyn ProducesTickets>,
    cache: Arc<dyn StoresServerSessions>,
}

impl Sessions {
    pub fn new() -> Result<Sessions, TlsError> {
        Ok(Sessions {
            tickets: rustls::crypto::ring::Ticketer::new()?,
            cache: rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE),
        })
    }
}

/// The viewer-side configuration for these certificates.
pub fn server_config(
    certs: &[CertPair],
    sessions: &Sessions,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = certs.iter().map(load_pair).collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(TlsError::File {
            path: "tls.certs".into(),
            what: "no certificate is configured".into(),
        });
    }
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni { certs }));
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    config.ticketer = sessions.tickets.clone();
    config.session_storage = sessions.cache.clone();
    Ok(Arc::new(config))
}

/// The origin-side configuration: trust roots from `ca_file`, or the
/// system's.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            check_pem_file(path)?;
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))? {
                let cert = cert.map_err(|e| file_error(path, e))?;
                roots.add(cert).map_err(|e| file_error(path, e))?;
            }
            if roots.is_empty() {
                return Err(file_error(path, "holds no CERTIFICATE block"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(names: &[&str]) -> LoadedCert {
        let cert = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "edgeslab-tls-{}-{}",
            std::process::id(),
            names.join("_").replace('*', "w")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pair = CertPair {
            chain: dir.join("chain.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&pair.chain, cert.cert.pem()).unwrap();
        std::fs::write(&pair.key, cert.signing_key.serialize_pem()).unwrap();
        let l = load_pair(&pair).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        l
    }

    #[test]
    fn sni_picks_exact_names_then_wildcards_then_the_first() {
        let sni = BySni {
            certs: vec![
                loaded(&["default.test"]),
                loaded(&["*.example.com"]),
                loaded(&["www.example.com", "Other.Test"]),
            ],
        };
        let pick = |n: Option<&str>| sni.pick(n).names.clone();
        assert_eq!(
            pick(Some("www.example.com")),
            ["www.example.com", "other.test"]
        );
        assert_eq!(pick(Some("OTHER.test")), ["www.example.com", "other.test"]);
        assert_eq!(pick(Some("img.example.com")), ["*.example.com"]);
        // A wildcard covers one label only.
        assert_eq!(pick(Some("a.b.example.com")), ["default.test"]);
        assert_eq!(pick(Some("example.com")), ["default.test"]);
        assert_eq!(pick(None), ["default.test"]);
    }

    #[test]
    fn a_key_that_is_not_the_chains_is_refused() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".to_string()]).unwrap();
        let dir =
            std::env::temp_dir().join(format!("edgeslab-tls-mismatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pair = CertPair {
            chain: dir.join("a.pem"),
            key: dir.join("b.key"),
        };
        std::fs::write(&pair.chain, a.cert.pem()).unwrap();
        std::fs::write(&pair.key, b.signing_key.serialize_pem()).unwrap();
        let err = load_pair(&pair).unwrap_err().to_string();
        assert!(err.contains("b.key") && err.contains("not usable"), "{err}");
        std::fs::write(&pair.key, "not a key").unwrap();
        assert!(load_pair(&pair).unwrap_err().to_string().contains("b.key"));
        std::fs::write(&pair.chain, "").unwrap();
        let err = load_pair(&pair).unwrap_err().to_string();
        assert!(err.contains("no CERTIFICATE"), "{err}");
        let endless = CertPair {
            chain: "/dev/zero".into(),
            key: pair.key.clone(),
        };
        let err = load_pair(&endless).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
