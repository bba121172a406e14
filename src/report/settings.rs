//! The `report:` section of the node configuration: which VxGy metrics the
//! course report lists and the fonts it is drawn with. The report owns it;
//! the config aggregates it and maps the keys [`ReportSection::check`]
//! names to lines.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The `report:` section of the node configuration.
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
        let files = super::pdf::FontFiles::default();
        ReportSection {
            v_gy: Vec::new(),
            fonts: files.regular,
            bold_fonts: files.bold,
        }
    }
}

impl ReportSection {
    /// The font files, relative ones resolved against `base`.
    pub fn font_files(&self, base: &Path) -> super::pdf::FontFiles {
        super::pdf::FontFiles {
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
