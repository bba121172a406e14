//! The one list of stages: built once, from the configuration sections the
//! stages read, with `export` when the node serves, and checked when built.
//! Every stage depends only on stages before it, and on none missing, so a
//! dependency that names no stage stops the node at start rather than
//! blocking that stage forever.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::{dvh, export, organize, qc, radiomics, report, segmentation, Stage, StageId};

/// What the stages read of the node configuration: only their sections,
/// and the directory relative paths in them are against.
#[derive(Clone, Copy)]
pub struct StageSettings<'a> {
    /// `dvh:`.
    pub dvh: &'a crate::dvh::DvhSettings,
    /// `segmentation:`.
    pub segmentation: &'a crate::segmentation::SegmentationSection,
    /// `radiomics:`.
    pub radiomics: &'a crate::radiomics::RadiomicsSection,
    /// `report:`.
    pub report: &'a crate::report::settings::ReportSection,
    /// The config file's directory.
    pub base_dir: &'a Path,
}

/// Why a list of stages cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// Two stages of the same name.
    Duplicate(StageId),
    /// `stage` runs after `needs`, which is not in the list.
    Missing {
        /// The stage with the dependency.
        stage: StageId,
        /// The stage it needs.
        needs: StageId,
    },
    /// `stage` depends on `on`, which comes later in the list.
    OutOfOrder {
        /// The stage with the dependency.
        stage: StageId,
        /// The stage it depends on.
        on: StageId,
    },
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Duplicate(s) => write!(f, "the stage {s} is listed twice"),
            RegistryError::Missing { stage, needs } => {
                write!(
                    f,
                    "the stage {stage} runs after {needs}, which is not built"
                )
            }
            RegistryError::OutOfOrder { stage, on } => {
                write!(f, "the stage {stage} depends on {on}, listed after it")
            }
        }
    }
}

impl std::error::Error for RegistryError {}

/// The stages of a node, in run order, their dependencies checked.
#[derive(Clone)]
pub struct Registry {
    stages: Vec<Arc<dyn Stage>>,
}

impl Registry {
    /// Checks `stages` (in run order): no name twice, every stage's
    /// `after` present and earlier, and every `reads_if_present` that is
    /// present earlier.
    pub fn new(stages: Vec<Arc<dyn Stage>>) -> Result<Registry, RegistryError> {
        for (i, s) in stages.iter().enumerate() {
            let id = s.name();
            if stages[..i].iter().any(|o| o.name() == id) {
                return Err(RegistryError::Duplicate(id));
            }
            let position = |d: StageId| stages.iter().position(|o| o.name() == d);
            for &dep in s.after() {
                match position(dep) {
                    None => {
                        return Err(RegistryError::Missing {
                            stage: id,
                            needs: dep,
                        })
                    }
                    Some(j) if j >= i => {
                        return Err(RegistryError::OutOfOrder { stage: id, on: dep })
                    }
                    Some(_) => {}
                }
            }
            for &dep in s.reads_if_present() {
                if position(dep).is_some_and(|j| j >= i) {
                    return Err(RegistryError::OutOfOrder { stage: id, on: dep });
                }
            }
        }
        Ok(Registry { stages })
    }

    /// The stages of the default configuration (the body contour as the
    /// only segmenter), without `export`. The names, their order and their
    /// revisions do not depend on the configuration.
    pub fn defaults() -> Registry {
        let dvh = crate::dvh::DvhSettings::default();
        let segmentation = crate::segmentation::SegmentationSection::default();
        let radiomics = crate::radiomics::RadiomicsSection::default();
        let report = crate::report::settings::ReportSection::default();
        let stage = radiomics::RadiomicsStage {
            section: radiomics.clone(),
            params_yaml: String::new(),
            params: crate::radiomics::Params::default(),
        };
        Registry::build(
            &StageSettings {
                dvh: &dvh,
                segmentation: &segmentation,
                radiomics: &radiomics,
                report: &report,
                base_dir: Path::new(""),
            },
            segmentation::Segmentation::default(),
            stage,
            None,
        )
        .expect("the built-in stages are in dependency order")
    }

    /// The stages as configured, with `export` last when the node sends
    /// results out. Fails when a configured model or parameter file cannot
    /// be loaded (a node that would silently run without the operator's
    /// models must not start), or when the dependencies do not hold.
    pub fn configured(
        settings: &StageSettings,
        export: Option<export::Export>,
    ) -> anyhow::Result<Registry> {
        let segmentation =
            segmentation::Segmentation::from_section(settings.segmentation, settings.base_dir)?;
        let radiomics = radiomics::RadiomicsStage::new(settings.radiomics, settings.base_dir)?;
        Ok(Registry::build(settings, segmentation, radiomics, export)?)
    }

    fn build(
        settings: &StageSettings,
        segmentation: segmentation::Segmentation,
        radiomics: radiomics::RadiomicsStage,
        export: Option<export::Export>,
    ) -> Result<Registry, RegistryError> {
        let mut stages: Vec<Arc<dyn Stage>> = vec![
            Arc::new(organize::Organize),
            Arc::new(segmentation),
            Arc::new(qc::Qc),
            Arc::new(dvh::DvhStage {
                settings: settings.dvh.clone(),
            }),
            Arc::new(radiomics),
            Arc::new(report::Report::from_section(
                settings.report,
                settings.base_dir,
            )),
        ];
        if let Some(export) = export {
            stages.push(Arc::new(export));
        }
        Registry::new(stages)
    }

    /// The stages, in run order.
    pub fn stages(&self) -> &[Arc<dyn Stage>] {
        &self.stages
    }

    /// The stage of this name, when it is built.
    pub fn get(&self, id: StageId) -> Option<&Arc<dyn Stage>> {
        self.stages.iter().find(|s| s.name() == id)
    }

    /// The names of the stages, in run order.
    pub fn ids(&self) -> impl Iterator<Item = StageId> + '_ {
        self.stages.iter().map(|s| s.name())
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.ids()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::course::Course;
    use crate::stages::{Inputs, Outcome, StageContext};

    struct Fake(StageId, &'static [StageId], &'static [StageId]);

    impl Stage for Fake {
        fn name(&self) -> StageId {
            self.0
        }
        fn after(&self) -> &'static [StageId] {
            self.1
        }
        fn reads_if_present(&self) -> &'static [StageId] {
            self.2
        }
        fn inputs(&self, _: &Course) -> Inputs {
            Ok(Vec::new())
        }
        fn run(&self, _: &StageContext) -> anyhow::Result<Outcome> {
            Ok(Outcome::done(serde_json::Value::Null))
        }
    }

    fn fake(id: StageId, after: &'static [StageId], reads: &'static [StageId]) -> Arc<dyn Stage> {
        Arc::new(Fake(id, after, reads))
    }

    #[test]
    fn the_default_stages_are_every_stage_but_export_in_order() {
        let ids: Vec<StageId> = Registry::defaults().ids().collect();
        assert_eq!(ids, StageId::ALL[..6]);
    }

    #[test]
    fn a_dependency_on_a_stage_not_built_is_an_error_at_start() {
        use StageId::*;
        let err = Registry::new(vec![fake(Segmentation, &[Organize], &[])]).unwrap_err();
        assert_eq!(
            err,
            RegistryError::Missing {
                stage: Segmentation,
                needs: Organize
            }
        );
        assert!(err.to_string().contains("organize"), "{err}");
        // Read-if-present may name a stage that is not built.
        assert!(Registry::new(vec![fake(Export, &[], &[Segmentation, Report])]).is_ok());
    }

    #[test]
    fn dependencies_come_first_and_names_once() {
        use StageId::*;
        assert_eq!(
            Registry::new(vec![fake(Dvh, &[], &[Qc]), fake(Qc, &[], &[])]).unwrap_err(),
            RegistryError::OutOfOrder { stage: Dvh, on: Qc }
        );
        assert_eq!(
            Registry::new(vec![fake(Qc, &[], &[]), fake(Qc, &[], &[])]).unwrap_err(),
            RegistryError::Duplicate(Qc)
        );
        let ok = Registry::new(vec![fake(Organize, &[], &[]), fake(Qc, &[Organize], &[])]).unwrap();
        assert!(ok.get(Qc).is_some() && ok.get(Dvh).is_none());
    }
}
