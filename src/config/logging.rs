//! The `logging:` section: read by `main` before anything else runs, so it
//! stays with the config.

use serde::{Deserialize, Serialize};

fn default_log_format() -> String {
    "text".to_owned()
}
fn default_log_level() -> String {
    "info".to_owned()
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

impl LogFormat {
    /// `text` or `json` (surrounding spaces ignored).
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// The `logging:` section.
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

    /// Every problem of the section, as (key under `logging`, message).
    pub fn check(&self, err: &mut impl FnMut(&str, String)) {
        if self.log_format().is_none() {
            err(
                "format",
                format!(
                    "unknown format {:?}; expected \"text\" or \"json\"",
                    self.format
                ),
            );
        }
        if self.level.trim().is_empty() {
            err("level", "must not be empty (e.g. \"info\")".to_owned());
        }
    }
}
