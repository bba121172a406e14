//! The `storage:` section of the node configuration, with its
//! `retention:` sub-section (kept here rather than in `retention`, which
//! itself uses the store). The store owns them; the config aggregates
//! them and maps the keys [`StorageSection::check`] reports to lines.

use serde::{Deserialize, Serialize};

/// The `storage:` configuration section: durability, the free-space
/// watermark, the index cache and optional retention.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Without fsync a power cut after C-STORE success can lose an object
    /// the sender believes is safe and will not resend.
    #[serde(default = "default_fsync")]
    pub fsync: bool,
    /// Below this much free space (bytes) on the data directory, new
    /// instances are refused.
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
    /// Purge courses with no activity for `older_than`, checked every
    /// `check_every` by the running node; absent: nothing is purged.
    #[serde(default)]
    pub retention: Option<RetentionSection>,
    /// Page cache of the instance index (index.redb), MiB. Default 64: the
    /// index's resident memory is capped by it, whatever the archive size.
    #[serde(default = "default_index_cache_mb")]
    pub index_cache_mb: u64,
}

fn default_index_cache_mb() -> u64 {
    64
}

impl StorageSection {
    /// `index_cache_mb` in bytes.
    pub fn index_cache_bytes(&self) -> usize {
        (self.index_cache_mb.saturating_mul(1024 * 1024)).min(usize::MAX as u64) as usize
    }
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            fsync: default_fsync(),
            min_free_bytes: default_min_free_bytes(),
            retention: None,
            index_cache_mb: default_index_cache_mb(),
        }
    }
}

fn default_fsync() -> bool {
    true
}
fn default_min_free_bytes() -> u64 {
    1 << 30
}

impl StorageSection {
    /// Every problem of the section, as (key under `storage`, message).
    pub fn check(&self, err: &mut impl FnMut(&str, String)) {
        if !(4..=65536).contains(&self.index_cache_mb) {
            err(
                "index_cache_mb",
                format!(
                    "{} MiB is outside 4..65536 (the index's page cache; default 64)",
                    self.index_cache_mb
                ),
            );
        }
        if let Some(r) = &self.retention {
            if let Err(m) = r.older_than() {
                err("retention", m);
            }
            if let Err(m) = r.check_every() {
                err("retention", m);
            }
        }
    }
}

/// The `storage.retention:` section. Durations as humantime writes them:
/// `90d`, `12h`, `1h 30m`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// How long a course must have been without activity before it is
    /// purged, e.g. `3650d`.
    pub older_than: String,
    /// How often the running node looks for courses to purge; at least
    /// 1 s, default `1h`.
    #[serde(default = "default_retention_check_every")]
    pub check_every: String,
}

fn default_retention_check_every() -> String {
    "1h".into()
}

impl RetentionSection {
    /// `older_than` parsed; Err with a message for the config check when it
    /// is not a duration.
    pub fn older_than(&self) -> Result<std::time::Duration, String> {
        humantime::parse_duration(self.older_than.trim())
            .map_err(|e| format!("older_than {:?}: {e}", self.older_than))
    }

    /// `check_every` parsed; Err with a message when it is not a duration or
    /// is below 1 s.
    pub fn check_every(&self) -> Result<std::time::Duration, String> {
        let d = humantime::parse_duration(self.check_every.trim())
            .map_err(|e| format!("check_every {:?}: {e}", self.check_every))?;
        if d < std::time::Duration::from_secs(1) {
            return Err(format!("check_every {:?} is below 1 s", self.check_every));
        }
        Ok(d)
    }
}
