//! The `cohort:` section of the node configuration (`rtnode export`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The research cohort export (`rtnode export`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CohortSection {
    /// Secret key file for `--pseudonymise` (relative to this config's
    /// directory); `rtnode export --pseudonym-key` overrides it.
    #[serde(default)]
    pub pseudonym_key_file: Option<PathBuf>,
}
