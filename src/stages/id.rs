//! The names of the stages, as one enum: what the pipeline schedules by,
//! what the state database and every JSON file store (as the same strings
//! as always: `organize`, `segmentation`, …), and the order stages are
//! shown in.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A stage of the pipeline. Serialised, displayed and parsed as its name
/// ([`StageId::as_str`]); [`StageId::ALL`] is the order the pipeline runs
/// them in, every stage after those it depends on.
///
/// It hashes and orders as its name and borrows as `str` (as `String`
/// does), so that a map keyed by stage can be looked up by a name read
/// from a file or a request, and sorted maps keep the order they had when
/// their keys were strings. [`StageId::ALL`] is the run order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageId {
    /// The planning image series as one volume.
    Organize,
    /// Contours of the planning CT, as an RT Structure Set.
    Segmentation,
    /// Checks of the course's objects.
    Qc,
    /// Dose-volume histograms and metrics.
    Dvh,
    /// Radiomics features of the ROIs.
    Radiomics,
    /// The course report (PDF, and encapsulated in DICOM).
    Report,
    /// Sending results to their destinations (a serving node only).
    Export,
}

impl StageId {
    /// Every stage, in the order the pipeline runs them (`export` last).
    pub const ALL: [StageId; 7] = [
        StageId::Organize,
        StageId::Segmentation,
        StageId::Qc,
        StageId::Dvh,
        StageId::Radiomics,
        StageId::Report,
        StageId::Export,
    ];

    /// The stage's name: its config key under `pipeline.stages`, its output
    /// folder, its key in the state database.
    pub const fn as_str(self) -> &'static str {
        match self {
            StageId::Organize => "organize",
            StageId::Segmentation => "segmentation",
            StageId::Qc => "qc",
            StageId::Dvh => "dvh",
            StageId::Radiomics => "radiomics",
            StageId::Report => "report",
            StageId::Export => "export",
        }
    }

    /// Its place in [`StageId::ALL`].
    pub fn position(self) -> usize {
        StageId::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or(usize::MAX)
    }
}

/// Every stage's name, in [`StageId::ALL`]'s order. Config keys under
/// `pipeline.stages` are checked against it.
pub const STAGE_NAMES: [&str; 7] = {
    let mut names = [""; 7];
    let mut i = 0;
    while i < names.len() {
        names[i] = StageId::ALL[i].as_str();
        i += 1;
    }
    names
};

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A name that is no stage's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStage(pub String);

impl fmt::Display for UnknownStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a stage (stages: {})",
            self.0,
            STAGE_NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownStage {}

impl FromStr for StageId {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<StageId, UnknownStage> {
        StageId::ALL
            .into_iter()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| UnknownStage(s.to_owned()))
    }
}

// Hash, Ord and Borrow<str> agree: a stage hashes and compares exactly as
// its name does.
impl Hash for StageId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialOrd for StageId {
    fn partial_cmp(&self, other: &StageId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StageId {
    fn cmp(&self, other: &StageId) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Borrow<str> for StageId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for StageId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_as_the_stored_strings() {
        assert_eq!(
            STAGE_NAMES,
            [
                "organize",
                "segmentation",
                "qc",
                "dvh",
                "radiomics",
                "report",
                "export"
            ]
        );
        for id in StageId::ALL {
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{}\"", id.as_str()));
            assert_eq!(serde_json::from_str::<StageId>(&json).unwrap(), id);
            assert_eq!(id.as_str().parse::<StageId>(), Ok(id));
            assert_eq!(id.to_string(), id.as_str());
        }
        assert!("Organize".parse::<StageId>().is_err());
        assert!(serde_json::from_str::<StageId>("\"contour\"").is_err());
        assert_eq!(format!("{:<6}|", StageId::Qc), "qc    |");
    }

    #[test]
    fn a_map_by_stage_is_looked_up_by_name() {
        let m = std::collections::HashMap::from([(StageId::Dvh, 1)]);
        assert_eq!(m.get("dvh"), Some(&1));
        assert_eq!(m.get(&StageId::Dvh), Some(&1));
        assert_eq!(m.get("qc"), None);
    }
}
