//! Pseudonymisation of the cohort tables with a secret key (blake3 in keyed
//! mode, a MAC): the same patient gets the same pseudonym in every export
//! made with the same key, and nobody without the key can recompute it from
//! a guessed PatientID.
//!
//! What happens to each kind of column (see `table::Kind`):
//! - patient ID and patient name: both become the patient's pseudonym
//!   `P-<16 hex>` (keyed hash of issuer and PatientID);
//! - course id (it starts with the PatientID): `C-<16 hex>`;
//! - UIDs (study, series, SOP instances): `2.25.<decimal>` of a keyed hash,
//!   so joins between tables and across exports still work;
//! - dates and times (study date, birth date, version and completion
//!   times): removed, not shifted;
//! - free text (descriptions, labels, plan names, QC findings): removed;
//! - measured values copied from stage tables (radiomics): a column with
//!   any non-numeric value is removed (pyradiomics diagnostics carry paths
//!   and hashes);
//! - kept: numbers, ROI names (the analysis needs them), codes such as
//!   patient sex, plan intent, dose type, treatment machine name.
//!
//! Last, every remaining text cell of a row is checked for the original
//! PatientID and name of its course; a match is blanked and counted.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};

use super::table::{Cell, Kind, Table};

/// Context string of blake3's key derivation: a key file of any format
/// becomes the 32-byte MAC key.
const KEY_CONTEXT: &str = "rtnode 2026 cohort export pseudonym key v1";

/// Replaces identifiers in the cohort tables with keyed pseudonyms (see
/// the module comment for what happens to each kind of column).
pub struct Pseudonymiser {
    key: [u8; 32],
}

/// The original identity behind a course id, for the final check.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// PatientID (0010,0020) as stored.
    pub patient_id: String,
    /// PatientName (0010,0010) in DICOM PN form (`Family^Given`).
    pub patient_name: String,
    /// IssuerOfPatientID (0010,0021); empty when absent.
    pub issuer: String,
}

impl Pseudonymiser {
    /// Reads the secret key from a file: its content, trimmed of white
    /// space, of any format but at least 16 bytes (e.g. 32 random bytes in
    /// base64), derived into the 32-byte MAC key.
    pub fn from_key_file(path: &Path) -> Result<Pseudonymiser> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the pseudonym key {}", path.display()))?;
        let trimmed = String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec();
        anyhow::ensure!(
            trimmed.len() >= 16,
            "the pseudonym key {} holds {} bytes; at least 16 are needed (e.g. `head -c 32 /dev/urandom | base64 > {}`)",
            path.display(),
            trimmed.len(),
            path.display()
        );
        Ok(Pseudonymiser {
            key: blake3::derive_key(KEY_CONTEXT, &trimmed),
        })
    }

    fn mac(&self, domain: &str, value: &str) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(domain.as_bytes());
        h.update(&[0]);
        h.update(value.as_bytes());
        h.finalize()
    }

    /// The patient's pseudonym, `P-<16 hex>`, from issuer and PatientID.
    pub fn patient(&self, issuer: &str, patient_id: &str) -> String {
        let h = self.mac("patient", &format!("{issuer}\\{patient_id}"));
        format!("P-{}", &h.to_hex()[..16])
    }

    /// A course id's pseudonym, `C-<16 hex>`.
    pub fn course(&self, course_id: &str) -> String {
        format!("C-{}", &self.mac("course", course_id).to_hex()[..16])
    }

    /// A UID under the 2.25 root (PS3.5 B.2): a 128-bit number.
    pub fn uid(&self, uid: &str) -> String {
        let h = self.mac("uid", uid);
        let mut b = [0u8; 16];
        b.copy_from_slice(&h.as_bytes()[..16]);
        format!("2.25.{}", u128::from_be_bytes(b))
    }

    /// Applies the rules above to a table. `identities` maps each original
    /// course id to its patient; returns the cells blanked by the final
    /// check.
    pub fn apply(&self, table: &mut Table, identities: &HashMap<String, Identity>) -> usize {
        table.retain_columns(|c, cells| match c.kind {
            Kind::Date | Kind::FreeText => false,
            Kind::Measure => cells
                .iter()
                .all(|c| matches!(c, Cell::Null | Cell::Num(_) | Cell::Int(_))),
            _ => true,
        });
        let course_col = table.columns.iter().position(|c| c.kind == Kind::CourseId);
        let kinds: Vec<Kind> = table.columns.iter().map(|c| c.kind).collect();
        let mut blanked = 0;
        for row in &mut table.rows {
            let who = course_col
                .and_then(|i| match &row[i] {
                    Cell::Text(id) => identities.get(id).cloned(),
                    _ => None,
                })
                .unwrap_or_default();
            for (cell, kind) in row.iter_mut().zip(&kinds) {
                let Cell::Text(s) = cell else { continue };
                *s = match kind {
                    Kind::PatientId | Kind::PatientName => {
                        self.patient(&who.issuer, &who.patient_id)
                    }
                    Kind::CourseId => self.course(s),
                    Kind::Uids => s
                        .split_whitespace()
                        .map(|u| self.uid(u))
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ => std::mem::take(s),
                };
            }
            for (cell, kind) in row.iter_mut().zip(&kinds) {
                if let Cell::Text(s) = cell {
                    let leaks =
                        |needle: &str| needle.trim().len() >= 3 && s.contains(needle.trim());
                    let ours = matches!(kind, Kind::PatientId | Kind::PatientName);
                    if !ours && (leaks(&who.patient_id) || leaks(&who.patient_name)) {
                        *cell = Cell::Null;
                        blanked += 1;
                    }
                }
            }
        }
        blanked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohort::table::Row;

    fn with_key(k: &str) -> Pseudonymiser {
        Pseudonymiser {
            key: blake3::derive_key(KEY_CONTEXT, k.as_bytes()),
        }
    }

    #[test]
    fn same_key_same_pseudonym_other_key_other() {
        let a = with_key("0123456789abcdef");
        let b = with_key("fedcba9876543210");
        assert_eq!(
            a.patient("", "PID1"),
            with_key("0123456789abcdef").patient("", "PID1")
        );
        assert_ne!(a.patient("", "PID1"), b.patient("", "PID1"));
        assert_ne!(a.patient("", "PID1"), a.patient("", "PID2"));
        let uid = a.uid("1.2.3");
        assert!(uid.starts_with("2.25.") && uid.len() <= 64, "{uid}");
    }

    #[test]
    fn rules_by_kind_and_the_final_check() {
        let p = with_key("0123456789abcdef");
        let mut t = Table::new("t");
        let mut r = Row::default();
        r.put("course_id", Kind::CourseId, Cell::text("PID1-abc"))
            .put("patient_id", Kind::PatientId, Cell::text("PID1"))
            .put("patient_name", Kind::PatientName, Cell::text("Doe^Jane"))
            .put("study_date", Kind::Date, Cell::text("20260101"))
            .put("plan_name", Kind::FreeText, Cell::text("Jane's plan"))
            .put("uids", Kind::Uids, Cell::text("1.2 1.3"))
            .put("roi", Kind::Plain, Cell::text("PTV for PID1"))
            .put("feature", Kind::Measure, Cell::Num(1.0))
            .put("diagnostics", Kind::Measure, Cell::text("/data/PID1/x"));
        t.push(r);
        let ids = HashMap::from([(
            "PID1-abc".to_string(),
            Identity {
                patient_id: "PID1".into(),
                patient_name: "Doe^Jane".into(),
                issuer: String::new(),
            },
        )]);
        let blanked = p.apply(&mut t, &ids);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "course_id",
                "patient_id",
                "patient_name",
                "uids",
                "roi",
                "feature"
            ]
        );
        let row = &t.rows[0];
        assert_eq!(row[1], Cell::Text(p.patient("", "PID1")));
        assert_eq!(row[2], row[1]);
        assert_eq!(row[0], Cell::Text(p.course("PID1-abc")));
        assert_eq!(
            row[3],
            Cell::Text(format!("{} {}", p.uid("1.2"), p.uid("1.3")))
        );
        assert_eq!(row[4], Cell::Null);
        assert_eq!(blanked, 1);
    }
}
