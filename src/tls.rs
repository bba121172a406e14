//! DICOM over TLS (the PS3.15 secure transport connection profiles): loading
//! certificates and keys, the SCP's acceptor, the SCU's connector, and the
//! one stream type the upper layer runs over, plain or encrypted.
//!
//! The crypto provider is rustls' `ring`, named explicitly everywhere rather
//! than installed as a process default, so no code path depends on which
//! provider some other crate enabled first.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use serde::{Deserialize, Serialize};

pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// What the upper layer reads and writes: a TCP stream, or TLS over one.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A connection, plain or TLS; boxed so the association code exists once.
pub type Connection = Box<dyn Stream>;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file (a chain: leaf first, or a CA bundle).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC),
/// unencrypted (a service cannot type a passphrase).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        format!(
            "{}: no usable private key (unencrypted PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            path.display()
        )
    })
}

/// A CA bundle as trust anchors.
pub fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(Arc::new(roots))
}

/// The SCP side. With `require_client_certificate`, a client must present a
/// certificate issued by `ca` (mutual authentication, as the PS3.15 profiles
/// expect); without it, a certificate is verified when presented.
pub fn server_config(tls: &TlsSection) -> Result<Arc<ServerConfig>, String> {
    let certs = load_certs(&tls.certificate)?;
    let key = load_key(&tls.private_key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match &tls.ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(load_roots(ca)?, provider());
            let verifier = if tls.require_client_certificate {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None if tls.require_client_certificate => {
            return Err("require_client_certificate needs a ca to verify clients with".into())
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{} and {} do not make a certificate and its key: {e}",
            tls.certificate.display(),
            tls.private_key.display()
        )
    })?;
    Ok(Arc::new(config))
}

/// HTTPS for the node's HTTP server (`http.tls`): the certificate and key,
/// no client certificates (clients authenticate with bearer tokens),
/// HTTP/1.1 announced by ALPN.
pub fn http_server_config(
    certificate: &Path,
    private_key: &Path,
) -> Result<Arc<ServerConfig>, String> {
    let certs = load_certs(certificate)?;
    let key = load_key(private_key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "{} and {} do not make a certificate and its key: {e}",
                certificate.display(),
                private_key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What the SCU needs to open a TLS connection to one peer.
#[derive(Clone)]
pub struct ClientTls {
    /// rustls client configuration: our certificate (if any) and the roots that verify the peer.
    pub config: Arc<ClientConfig>,
    /// Name the peer's certificate must match (`tls_server_name`, else the peer's host).
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

// Two targets are the same when they verify the same name with the same
// loaded configuration; configurations have no equality of their own.
impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}
impl Eq for ClientTls {}

/// The SCU side towards `host`: the server certificate is verified against
/// `peer_ca` (else the node's `ca`) for `server_name` (else `host`); the
/// node's certificate is offered as client certificate when it has one.
pub fn client_config(
    node: Option<&TlsSection>,
    peer_ca: Option<&Path>,
    host: &str,
    server_name: Option<&str>,
) -> Result<ClientTls, String> {
    let ca = peer_ca
        .or(node.and_then(|t| t.ca.as_deref()))
        .ok_or("no CA to verify the peer with: set tls_ca on the peer or network.tls.ca")?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(load_roots(ca)?);
    let config = match node {
        Some(t) => builder
            .with_client_auth_cert(load_certs(&t.certificate)?, load_key(&t.private_key)?)
            .map_err(|e| {
                format!(
                    "{} and {} do not make a certificate and its key: {e}",
                    t.certificate.display(),
                    t.private_key.display()
                )
            })?,
        None => builder.with_no_client_auth(),
    };
    let name = server_name.unwrap_or(host);
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| format!("{name:?} is not a TLS server name: {e}"))?;
    Ok(ClientTls {
        config: Arc::new(config),
        server_name,
    })
}

/// The SCU's handshake, bounded: a peer that accepts TCP but never answers
/// must not hang a send.
pub async fn connect(
    tls: &ClientTls,
    stream: TcpStream,
    timeout: Duration,
) -> io::Result<Connection> {
    let connector = TlsConnector::from(tls.config.clone());
    match tokio::time::timeout(timeout, connector.connect(tls.server_name.clone(), stream)).await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => Err(io::Error::new(
            e.kind(),
            format!("TLS handshake with {:?}: {e}", tls.server_name),
        )),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "TLS handshake did not finish within {} s",
                timeout.as_secs()
            ),
        )),
    }
}

/// The SCP's handshake, bounded so a silent client cannot hold a
/// connection slot.
pub async fn accept(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> io::Result<Connection> {
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{peer}: no TLS handshake within {} s", timeout.as_secs()),
        )),
    }
}

/// The end of a certificate's validity (notAfter) as seconds since the Unix
/// epoch, read from the DER structure; `None` when it cannot be read.
/// Used by `doctor` to warn before a certificate expires.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
    // OPTIONAL, serialNumber, signature, issuer, validity SEQUENCE {
    // notBefore, notAfter }, ... } ... }
    let (_, cert_body, _) = der_item(cert.as_ref())?;
    let (_, mut tbs, _) = der_item(cert_body)?;
    let (tag, _, rest) = der_item(tbs)?;
    if tag == 0xA0 {
        tbs = rest;
    }
    for _ in 0..3 {
        // serial number, signature algorithm, issuer
        let (_, _, rest) = der_item(tbs)?;
        tbs = rest;
    }
    let (_, validity, _) = der_item(tbs)?;
    let (_, _, rest) = der_item(validity)?;
    let (tag, time, _) = der_item(rest)?;
    parse_der_time(tag, time)
}

/// One DER element: (tag, contents, what follows).
fn der_item(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((tag, b.get(head..end)?, b.get(end..)?))
}

/// UTCTime (0x17, YYMMDDHHMMSSZ) or GeneralizedTime (0x18, YYYYMMDDHHMMSSZ).
fn parse_der_time(tag: u8, t: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(t).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    if rest.len() != 10 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| rest.get(r)?.parse::<i64>().ok();
    let (month, day) = (num(0..2)?, num(2..4)?);
    let (h, m, sec) = (num(4..6)?, num(6..8)?, num(8..10)?);
    Some(days_from_civil(year, month, day)? * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The TLS listener and the node's own certificate (also its client
/// certificate towards `tls: true` peers). Relative paths are taken from the
/// config file's directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Port of the TLS listener (2762, the registered DICOM-TLS port; 0 picks
    /// a free one, written to node.json as `tls_port`).
    #[serde(default = "default_tls_port")]
    pub port: u16,
    /// PEM: our certificate, then any intermediates.
    pub certificate: PathBuf,
    /// PEM: its private key, unencrypted.
    pub private_key: PathBuf,
    /// PEM: the CA(s) that client certificates, and the certificates of
    /// `tls: true` peers without their own `tls_ca`, must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Refuse clients without a certificate from `ca` (mutual
    /// authentication, as the PS3.15 secure transport profiles expect).
    #[serde(default = "yes")]
    pub require_client_certificate: bool,
    /// Keep the plaintext listener on `node.port` as well.
    #[serde(default = "yes")]
    pub plaintext: bool,
    /// A client that has not finished its handshake by then is dropped.
    #[serde(default = "default_tls_handshake_timeout_s")]
    pub handshake_timeout_s: u64,
}

fn default_tls_port() -> u16 {
    2762
}
fn default_tls_handshake_timeout_s() -> u64 {
    10
}

impl TlsSection {
    /// How long a client has to finish its handshake (at least 1 s).
    pub fn handshake_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.handshake_timeout_s.max(1))
    }
}

fn yes() -> bool {
    true
}

impl TlsSection {
    /// Every problem of the section, as messages about `network.tls` as a
    /// whole (the files are loaded as the node loads them at start).
    /// `plain_port` is `node.port`.
    pub fn check(&self, plain_port: u16, err: &mut impl FnMut(String)) {
        let tls = self;
        let e = err;
        if tls.plaintext && tls.port == plain_port && tls.port != 0 {
            e(format!(
            "port {} is also node.port; give TLS its own port (2762 is registered for DICOM over TLS) or set plaintext: false",
            tls.port
        ));
        }
        if tls.handshake_timeout_s == 0 {
            e("handshake_timeout_s must be at least 1 second".to_owned());
        }
        let certs = load_certs(&tls.certificate).map_err(|m| e(format!("certificate: {m}")));
        let key = load_key(&tls.private_key).map_err(|m| e(format!("private_key: {m}")));
        let ca = match &tls.ca {
            Some(ca) => load_roots(ca)
                .map(|_| ())
                .map_err(|m| e(format!("ca: {m}"))),
            None if tls.require_client_certificate => {
                e("require_client_certificate is true (the default) but no ca verifies client certificates; set ca, or require_client_certificate: false".to_owned());
                Err(())
            }
            None => Ok(()),
        };
        // Only when each file loads on its own: then what is left to find is a
        // key that does not belong to the certificate.
        if certs.is_ok() && key.is_ok() && ca.is_ok() {
            if let Err(m) = server_config(tls) {
                e(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_times() {
        assert_eq!(parse_der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_der_time(0x17, b"000229120000Z"), Some(951_825_600));
        assert_eq!(
            parse_der_time(0x18, b"20380119031408Z"),
            Some(2_147_483_648)
        );
        assert_eq!(parse_der_time(0x17, b"991301000000Z"), None);
        assert_eq!(parse_der_time(0x17, b"7001010000Z"), None);
        assert_eq!(parse_der_time(0x04, b"700101000000Z"), None);
    }

    #[test]
    fn der_item_rejects_lengths_past_the_end() {
        assert!(der_item(&[0x30, 0x05, 1, 2]).is_none());
        assert!(der_item(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert_eq!(
            der_item(&[0x30, 0x02, 1, 2, 9]),
            Some((0x30, &[1u8, 2][..], &[9u8][..]))
        );
    }

    #[test]
    fn missing_and_empty_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = load_certs(&missing).unwrap_err();
        assert!(e.contains("cannot read") && e.contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let e = load_certs(&empty).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = load_key(&empty).unwrap_err();
        assert!(e.contains("no usable private key"), "{e}");
    }
}
