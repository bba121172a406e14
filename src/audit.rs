//! The audit trail: who sent and received which patient's data, as JSON
//! lines in `<data-dir>/audit/<UTC date>.jsonl`, one event per line, named
//! after the DICOM audit messages of PS3.15 A.5.3 (Application Activity,
//! DICOM Instances Transferred, DICOM Instances Accessed, Query, Security
//! Alert). Files are appended, never
//! rewritten, and rotate daily; an audit write failure is logged, never
//! allowed to refuse clinical data.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use tracing::warn;

/// One audit event, written as one JSON line; empty text fields are left out.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Event {
    /// When it happened (RFC 3339, UTC); set by `AuditLog::record`.
    pub time: String,
    /// `ApplicationActivity`, `DICOMInstancesTransferred`, `SecurityAlert`.
    pub event: &'static str,
    /// `started`/`stopped`, `received`/`sent`/`refused`, `association-rejected`.
    pub action: &'static str,
    /// AE title of the association's requester.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub calling_ae: String,
    /// AE title the requester called.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub called_ae: String,
    /// Network address of the peer, `ip:port`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub peer: String,
    /// PatientID (0010,0020) of the data concerned.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub patient_id: String,
    /// StudyInstanceUID of the data concerned.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub study_instance_uid: String,
    /// SOPInstanceUID of the instance concerned.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sop_instance_uid: String,
    /// SOPClassUID of the instance concerned.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sop_class_uid: String,
    /// The result in words or as a DICOM status (`0000` success), or the error text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub outcome: String,
    /// Who did it over the HTTP API: the bearer token's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// What was read or acted on over the HTTP API (method and path).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub object: String,
}

/// The append-only audit log under `<data-dir>/audit/`, one file per UTC day.
pub struct AuditLog {
    dir: PathBuf,
    current: Mutex<Option<(String, File)>>,
}

impl AuditLog {
    /// Opens (creating if needed) `<data_dir>/audit/`; files are opened on the first event of each day.
    pub fn open(data_dir: &Path) -> std::io::Result<AuditLog> {
        let dir = data_dir.join("audit");
        std::fs::create_dir_all(&dir)?;
        Ok(AuditLog {
            dir,
            current: Mutex::new(None),
        })
    }

    /// Stamps `ev` with the current time and appends it to today's file; failures are logged, never returned.
    pub fn record(&self, mut ev: Event) {
        ev.time = crate::time::now_rfc3339();
        let day = ev.time.get(..10).unwrap_or("unknown").to_string();
        let line = match serde_json::to_string(&ev) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot encode an audit event");
                return;
            }
        };
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.as_ref().is_none_or(|(d, _)| *d != day) {
            let path = self.dir.join(format!("{day}.jsonl"));
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => *cur = Some((day, f)),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot open the audit log");
                    return;
                }
            }
        }
        if let Some((_, f)) = cur.as_mut() {
            if let Err(e) = writeln!(f, "{line}") {
                warn!(error = %e, "cannot write the audit log");
            }
        }
    }
}
