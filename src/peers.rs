//! The DICOM peers this node talks to (`ae-titles.yaml`): who may send to
//! us, where results go, how to reach each AE. The types and the checks of
//! one entry live here, below everything that uses them (SCP, SCU, export,
//! TLS); loading the file and mapping problems to lines is `config`'s.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Longest AE title DICOM allows (PS3.5, VR AE).
const AE_TITLE_MAX_LEN: usize = 16;

fn yes() -> bool {
    true
}

/// The list of DICOM peers (`ae-titles.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeersFile {
    /// Every peer, in file order; with `network.require_known_callers`, only these AEs may associate.
    #[serde(default)]
    pub peers: Vec<Peer>,
}

/// One remote AE: who it is, where it listens, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The peer's AE title (at most 16 characters), matched against the Calling AE Title.
    pub ae_title: String,
    /// IP address or hostname; used to reach the peer and, with
    /// `network.check_peer_address`, to check where an association comes from.
    pub host: String,
    /// TCP port the peer listens on for our outgoing associations.
    pub port: u16,
    /// Whether this AE may send (C-STORE) to us.
    #[serde(default = "yes")]
    pub may_store: bool,
    /// Whether derived objects (RTSTRUCT, reports) are sent to this AE.
    #[serde(default)]
    pub receives_results: bool,
    /// Free text for people (site, system); None when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// SOP classes this AE accepts (UIDs or dictionary keywords such as
    /// `RTStructureSetStorage`); empty means every class. A TPS that refuses
    /// Encapsulated PDF is listed without it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sop_classes: Vec<String>,
    /// Results of courses this AE sent go back to it (it needs host and port).
    #[serde(default)]
    pub results_to_sender: bool,
    /// We connect to this AE over TLS (its port is its TLS port).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    /// PEM CA bundle its server certificate must chain to (default:
    /// `network.tls.ca`); relative to the peers file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// The name its certificate must carry (default: `host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

impl Peer {
    /// TLS towards this peer, or `None` when it is not marked `tls: true`.
    pub fn client_tls(
        &self,
        node: Option<&crate::tls::TlsSection>,
    ) -> Result<Option<crate::tls::ClientTls>, String> {
        if !self.tls {
            return Ok(None);
        }
        crate::tls::client_config(
            node,
            self.tls_ca.as_deref(),
            &self.host,
            self.tls_server_name.as_deref(),
        )
        .map(Some)
        .map_err(|e| format!("TLS towards {}: {e}", self.ae_title.trim()))
    }
}

impl Peer {
    /// Whether this AE takes objects of `sop_class_uid`.
    pub fn accepts(&self, sop_class_uid: &str) -> bool {
        self.sop_classes.is_empty()
            || self.sop_classes.iter().any(|c| {
                c == sop_class_uid
                    || crate::dicom::uids::sop_class_keyword_uid(c) == Some(sop_class_uid)
            })
    }
}

impl PeersFile {
    /// Finds a peer by AE title. Leading and trailing spaces are not
    /// significant in an AE title (PS3.5) but case is.
    pub fn find(&self, ae: &str) -> Option<&Peer> {
        let ae = ae.trim();
        self.peers.iter().find(|p| p.ae_title.trim() == ae)
    }

    /// Peers that derived results are sent to.
    pub fn result_receivers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter().filter(|p| p.receives_results)
    }
}

impl Peer {
    /// Every problem of this entry on its own, as (key, message); a
    /// duplicate AE title and a TLS peer without a CA are found by the
    /// config's validation, which sees the whole file and the node's config.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Err(m) = check_ae_title(&self.ae_title) {
            out.push(("ae_title", m));
        }
        if let Err(m) = check_host(&self.host) {
            out.push(("host", m));
        }
        if self.port == 0 {
            out.push(("port", "must be between 1 and 65535".to_owned()));
        }
        if let Some(ca) = &self.tls_ca {
            if let Err(m) = crate::tls::load_roots(ca) {
                out.push(("tls_ca", m));
            }
        }
        if let Some(name) = &self.tls_server_name {
            if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                out.push((
                    "tls_server_name",
                    format!("{name:?} is neither a DNS name nor an IP address"),
                ));
            }
        }
        if !self.tls && (self.tls_ca.is_some() || self.tls_server_name.is_some()) {
            out.push((
                "tls",
                "tls_ca or tls_server_name given but tls is not true".to_owned(),
            ));
        }
        out
    }
}

/// Checks that a string is a usable AE title (PS3.5 VR AE): at most 16
/// characters from the default repertoire, no backslash (it separates
/// values), and not only spaces (spaces are padding).
pub fn check_ae_title(ae: &str) -> Result<(), String> {
    if ae.trim().is_empty() {
        return Err("AE title must not be empty or only spaces".to_owned());
    }
    let len = ae.chars().count();
    if len > AE_TITLE_MAX_LEN {
        return Err(format!(
            "AE title {ae:?} is {len} characters long; DICOM allows at most {AE_TITLE_MAX_LEN}"
        ));
    }
    if ae.contains('\\') {
        // Debug formatting would double the backslash and confuse the reader.
        return Err(format!(
            "AE title \"{ae}\" contains a backslash, which DICOM reserves as a value separator"
        ));
    }
    if let Some(c) = ae.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "AE title {ae:?} contains {c:?}; only printable ASCII is allowed"
        ));
    }
    Ok(())
}

/// Checks that a string is an IP address or an RFC 1123 hostname
/// (underscores allowed).
pub fn check_host(host: &str) -> Result<(), String> {
    if host.trim().is_empty() {
        return Err("host must not be empty".to_owned());
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    // Underscores are not RFC 1123 but turn up in hospital Windows names,
    // and the resolver copes with them.
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "host {host:?} is neither an IP address nor a valid hostname"
        ))
    }
}
