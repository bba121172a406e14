//! The report's fonts: which files (the defaults and the Debian packages
//! that install them), loading them, and per-character fallback — krilla
//! does no fallback itself, so [`Fonts`] maps each character to the first
//! configured font that has a glyph for it, and text is drawn in runs of
//! one font. Characters no font has print as '?'.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use krilla::geom::Point;
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::instance::{LocationRef, Size as FontSize};
use skrifa::raw::TableProvider;
use skrifa::{FontRef, MetadataProvider};

use super::super::model::wrap_by;
use super::PdfError;

/// The default fonts, in fallback order, with the Debian package that
/// installs each: DejaVu Sans for Latin, Greek and Cyrillic, WenQuanYi
/// Micro Hei for Japanese (kana and kanji), Korean (Hangul) and Chinese.
pub const DEFAULT_FONTS: &[(&str, &str)] = &[
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "fonts-dejavu-core",
    ),
    (
        "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
        "fonts-wqy-microhei",
    ),
];
/// Bold text: this first, then the regular fonts for what it lacks.
pub const DEFAULT_BOLD_FONTS: &[(&str, &str)] = &[(
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "fonts-dejavu-core",
)];

/// Which font files the report uses: `regular` in fallback order, `bold`
/// tried before them for bold text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FontFiles {
    /// TrueType/OpenType files for regular text, first choice first; a
    /// character missing from one is taken from the next. Must not be empty.
    pub regular: Vec<PathBuf>,
    /// Files tried first for bold text; may be empty (bold then falls back
    /// to `regular`).
    pub bold: Vec<PathBuf>,
}

impl Default for FontFiles {
    fn default() -> Self {
        FontFiles {
            regular: DEFAULT_FONTS
                .iter()
                .map(|(p, _)| PathBuf::from(p))
                .collect(),
            bold: DEFAULT_BOLD_FONTS
                .iter()
                .map(|(p, _)| PathBuf::from(p))
                .collect(),
        }
    }
}

fn package_hint(path: &Path) -> String {
    DEFAULT_FONTS
        .iter()
        .chain(DEFAULT_BOLD_FONTS)
        .find(|(p, _)| Path::new(p) == path)
        .map(|(_, pkg)| {
            format!(" (Debian package {pkg}: `apt-get install {pkg}`; or list other fonts in report.fonts)")
        })
        .unwrap_or_else(|| " (listed in report.fonts)".to_string())
}

struct Face {
    font: Font,
    data: Arc<Vec<u8>>,
    index: u32,
    upem: f32,
}

impl Face {
    fn load(path: &Path) -> Result<Face, PdfError> {
        let data = match std::fs::read(path) {
            Ok(d) => Arc::new(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PdfError::MissingFont {
                    path: path.to_path_buf(),
                    hint: package_hint(path),
                })
            }
            Err(e) => {
                return Err(PdfError::BadFont {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        };
        let bad = |reason: &str| PdfError::BadFont {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let index = 0;
        let upem = {
            let f = FontRef::from_index(&data, index)
                .map_err(|_| bad("not a TrueType/OpenType font"))?;
            f.head().map_err(|_| bad("no head table"))?.units_per_em()
        };
        let font = Font::new(krilla::Data::from(data.clone()), index)
            .ok_or_else(|| bad("krilla cannot read it"))?;
        Ok(Face {
            font,
            data,
            index,
            upem: f32::from(upem.max(1)),
        })
    }

    /// Glyph and advance (in em) of `c`, when this font has it.
    fn glyph(&self, c: char) -> Option<(u32, f32)> {
        let f = FontRef::from_index(&self.data, self.index).ok()?;
        let gid = f.charmap().map(c)?;
        if gid.to_u32() == 0 {
            return None;
        }
        let adv = f
            .glyph_metrics(FontSize::unscaled(), LocationRef::default())
            .advance_width(gid)
            .unwrap_or(0.0);
        Some((gid.to_u32(), adv / self.upem))
    }
}

/// (face index, glyph id, advance in em) of a character.
type Placed = (usize, u32, f32);

/// The loaded report fonts with per-character fallback.
pub struct Fonts {
    faces: Vec<Face>,
    /// Indices into `faces`, in fallback order.
    regular: Vec<usize>,
    bold: Vec<usize>,
    cache: RefCell<HashMap<(char, bool), Placed>>,
}

impl Fonts {
    /// Reads every font file; a missing one is an error naming the file
    /// and the package that installs it.
    pub fn load(files: &FontFiles) -> Result<Fonts, PdfError> {
        let mut faces = Vec::new();
        let mut regular = Vec::new();
        for p in &files.regular {
            regular.push(faces.len());
            faces.push(Face::load(p)?);
        }
        if regular.is_empty() {
            return Err(PdfError::BadFont {
                path: PathBuf::from("report.fonts"),
                reason: "no font is configured".into(),
            });
        }
        let mut bold = Vec::new();
        for p in &files.bold {
            bold.push(faces.len());
            faces.push(Face::load(p)?);
        }
        bold.extend(regular.iter().copied());
        Ok(Fonts {
            faces,
            regular,
            bold,
            cache: RefCell::new(HashMap::new()),
        })
    }

    /// (face, glyph, advance in em) for `c`: the first font of the chain
    /// that has it, else '?' in the first.
    pub(super) fn glyph(&self, c: char, bold: bool) -> Placed {
        let c = if c.is_control() { ' ' } else { c };
        if let Some(g) = self.cache.borrow().get(&(c, bold)) {
            return *g;
        }
        let chain = if bold { &self.bold } else { &self.regular };
        let found = chain
            .iter()
            .find_map(|&i| self.faces[i].glyph(c).map(|(g, a)| (i, g, a)))
            .or_else(|| {
                chain
                    .iter()
                    .find_map(|&i| self.faces[i].glyph('?').map(|(g, a)| (i, g, a)))
            })
            .unwrap_or((chain[0], 0, 0.5));
        self.cache.borrow_mut().insert((c, bold), found);
        found
    }

    /// Width of `s` at `size` points.
    pub fn width(&self, s: &str, size: f64, bold: bool) -> f64 {
        s.chars()
            .map(|c| f64::from(self.glyph(c, bold).2))
            .sum::<f64>()
            * size
    }

    pub(super) fn wrap(&self, s: &str, size: f64, bold: bool, width: f64) -> Vec<String> {
        wrap_by(s, width, |t| self.width(t, size, bold))
    }

    /// Draws `s` with its left end of the baseline at (x, y), in runs of
    /// one font each.
    pub(super) fn draw(
        &self,
        surface: &mut Surface,
        x: f64,
        y: f64,
        s: &str,
        size: f64,
        bold: bool,
    ) {
        let mut x = x as f32;
        let mut run = String::new();
        let mut glyphs: Vec<KrillaGlyph> = Vec::new();
        let mut face: Option<usize> = None;
        let flush = |surface: &mut Surface,
                     x: &mut f32,
                     face: Option<usize>,
                     run: &mut String,
                     glyphs: &mut Vec<KrillaGlyph>| {
            if let (Some(f), false) = (face, glyphs.is_empty()) {
                surface.draw_glyphs(
                    Point::from_xy(*x, y as f32),
                    glyphs,
                    self.faces[f].font.clone(),
                    run,
                    size as f32,
                    false,
                );
                *x += glyphs.iter().map(|g| g.x_advance).sum::<f32>() * size as f32;
            }
            run.clear();
            glyphs.clear();
        };
        for c in s.chars() {
            let (f, gid, adv) = self.glyph(c, bold);
            if gid == 0 {
                // Not even '?' exists: .notdef is not allowed in PDF/A.
                continue;
            }
            if face != Some(f) {
                flush(surface, &mut x, face, &mut run, &mut glyphs);
                face = Some(f);
            }
            let start = run.len();
            run.push(c);
            glyphs.push(KrillaGlyph::new(
                GlyphId::new(gid),
                adv,
                0.0,
                0.0,
                0.0,
                start..run.len(),
                None,
            ));
        }
        flush(surface, &mut x, face, &mut run, &mut glyphs);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The default fonts, or None (said on stderr) where they are not
    /// installed.
    pub(in super::super) fn fonts() -> Option<Fonts> {
        match Fonts::load(&FontFiles::default()) {
            Ok(f) => Some(f),
            Err(e) => {
                // The integration tests require the fonts; unit tests run
                // where they are not installed too.
                eprintln!("skipped: {e}");
                None
            }
        }
    }

    #[test]
    fn a_missing_font_names_the_file_and_its_package() {
        let files = FontFiles {
            regular: vec![PathBuf::from(
                "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
            )],
            bold: vec![],
        };
        let missing = FontFiles {
            regular: files
                .regular
                .iter()
                .map(|p| p.with_extension("nope"))
                .collect(),
            bold: vec![],
        };
        let e = Fonts::load(&missing).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("wqy-microhei.nope")),
            "{e:?}"
        );
        let e = package_hint(&files.regular[0]);
        assert!(e.contains("fonts-wqy-microhei"), "{e}");
    }

    #[test]
    fn characters_fall_back_across_fonts() {
        let Some(f) = fonts() else { return };
        let (latin, _, _) = f.glyph('Ž', false);
        let (kanji, _, _) = f.glyph('山', false);
        let (hangul, _, _) = f.glyph('한', false);
        assert_eq!(latin, 0);
        assert_eq!(kanji, 1);
        assert_eq!(hangul, 1);
        assert_eq!(f.glyph('Ž', true).0, 2, "bold first");
        assert_eq!(f.glyph('山', true).0, 1, "then the regular fallback");
        assert!(f.width("Wi", 10.0, false) > 5.0);
    }
}
