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

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::net::{AddrParseError, IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};

/// Where `rtnode` looks for its config when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "conf/rtnode.yaml";
/// Where `rtnode` looks for the peers file when neither `--peers` nor a
/// config file says otherwise (relative to the working directory).
pub const DEFAULT_PEERS_PATH: &str = "ae-titles.yaml";

/// Smallest maximum PDU length we are willing to announce. Below this the
/// per-PDU overhead dominates and some peers refuse the association.
pub const MIN_PDU_LENGTH: u32 = 4096;
/// Largest maximum PDU length we are willing to announce; larger values buy
/// nothing on a LAN and multiply per-association memory.
pub const MAX_PDU_LENGTH: u32 = 16_777_216;

/// Longest AE title DICOM allows (PS3.5, VR AE).
const AE_TITLE_MAX_LEN: usize = 16;

fn default_ae_title() -> String {
    "RTNODE".to_owned()
}
fn default_bind() -> String {
    "0.0.0.0".to_owned()
}
fn default_port() -> u16 {
    11112
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/rtnode")
}
fn default_peers_file() -> PathBuf {
    // Relative to the config file's directory: from the shipped
    // conf/rtnode.yaml this is the repository root's ae-titles.yaml.
    PathBuf::from("../ae-titles.yaml")
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
fn default_true() -> bool {
    true
}
fn default_false() -> bool {
    false
}
fn default_idle_timeout_s() -> u64 {
    120
}
fn default_min_free_bytes() -> u64 {
    1 << 30
}
fn default_log_format() -> String {
    "text".to_owned()
}
fn default_log_level() -> String {
    "info".to_owned()
}

/// The whole node configuration. `Config::default()` is the embedded
/// configuration used when no file exists at all (e.g. `rtnode demo`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub node: NodeSection,
    #[serde(default)]
    pub network: NetworkSection,
    /// The HTTP server: health, metrics and the REST API.
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub logging: LoggingSection,
    #[serde(default)]
    pub pipeline: PipelineSection,
    #[serde(default)]
    pub export: ExportSection,
    /// The DVH stage: bins, sampling, metrics, constraints, derived
    /// structures, dose choice (see `dvh::DvhSettings`).
    #[serde(default)]
    pub dvh: crate::dvh::DvhSettings,
    /// The segmentation stage: the built-in body contour and the registry
    /// of TorchScript models (see `segmentation::model`).
    #[serde(default)]
    pub segmentation: crate::segmentation::SegmentationSection,
    /// The radiomics stage: pyradiomics parameter file, ROI selection and
    /// the worker processes (see `radiomics::RadiomicsSection`).
    #[serde(default)]
    pub radiomics: crate::radiomics::RadiomicsSection,
    /// Auto-routing: instances matching a rule are forwarded to its
    /// destinations through the outbound queue.
    #[serde(default)]
    pub routing: Vec<RoutingRule>,
    /// The research cohort export.
    #[serde(default)]
    pub cohort: CohortSection,
    /// The course report: which VxGy metrics it lists and its fonts.
    #[serde(default)]
    pub report: ReportSection,
    /// The file this config was read from; relative paths inside the config
    /// are resolved against its directory.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The text it was read from, for stage runs in other processes
    /// (`rtnode run-stage` on a cluster reads the same settings).
    #[serde(skip)]
    pub source_text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    #[serde(default = "default_ae_title")]
    pub ae_title: String,
    /// Kept as text so that a bad address is reported together with every
    /// other semantic error instead of aborting the parse; see
    /// [`NodeSection::bind_ip`].
    #[serde(default = "default_bind")]
    pub bind: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// As written in the file; use [`Config::resolved_peers_file`].
    #[serde(default = "default_peers_file")]
    pub peers_file: PathBuf,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            ae_title: default_ae_title(),
            bind: default_bind(),
            port: default_port(),
            data_dir: default_data_dir(),
            peers_file: default_peers_file(),
        }
    }
}

impl NodeSection {
    pub fn bind_ip(&self) -> Result<IpAddr, AddrParseError> {
        self.bind.trim().parse()
    }

    /// The address the SCP listens on.
    pub fn listen_addr(&self) -> Result<SocketAddr, AddrParseError> {
        Ok(SocketAddr::new(self.bind_ip()?, self.port))
    }

    /// Unix socket used by `rtnode status` (only when
    /// `network.admin_socket` is on).
    pub fn admin_socket_path(&self) -> PathBuf {
        self.data_dir.join("admin.sock")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    #[serde(default = "default_max_associations")]
    pub max_associations: u32,
    /// The maximum PDU length we announce in A-ASSOCIATE.
    #[serde(default = "default_max_pdu_length")]
    pub max_pdu_length: u32,
    /// Some peers ignore the announced maximum; rather than abort their
    /// associations we accept PDUs up to this size.
    #[serde(default = "default_max_pdu_hard_limit")]
    pub max_pdu_hard_limit: u32,
    #[serde(default = "default_true")]
    pub require_known_callers: bool,
    #[serde(default = "default_false")]
    pub check_peer_address: bool,
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u64,
    #[serde(default = "default_true")]
    pub admin_socket: bool,
    /// Prometheus metrics over HTTP at this address (`ip:port`; empty: off).
    /// Loopback by default: the figures name AE titles of the hospital.
    #[serde(default = "default_metrics_address")]
    pub metrics_address: String,
    /// DICOM over TLS; absent: plaintext only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSection>,
}

/// The TLS listener and the node's own certificate (also its client
/// certificate towards `tls: true` peers). Relative paths are taken from the
/// config file's directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Port of the TLS listener (2762, the registered DICOM-TLS port; 0 picks
    /// a free one, written to node.json as `tls_port`).
    #[serde(default = "default_tls_port")]
    pub port: u16,
    /// PEM: our certificate, then any intermediates.
    pub certificate: PathBuf,
    /// PEM: its private key, unencrypted.
    pub private_key: PathBuf,
    /// PEM: the CA(s) that client certificates, and the certificates of
    /// `tls: true` peers without their own `tls_ca`, must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Refuse clients without a certificate from `ca` (mutual
    /// authentication, as the PS3.15 secure transport profiles expect).
    #[serde(default = "default_true")]
    pub require_client_certificate: bool,
    /// Keep the plaintext listener on `node.port` as well.
    #[serde(default = "default_true")]
    pub plaintext: bool,
    /// A client that has not finished its handshake by then is dropped.
    #[serde(default = "default_tls_handshake_timeout_s")]
    pub handshake_timeout_s: u64,
}

fn default_tls_port() -> u16 {
    2762
}
fn default_tls_handshake_timeout_s() -> u64 {
    10
}

impl TlsSection {
    pub fn handshake_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.handshake_timeout_s.max(1))
    }

    fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.certificate, &mut self.private_key] {
            *p = resolve_relative(base, p);
        }
        if let Some(ca) = &mut self.ca {
            *ca = resolve_relative(base, ca);
        }
    }
}

/// `p` taken from the directory of the file `base`, unless absolute.
fn resolve_relative(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || p.as_os_str().is_empty() {
        return p.to_path_buf();
    }
    base.parent().unwrap_or(Path::new("")).join(p)
}

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
    #[serde(default = "default_false")]
    pub behind_proxy: bool,
    /// YAML list of bearer tokens (name, sha256, role, ae_title); required
    /// off loopback, optional on it (without it loopback needs no token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<PathBuf>,
    /// Largest request body accepted, bytes (larger: 413).
    #[serde(default = "default_http_max_body_bytes")]
    pub max_body_bytes: u64,
}

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

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(t) = &mut self.tls {
            for p in [&mut t.certificate, &mut t.private_key] {
                *p = resolve_relative(base, p);
            }
        }
        if let Some(f) = &mut self.tokens_file {
            *f = resolve_relative(base, f);
        }
    }

    /// What is wrong with this section, as (key, message): an address that
    /// does not parse, and off loopback neither TLS nor `behind_proxy`, or
    /// no tokens file. `serve --http` overrides are checked with it too.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.max_body_bytes == 0 {
            out.push(("max_body_bytes", "must be at least 1".to_owned()));
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
            require_known_callers: default_true(),
            check_peer_address: default_false(),
            idle_timeout_s: default_idle_timeout_s(),
            admin_socket: default_true(),
            metrics_address: default_metrics_address(),
            tls: None,
        }
    }
}

impl NetworkSection {
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.idle_timeout_s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Without fsync a power cut after C-STORE success can lose an object
    /// the sender believes is safe and will not resend.
    #[serde(default = "default_true")]
    pub fsync: bool,
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
            fsync: default_true(),
            min_free_bytes: default_min_free_bytes(),
            retention: None,
            index_cache_mb: default_index_cache_mb(),
        }
    }
}

/// Durations as humantime writes them: `90d`, `12h`, `1h 30m`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    pub older_than: String,
    #[serde(default = "default_retention_check_every")]
    pub check_every: String,
}

fn default_retention_check_every() -> String {
    "1h".into()
}

impl RetentionSection {
    pub fn older_than(&self) -> Result<std::time::Duration, String> {
        humantime::parse_duration(self.older_than.trim())
            .map_err(|e| format!("older_than {:?}: {e}", self.older_than))
    }

    pub fn check_every(&self) -> Result<std::time::Duration, String> {
        let d = humantime::parse_duration(self.check_every.trim())
            .map_err(|e| format!("check_every {:?}: {e}", self.check_every))?;
        if d < std::time::Duration::from_secs(1) {
            return Err(format!("check_every {:?} is below 1 s", self.check_every));
        }
        Ok(d)
    }
}

/// The research cohort export (`rtnode export`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CohortSection {
    /// Secret key file for `--pseudonymise` (relative to this config's
    /// directory); `rtnode export --pseudonym-key` overrides it.
    #[serde(default)]
    pub pseudonym_key_file: Option<PathBuf>,
}

/// The course report (`stages::report`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSection {
    /// VxGy metrics (Gy) listed in the report's appendix, besides those
    /// named in `dvh.constraints`. Default none.
    pub v_gy: Vec<f64>,
    /// Font files in fallback order: each character is drawn in the first
    /// that has it. Relative paths are against this config's directory.
    /// Default DejaVu Sans (fonts-dejavu-core) for Latin, Greek and
    /// Cyrillic, then WenQuanYi Micro Hei (fonts-wqy-microhei) for
    /// Japanese, Korean and Chinese.
    pub fonts: Vec<PathBuf>,
    /// Tried before `fonts` for bold text. Default DejaVu Sans Bold.
    pub bold_fonts: Vec<PathBuf>,
}

impl Default for ReportSection {
    fn default() -> Self {
        let files = crate::report::pdf::FontFiles::default();
        ReportSection {
            v_gy: Vec::new(),
            fonts: files.regular,
            bold_fonts: files.bold,
        }
    }
}

impl ReportSection {
    /// The font files, relative ones resolved against `base`.
    pub fn font_files(&self, base: &Path) -> crate::report::pdf::FontFiles {
        crate::report::pdf::FontFiles {
            regular: self.fonts.iter().map(|p| base.join(p)).collect(),
            bold: self.bold_fonts.iter().map(|p| base.join(p)).collect(),
        }
    }

    /// Problems as (key, message).
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(v) = self.v_gy.iter().find(|v| !v.is_finite() || **v < 0.0) {
            out.push(("v_gy", format!("{v} is not a dose in Gy (0 or more)")));
        }
        if self.fonts.is_empty() {
            out.push(("fonts", "lists no font file".to_owned()));
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSection {
    /// `text` or `json`; a string rather than an enum so that a typo is
    /// reported alongside the other semantic errors. See
    /// [`LoggingSection::log_format`].
    #[serde(default = "default_log_format")]
    pub format: String,
    /// A `tracing_subscriber::EnvFilter` directive such as `info` or
    /// `rtnode=debug,dicom_ul=warn`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

impl LoggingSection {
    /// `None` only for a config built in code with a bad format; anything
    /// that went through the loaders has already been checked.
    pub fn log_format(&self) -> Option<LogFormat> {
        LogFormat::parse(&self.format)
    }
}

/// When a course is processed, and with how much of the machine.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// `ct`, `ct+rtstruct` or `full` (CT + RTSTRUCT + RTPLAN + RTDOSE).
    #[serde(default = "default_trigger")]
    pub trigger: String,
    /// Per calling AE title, a rule that overrides `trigger`.
    #[serde(default)]
    pub trigger_by_calling_ae: std::collections::BTreeMap<String, String>,
    /// Seconds without a new instance before a complete course starts.
    #[serde(default = "default_stable_age_s")]
    pub stable_age_s: u64,
    /// Only plans with ApprovalStatus APPROVED count towards `full`.
    #[serde(default = "default_false")]
    pub require_approved: bool,
    /// Stage runs at once across courses: `auto` (cores − 1, at least 1) or a number.
    #[serde(default = "default_workers")]
    pub workers: String,
    /// Attempts of a failing stage before it is left failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubled at each further attempt.
    #[serde(default = "default_retry_backoff_s")]
    pub retry_backoff_s: u64,
    /// Per-stage limits, by stage name.
    #[serde(default = "default_stage_limits")]
    pub stages: std::collections::BTreeMap<String, StageLimits>,
    /// Where stage runs execute: `local` (threads of this process) or
    /// `slurm` (one `sbatch` job per run; see `pipeline::slurm`). A stage's
    /// own `executor` overrides it; `export` always runs locally.
    #[serde(default)]
    pub executor: ExecutorKind,
    /// How stage runs are submitted when they go to Slurm.
    #[serde(default)]
    pub slurm: SlurmSection,
}

/// Where a stage run executes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// A thread of the coordinating process (the node, or `rtnode process`).
    #[default]
    Local,
    /// A Slurm job running `rtnode run-stage` on a node of the cluster, with
    /// the data directory on the cluster's shared filesystem.
    Slurm,
}

impl ExecutorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        }
    }
}

/// What `sbatch` is told about a stage run. Empty fields are left to the
/// cluster's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmJobSettings {
    /// `--partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `--gres`, e.g. `gpu:1`.
    #[serde(default)]
    pub gres: Option<String>,
    /// `--time`, e.g. `01:00:00`.
    #[serde(default)]
    pub time: Option<String>,
    /// `--mem`, e.g. `16G`.
    #[serde(default)]
    pub mem: Option<String>,
    /// `--account`.
    #[serde(default)]
    pub account: Option<String>,
}

impl SlurmJobSettings {
    /// These settings, with `over`'s non-empty fields taking precedence.
    pub fn overlaid(&self, over: Option<&SlurmJobSettings>) -> SlurmJobSettings {
        let Some(o) = over else {
            return self.clone();
        };
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        SlurmJobSettings {
            partition: pick(&self.partition, &o.partition),
            gres: pick(&self.gres, &o.gres),
            time: pick(&self.time, &o.time),
            mem: pick(&self.mem, &o.mem),
            account: pick(&self.account, &o.account),
        }
    }
}

/// `pipeline.slurm`: the coordinator's side of the Slurm executor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSection {
    /// The `rtnode` binary the jobs run, as the cluster's nodes see it
    /// (default: this binary's own path, which suits a shared install).
    #[serde(default)]
    pub rtnode: Option<PathBuf>,
    /// `sbatch` settings of every stage's job; a stage's
    /// `pipeline.stages.<stage>.slurm` overrides them field by field.
    #[serde(default)]
    pub job: SlurmJobSettings,
    /// Seconds between looks at the jobs (their outcome files, `squeue`).
    #[serde(default = "default_slurm_poll_s")]
    pub poll_s: u64,
    /// Stage runs submitted and not yet finished, at most.
    #[serde(default = "default_slurm_max_jobs")]
    pub max_jobs: usize,
    /// Seconds a job may be unknown to `squeue` with no outcome file before
    /// it counts as a failed attempt (room for a shared filesystem's
    /// attribute cache).
    #[serde(default = "default_slurm_grace_s")]
    pub grace_s: u64,
}

fn default_slurm_poll_s() -> u64 {
    2
}
fn default_slurm_max_jobs() -> usize {
    500
}
fn default_slurm_grace_s() -> u64 {
    10
}

impl Default for SlurmSection {
    fn default() -> Self {
        SlurmSection {
            rtnode: None,
            job: SlurmJobSettings::default(),
            poll_s: default_slurm_poll_s(),
            max_jobs: default_slurm_max_jobs(),
            grace_s: default_slurm_grace_s(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageLimits {
    /// Runs of this stage at once (0: no limit beyond `pipeline.workers`).
    #[serde(default)]
    pub workers: u32,
    /// Threads one run may use, passed to child processes as OMP_NUM_THREADS
    /// and friends (0: the machine's cores divided by the stage's workers;
    /// on Slurm, also the job's `--cpus-per-task`).
    #[serde(default)]
    pub threads: u32,
    /// Where this stage runs (default: `pipeline.executor`).
    #[serde(default)]
    pub executor: Option<ExecutorKind>,
    /// This stage's `sbatch` settings over `pipeline.slurm`'s.
    #[serde(default)]
    pub slurm: Option<SlurmJobSettings>,
}

fn default_trigger() -> String {
    "ct+rtstruct".to_owned()
}
fn default_stable_age_s() -> u64 {
    30
}
fn default_workers() -> String {
    "auto".to_owned()
}
fn default_max_attempts() -> u32 {
    3
}
fn default_retry_backoff_s() -> u64 {
    10
}
fn default_stage_limits() -> std::collections::BTreeMap<String, StageLimits> {
    // One GPU job at a time, as the predecessor learned.
    std::collections::BTreeMap::from([(
        "segmentation".to_owned(),
        StageLimits {
            workers: 1,
            threads: 0,
            executor: None,
            slurm: None,
        },
    )])
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            trigger: default_trigger(),
            trigger_by_calling_ae: Default::default(),
            stable_age_s: default_stable_age_s(),
            require_approved: false,
            workers: default_workers(),
            max_attempts: default_max_attempts(),
            retry_backoff_s: default_retry_backoff_s(),
            stages: default_stage_limits(),
            executor: ExecutorKind::Local,
            slurm: SlurmSection::default(),
        }
    }
}

/// The outbound queue: retries with exponential backoff, then a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSection {
    /// Attempts per (object, destination) before it is dead-lettered.
    #[serde(default = "default_export_attempts")]
    pub max_attempts: u32,
    /// First retry delay, seconds; doubled each time up to `retry_max_s`.
    #[serde(default = "default_export_retry_s")]
    pub retry_base_s: u64,
    #[serde(default = "default_export_retry_max_s")]
    pub retry_max_s: u64,
    /// Calling AE title of the node's own C-STOREs (default: node.ae_title).
    #[serde(default)]
    pub calling_ae: String,
}

fn default_export_attempts() -> u32 {
    10
}
fn default_export_retry_s() -> u64 {
    30
}
fn default_export_retry_max_s() -> u64 {
    3600
}

impl Default for ExportSection {
    fn default() -> Self {
        ExportSection {
            max_attempts: default_export_attempts(),
            retry_base_s: default_export_retry_s(),
            retry_max_s: default_export_retry_max_s(),
            calling_ae: String::new(),
        }
    }
}

/// One auto-routing rule: every condition given must hold (an empty list
/// or map places no condition).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    pub name: String,
    #[serde(default)]
    pub calling_ae: Vec<String>,
    #[serde(default)]
    pub modality: Vec<String>,
    /// SOP class UIDs or keywords.
    #[serde(default)]
    pub sop_class: Vec<String>,
    /// Attribute keyword → regular expression its value must match.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Destination AE titles (from the peers file).
    pub to: Vec<String>,
}

pub const TRIGGER_RULES: [&str; 3] = ["ct", "ct+rtstruct", "full"];

impl PipelineSection {
    /// The number of stage runs at once.
    pub fn worker_count(&self) -> usize {
        match self.workers.trim() {
            "auto" => std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).max(1))
                .unwrap_or(1),
            n => n.parse::<usize>().unwrap_or(1).max(1),
        }
    }

    /// Where runs of `stage` execute: its own setting, else the section's;
    /// `export` writes the outbound queue and always runs locally.
    pub fn executor_for(&self, stage: &str) -> ExecutorKind {
        if stage == "export" {
            return ExecutorKind::Local;
        }
        self.stages
            .get(stage)
            .and_then(|l| l.executor)
            .unwrap_or(self.executor)
    }

    /// The `sbatch` settings of `stage`'s jobs.
    pub fn slurm_for(&self, stage: &str) -> SlurmJobSettings {
        self.slurm
            .job
            .overlaid(self.stages.get(stage).and_then(|l| l.slurm.as_ref()))
    }

    pub fn trigger_for(&self, calling_ae: Option<&str>) -> &str {
        calling_ae
            .and_then(|ae| self.trigger_by_calling_ae.get(ae.trim()))
            .map(String::as_str)
            .unwrap_or(&self.trigger)
    }
}

impl Config {
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

    /// The peers file named by `node.peers_file`. A relative path is taken
    /// relative to the config file's directory, so the node behaves the same
    /// whatever the working directory. Without a source file (embedded
    /// defaults) it is taken relative to the directory of
    /// [`DEFAULT_CONFIG_PATH`], which makes the default land on
    /// [`DEFAULT_PEERS_PATH`] in the working directory.
    /// `cohort.pseudonym_key_file`, relative to the config file's directory.
    pub fn resolved_pseudonym_key_file(&self) -> Option<PathBuf> {
        let rel = self.cohort.pseudonym_key_file.as_ref()?;
        Some(match &self.source {
            Some(src) if rel.is_relative() => src.parent().unwrap_or(Path::new("")).join(rel),
            _ => rel.clone(),
        })
    }

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

/// The list of DICOM peers (`ae-titles.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeersFile {
    #[serde(default)]
    pub peers: Vec<Peer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub ae_title: String,
    /// IP address or hostname; used to reach the peer and, with
    /// `network.check_peer_address`, to check where an association comes from.
    pub host: String,
    pub port: u16,
    /// Whether this AE may send (C-STORE) to us.
    #[serde(default = "default_true")]
    pub may_store: bool,
    /// Whether derived objects (RTSTRUCT, reports) are sent to this AE.
    #[serde(default = "default_false")]
    pub receives_results: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// SOP classes this AE accepts (UIDs or dictionary keywords such as
    /// `RTStructureSetStorage`); empty means every class. A TPS that refuses
    /// Encapsulated PDF is listed without it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sop_classes: Vec<String>,
    /// Results of courses this AE sent go back to it (it needs host and port).
    #[serde(default = "default_false")]
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
    /// Same as [`load_peers`].
    pub fn load(path: &Path) -> Result<PeersFile, ConfigErrors> {
        load_peers(path)
    }

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

/// One problem in a config or peers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based.
    pub column: Option<usize>,
    pub message: String,
}

impl ConfigError {
    fn new(file: &Path, pos: Option<Pos>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    // `file:line:column: message` is what editors and CI annotate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// Reads and checks a node config. Relative paths in it are resolved against
/// `path`'s directory.
pub fn load_config(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read_file(path)?;
    parse_config_str(&text, path)
}

/// Reads and checks a peers file.
pub fn load_peers(path: &Path) -> Result<PeersFile, ConfigErrors> {
    let text = read_file(path)?;
    parse_peers_str(&text, path)
}

/// Parses and checks a node config held in memory; `file` is used for error
/// messages and as the base for relative paths.
pub fn parse_config_str(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let mut config: Config = parse_yaml(text, file)?;
    config.source = Some(file.to_path_buf());
    config.source_text = Some(text.to_owned());
    if let Some(workers) = config.segmentation.workers.filter(|w| *w > 0) {
        config
            .pipeline
            .stages
            .entry("segmentation".to_owned())
            .or_insert(StageLimits {
                workers,
                threads: 0,
                executor: None,
                slurm: None,
            })
            .workers = workers;
    }
    if let Some(tls) = &mut config.network.tls {
        tls.resolve_paths(file);
    }
    config.http.resolve_paths(file);
    let errors = check_config(&config, text, file);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Parses and checks a peers file held in memory.
pub fn parse_peers_str(text: &str, file: &Path) -> Result<PeersFile, ConfigErrors> {
    let mut peers: PeersFile = parse_yaml(text, file)?;
    for p in &mut peers.peers {
        if let Some(ca) = &mut p.tls_ca {
            *ca = resolve_relative(file, ca);
        }
    }
    let errors = check_peers(&peers, text, file);
    if errors.is_empty() {
        Ok(peers)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Loads and checks the config and its peers file, reporting every error
/// found in either. `peers_override` (e.g. `--peers`) replaces
/// `node.peers_file` and is used as given, i.e. relative to the working
/// directory.
pub fn validate(
    config_path: &Path,
    peers_override: Option<&Path>,
) -> Result<(Config, PeersFile), ConfigErrors> {
    let config_text = read_file(config_path);
    let config = match &config_text {
        Ok(text) => parse_config_str(text, config_path),
        Err(e) => Err(e.clone()),
    };

    let peers_path = match (peers_override, &config) {
        (Some(p), _) => p.to_path_buf(),
        (None, Ok(c)) => c.resolved_peers_file(),
        // The config is broken but may still name its peers file; checking
        // that file now saves the operator another round.
        (None, Err(_)) => {
            let named = config_text
                .as_ref()
                .ok()
                .and_then(|t| peers_file_from_broken_config(t));
            Config {
                node: NodeSection {
                    peers_file: named.unwrap_or_else(default_peers_file),
                    ..NodeSection::default()
                },
                source: Some(config_path.to_path_buf()),
                ..Config::default()
            }
            .resolved_peers_file()
        }
    };
    let peers = load_peers(&peers_path);

    match (config, peers) {
        (Ok(c), Ok(p)) => {
            let errors = check_peers_against_config(&c, &p, &peers_path);
            if errors.is_empty() {
                Ok((c, p))
            } else {
                Err(ConfigErrors(errors))
            }
        }
        (c, p) => {
            let mut errors = Vec::new();
            if let Err(e) = c {
                errors.extend(e.0);
            }
            if let Err(e) = p {
                errors.extend(e.0);
            }
            Err(ConfigErrors(errors))
        }
    }
}

fn peers_file_from_broken_config(text: &str) -> Option<PathBuf> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    let name = value.get("node")?.get("peers_file")?.as_str()?;
    Some(PathBuf::from(name))
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

fn check_host(host: &str) -> Result<(), String> {
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

fn check_config(c: &Config, text: &str, file: &Path) -> Vec<ConfigError> {
    let loc = Locator::new(text);
    let mut errors = Vec::new();
    let mut err = |section: &str, key: &str, msg: String| {
        errors.push(ConfigError::new(
            file,
            loc.section_key(section, key),
            format!("{section}.{key}: {msg}"),
        ));
    };

    let node = &c.node;
    if let Err(m) = check_ae_title(&node.ae_title) {
        err("node", "ae_title", m);
    }
    if node.bind_ip().is_err() {
        err(
            "node",
            "bind",
            format!(
                "{:?} is not an IP address (0.0.0.0 listens on all IPv4 interfaces, :: on all IPv6)",
                node.bind
            ),
        );
    }
    // Port 0 is allowed: the kernel picks a free port, which the node
    // writes to <data_dir>/node.json (tests and `rtnode demo` rely on it).
    if node.data_dir.as_os_str().is_empty() {
        err("node", "data_dir", "must not be empty".to_owned());
    }
    if node.peers_file.as_os_str().is_empty() {
        err("node", "peers_file", "must not be empty".to_owned());
    }

    let net = &c.network;
    if net.max_associations == 0 {
        err(
            "network",
            "max_associations",
            "must be at least 1".to_owned(),
        );
    }
    let pdu_ok = (MIN_PDU_LENGTH..=MAX_PDU_LENGTH).contains(&net.max_pdu_length);
    if !pdu_ok {
        err(
            "network",
            "max_pdu_length",
            format!(
                "{} is outside {MIN_PDU_LENGTH}..={MAX_PDU_LENGTH}",
                net.max_pdu_length
            ),
        );
    }
    // Only meaningful against a valid max_pdu_length; otherwise the first
    // error already says what to fix.
    if pdu_ok && net.max_pdu_hard_limit < net.max_pdu_length {
        err(
            "network",
            "max_pdu_hard_limit",
            format!(
                "{} is below max_pdu_length ({}); we would reject PDUs of the size we announce",
                net.max_pdu_hard_limit, net.max_pdu_length
            ),
        );
    }
    if !net.metrics_address.trim().is_empty()
        && net.metrics_address.trim().parse::<SocketAddr>().is_err()
    {
        err(
            "network",
            "metrics_address",
            format!(
                "{:?} is not ip:port (empty turns metrics off)",
                net.metrics_address
            ),
        );
    }
    if let Some(tls) = &net.tls {
        check_tls(tls, node.port, &mut err);
    }
    for (key, msg) in c.http.problems() {
        err("http", key, msg);
    }
    // The files, as the node reads them at start.
    if let Some(t) = &c.http.tls {
        if let Err(m) = crate::tls::http_server_config(&t.certificate, &t.private_key) {
            err("http", "tls", m);
        }
    }
    if let Some(f) = &c.http.tokens_file {
        if let Err(e) = crate::http::tokens::TokensFile::load(f) {
            err("http", "tokens_file", e.to_string());
        }
    }
    // Zero would make every read time out at once rather than disable the
    // timeout; a dead peer must not hold an association slot forever.
    if net.idle_timeout_s == 0 {
        err(
            "network",
            "idle_timeout_s",
            "must be at least 1 second".to_owned(),
        );
    }

    let pipe = &c.pipeline;
    if !TRIGGER_RULES.contains(&pipe.trigger.as_str()) {
        err(
            "pipeline",
            "trigger",
            format!(
                "unknown rule {:?}; expected one of {TRIGGER_RULES:?}",
                pipe.trigger
            ),
        );
    }
    for (ae, rule) in &pipe.trigger_by_calling_ae {
        if !TRIGGER_RULES.contains(&rule.as_str()) {
            err(
                "pipeline",
                "trigger_by_calling_ae",
                format!("{ae}: unknown rule {rule:?}; expected one of {TRIGGER_RULES:?}"),
            );
        }
    }
    if pipe.workers.trim() != "auto" && pipe.workers.trim().parse::<u32>().map_or(true, |n| n == 0)
    {
        err(
            "pipeline",
            "workers",
            format!(
                "{:?} is neither \"auto\" nor a positive number",
                pipe.workers
            ),
        );
    }
    if pipe.max_attempts == 0 {
        err("pipeline", "max_attempts", "must be at least 1".to_owned());
    }
    for (name, limits) in &pipe.stages {
        if !crate::stages::STAGE_NAMES.contains(&name.as_str()) {
            err(
                "pipeline",
                "stages",
                format!(
                    "unknown stage {name:?}; the stages are {:?}",
                    crate::stages::STAGE_NAMES
                ),
            );
        }
        if name == "export" && limits.executor == Some(ExecutorKind::Slurm) {
            err(
                "pipeline",
                "stages",
                "export: runs where the outbound queue is (the coordinator); it cannot run on slurm"
                    .to_owned(),
            );
        }
    }
    if pipe.slurm.poll_s == 0 {
        err("pipeline", "slurm", "poll_s: must be at least 1".to_owned());
    }
    if pipe.slurm.max_jobs == 0 {
        err(
            "pipeline",
            "slurm",
            "max_jobs: must be at least 1".to_owned(),
        );
    }
    if let Err(m) = c.dvh.validate() {
        // The settings name the key in their message: point at its line
        // instead.
        match m.strip_prefix("dvh.interpolate_between_planes: ") {
            Some(why) => err("dvh", "interpolate_between_planes", why.to_owned()),
            None => err("dvh", "constraints", m),
        }
    }
    // Model files are relative to the config file's directory.
    let base = c.base_dir();
    for (key, m) in c.segmentation.check(&base) {
        err("segmentation", key, m);
    }
    for (key, m) in c.radiomics.check(&base) {
        err("radiomics", key, m);
    }
    for (key, m) in c.report.check() {
        err("report", key, m);
    }
    if c.export.max_attempts == 0 {
        err("export", "max_attempts", "must be at least 1".to_owned());
    }
    if c.export.retry_base_s == 0 || c.export.retry_max_s < c.export.retry_base_s {
        err(
            "export",
            "retry_base_s",
            "must be at least 1 and at most retry_max_s".to_owned(),
        );
    }
    for rule in &c.routing {
        for (keyword, re) in &rule.tags {
            if crate::dicom::uids::tag_by_keyword(keyword).is_none() {
                err(
                    "routing",
                    "tags",
                    format!(
                        "rule {:?}: unknown attribute keyword {keyword:?}",
                        rule.name
                    ),
                );
            }
            if let Err(e) = regex::Regex::new(re) {
                err(
                    "routing",
                    "tags",
                    format!(
                        "rule {:?}: bad regular expression for {keyword}: {e}",
                        rule.name
                    ),
                );
            }
        }
        for class in &rule.sop_class {
            if !class.starts_with("1.")
                && crate::dicom::uids::sop_class_keyword_uid(class).is_none()
            {
                err(
                    "routing",
                    "sop_class",
                    format!("rule {:?}: unknown SOP class {class:?}", rule.name),
                );
            }
        }
        if rule.to.is_empty() {
            err(
                "routing",
                "to",
                format!("rule {:?} has no destination", rule.name),
            );
        }
    }

    if !(4..=65536).contains(&c.storage.index_cache_mb) {
        err(
            "storage",
            "index_cache_mb",
            format!(
                "{} MiB is outside 4..65536 (the index's page cache; default 64)",
                c.storage.index_cache_mb
            ),
        );
    }
    if let Some(r) = &c.storage.retention {
        if let Err(m) = r.older_than() {
            err("storage", "retention", m);
        }
        if let Err(m) = r.check_every() {
            err("storage", "retention", m);
        }
    }

    let log = &c.logging;
    if log.log_format().is_none() {
        err(
            "logging",
            "format",
            format!(
                "unknown format {:?}; expected \"text\" or \"json\"",
                log.format
            ),
        );
    }
    if log.level.trim().is_empty() {
        err(
            "logging",
            "level",
            "must not be empty (e.g. \"info\")".to_owned(),
        );
    }
    errors
}

fn check_tls(tls: &TlsSection, plain_port: u16, err: &mut impl FnMut(&str, &str, String)) {
    let mut e = |m: String| err("network", "tls", m);
    if tls.plaintext && tls.port == plain_port && tls.port != 0 {
        e(format!(
            "port {} is also node.port; give TLS its own port (2762 is registered for DICOM over TLS) or set plaintext: false",
            tls.port
        ));
    }
    if tls.handshake_timeout_s == 0 {
        e("handshake_timeout_s must be at least 1 second".to_owned());
    }
    let certs =
        crate::tls::load_certs(&tls.certificate).map_err(|m| e(format!("certificate: {m}")));
    let key = crate::tls::load_key(&tls.private_key).map_err(|m| e(format!("private_key: {m}")));
    let ca = match &tls.ca {
        Some(ca) => crate::tls::load_roots(ca)
            .map(|_| ())
            .map_err(|m| e(format!("ca: {m}"))),
        None if tls.require_client_certificate => {
            e("require_client_certificate is true (the default) but no ca verifies client certificates; set ca, or require_client_certificate: false".to_owned());
            Err(())
        }
        None => Ok(()),
    };
    // Only when each file loads on its own: then what is left to find is a
    // key that does not belong to the certificate.
    if certs.is_ok() && key.is_ok() && ca.is_ok() {
        if let Err(m) = crate::tls::server_config(tls) {
            e(m);
        }
    }
}

fn check_peers(p: &PeersFile, text: &str, file: &Path) -> Vec<ConfigError> {
    let loc = Locator::new(text);
    let mut errors = Vec::new();
    // Trimmed title -> (index, line) of its first definition.
    let mut seen: HashMap<&str, (usize, Option<usize>)> = HashMap::new();

    for (i, peer) in p.peers.iter().enumerate() {
        let mut err = |key: &str, msg: String| {
            errors.push(ConfigError::new(
                file,
                loc.peer_key(i, key),
                format!("peers[{i}].{key}: {msg}"),
            ));
        };
        if let Err(m) = check_ae_title(&peer.ae_title) {
            err("ae_title", m);
        } else {
            let line = loc.peer_key(i, "ae_title").map(|p| p.line);
            if let Some((first, first_line)) = seen.get(peer.ae_title.trim()) {
                let at = match first_line {
                    Some(l) => format!("line {l}"),
                    None => format!("peers[{first}]"),
                };
                err(
                    "ae_title",
                    format!(
                        "duplicate AE title {:?} (first defined at {at})",
                        peer.ae_title.trim()
                    ),
                );
            } else {
                seen.insert(peer.ae_title.trim(), (i, line));
            }
        }
        if let Err(m) = check_host(&peer.host) {
            err("host", m);
        }
        if peer.port == 0 {
            err("port", "must be between 1 and 65535".to_owned());
        }
        if let Some(ca) = &peer.tls_ca {
            if let Err(m) = crate::tls::load_roots(ca) {
                err("tls_ca", m);
            }
        }
        if let Some(name) = &peer.tls_server_name {
            if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                err(
                    "tls_server_name",
                    format!("{name:?} is neither a DNS name nor an IP address"),
                );
            }
        }
        if !peer.tls && (peer.tls_ca.is_some() || peer.tls_server_name.is_some()) {
            err(
                "tls",
                "tls_ca or tls_server_name given but tls is not true".to_owned(),
            );
        }
    }
    errors
}

/// What neither file shows alone: a `tls: true` peer needs a CA to verify
/// it, its own or the node's.
pub fn check_peers_against_config(
    c: &Config,
    p: &PeersFile,
    peers_path: &Path,
) -> Vec<ConfigError> {
    let text = std::fs::read_to_string(peers_path).unwrap_or_default();
    let loc = Locator::new(&text);
    let node_ca = c.network.tls.as_ref().and_then(|t| t.ca.as_ref());
    p.peers
        .iter()
        .enumerate()
        .filter(|(_, peer)| peer.tls && peer.tls_ca.is_none() && node_ca.is_none())
        .map(|(i, _)| {
            ConfigError::new(
                peers_path,
                loc.peer_key(i, "tls"),
                format!(
                    "peers[{i}].tls: no CA to verify this peer with: give it tls_ca, or set network.tls.ca"
                ),
            )
        })
        .collect()
}

/// A 1-based position in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

/// Finds the line of a key in block-style YAML.
///
/// `serde_yaml_ng::Value` carries no spans, so semantic errors (found after
/// deserializing) are mapped back to the source by indentation alone. This
/// understands only the shapes our two files use: top-level sections holding
/// `key: value` lines, and a top-level `peers:` sequence of mappings. For
/// anything fancier (flow style, anchors) it falls back to the enclosing
/// item or section, or gives up, which merely drops the line number.
struct Locator<'a> {
    /// (0-based line number, indentation, text after the indentation) for
    /// every line that carries YAML content.
    lines: Vec<(usize, usize, &'a str)>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        let lines = text
            .lines()
            .enumerate()
            .filter_map(|(n, raw)| {
                let content = raw.trim_start_matches(' ');
                let indent = raw.len() - content.len();
                let trimmed = content.trim_end();
                let is_noise = trimmed.is_empty()
                    || trimmed.starts_with('#')
                    || trimmed == "---"
                    || trimmed == "...";
                (!is_noise).then_some((n, indent, content))
            })
            .collect();
        Locator { lines }
    }

    fn pos(&self, idx: usize, extra_column: usize) -> Pos {
        let (n, indent, _) = self.lines[idx];
        Pos {
            line: n + 1,
            column: indent + extra_column + 1,
        }
    }

    /// Index just past the block that starts after `idx` and is indented
    /// deeper than `indent`.
    fn block_end(&self, idx: usize, indent: usize) -> usize {
        self.lines[idx + 1..]
            .iter()
            .position(|&(_, i, _)| i <= indent)
            .map_or(self.lines.len(), |p| idx + 1 + p)
    }

    /// First line in `range` at exactly `indent` that is `key:`.
    fn find_key(&self, range: std::ops::Range<usize>, indent: usize, key: &str) -> Option<usize> {
        range
            .into_iter()
            .find(|&i| self.lines[i].1 == indent && is_key(self.lines[i].2, key))
    }

    fn top_level(&self, key: &str) -> Option<usize> {
        self.find_key(0..self.lines.len(), 0, key)
    }

    /// Position of `key` inside top-level `section`, else of `section`.
    fn section_key(&self, section: &str, key: &str) -> Option<Pos> {
        let sec = self.top_level(section)?;
        let end = self.block_end(sec, 0);
        let found = (sec + 1 < end)
            .then(|| self.find_key(sec + 1..end, self.lines[sec + 1].1, key))
            .flatten();
        Some(match found {
            Some(i) => self.pos(i, 0),
            None => self.pos(sec, 0),
        })
    }

    /// Position of `key` inside item `index` of the top-level `peers:`
    /// sequence, else of the item, else of `peers:`.
    fn peer_key(&self, index: usize, key: &str) -> Option<Pos> {
        let sec = self.top_level("peers")?;
        let fallback = Some(self.pos(sec, 0));
        // YAML lets the dashes sit at the same indentation as `peers:`, so
        // the sequence ends at the next top-level line that is not an item.
        let end = (sec + 1..self.lines.len())
            .find(|&i| self.lines[i].1 == 0 && dash_rest(self.lines[i].2).is_none())
            .unwrap_or(self.lines.len());
        let Some(&(_, dash_indent, _)) = self.lines.get(sec + 1).filter(|_| sec + 1 < end) else {
            return fallback;
        };
        let items: Vec<usize> = (sec + 1..end)
            .filter(|&i| self.lines[i].1 == dash_indent && dash_rest(self.lines[i].2).is_some())
            .collect();
        let Some(&item) = items.get(index) else {
            return fallback;
        };
        let item_end = items.get(index + 1).copied().unwrap_or(end);

        // `- key: value` puts the first key on the dash line itself.
        let (rest_offset, rest) = dash_rest(self.lines[item].2).unwrap_or((0, ""));
        if !rest.is_empty() && is_key(rest, key) {
            return Some(self.pos(item, rest_offset));
        }
        let key_indent = if rest.is_empty() {
            match self.lines.get(item + 1).filter(|_| item + 1 < item_end) {
                Some(&(_, i, _)) => i,
                None => return Some(self.pos(item, 0)),
            }
        } else {
            dash_indent + rest_offset
        };
        Some(match self.find_key(item + 1..item_end, key_indent, key) {
            Some(i) => self.pos(i, 0),
            None => self.pos(item, 0),
        })
    }
}

/// For a sequence item line (`-`, `- x`), the offset and text after the dash.
fn dash_rest(content: &str) -> Option<(usize, &str)> {
    let after = content.strip_prefix('-')?;
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    let rest = after.trim_start_matches(' ');
    let rest_trimmed = rest.trim_end();
    let rest = if rest_trimmed.starts_with('#') {
        ""
    } else {
        rest
    };
    Some((content.len() - rest.len(), rest))
}

/// Whether `content` starts with the mapping key `key` (plain or quoted).
fn is_key(content: &str, key: &str) -> bool {
    let after = content
        .strip_prefix(key)
        .or_else(|| {
            content
                .strip_prefix('"')?
                .strip_prefix(key)?
                .strip_prefix('"')
        })
        .or_else(|| {
            content
                .strip_prefix('\'')?
                .strip_prefix(key)?
                .strip_prefix('\'')
        });
    match after.and_then(|a| a.trim_start_matches(' ').strip_prefix(':')) {
        Some(value) => value.is_empty() || value.starts_with([' ', '\t']),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_path() -> PathBuf {
        PathBuf::from("/etc/rtnode/rtnode.yaml")
    }
    fn peers_path() -> PathBuf {
        PathBuf::from("/etc/rtnode/ae-titles.yaml")
    }

    /// (line, message) pairs, for compact assertions.
    fn lines_of(e: &ConfigErrors) -> Vec<(Option<usize>, String)> {
        e.0.iter().map(|e| (e.line, e.message.clone())).collect()
    }

    #[test]
    fn defaults_match_documentation() {
        let c = Config::default();
        assert_eq!(c.node.ae_title, "RTNODE");
        assert_eq!(c.node.bind, "0.0.0.0");
        assert_eq!(c.node.port, 11112);
        assert_eq!(c.node.data_dir, PathBuf::from("/var/lib/rtnode"));
        assert_eq!(c.node.peers_file, PathBuf::from("../ae-titles.yaml"));
        assert_eq!(c.network.max_associations, 16);
        assert_eq!(c.network.max_pdu_length, 262_144);
        assert_eq!(c.network.max_pdu_hard_limit, 16_777_216);
        assert!(c.network.require_known_callers);
        assert!(!c.network.check_peer_address);
        assert_eq!(c.network.idle_timeout_s, 120);
        assert!(c.network.admin_socket);
        assert!(c.storage.fsync);
        assert_eq!(c.storage.min_free_bytes, 1_073_741_824);
        assert_eq!(c.logging.log_format(), Some(LogFormat::Text));
        assert_eq!(c.logging.level, "info");
        assert_eq!(c.source, None);
        assert_eq!(
            c.node.listen_addr(),
            Ok("0.0.0.0:11112".parse::<SocketAddr>().unwrap())
        );
        assert_eq!(
            c.node.admin_socket_path(),
            PathBuf::from("/var/lib/rtnode/admin.sock")
        );
        // The embedded defaults find the peers file where the CLI default
        // `--peers ae-titles.yaml` does.
        assert_eq!(c.resolved_peers_file(), PathBuf::from(DEFAULT_PEERS_PATH));
        // The defaults must themselves be valid.
        assert!(check_config(&c, "", &cfg_path()).is_empty());
    }

    #[test]
    fn empty_and_partial_files_use_defaults() {
        let empty = parse_config_str("# nothing here\n\n", &cfg_path()).unwrap();
        assert_eq!(
            Config {
                source: None,
                source_text: None,
                ..empty
            },
            Config::default()
        );

        let c = parse_config_str("network:\n  max_associations: 4\n", &cfg_path()).unwrap();
        assert_eq!(c.network.max_associations, 4);
        assert_eq!(c.network.max_pdu_length, 262_144);
        assert_eq!(c.node, NodeSection::default());

        let p = parse_peers_str("", &peers_path()).unwrap();
        assert!(p.peers.is_empty());
    }

    #[test]
    fn segmentation_workers_set_the_stage_limit() {
        let c = parse_config_str("segmentation:\n  workers: 2\n", &cfg_path()).unwrap();
        assert_eq!(c.pipeline.stages["segmentation"].workers, 2);
        // Unset: the pipeline's default, one GPU job at a time.
        let c = parse_config_str("", &cfg_path()).unwrap();
        assert_eq!(c.pipeline.stages["segmentation"].workers, 1);
        let e = parse_config_str("segmentation:\n  workers: 0\n", &cfg_path()).unwrap_err();
        assert!(e.to_string().contains("segmentation.workers"), "{e}");
        // A model file is taken relative to the config file, and checked.
        let e = parse_config_str(
            "segmentation:\n  models:\n    - {name: m, file: nowhere.pt, spacing_mm: [1, 1, 1], patch_size: [8, 8, 8], labels: [{value: 1, name: Liver, colour: [1, 2, 3]}]}\n",
            &cfg_path(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("nowhere.pt does not exist"), "{e}");
    }

    #[test]
    fn report_section_checks_doses_and_fonts() {
        let ok: ReportSection = serde_yaml_ng::from_str("v_gy: [5, 20.5]").unwrap();
        assert!(ok.check().is_empty());
        assert_eq!(ok.fonts, ReportSection::default().fonts);
        let bad: ReportSection = serde_yaml_ng::from_str("v_gy: [-1]\nfonts: []").unwrap();
        let keys: Vec<&str> = bad.check().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["v_gy", "fonts"]);
        assert!(serde_yaml_ng::from_str::<ReportSection>("v_gyy: [1]").is_err());
        let files = ok.font_files(Path::new("/etc/rtnode"));
        assert!(files.regular[0].is_absolute());
        let rel: ReportSection = serde_yaml_ng::from_str("fonts: [f.ttf]").unwrap();
        assert_eq!(
            rel.font_files(Path::new("/etc/rtnode")).regular,
            [PathBuf::from("/etc/rtnode/f.ttf")]
        );
    }

    #[test]
    fn shipped_files_validate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config_path = root.join("conf/rtnode.yaml");
        let (config, peers) = validate(&config_path, None).unwrap_or_else(|e| panic!("{e}"));

        // Every value in the shipped file is the default, except possibly
        // the data directory.
        let expected = Config {
            node: NodeSection {
                data_dir: config.node.data_dir.clone(),
                ..NodeSection::default()
            },
            source: Some(config_path.clone()),
            source_text: config.source_text.clone(),
            ..Config::default()
        };
        assert_eq!(config, expected);
        assert_eq!(
            config.resolved_peers_file(),
            root.join("conf").join("../ae-titles.yaml")
        );

        // Same file via the CLI-style override.
        let (_, same) = validate(&config_path, Some(&root.join("ae-titles.yaml"))).unwrap();
        assert_eq!(same, peers);

        let storescu = peers.find("STORESCU").expect("STORESCU peer");
        assert_eq!(storescu.host, "127.0.0.1");
        assert!(storescu.may_store);
        assert!(!storescu.receives_results);
        let own = peers.find("RTNODE_SCU").expect("RTNODE_SCU peer");
        assert_eq!(own.host, "127.0.0.1");
        assert!(own.may_store);
        assert!(peers.result_receivers().count() >= 1);
    }

    #[test]
    fn shipped_config_mentions_every_key() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("conf/rtnode.yaml")).unwrap();
        let loc = Locator::new(&text);
        let defaults = serde_yaml_ng::to_value(Config::default()).unwrap();
        let sections = defaults.as_mapping().unwrap();
        for (section, keys) in sections {
            let section = section.as_str().unwrap();
            let sec_line = loc.top_level(section).map(|i| loc.pos(i, 0));
            assert!(sec_line.is_some(), "section {section} missing");
            // A list section (routing) is present as a whole; its items
            // have no defaults to document.
            let Some(keys) = keys.as_mapping() else {
                continue;
            };
            for key in keys.keys() {
                let key = key.as_str().unwrap();
                assert_ne!(
                    loc.section_key(section, key),
                    sec_line,
                    "{section}.{key} missing from conf/rtnode.yaml"
                );
            }
        }
    }

    #[test]
    fn slurm_settings_per_stage_over_the_defaults() {
        let c = parse_config_str(
            "pipeline:\n  executor: slurm\n  slurm:\n    job: {partition: cpu, time: '02:00:00'}\n  stages:\n    segmentation: {workers: 1, executor: slurm, slurm: {partition: gpu, gres: 'gpu:1'}}\n    qc: {executor: local}\n",
            &cfg_path(),
        )
        .unwrap();
        let p = &c.pipeline;
        assert_eq!(p.executor_for("segmentation"), ExecutorKind::Slurm);
        assert_eq!(p.executor_for("qc"), ExecutorKind::Local);
        assert_eq!(p.executor_for("dvh"), ExecutorKind::Slurm);
        assert_eq!(p.executor_for("export"), ExecutorKind::Local);
        let seg = p.slurm_for("segmentation");
        assert_eq!(seg.partition.as_deref(), Some("gpu"));
        assert_eq!(seg.gres.as_deref(), Some("gpu:1"));
        assert_eq!(seg.time.as_deref(), Some("02:00:00"));
        assert_eq!(p.slurm_for("dvh").partition.as_deref(), Some("cpu"));

        let e = parse_config_str(
            "pipeline:\n  stages:\n    segmentaton: {workers: 1}\n",
            &cfg_path(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("unknown stage \"segmentaton\""),
            "{e}"
        );
        let e = parse_config_str(
            "pipeline:\n  stages:\n    export: {executor: slurm}\n",
            &cfg_path(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("cannot run on slurm"), "{e}");
        let e = parse_config_str("pipeline:\n  executor: pbs\n", &cfg_path()).unwrap_err();
        assert!(e.to_string().contains("pbs"), "{e}");
    }

    #[test]
    fn retention_durations_are_checked() {
        let ok = parse_config_str(
            "storage:\n  retention: {older_than: 90d, check_every: 30m}\n",
            &cfg_path(),
        )
        .unwrap();
        let r = ok.storage.retention.unwrap();
        assert_eq!(r.older_than().unwrap().as_secs(), 90 * 86_400);
        assert_eq!(r.check_every().unwrap().as_secs(), 1_800);
        let e = parse_config_str(
            "storage:\n  retention:\n    older_than: 90 fortnights\n    check_every: 0s\n",
            &cfg_path(),
        )
        .unwrap_err();
        let msgs: Vec<&str> = e.0.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs.iter().all(|m| m.starts_with("storage.retention")),
            "{msgs:?}"
        );
    }

    #[test]
    fn http_off_loopback_needs_tls_or_a_proxy_and_tokens() {
        let ok = parse_config_str("http:\n  address: \"\"\n", &cfg_path()).unwrap();
        assert_eq!(ok.http.listen_addr().unwrap(), None);
        let ok = parse_config_str("http:\n  address: \"[::1]:0\"\n", &cfg_path()).unwrap();
        assert!(ok.http.listen_addr().unwrap().is_some());
        let e = parse_config_str(
            "node:\n  port: 104\nhttp:\n  address: 0.0.0.0:8080\n",
            &cfg_path(),
        )
        .unwrap_err();
        let msgs: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].starts_with("/etc/rtnode/rtnode.yaml:4:")
                && msgs[0].contains("http.address: 0.0.0.0:8080 is not a loopback address"),
            "{msgs:?}"
        );
        assert!(msgs[1].contains("http.tokens_file:"), "{msgs:?}");
        // Behind a proxy: the tokens file is still needed, and read.
        let e = parse_config_str(
            "http:\n  address: 0.0.0.0:8080\n  behind_proxy: true\n  tokens_file: none.yaml\n",
            &cfg_path(),
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.0[0].message.contains("/etc/rtnode/none.yaml"),
            "relative to the config: {e}"
        );
        let e = parse_config_str(
            "http:\n  address: localhost\n  max_body_bytes: 0\n",
            &cfg_path(),
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        let e = parse_config_str("http:\n  adress: 127.0.0.1:1\n", &cfg_path()).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn unknown_key_reports_its_line() {
        let text = "\
# rtnode config
node:
  ae_title: RTNODE
  port: 11112

network:
  max_associations: 4
  requre_known_callers: true
";
        let e = parse_config_str(text, &cfg_path()).unwrap_err();
        assert_eq!(e.0.len(), 1);
        let err = &e.0[0];
        assert_eq!(err.line, Some(8));
        assert_eq!(err.column, Some(3));
        assert!(
            err.message.contains("unknown field `requre_known_callers`"),
            "{err}"
        );
        // The location is in front, not repeated in the message.
        assert!(!err.message.contains("line 8"), "{err}");
        assert_eq!(
            err.to_string(),
            format!("/etc/rtnode/rtnode.yaml:8:3: {}", err.message)
        );

        let e = parse_config_str("node: {}\nstorag:\n  fsync: true\n", &cfg_path()).unwrap_err();
        assert_eq!(e.0[0].line, Some(2));

        let peers = "peers:\n  - ae_title: A\n    host: h\n    port: 104\n    colour: red\n";
        let e = parse_peers_str(peers, &peers_path()).unwrap_err();
        assert_eq!(lines_of(&e)[0].0, Some(5));
        assert!(e.0[0].message.contains("colour"));
    }

    #[test]
    fn dvh_interpolation_between_planes_is_refused() {
        let text = "dvh:\n  bin_width_gy: 0.01\n  interpolate_between_planes: true\n";
        let e = parse_config_str(text, &cfg_path()).unwrap_err();
        let got = lines_of(&e);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, Some(3));
        assert!(
            got[0]
                .1
                .contains("less accurate than per-plane slabs on the analytic matrix; see README"),
            "{got:?}"
        );
        let ok = parse_config_str("dvh:\n  interpolate_between_planes: false\n", &cfg_path());
        assert!(!ok.unwrap().dvh.interpolate_between_planes);
    }

    #[test]
    fn type_error_reports_its_line() {
        let text = "node:\n  ae_title: RTNODE\n  port: eleven\n";
        let e = parse_config_str(text, &cfg_path()).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].line, Some(3));
        assert!(
            e.0[0].message.starts_with("node.port: invalid type"),
            "{}",
            e.0[0]
        );

        // Out of u16 range is a type error too.
        let e = parse_config_str("node:\n  port: 70000\n", &cfg_path()).unwrap_err();
        assert_eq!(e.0[0].line, Some(2));

        let text = "peers:\n  - ae_title: A\n    host: h\n    port: 104\n    may_store: perhaps\n";
        let e = parse_peers_str(text, &peers_path()).unwrap_err();
        assert_eq!(e.0[0].line, Some(5));

        let e =
            parse_peers_str("peers:\n  - ae_title: A\n    port: 104\n", &peers_path()).unwrap_err();
        assert!(
            e.0[0].message.contains("missing field `host`"),
            "{}",
            e.0[0]
        );
        assert_eq!(e.0[0].line, Some(2));
    }

    #[test]
    fn syntax_error_reports_its_line() {
        let text = "node:\n  ae_title: RTNODE\n    port: 1\n";
        let e = parse_config_str(text, &cfg_path()).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].line, Some(3), "{}", e.0[0]);
    }

    #[test]
    fn all_semantic_errors_in_one_file_are_reported() {
        let text = "\
node:
  ae_title: THIS_AE_TITLE_IS_TOO_LONG
  bind: 10.0.0.256
  port: 11112
network:
  max_associations: 0
  max_pdu_length: 1024
  idle_timeout_s: 0
storage:
  fsync: false
logging:
  level: debug
  format: xml
";
        let e = parse_config_str(text, &cfg_path()).unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(
            got,
            vec![
                (Some(2), Some(3)),
                (Some(3), Some(3)),
                (Some(6), Some(3)),
                (Some(7), Some(3)),
                (Some(8), Some(3)),
                (Some(13), Some(3)),
            ],
            "{e}"
        );
        assert!(e.0[0].message.starts_with("node.ae_title:"));
        assert!(e.0[1].message.contains("10.0.0.256"));
        assert!(e.0[3].message.contains("1024"));
        assert!(e.0[5].message.contains("xml"));

        let text = "network:\n  max_pdu_length: 65536\n  max_pdu_hard_limit: 4096\n";
        let e = parse_config_str(text, &cfg_path()).unwrap_err();
        assert_eq!(lines_of(&e).len(), 1);
        assert_eq!(e.0[0].line, Some(3));
    }

    #[test]
    fn locator_falls_back_to_the_section() {
        // A bad value can come from a default the file never mentions; the
        // section that constrains it is then the best place to point at.
        let text = "logging:\n  level: info\nnetwork:\n  max_pdu_hard_limit: 8192\n";
        let loc = Locator::new(text);
        assert_eq!(
            loc.section_key("network", "max_pdu_length"),
            Some(Pos { line: 3, column: 1 })
        );
        assert_eq!(
            loc.section_key("network", "max_pdu_hard_limit"),
            Some(Pos { line: 4, column: 3 })
        );
        assert_eq!(loc.section_key("storage", "fsync"), None);
        // A key of the same name in another section is not picked up.
        assert_eq!(
            loc.section_key("logging", "max_pdu_hard_limit"),
            Some(Pos { line: 1, column: 1 })
        );

        let e = parse_config_str(text, &cfg_path()).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].line, Some(4));
        let e = parse_config_str("node:\n  data_dir: ''\n", &cfg_path()).unwrap_err();
        assert_eq!(e.0[0].line, Some(2));
    }

    #[test]
    fn section_with_every_key_commented_out_is_all_defaults() {
        let text = "node:\n#  ae_title: OTHER\nnetwork:\nstorage:\n  fsync: false\n";
        let c = parse_config_str(text, &cfg_path()).unwrap();
        assert_eq!(c.node, NodeSection::default());
        assert_eq!(c.network, NetworkSection::default());
        assert!(!c.storage.fsync);
    }

    #[test]
    fn peers_semantic_errors_and_duplicates() {
        let text = "\
peers:
  - ae_title: ECLIPSE
    host: 192.0.2.10
    port: 104
  -
    # first key on its own line
    ae_title: BAD\\AE
    host: ''
    port: 0
  - {ae_title: FLOW, host: 'not a host', port: 104}
  - port: 104
    host: pacs.example.org
    ae_title: ' ECLIPSE '
";
        let e = parse_peers_str(text, &peers_path()).unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(
            got,
            vec![
                (Some(7), Some(5)),
                (Some(8), Some(5)),
                (Some(9), Some(5)),
                // Flow style: only the item is found.
                (Some(10), Some(3)),
                (Some(13), Some(5)),
            ],
            "{e}"
        );
        assert!(e.0[0].message.contains("backslash"));
        assert!(e.0[1].message.contains("empty"));
        assert!(e.0[3].message.contains("not a host"));
        assert!(
            e.0[4]
                .message
                .contains("duplicate AE title \"ECLIPSE\" (first defined at line 2)"),
            "{}",
            e.0[4]
        );
    }

    #[test]
    fn dashes_may_sit_at_the_parent_indentation() {
        let text =
            "peers:\n- ae_title: A\n  host: h\n  port: 1\n- ae_title: A\n  host: h\n  port: 1\n";
        let e = parse_peers_str(text, &peers_path()).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!((e.0[0].line, e.0[0].column), (Some(5), Some(3)));
    }

    #[test]
    fn ae_title_rules() {
        assert!(check_ae_title("RTNODE").is_ok());
        assert!(check_ae_title("SIXTEEN_CHARS_AE").is_ok());
        assert!(check_ae_title("WITH SPACE").is_ok());
        assert!(check_ae_title("SEVENTEEN_CHARS_A").is_err());
        assert!(check_ae_title("").is_err());
        assert!(check_ae_title("    ").is_err());
        assert!(check_ae_title("A\\B").is_err());
        assert!(check_ae_title("A\tB").is_err());
        assert!(check_ae_title("AÉ").is_err());
    }

    #[test]
    fn host_rules() {
        for ok in [
            "192.0.2.1",
            "::1",
            "pacs",
            "pacs-01.example.org",
            "WIN_HOST",
            "a.b.",
        ] {
            assert!(check_host(ok).is_ok(), "{ok}");
        }
        for bad in ["", " ", "a b", "-pacs", "pacs..org", "[::1]", "host:104"] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn find_ignores_padding_but_not_case() {
        let p = parse_peers_str(
            "peers:\n  - ae_title: ECLIPSE\n    host: 192.0.2.10\n    port: 104\n",
            &peers_path(),
        )
        .unwrap();
        let peer = p.find(" ECLIPSE  ").unwrap();
        assert!(peer.may_store);
        assert!(!peer.receives_results);
        assert_eq!(peer.description, None);
        assert!(p.find("eclipse").is_none());
        assert!(p.find("").is_none());
    }

    #[test]
    fn missing_file_is_one_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yaml");
        let e = load_config(&missing).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].file, missing);
        assert_eq!(e.0[0].line, None);
        assert!(e
            .to_string()
            .starts_with(&format!("{}: ", missing.display())));

        // validate reports the missing config and still checks the
        // default peers file next to it (missing too here).
        let e = validate(&missing, None).unwrap_err();
        let files: Vec<_> = e.0.iter().map(|e| e.file.clone()).collect();
        assert_eq!(files, vec![missing, dir.path().join("../ae-titles.yaml")]);
    }

    #[test]
    fn validate_reports_both_files_and_resolves_relative_peers_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        let config = dir.path().join("conf/rtnode.yaml");
        // A broken config still names its peers file.
        std::fs::write(
            &config,
            "node:\n  port: 0\n  peers_file: peers/list.yaml\nbogus: 1\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("conf/peers")).unwrap();
        let peers = dir.path().join("conf/peers/list.yaml");
        std::fs::write(
            &peers,
            "peers:\n  - ae_title: ''\n    host: h\n    port: 1\n",
        )
        .unwrap();

        let e = validate(&config, None).unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| (e.file.clone(), e.line)).collect();
        assert_eq!(
            got,
            vec![(config.clone(), Some(4)), (peers.clone(), Some(2))]
        );

        std::fs::write(&config, "node:\n  peers_file: peers/list.yaml\n").unwrap();
        std::fs::write(&peers, "peers: []\n").unwrap();
        let (c, p) = validate(&config, None).unwrap();
        assert_eq!(c.resolved_peers_file(), peers);
        assert!(p.peers.is_empty());

        // An override wins and is used as given.
        let other = dir.path().join("other.yaml");
        std::fs::write(
            &other,
            "peers:\n  - ae_title: X\n    host: h\n    port: 0\n",
        )
        .unwrap();
        let e = validate(&config, Some(&other)).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!((e.0[0].file.clone(), e.0[0].line), (other, Some(4)));
    }

    #[test]
    fn absolute_peers_file_is_kept() {
        let c = parse_config_str("node:\n  peers_file: /srv/peers.yaml\n", &cfg_path()).unwrap();
        assert_eq!(c.resolved_peers_file(), PathBuf::from("/srv/peers.yaml"));
        let rel = parse_config_str("", Path::new("rtnode.yaml")).unwrap();
        assert_eq!(
            rel.resolved_peers_file(),
            PathBuf::from("../ae-titles.yaml")
        );
    }

    #[test]
    fn lexical_join_pops_only_normal_components() {
        assert_eq!(
            lexical_join(Path::new("conf"), Path::new("../a.yaml")),
            PathBuf::from("a.yaml")
        );
        assert_eq!(
            lexical_join(Path::new(""), Path::new("../a.yaml")),
            PathBuf::from("../a.yaml")
        );
        assert_eq!(
            lexical_join(Path::new("a/b"), Path::new("./c/../d")),
            PathBuf::from("a/b/d")
        );
    }

    #[test]
    fn is_key_matches_whole_keys_only() {
        assert!(is_key("port: 1", "port"));
        assert!(is_key("port:", "port"));
        assert!(is_key("\"port\": 1", "port"));
        assert!(is_key("port : 1", "port"));
        assert!(!is_key("ports: 1", "port"));
        assert!(!is_key("port:1", "port"));
        assert!(!is_key("# port: 1", "port"));
    }

    #[test]
    fn tls_section_problems_are_all_reported_at_its_line() {
        let text = "\
node:
  port: 11112
network:
  tls:
    port: 11112
    certificate: tls/missing.crt
    private_key: /nonexistent/node.key
    handshake_timeout_s: 0
";
        let e = parse_config_str(text, &cfg_path()).unwrap_err();
        let got = lines_of(&e);
        assert_eq!(got.len(), 5, "{e}");
        assert!(got.iter().all(|(l, _)| *l == Some(4)), "{e}");
        let all = e.to_string();
        assert!(all.contains("port 11112 is also node.port"), "{all}");
        assert!(all.contains("handshake_timeout_s"), "{all}");
        // Relative to the config file's directory.
        assert!(
            all.contains("certificate: cannot read /etc/rtnode/tls/missing.crt"),
            "{all}"
        );
        assert!(
            all.contains("private_key: cannot read /nonexistent/node.key"),
            "{all}"
        );
        assert!(all.contains("no ca verifies client certificates"), "{all}");

        // Plaintext off frees the port; the files are still checked.
        let text = "network:\n  tls:\n    port: 11112\n    plaintext: false\n    certificate: a\n    private_key: b\n    require_client_certificate: false\n";
        let e = parse_config_str(text, &cfg_path()).unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        let c = parse_yaml::<Config>(text, &cfg_path()).unwrap();
        assert_eq!(c.network.tls.map(|t| t.port), Some(11112));
    }

    #[test]
    fn peer_tls_settings_are_checked() {
        let text = "\
peers:
  - ae_title: PACS
    host: 192.0.2.20
    port: 2762
    tls_server_name: 'not a name!'
    tls_ca: certs/missing.pem
";
        let e = parse_peers_str(text, &peers_path()).unwrap_err();
        let got = lines_of(&e);
        assert_eq!(got.len(), 3, "{e}");
        assert_eq!(got[0].0, Some(6));
        assert!(
            got[0]
                .1
                .contains("cannot read /etc/rtnode/certs/missing.pem"),
            "{e}"
        );
        assert_eq!(got[1].0, Some(5));
        // tls settings without tls: true are a mistake, not ignored.
        assert!(got[2].1.contains("tls is not true"), "{e}");
    }

    #[test]
    fn a_tls_peer_needs_a_ca_from_somewhere() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("rtnode.yaml");
        std::fs::write(&config, "node:\n  peers_file: peers.yaml\n").unwrap();
        std::fs::write(
            dir.path().join("peers.yaml"),
            "peers:\n  - ae_title: PACS\n    host: h\n    port: 2762\n    tls: true\n",
        )
        .unwrap();
        let e = validate(&config, None).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].line, Some(5));
        assert!(e.0[0].message.contains("no CA to verify"), "{e}");
    }

    #[test]
    fn config_round_trips_through_yaml() {
        let c = Config::default();
        let text = serde_yaml_ng::to_string(&c).unwrap();
        let back = parse_config_str(&text, &cfg_path()).unwrap();
        assert_eq!(
            Config {
                source: None,
                source_text: None,
                ..back
            },
            c
        );
    }
}
