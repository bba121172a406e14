//! The `network:` section of the node configuration: associations, PDU
//! sizes, who may call, timeouts, metrics and DICOM over TLS. The SCP owns
//! it; the config aggregates it and maps the keys
//! [`NetworkSection::check`] reports to lines.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Smallest maximum PDU length we are willing to announce. Below this the
/// per-PDU overhead dominates and some peers refuse the association.
pub const MIN_PDU_LENGTH: u32 = 4096;
/// Largest maximum PDU length we are willing to announce; larger values buy
/// nothing on a LAN and multiply per-association memory.
pub const MAX_PDU_LENGTH: u32 = 16_777_216;

/// The `network` section of the configuration: how the DICOM SCP accepts and limits associations.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Associations served at once (default 16); further requests are rejected as transient.
    #[serde(default = "default_max_associations")]
    pub max_associations: u32,
    /// The maximum PDU length we announce in A-ASSOCIATE.
    #[serde(default = "default_max_pdu_length")]
    pub max_pdu_length: u32,
    /// Some peers ignore the announced maximum; rather than abort their
    /// associations we accept PDUs up to this size.
    #[serde(default = "default_max_pdu_hard_limit")]
    pub max_pdu_hard_limit: u32,
    /// Reject calling AE titles not in the peers file with `may_store` (default true).
    #[serde(default = "yes")]
    pub require_known_callers: bool,
    /// Also require the connection to come from the peer's configured host (default false).
    #[serde(default)]
    pub check_peer_address: bool,
    /// Seconds without a PDU before an association is aborted (default 120).
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u64,
    /// Serve the admin socket `<data-dir>/admin.sock` that `status` and other commands ask (default true).
    #[serde(default = "yes")]
    pub admin_socket: bool,
    /// Prometheus metrics over HTTP at this address (`ip:port`; empty: off).
    /// Loopback by default: the figures name AE titles of the hospital.
    #[serde(default = "default_metrics_address")]
    pub metrics_address: String,
    /// DICOM over TLS; absent: plaintext only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::TlsSection>,
}

fn yes() -> bool {
    true
}
fn default_max_associations() -> u32 {
    16
}
fn default_max_pdu_length() -> u32 {
    262_144
}
fn default_max_pdu_hard_limit() -> u32 {
    MAX_PDU_LENGTH
}
fn default_idle_timeout_s() -> u64 {
    120
}
fn default_metrics_address() -> String {
    "127.0.0.1:9464".to_owned()
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            max_associations: default_max_associations(),
            max_pdu_length: default_max_pdu_length(),
            max_pdu_hard_limit: default_max_pdu_hard_limit(),
            require_known_callers: true,
            check_peer_address: false,
            idle_timeout_s: default_idle_timeout_s(),
            admin_socket: true,
            metrics_address: default_metrics_address(),
            tls: None,
        }
    }
}

impl NetworkSection {
    /// `idle_timeout_s` as a `Duration`.
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.idle_timeout_s)
    }

    /// Every problem of the section but its `tls` (checked by
    /// [`crate::tls::TlsSection::check`]), as (key under `network`, message).
    pub fn check(&self, err: &mut impl FnMut(&str, String)) {
        if self.max_associations == 0 {
            err("max_associations", "must be at least 1".to_owned());
        }
        let pdu_ok = (MIN_PDU_LENGTH..=MAX_PDU_LENGTH).contains(&self.max_pdu_length);
        if !pdu_ok {
            err(
                "max_pdu_length",
                format!(
                    "{} is outside {MIN_PDU_LENGTH}..={MAX_PDU_LENGTH}",
                    self.max_pdu_length
                ),
            );
        }
        // Only meaningful against a valid max_pdu_length; otherwise the first
        // error already says what to fix.
        if pdu_ok && self.max_pdu_hard_limit < self.max_pdu_length {
            err(
                "max_pdu_hard_limit",
                format!(
                    "{} is below max_pdu_length ({}); we would reject PDUs of the size we announce",
                    self.max_pdu_hard_limit, self.max_pdu_length
                ),
            );
        }
        if !self.metrics_address.trim().is_empty()
            && self.metrics_address.trim().parse::<SocketAddr>().is_err()
        {
            err(
                "metrics_address",
                format!(
                    "{:?} is not ip:port (empty turns metrics off)",
                    self.metrics_address
                ),
            );
        }
        // Zero would make every read time out at once rather than disable the
        // timeout; a dead peer must not hold an association slot forever.
        if self.idle_timeout_s == 0 {
            err("idle_timeout_s", "must be at least 1 second".to_owned());
        }
    }
}
