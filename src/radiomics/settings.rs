//! The `radiomics:` section of the node configuration: what the engine
//! extracts (the pyradiomics parameter file, which ROIs), and how its
//! worker processes run. The engine's own settings, so they live here and
//! the config only aggregates them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::params::Params;
use super::pool::PoolOptions;

/// The `radiomics:` section of the node configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RadiomicsSection {
    /// Run the stage at all.
    pub enabled: bool,
    /// A pyradiomics parameter file (YAML); none: pyradiomics' defaults.
    pub params_file: Option<PathBuf>,
    /// ROI names (regular expressions, whole name) left out.
    pub skip: Vec<String>,
    /// ROIs with fewer voxels are left out (pyradiomics' texture classes
    /// are noise on a handful of voxels).
    pub min_voxels: usize,
    /// ROIs with more voxels (the body, say) get the cheap profile: shape
    /// and first order of the Original image only, resampled to
    /// `large_roi_spacing_mm` (x, y, z) when that is set.
    pub large_roi_voxels: usize,
    /// Spacing `[x, y, z]`, mm, to which large ROIs are resampled; none:
    /// their own grid.
    pub large_roi_spacing_mm: Option<[f64; 3]>,
    /// Worker processes; none: cores − 1 (`RTNODE_RADIOMICS_WORKERS` wins).
    pub workers: Option<usize>,
    /// Threads each worker process computes with (at least 1).
    pub threads_per_worker: usize,
    /// Address-space limit per worker, MiB.
    pub memory_mb: u64,
    /// Per ROI and attempt, seconds; the worker is killed after it.
    pub timeout_s: u64,
    /// Attempts per ROI when its worker is lost (crash, timeout, memory
    /// limit), the first included.
    pub attempts: u32,
    /// Wait before the second attempt, ms; doubled for each further one.
    pub backoff_ms: u64,
}

impl Default for RadiomicsSection {
    fn default() -> Self {
        RadiomicsSection {
            enabled: true,
            params_file: None,
            skip: vec![
                "(?i)(body|external|outline|skin)".into(),
                "(?i)(couch|table).*".into(),
            ],
            min_voxels: 64,
            large_roi_voxels: 2_000_000,
            large_roi_spacing_mm: Some([3.0, 3.0, 3.0]),
            workers: None,
            threads_per_worker: 1,
            memory_mb: 4096,
            timeout_s: 600,
            attempts: 3,
            backoff_ms: 1000,
        }
    }
}

impl RadiomicsSection {
    /// Every error of the section as (key, message), for `validate` and
    /// for start-up (a parameter file rtnode cannot honour stops the node).
    pub fn check(&self, base_dir: &Path) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for p in &self.skip {
            if let Err(e) = Regex::new(&format!("^(?:{p})$")) {
                out.push(("skip", format!("{p:?} is not a regular expression: {e}")));
            }
        }
        if let Err(e) = self.params(base_dir) {
            out.push(("params_file", format!("{e:#}")));
        }
        if self.attempts == 0 {
            out.push(("attempts", "must be at least 1".into()));
        }
        if self.timeout_s == 0 {
            out.push(("timeout_s", "must be at least 1".into()));
        }
        if self.memory_mb < 64 {
            out.push(("memory_mb", "must be at least 64".into()));
        }
        if self.workers == Some(0) {
            out.push(("workers", "must be at least 1".into()));
        }
        out
    }

    /// The parameter file's text and what it says.
    pub fn params(&self, base_dir: &Path) -> Result<(String, Params)> {
        match &self.params_file {
            None => Ok((String::new(), Params::default())),
            Some(p) => {
                let path = if p.is_absolute() {
                    p.clone()
                } else {
                    base_dir.join(p)
                };
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading radiomics.params_file {}", path.display()))?;
                let params = Params::from_yaml(&text)
                    .with_context(|| format!("in radiomics parameter file {}", path.display()))?;
                Ok((text, params))
            }
        }
    }

    /// The worker pool's options from this section, the workers running
    /// `exe` (the rtnode binary).
    pub fn pool_options(&self, exe: PathBuf) -> PoolOptions {
        PoolOptions {
            exe,
            workers: PoolOptions::worker_count(self.workers),
            threads_per_worker: self.threads_per_worker.max(1),
            memory_mb: Some(self.memory_mb),
            timeout: Duration::from_secs(self.timeout_s),
            attempts: self.attempts,
            backoff: Duration::from_millis(self.backoff_ms),
            env: Vec::new(),
        }
    }
}
