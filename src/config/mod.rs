//! Node configuration (`conf/rtnode.yaml`) and the peers file (`ae-titles.yaml`).
//!
//! Loading is strict: unknown keys, wrong types and out-of-range values are
//! errors rather than silently ignored, because a typo in a DICOM node's
//! config (say `requre_known_callers: true`) would otherwise fall back to a
//! default and quietly change who may send patient data to us.
//!
//! [`validate`] goes further than the loaders and collects every problem it
//! can find in both files, each with `file:line:column`, so that an operator
//! fixes a config in one round instead of one error per restart.
//!
//! Each section's type and its `check()` live with the module that owns the
//! section (`tls`, `http`, `scp`, `store`, `pipeline`, `export`, `cohort`,
//! and the engines' `settings` modules); they report problems by key path
//! in std types, and this module maps the paths to positions in the file.
//! So the dependency runs from `config` to the owners, never back: only the
//! entry points (`node`, `main`, `process`, `demo`, `doctor`, `service`)
//! need the whole [`Config`].

mod error;
mod locator;
mod logging;
mod named;
mod node;
mod peers;
mod validate;

use std::path::{Component, Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use error::{ConfigError, ConfigErrors};
use locator::Pos;
pub use logging::{LogFormat, LoggingSection};
pub use named::{load_named, load_named_or_default};
pub use node::NodeSection;
pub use peers::{check_peers_against_config, load_peers, parse_peers_str};
pub use validate::validate;

/// Where `rtnode` looks for its config when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "conf/rtnode.yaml";
/// Where `rtnode` looks for the peers file when neither `--peers` nor a
/// config file says otherwise (relative to the working directory).
pub const DEFAULT_PEERS_PATH: &str = "ae-titles.yaml";

/// The whole node configuration. `Config::default()` is the embedded
/// configuration used when no file exists at all (e.g. `rtnode demo`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The `node` section: identity, listen address, data directory.
    #[serde(default)]
    pub node: NodeSection,
    /// The `network` section: the SCP's limits, timeouts and TLS.
    #[serde(default)]
    pub network: crate::scp::NetworkSection,
    /// The HTTP server: health, metrics and the REST API.
    #[serde(default)]
    pub http: crate::http::HttpSection,
    /// The `storage` section: fsync, free-space floor, index cache.
    #[serde(default)]
    pub storage: crate::store::settings::StorageSection,
    /// The `logging` section.
    #[serde(default)]
    pub logging: LoggingSection,
    /// The `pipeline` section: course assembly and stages.
    #[serde(default)]
    pub pipeline: crate::pipeline::PipelineSection,
    /// The `export` section: the outbound queue's retries and auto-routing.
    #[serde(default)]
    pub export: crate::export::ExportSection,
    /// The DVH stage: bins, sampling, metrics, constraints, derived
    /// structures, dose choice (see `dvh::DvhSettings`).
    #[serde(default)]
    pub dvh: crate::dvh::DvhSettings,
    /// The segmentation stage: the built-in body contour and the registry
    /// of TorchScript models (see `segmentation::settings`).
    #[serde(default)]
    pub segmentation: crate::segmentation::settings::SegmentationSection,
    /// The radiomics stage: pyradiomics parameter file, ROI selection and
    /// the worker processes (see `radiomics::settings::RadiomicsSection`).
    #[serde(default)]
    pub radiomics: crate::radiomics::settings::RadiomicsSection,
    /// Auto-routing: instances matching a rule are forwarded to its
    /// destinations through the outbound queue.
    #[serde(default)]
    pub routing: Vec<crate::export::RoutingRule>,
    /// The research cohort export.
    #[serde(default)]
    pub cohort: crate::cohort::settings::CohortSection,
    /// The course report: which VxGy metrics it lists and its fonts.
    #[serde(default)]
    pub report: crate::report::settings::ReportSection,
    /// The file this config was read from; relative paths inside the config
    /// are resolved against its directory.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The text it was read from, for stage runs in other processes
    /// (`rtnode run-stage` on a cluster reads the same settings).
    #[serde(skip)]
    pub source_text: Option<String>,
}

impl Config {
    /// The stages as this config configures them (its `dvh`,
    /// `segmentation`, `radiomics` and `report` sections), with `export`
    /// last when given: the one list the node, `rtnode process` and a Slurm
    /// run build. Fails when a configured model cannot be loaded.
    pub fn stages(
        &self,
        export: Option<crate::stages::export::Export>,
    ) -> anyhow::Result<crate::stages::Registry> {
        let base_dir = self.base_dir();
        crate::stages::Registry::configured(
            &crate::stages::StageSettings {
                dvh: &self.dvh,
                segmentation: &self.segmentation,
                radiomics: &self.radiomics,
                report: &self.report,
                base_dir: &base_dir,
            },
            export,
        )
    }

    /// The file this config was read from and its text, for stage runs in
    /// other processes; `None` for the embedded defaults.
    pub fn source_and_text(&self) -> Option<(&Path, &str)> {
        Some((self.source.as_deref()?, self.source_text.as_deref()?))
    }

    /// Same as [`load_config`].
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        load_config(path)
    }

    /// The directory relative paths inside the config (model files) are
    /// taken from: the config file's, or the working directory for the
    /// embedded defaults.
    pub fn base_dir(&self) -> PathBuf {
        self.source
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// `cohort.pseudonym_key_file`, relative to the config file's directory.
    pub fn resolved_pseudonym_key_file(&self) -> Option<PathBuf> {
        let rel = self.cohort.pseudonym_key_file.as_ref()?;
        Some(match &self.source {
            Some(src) if rel.is_relative() => src.parent().unwrap_or(Path::new("")).join(rel),
            _ => rel.clone(),
        })
    }

    /// The peers file named by `node.peers_file`. A relative path is taken
    /// relative to the config file's directory, so the node behaves the same
    /// whatever the working directory. Without a source file (embedded
    /// defaults) it is taken relative to the directory of
    /// [`DEFAULT_CONFIG_PATH`], which makes the default land on
    /// [`DEFAULT_PEERS_PATH`] in the working directory.
    pub fn resolved_peers_file(&self) -> PathBuf {
        let rel = &self.node.peers_file;
        if rel.is_absolute() {
            return rel.clone();
        }
        match &self.source {
            // A plain join keeps `..` for the OS to resolve, which is right
            // when the config directory is a symlink.
            Some(src) => src.parent().unwrap_or(Path::new("")).join(rel),
            // The default config directory may not exist, and `conf/..`
            // fails to open when `conf` is missing, so resolve lexically.
            None => lexical_join(
                Path::new(DEFAULT_CONFIG_PATH)
                    .parent()
                    .unwrap_or(Path::new("")),
                rel,
            ),
        }
    }
}

/// `rel` taken from `base` with `.` and `..` resolved on the path alone.
fn lexical_join(base: &Path, rel: &Path) -> PathBuf {
    let mut out = base.to_path_buf();
    for comp in rel.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                let can_pop = matches!(out.components().next_back(), Some(Component::Normal(_)));
                if can_pop {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Reads and checks a node config. Relative paths in it are resolved against
/// `path`'s directory.
pub fn load_config(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read_file(path)?;
    parse_config_str(&text, path)
}

/// Parses and checks a node config held in memory; `file` is used for error
/// messages and as the base for relative paths.
pub fn parse_config_str(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let mut config: Config = parse_yaml(text, file)?;
    config.source = Some(file.to_path_buf());
    config.source_text = Some(text.to_owned());
    resolve_paths(&mut config, file);
    let errors = validate::check_config(&config, text, file);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn read_file(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path, None, format!("cannot read file: {e}")).into())
}

fn parse_yaml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, ConfigErrors> {
    serde_yaml_ng::from_str(text).map_err(|e| yaml_error(&e, file).into())
}

fn yaml_error(err: &serde_yaml_ng::Error, file: &Path) -> ConfigError {
    let mut message = err.to_string();
    let pos = err.location().map(|loc| Pos {
        line: loc.line(),
        column: loc.column(),
    });
    if let Some(p) = pos {
        // The location goes in front, as in every other error; drop the
        // copy serde_yaml_ng appends to the message.
        let suffix = format!(" at line {} column {}", p.line, p.column);
        if let Some(i) = message.find(&suffix) {
            message.replace_range(i..i + suffix.len(), "");
        }
    }
    ConfigError::new(file, pos, message)
}

/// Relative paths inside the sections are taken from the config file's
/// directory (model files are resolved later, against [`Config::base_dir`]).
fn resolve_paths(config: &mut Config, file: &Path) {
    if let Some(tls) = &mut config.network.tls {
        for p in [&mut tls.certificate, &mut tls.private_key] {
            *p = resolve_relative(file, p);
        }
        if let Some(ca) = &mut tls.ca {
            *ca = resolve_relative(file, ca);
        }
    }
    let http = &mut config.http;
    if let Some(t) = &mut http.tls {
        for p in [&mut t.certificate, &mut t.private_key] {
            *p = resolve_relative(file, p);
        }
    }
    if let Some(f) = &mut http.tokens_file {
        *f = resolve_relative(file, f);
    }
}

/// `p` taken from the directory of the file `base`, unless absolute.
fn resolve_relative(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || p.as_os_str().is_empty() {
        return p.to_path_buf();
    }
    base.parent().unwrap_or(Path::new("")).join(p)
}

#[cfg(test)]
mod tests;
