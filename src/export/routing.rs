//! Auto-routing rules: receive once, fan out. A rule matches on calling AE,
//! modality, SOP class and attribute patterns; every condition given must
//! hold.

use std::path::Path;

use anyhow::{Context, Result};
use dicom_core::Tag;
use regex::Regex;

use super::settings::RoutingRule;
use crate::store::InstanceRecord;

/// A `RoutingRule` with its SOP class keywords resolved and its regular expressions compiled, ready to match instances.
pub struct CompiledRule {
    name: String,
    calling_ae: Vec<String>,
    modality: Vec<String>,
    sop_class: Vec<String>,
    tags: Vec<(Tag, Regex)>,
    to: Vec<String>,
}

/// Compiles the configured rules; fails on an unknown attribute keyword or an invalid regular expression.
pub fn compile(rules: &[RoutingRule]) -> Result<Vec<CompiledRule>> {
    rules
        .iter()
        .map(|r| {
            let tags = r
                .tags
                .iter()
                .map(|(k, re)| {
                    let tag = crate::dicom::uids::tag_by_keyword(k)
                        .with_context(|| format!("rule {}: unknown keyword {k}", r.name))?;
                    let re = Regex::new(re)
                        .with_context(|| format!("rule {}: bad pattern for {k}", r.name))?;
                    Ok((tag, re))
                })
                .collect::<Result<Vec<_>>>()?;
            let sop_class = r
                .sop_class
                .iter()
                .map(|c| {
                    crate::dicom::uids::sop_class_keyword_uid(c)
                        .map(str::to_string)
                        .unwrap_or_else(|| c.clone())
                })
                .collect();
            Ok(CompiledRule {
                name: r.name.clone(),
                calling_ae: r.calling_ae.iter().map(|a| a.trim().to_string()).collect(),
                modality: r.modality.clone(),
                sop_class,
                tags,
                to: r.to.clone(),
            })
        })
        .collect()
}

/// The rules an instance matches, with their destinations. Attribute
/// patterns read the stored file (only when a rule has them).
pub fn matching(
    rules: &[CompiledRule],
    rec: &InstanceRecord,
    data_dir: &Path,
) -> Vec<(String, Vec<String>)> {
    let mut header: Option<Option<dicom_object::DefaultDicomObject>> = None;
    let mut out = Vec::new();
    for r in rules {
        if !r.calling_ae.is_empty() && !r.calling_ae.iter().any(|a| a == rec.calling_ae.trim()) {
            continue;
        }
        if !r.modality.is_empty() && !r.modality.contains(&rec.modality) {
            continue;
        }
        if !r.sop_class.is_empty() && !r.sop_class.contains(&rec.sop_class_uid) {
            continue;
        }
        if !r.tags.is_empty() {
            let obj = header.get_or_insert_with(|| {
                dicom_object::OpenFileOptions::new()
                    .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
                    .open_file(data_dir.join(&rec.path))
                    .ok()
            });
            let Some(obj) = obj else { continue };
            let all = r.tags.iter().all(|(tag, re)| {
                obj.get(*tag)
                    .and_then(|e| e.to_str().ok())
                    .is_some_and(|v| re.is_match(v.trim_end_matches(['\0', ' '])))
            });
            if !all {
                continue;
            }
        }
        out.push((r.name.clone(), r.to.clone()));
    }
    out
}
