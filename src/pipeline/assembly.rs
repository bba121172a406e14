//! Course assembly in the scheduler: the records linked to what arrived
//! (or the next series of the start-up pass) are read from the store's
//! index and assembled into courses, and each course whose members,
//! missing objects or hold changed is recorded and made active.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Result;
use tracing::info;

use super::TriggerRule;
use super::{
    course_jobs, versions, CourseRecord, CourseState, Pass, Pipeline, PASS_SERIES_PER_TICK,
};
use crate::course::{self, Course};
use crate::store::InstanceRecord;

impl Pipeline {
    pub(super) fn rule_for(&self, c: &Course) -> TriggerRule {
        let s = &self.opts.settings;
        c.calling_aes
            .iter()
            .find_map(|ae| s.trigger_by_calling_ae.get(ae.trim()).copied())
            .unwrap_or(s.trigger)
    }

    /// Re-assembles what the arrivals since the last tick (and the next
    /// slice of the start-up pass) can affect.
    pub(super) fn reassemble(&self) -> Result<()> {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(index) = index else {
            return Ok(());
        };
        let mut seeds: Vec<String> = Vec::new();
        {
            let rx = self.arrivals_rx.lock().unwrap_or_else(|p| p.into_inner());
            while let Ok(uid) = rx.try_recv() {
                self.arrivals_pending.fetch_sub(1, Ordering::Relaxed);
                seeds.push(uid);
            }
        }
        let pass = self.lock().pass.clone();
        if let Pass::After(after) = pass {
            let batch = index.series_after(after.as_deref(), PASS_SERIES_PER_TICK)?;
            let next = if batch.len() < PASS_SERIES_PER_TICK {
                Pass::Done
            } else {
                Pass::After(batch.last().map(|(k, _)| k.clone()))
            };
            seeds.extend(batch.into_iter().map(|(_, sop)| sop));
            self.lock().pass = next;
        }
        seeds.sort();
        seeds.dedup();
        // Components one at a time: each is assembled alone, as the whole
        // archive would assemble it (nothing links it to the rest).
        let mut done: HashSet<String> = HashSet::new();
        for seed in &seeds {
            if done.contains(seed) {
                continue;
            }
            let records = index.linked(&[seed.as_str()])?;
            self.assembled_records
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            done.extend(records.iter().map(|r| r.sop_instance_uid.clone()));
            self.assemble_component(&records)?;
        }
        Ok(())
    }

    /// Assembles the courses of one linked set of records and records what
    /// changed, durably.
    fn assemble_component(&self, records: &[InstanceRecord]) -> Result<()> {
        let ours: HashSet<String> = {
            let inner = self.lock();
            records
                .iter()
                .filter(|r| inner.ours.contains(&r.sop_instance_uid))
                .map(|r| r.sop_instance_uid.clone())
                .collect()
        };
        let assembly = course::assemble_all(records, &ours);
        let series: std::collections::BTreeSet<&str> = records
            .iter()
            .map(|r| r.series_instance_uid.as_str())
            .collect();
        let mut inner = self.lock();
        let gone: Vec<String> = series
            .iter()
            .filter(|s| {
                inner.unassembled.contains_key(**s)
                    && !assembly
                        .unassembled
                        .iter()
                        .any(|u| u.series_instance_uid == **s)
            })
            .map(|s| s.to_string())
            .collect();
        let changed: Vec<course::Unassembled> = assembly
            .unassembled
            .iter()
            .filter(|u| inner.unassembled.get(&u.series_instance_uid) != Some(u))
            .cloned()
            .collect();
        if !gone.is_empty() || !changed.is_empty() {
            self.state.update_unassembled(&gone, &changed)?;
            for g in &gone {
                inner.unassembled.remove(g);
            }
            for u in changed {
                inner.unassembled.insert(u.series_instance_uid.clone(), u);
            }
        }
        // A course whose planning series no longer forms one (more of it
        // arrived and showed a gap, or a second frame of reference): one
        // never processed is dissolved, one with results is kept and says
        // why it stays incomplete.
        let produced: HashSet<String> = assembly.courses.iter().map(|c| c.id.clone()).collect();
        for u in &assembly.unassembled {
            let id = course::course_id(&u.patient_id, &u.series_instance_uid);
            if produced.contains(&id) {
                continue;
            }
            let Some(old) = inner.courses.get(&id).cloned() else {
                continue;
            };
            let busy = course_jobs(&inner.jobs, &id).any(|(_, j)| !j.state.is_final());
            if old.versions.is_empty() && !busy {
                self.state.remove_course(&id, &[])?;
                inner.courses.remove(&id);
                inner.active.remove(&id);
                inner.last_change.remove(&id);
                info!(course = %id, reason = %u.reason, "course dissolved: its planning series no longer forms one");
                continue;
            }
            let why = format!("its planning series no longer forms a course: {}", u.reason);
            if old.missing != [why.clone()] {
                let mut rec = old;
                rec.missing = vec![why];
                rec.updated_at = crate::time::now_rfc3339();
                self.state.put_course(&id, &rec)?;
                inner.active.insert(id.clone());
                inner.courses.insert(id, rec);
            }
        }
        for c in assembly.courses {
            let fingerprint = versions::members_fingerprint(&c);
            let rule = self.rule_for(&c);
            let missing = c.missing_for(rule.as_str(), self.opts.settings.require_approved);
            let id = c.id.clone();
            let changed = match inner.courses.get(&id) {
                Some(old) => {
                    old.fingerprint != fingerprint
                        || old.missing != missing
                        || old.course.held != c.held
                }
                None => true,
            };
            if !changed {
                continue;
            }
            if inner
                .courses
                .get(&id)
                .is_none_or(|o| o.fingerprint != fingerprint)
            {
                inner.last_change.insert(id.clone(), Instant::now());
            }
            let old = inner.courses.get(&id);
            let rec = CourseRecord {
                state: old.map(|o| o.state).unwrap_or(CourseState::Incomplete),
                versions: old.map(|o| o.versions.clone()).unwrap_or_default(),
                operator_hold: old.and_then(|o| o.operator_hold.clone()),
                course: c,
                rule: rule.as_str().to_owned(),
                missing,
                fingerprint,
                updated_at: crate::time::now_rfc3339(),
            };
            self.state.put_course(&id, &rec)?;
            inner.active.insert(id.clone());
            inner.courses.insert(id, rec);
        }
        Ok(())
    }
}
