//! The courses table: one row per course with its patient, study, plans,
//! prescriptions, fractions, machines and the dose the DVH used.

use std::collections::BTreeSet;

use dicom_dictionary_std::tags;

use super::stage_tables::DvhJson;
use super::table::{Cell, Kind};
use super::{join, Builder, CourseCtx};
use crate::pipeline::JobRecord;

/// What the course's plans say that no stage output records.
#[derive(Debug, Default)]
struct PlanInfo {
    uids: Vec<String>,
    labels: Vec<String>,
    names: Vec<String>,
    intents: Vec<String>,
    approvals: Vec<String>,
    fractions: Vec<u32>,
    machines: BTreeSet<String>,
    prescriptions: Vec<crate::rt::plan::Prescription>,
}

struct Study {
    uid: String,
    date: String,
    description: String,
}

impl Builder<'_> {
    fn plan_info(&mut self, ctx: &CourseCtx, only: &[String]) -> PlanInfo {
        let mut info = PlanInfo::default();
        for p in &ctx.rec.course.plans {
            let uid = &p.member.sop_instance_uid;
            if !only.is_empty() && !only.contains(uid) {
                continue;
            }
            let path = self.data_dir.join(&p.member.path);
            let read = crate::dicom::attrs::open(&path, true).and_then(|obj| {
                let plan = crate::rt::plan::Plan::from_object(&obj)?;
                let mut machines = BTreeSet::new();
                for seq in [tags::BEAM_SEQUENCE, tags::ION_BEAM_SEQUENCE] {
                    for beam in crate::dicom::attrs::items(&obj, seq) {
                        let m = crate::dicom::attrs::text(&beam, tags::TREATMENT_MACHINE_NAME);
                        if !m.is_empty() {
                            machines.insert(m);
                        }
                    }
                }
                Ok((plan, machines))
            });
            match read {
                Ok((plan, machines)) => {
                    info.uids.push(uid.clone());
                    info.labels.push(plan.label.clone());
                    info.names.push(plan.name.clone());
                    info.intents.push(plan.intent.clone());
                    info.approvals.push(plan.approval_status.clone());
                    if let Some(f) = plan.total_fractions() {
                        info.fractions.push(f);
                    }
                    info.machines.extend(machines);
                    info.prescriptions.extend(plan.prescriptions().0);
                }
                Err(e) => self.problem(&ctx.rec.course.id, format!("RTPLAN {uid}: {e:#}")),
            }
        }
        info
    }

    /// Study attributes from the first course object that can be read.
    fn study(&self, ctx: &CourseCtx) -> Option<Study> {
        let c = &ctx.rec.course;
        let candidates = c
            .plans
            .iter()
            .map(|p| &p.member)
            .chain(c.structure_sets.iter())
            .chain(c.images.iter().take(1));
        for m in candidates {
            if let Ok(obj) = crate::dicom::attrs::open(&self.data_dir.join(&m.path), true) {
                return Some(Study {
                    uid: crate::dicom::attrs::text(&obj, tags::STUDY_INSTANCE_UID),
                    date: crate::dicom::attrs::text(&obj, tags::STUDY_DATE),
                    description: crate::dicom::attrs::text(&obj, tags::STUDY_DESCRIPTION),
                });
            }
        }
        None
    }

    pub(super) fn course_row(&mut self, ctx: &CourseCtx, dvh: Option<&DvhJson>) {
        let c = &ctx.rec.course;
        let plans_used: Vec<String> = dvh.map(|d| d.dose.plan_uids.clone()).unwrap_or_default();
        let plans = self.plan_info(ctx, &plans_used);
        let study = self.study(ctx);
        // The prescriptions the DVH used; the plans' own when there was none.
        let rx = match dvh {
            Some(d) if !d.prescriptions.is_empty() => d.prescriptions.clone(),
            _ => plans.prescriptions.clone(),
        };
        let jobs: Vec<&&JobRecord> = ctx.jobs.values().collect();
        let completed_at = if !jobs.is_empty() && jobs.iter().all(|j| j.state.is_final()) {
            jobs.iter().filter_map(|j| j.finished_at.clone()).max()
        } else {
            None
        };
        let version = ctx.rec.versions.iter().find(|v| v.n == ctx.version);
        let mut row = self.provenance(ctx, "course", &Self::rt_sources(ctx));
        row.put(
            "course_state",
            Kind::Plain,
            Cell::text(ctx.rec.state.as_str()),
        )
        .put("patient_id", Kind::PatientId, Cell::text(&c.patient.id))
        .put(
            "patient_name",
            Kind::PatientName,
            Cell::text(&c.patient.name),
        )
        .put(
            "patient_birth_date",
            Kind::Date,
            Cell::text(&c.patient.birth_date),
        )
        .put("patient_sex", Kind::Plain, Cell::text(&c.patient.sex))
        .put(
            "study_instance_uid",
            Kind::Uids,
            Cell::text(study.as_ref().map(|s| s.uid.clone()).unwrap_or_default()),
        )
        .put(
            "study_date",
            Kind::Date,
            Cell::text(study.as_ref().map(|s| s.date.clone()).unwrap_or_default()),
        )
        .put(
            "study_description",
            Kind::FreeText,
            Cell::text(
                study
                    .as_ref()
                    .map(|s| s.description.clone())
                    .unwrap_or_default(),
            ),
        )
        .put(
            "planning_series_uid",
            Kind::Uids,
            Cell::text(&c.planning_series_uid),
        )
        .put("images", Kind::Plain, Cell::Int(c.images.len() as i64))
        .put(
            "rtstruct_uid",
            Kind::Uids,
            Cell::text(
                c.current_structure_set()
                    .map(|m| m.sop_instance_uid.clone())
                    .unwrap_or_default(),
            ),
        )
        .put("plan_uids", Kind::Uids, Cell::text(join(&plans.uids, " ")))
        .put(
            "plan_labels",
            Kind::FreeText,
            Cell::text(join(&plans.labels, "; ")),
        )
        .put(
            "plan_names",
            Kind::FreeText,
            Cell::text(join(&plans.names, "; ")),
        )
        .put(
            "plan_intents",
            Kind::Plain,
            Cell::text(join(&plans.intents, " ")),
        )
        .put(
            "plan_approval",
            Kind::Plain,
            Cell::text(join(&plans.approvals, " ")),
        )
        .put(
            "fractions",
            Kind::Plain,
            match plans.fractions.iter().collect::<BTreeSet<_>>().len() {
                0 => Cell::Null,
                1 => Cell::Int(plans.fractions[0].into()),
                _ => Cell::text(join(plans.fractions.iter().map(u32::to_string), " ")),
            },
        )
        .put(
            "prescription_gy",
            Kind::Plain,
            Cell::opt_num(rx.iter().map(|p| p.dose_gy).reduce(f64::max)),
        )
        .put(
            "prescriptions_gy",
            Kind::Plain,
            Cell::text(join(rx.iter().map(|p| p.dose_gy.to_string()), " ")),
        )
        .put(
            "prescription_descriptions",
            Kind::FreeText,
            Cell::text(join(rx.iter().map(|p| p.description.clone()), "; ")),
        )
        .put(
            "treatment_machines",
            Kind::Plain,
            Cell::text(join(&plans.machines, " ")),
        );
        let d = dvh.map(|d| &d.dose);
        let grid = d.and_then(|d| d.grid_size);
        let spacing = d.and_then(|d| d.grid_spacing_mm);
        row.put(
            "dose_description",
            Kind::Plain,
            Cell::text(d.map(|d| d.description.clone()).unwrap_or_default()),
        )
        .put(
            "dose_uids",
            Kind::Uids,
            Cell::text(d.map(|d| join(&d.dose_uids, " ")).unwrap_or_default()),
        )
        .put(
            "dose_plan_uids",
            Kind::Uids,
            Cell::text(d.map(|d| join(&d.plan_uids, " ")).unwrap_or_default()),
        )
        .put(
            "dose_units",
            Kind::Plain,
            Cell::text(d.map(|d| d.units.clone()).unwrap_or_default()),
        )
        .put(
            "dose_type",
            Kind::Plain,
            Cell::text(d.map(|d| d.dose_type.clone()).unwrap_or_default()),
        )
        .put(
            "dose_max_gy",
            Kind::Plain,
            Cell::opt_num(d.and_then(|d| d.max_dose_gy)),
        );
        for (i, axis) in ["x", "y", "z"].iter().enumerate() {
            row.put(
                &format!("dose_grid_n{axis}"),
                Kind::Plain,
                grid.map_or(Cell::Null, |g| Cell::Int(g[i] as i64)),
            );
        }
        for (i, axis) in ["x", "y", "z"].iter().enumerate() {
            row.put(
                &format!("dose_grid_d{axis}_mm"),
                Kind::Plain,
                spacing.map_or(Cell::Null, |s| Cell::Num(s[i])),
            );
        }
        row.put(
            "dvh_rtnode_version",
            Kind::Plain,
            Cell::text(dvh.map(|d| d.rtnode_version.clone()).unwrap_or_default()),
        )
        .put(
            "version_created_at",
            Kind::Date,
            Cell::text(version.map(|v| v.created_at.clone()).unwrap_or_default()),
        )
        .put(
            "completed_at",
            Kind::Date,
            Cell::text(completed_at.unwrap_or_default()),
        );
        self.courses.push(row);
    }
}
