//! The `export:` (outbound queue) and `routing:` (auto-routing rules)
//! sections of the node configuration, owned by the export module; the
//! config aggregates them and maps the keys their checks report to lines.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    /// Longest retry delay, seconds: the doubling stops here.
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

impl ExportSection {
    /// Every problem of the section, as (key under `export`, message).
    pub fn check(&self, err: &mut impl FnMut(&str, String)) {
        if self.max_attempts == 0 {
            err("max_attempts", "must be at least 1".to_owned());
        }
        if self.retry_base_s == 0 || self.retry_max_s < self.retry_base_s {
            err(
                "retry_base_s",
                "must be at least 1 and at most retry_max_s".to_owned(),
            );
        }
    }
}

/// One auto-routing rule: every condition given must hold (an empty list
/// or map places no condition).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    /// Rule name, used in logs and as the queue reason `route:<name>`.
    pub name: String,
    /// Calling AE titles whose instances match; empty: any sender.
    #[serde(default)]
    pub calling_ae: Vec<String>,
    /// Modalities (0008,0060, such as CT, RTSTRUCT, RTDOSE) that match; empty: any.
    #[serde(default)]
    pub modality: Vec<String>,
    /// SOP class UIDs or keywords.
    #[serde(default)]
    pub sop_class: Vec<String>,
    /// Attribute keyword → regular expression its value must match.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Destination AE titles (from the peers file).
    pub to: Vec<String>,
}

/// Every problem of the `routing:` list, as (key of a rule, message): an
/// unknown attribute keyword or a bad regular expression in `tags`, an
/// unknown SOP class, a rule without destination.
pub fn check_routing(rules: &[RoutingRule], err: &mut impl FnMut(&str, String)) {
    for rule in rules {
        for (keyword, re) in &rule.tags {
            if crate::dicom::uids::tag_by_keyword(keyword).is_none() {
                err(
                    "tags",
                    format!(
                        "rule {:?}: unknown attribute keyword {keyword:?}",
                        rule.name
                    ),
                );
            }
            if let Err(e) = regex::Regex::new(re) {
                err(
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
                    "sop_class",
                    format!("rule {:?}: unknown SOP class {class:?}", rule.name),
                );
            }
        }
        if rule.to.is_empty() {
            err("to", format!("rule {:?} has no destination", rule.name));
        }
    }
}
