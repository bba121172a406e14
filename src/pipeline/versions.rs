//! Result versions on disk: `courses/<id>/v<N>/<stage>/…` with a manifest,
//! the fingerprints that decide what a new version must recompute, and the
//! clean-up of partial outputs after a crash.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use tracing::info;

use super::jobs::{CourseRecord, CourseState, JobRecord, JobState};
use crate::course::Course;
use crate::stages::{Stage, StageId};

/// `<data dir>/courses/<course id>/v<n>`: where version `n` of a course
/// keeps its results and manifest.
pub fn version_dir(data_dir: &Path, course_id: &str, n: u32) -> PathBuf {
    data_dir
        .join("courses")
        .join(course_id)
        .join(format!("v{n}"))
}

/// The result versions of a course found on disk, ascending.
pub fn versions_on_disk(data_dir: &Path, course_id: &str) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(data_dir.join("courses").join(course_id))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix('v')?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

/// A JSON result file of one stage of one course version
/// (`courses/<id>/v<N>/<stage>/<file>`), parsed; `None` when the stage wrote
/// none (not run, skipped, or failed).
pub fn stage_json(
    data_dir: &Path,
    course_id: &str,
    version: u32,
    stage: &str,
    file: &str,
) -> Result<Option<serde_json::Value>> {
    let path = version_dir(data_dir, course_id, version)
        .join(stage)
        .join(file);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(v))
}

/// Every file of one course version, as paths relative to its folder, sorted.
pub fn result_files(data_dir: &Path, course_id: &str, version: u32) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let root = version_dir(data_dir, course_id, version);
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// Hash of every member object (UID and content): any new, revised or
/// re-sent-with-changes object changes it.
pub fn members_fingerprint(c: &Course) -> String {
    let mut keys: Vec<String> = c
        .all_members()
        .map(|m| format!("{}:{}", m.sop_instance_uid, m.content_hash))
        .collect();
    keys.sort();
    let mut h = blake3::Hasher::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex()[..16].to_string()
}

/// A stage's fingerprint: its name and revision, its inputs, and the
/// fingerprints of the stages it runs after.
pub fn stage_fingerprint(
    stage: &dyn Stage,
    inputs: &[String],
    upstream: &HashMap<StageId, String>,
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(stage.name().as_str().as_bytes());
    h.update(&stage.revision().to_le_bytes());
    let mut sorted = inputs.to_vec();
    sorted.sort();
    for i in sorted {
        h.update(i.as_bytes());
        h.update(b"\n");
    }
    for dep in stage.after().iter().chain(stage.reads_if_present()) {
        h.update(dep.as_str().as_bytes());
        h.update(
            upstream
                .get(dep)
                .map(String::as_str)
                .unwrap_or("-")
                .as_bytes(),
        );
    }
    h.finalize().to_hex()[..16].to_string()
}

/// Hard-links a finished stage's files into a new version (results are
/// immutable once written, so sharing the inodes is safe and free).
pub fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            link_tree(&e.path(), &dest)?;
        } else if std::fs::hard_link(e.path(), &dest).is_err() {
            std::fs::copy(e.path(), &dest)?;
        }
    }
    Ok(())
}

const PURGE_PREFIX: &str = ".purge-";

/// Removes every result version of a course. The folder is first renamed
/// aside, so that a crash half-way leaves no half-removed results under
/// the course's name; what is left aside is removed at the next start.
pub fn remove_results(data_dir: &Path, course_id: &str) -> Result<bool> {
    anyhow::ensure!(
        !course_id.is_empty()
            && course_id != "."
            && course_id != ".."
            && !course_id.contains(['/', '\\']),
        "course id {course_id:?} is not a folder name"
    );
    let courses = data_dir.join("courses");
    let dir = courses.join(course_id);
    if !dir.exists() {
        return Ok(false);
    }
    let aside = courses.join(format!(
        "{PURGE_PREFIX}{course_id}-{:08x}",
        rand::random::<u32>()
    ));
    std::fs::rename(&dir, &aside).with_context(|| format!("moving {} aside", dir.display()))?;
    crate::store::fsync_dir(&courses)?;
    std::fs::remove_dir_all(&aside).with_context(|| format!("removing {}", aside.display()))?;
    Ok(true)
}

/// Partial stage outputs (`.tmp-*`, and `.slurm-*` with their `.run-*`
/// descriptions unless a Slurm job still in flight owns them: `keep`) left
/// by a crash are never results, and neither are course folders a purge
/// had set aside.
pub fn remove_partial_outputs(courses_dir: &Path, keep: &std::collections::HashSet<PathBuf>) {
    let Ok(courses) = std::fs::read_dir(courses_dir) else {
        return;
    };
    for c in courses.flatten() {
        if c.file_name().to_string_lossy().starts_with(PURGE_PREFIX) {
            info!(path = %c.path().display(), "removing the rest of a purged course");
            let _ = std::fs::remove_dir_all(c.path());
            continue;
        }
        let Ok(versions) = std::fs::read_dir(c.path()) else {
            continue;
        };
        for v in versions.flatten() {
            let Ok(entries) = std::fs::read_dir(v.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if keep.contains(&e.path()) {
                    continue;
                }
                if name.starts_with(".tmp-") || name.starts_with(".slurm-") {
                    info!(path = %e.path().display(), "removing partial stage output");
                    let _ = std::fs::remove_dir_all(e.path());
                } else if name.starts_with(".run-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// The course state implied by its latest version's jobs.
pub fn state_of_latest(jobs: &BTreeMap<String, JobRecord>, rec: &CourseRecord) -> CourseState {
    let Some(v) = rec.latest_version() else {
        return CourseState::Incomplete;
    };
    let prefix = format!("{}/v{:04}/", rec.course.id, v.n);
    let states: Vec<JobState> = jobs
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(_, j)| j.state)
        .collect();
    if states.iter().any(|s| !s.is_final()) {
        CourseState::Processing
    } else if states.contains(&JobState::Failed) {
        CourseState::Failed
    } else {
        CourseState::Done
    }
}

pub fn looks_like_oom(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("out of memory")
        || m.contains("cannot allocate memory")
        || m.contains("memory allocation of")
        || m.contains("killed by signal 9")
        || m.contains("oom")
}

/// `v<N>/manifest.json`: what the version was made from and what each stage
/// did. Written whole (temporary file, then rename).
pub fn write_manifest(
    data_dir: &Path,
    rec: &CourseRecord,
    n: u32,
    jobs: &BTreeMap<String, JobRecord>,
) -> Result<()> {
    let Some(v) = rec.versions.iter().find(|v| v.n == n).cloned().or_else(|| {
        // Called while the version record is being made.
        rec.latest_version().filter(|v| v.n == n).cloned()
    }) else {
        return write_manifest_raw(data_dir, rec, n, None, jobs);
    };
    write_manifest_raw(data_dir, rec, n, Some(v), jobs)
}

fn write_manifest_raw(
    data_dir: &Path,
    rec: &CourseRecord,
    n: u32,
    v: Option<super::jobs::VersionRecord>,
    jobs: &BTreeMap<String, JobRecord>,
) -> Result<()> {
    let c = &rec.course;
    let prefix = format!("{}/v{n:04}/", c.id);
    let mut stages = serde_json::Map::new();
    for (_, j) in jobs
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
    {
        stages.insert(
            j.stage.to_string(),
            json!({
                "state": j.state.as_str(),
                "fingerprint": j.fingerprint,
                "attempts": j.attempts,
                "reused_from": j.reused_from.map(|r| format!("v{r}")),
                "duration_ms": j.duration_ms,
                "error": j.error,
                "skip_reason": j.skip_reason,
                "summary": j.summary,
            }),
        );
    }
    let manifest = json!({
        "course_id": c.id,
        "version": n,
        "created_at": v.as_ref().map(|v| v.created_at.clone()),
        "reason": v.as_ref().map(|v| v.reason.clone()),
        "members_fingerprint": rec.fingerprint,
        "patient": {"id": c.patient.id, "name": c.patient.name},
        "planning_series_uid": c.planning_series_uid,
        "frame_of_reference_uid": c.frame_of_reference_uid,
        "images": c.images.len(),
        "structure_sets": c.structure_sets.iter().map(|m| &m.sop_instance_uid).collect::<Vec<_>>(),
        "current_structure_set": c.current_structure_set().map(|m| &m.sop_instance_uid),
        "plans": c.plans.iter().map(|p| &p.member.sop_instance_uid).collect::<Vec<_>>(),
        "doses": c.doses.iter().map(|d| &d.member.sop_instance_uid).collect::<Vec<_>>(),
        "notes": c.notes,
        "stages": stages,
    });
    let dir = version_dir(data_dir, &c.id, n);
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(".manifest.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::rename(&tmp, dir.join("manifest.json"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_input_stage_is_part_of_the_fingerprint() {
        let report = crate::stages::report::Report::default();
        let inputs = vec!["a:1".to_string()];
        let mut up = HashMap::from([(StageId::Organize, "o1".to_string())]);
        let without = stage_fingerprint(&report, &inputs, &up);
        up.insert(StageId::Dvh, "d1".into());
        let with = stage_fingerprint(&report, &inputs, &up);
        up.insert(StageId::Dvh, "d2".into());
        let changed = stage_fingerprint(&report, &inputs, &up);
        assert_ne!(without, with, "a DVH that appears makes a new report");
        assert_ne!(with, changed, "a DVH that changes makes a new report");
    }
}
