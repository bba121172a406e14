//! The `http:` section of the node configuration: the address of the HTTP
//! server, its TLS files, its bearer tokens. The HTTP server owns it; the
//! config aggregates it and maps the keys [`HttpSection::check`] reports to
//! lines.

use std::net::{AddrParseError, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The node's HTTP server (`/healthz`, `/readyz`, `/metrics`, `/api/v1`).
/// Off loopback it needs TLS (or a TLS-ending reverse proxy in front,
/// `behind_proxy: true`) and bearer tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// `ip:port`; empty turns the HTTP server off.
    #[serde(default = "default_http_address")]
    pub address: String,
    /// HTTPS with these PEM files; absent: plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<HttpTlsSection>,
    /// A reverse proxy in front ends TLS: plain HTTP off loopback is allowed.
    #[serde(default)]
    pub behind_proxy: bool,
    /// YAML list of bearer tokens (name, sha256, role, ae_title); required
    /// off loopback, optional on it (without it loopback needs no token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<PathBuf>,
    /// Largest request body accepted, bytes (larger: 413).
    #[serde(default = "default_http_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Origins (`https://viewer.example.org`, or `*`) whose web pages may
    /// call DICOMweb (`/dicom-web`) from a browser, a viewer such as OHIF;
    /// empty: none (no CORS headers are sent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors_origins: Vec<String>,
}

/// TLS for the HTTP server (`http.tls`): HTTPS with this certificate and key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTlsSection {
    /// PEM: the server certificate, then any intermediates.
    pub certificate: PathBuf,
    /// PEM: its private key, unencrypted.
    pub private_key: PathBuf,
}

fn default_http_address() -> String {
    "127.0.0.1:8080".to_owned()
}
fn default_http_max_body_bytes() -> u64 {
    65_536
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            address: default_http_address(),
            tls: None,
            behind_proxy: false,
            tokens_file: None,
            max_body_bytes: default_http_max_body_bytes(),
            cors_origins: Vec::new(),
        }
    }
}

impl HttpSection {
    /// The address to listen on; `None` when the server is off.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, AddrParseError> {
        let a = self.address.trim();
        if a.is_empty() {
            return Ok(None);
        }
        a.parse().map(Some)
    }

    /// What is wrong with this section, as (key, message): an address that
    /// does not parse, and off loopback neither TLS nor `behind_proxy`, or
    /// no tokens file. `serve --http` overrides are checked with it too.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.max_body_bytes == 0 {
            out.push(("max_body_bytes", "must be at least 1".to_owned()));
        }
        for o in &self.cors_origins {
            if let Err(m) = check_origin(o) {
                out.push(("cors_origins", m));
            }
        }
        let addr = match self.listen_addr() {
            Ok(a) => a,
            Err(_) => {
                out.push((
                    "address",
                    format!(
                        "{:?} is not ip:port (empty turns the HTTP server off)",
                        self.address
                    ),
                ));
                return out;
            }
        };
        if let Some(t) = &self.tls {
            if t.certificate.as_os_str().is_empty() || t.private_key.as_os_str().is_empty() {
                out.push((
                    "tls",
                    "certificate and private_key must not be empty".to_owned(),
                ));
            }
        }
        let Some(addr) = addr else {
            return out;
        };
        if !addr.ip().is_loopback() {
            if self.tls.is_none() && !self.behind_proxy {
                out.push((
                    "address",
                    format!(
                        "{addr} is not a loopback address: set http.tls (certificate and \
                         private_key) or http.behind_proxy: true (TLS ended by a reverse proxy)"
                    ),
                ));
            }
            if self.tokens_file.is_none() {
                out.push((
                    "tokens_file",
                    format!(
                        "{addr} is not a loopback address: bearer tokens are required \
                         (see `rtnode http-token`)"
                    ),
                ));
            }
        }
        out
    }

    /// Every problem of the section, as (key under `http`, message): those
    /// of [`HttpSection::problems`], then the TLS files and the tokens file
    /// as the node reads them at start.
    pub fn check(&self, err: &mut impl FnMut(&str, String)) {
        for (key, msg) in self.problems() {
            err(key, msg);
        }
        if let Some(t) = &self.tls {
            if let Err(m) = crate::tls::http_server_config(&t.certificate, &t.private_key) {
                err("tls", m);
            }
        }
        if let Some(f) = &self.tokens_file {
            if let Err(e) = super::tokens::TokensFile::load(f) {
                err("tokens_file", e.to_string());
            }
        }
    }
}

/// An origin as browsers send it (RFC 6454): `scheme://host[:port]` with
/// http or https, nothing after the authority; or `*`, any origin (safe
/// only because DICOMweb authenticates with bearer tokens, never cookies).
pub fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("{origin:?}: an origin is http:// or https:// and a host, or *"))?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!(
            "{origin:?}: an origin is scheme://host[:port], with no path or trailing slash"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::check_origin;

    #[test]
    fn origins() {
        for ok in [
            "*",
            "https://viewer.example.org",
            "http://localhost:3000",
            "http://[::1]:3000",
        ] {
            assert!(check_origin(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "viewer.example.org",
            "https://viewer.example.org/",
            "https://viewer.example.org/ohif",
            "ftp://x",
            "http://x:0",
            "http://x:99999",
            "https://",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }
}
