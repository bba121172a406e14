//! The report as PDF/A-2b, written with krilla: text in embedded, subset
//! TrueType fonts (so that every name a course can carry — Latin, Greek,
//! Cyrillic, Japanese, Korean, Chinese — prints as itself and `pdftotext`
//! reads it back), vector paths for plots and contours, the CT slices as
//! greyscale images. A4 portrait; blocks flow down the page, tables
//! continue on the next page with their header repeated, and
//! [`Block::PageBreak`] starts a new page.
//!
//! krilla does no font fallback: [`Fonts`] maps each character to the
//! first configured font that has a glyph for it and text is drawn in runs
//! of one font. Characters no font has print as '?'.

mod fonts;
mod layout;

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use krilla::color::rgb;
use krilla::configure::{Archival, ConfigurationBuilder};
use krilla::geom::{PathBuilder, Size, Transform};
use krilla::image::{BitsPerComponent, CustomImage, Image, ImageColorspace};
use krilla::metadata::{DateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, FillRule, Stroke, StrokeDash};
use krilla::surface::Surface;
use krilla::{Document as PdfDocument, SerializeSettings};

pub use fonts::{FontFiles, Fonts, DEFAULT_BOLD_FONTS, DEFAULT_FONTS};
use layout::{Layout, Op, BODY, MARGIN, PAGE_H, PAGE_W};

use super::model::{Block, Document, GrayImage, Rgb};

/// Why the PDF could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// A configured font file does not exist.
    #[error("report font {path} is missing{hint}")]
    MissingFont {
        /// The font file looked for.
        path: PathBuf,
        /// How to get it: the Debian package for a default font, else a
        /// pointer to `report.fonts`; starts with a space.
        hint: String,
    },
    /// A font file cannot be read or used (also: no regular font configured,
    /// with `path` "report.fonts").
    #[error("report font {path}: {reason}")]
    BadFont {
        /// The font file, or the setting at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// krilla failed to build or serialise the document (e.g. a PDF/A
    /// violation); the message is krilla's.
    #[error("writing the report PDF: {0}")]
    Write(String),
}

/// A CT slice for krilla: 8-bit grey, shared rather than copied.
#[derive(Clone)]
struct Grey(Arc<GrayImage>);

impl Hash for Grey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.width.hash(state);
        self.0.height.hash(state);
        self.0.pixels.hash(state);
    }
}

impl CustomImage for Grey {
    fn color_channel(&self) -> &[u8] {
        &self.0.pixels
    }
    fn alpha_channel(&self) -> Option<&[u8]> {
        None
    }
    fn bits_per_component(&self) -> BitsPerComponent {
        BitsPerComponent::Eight
    }
    fn size(&self) -> (u32, u32) {
        (self.0.width as u32, self.0.height as u32)
    }
    fn icc_profile(&self) -> Option<&[u8]> {
        None
    }
    fn color_space(&self) -> ImageColorspace {
        ImageColorspace::Luma
    }
}

fn colour(c: Rgb) -> krilla::color::Color {
    rgb::Color::new(c[0], c[1], c[2]).into()
}

fn stroke_of(c: Rgb, width: f64, dashed: bool) -> Stroke {
    Stroke {
        paint: colour(c).into(),
        width: width as f32,
        dash: dashed.then(|| StrokeDash {
            array: vec![3.0, 2.0],
            offset: 0.0,
        }),
        ..Stroke::default()
    }
}

fn fill_of(c: Rgb) -> Fill {
    Fill {
        paint: colour(c).into(),
        opacity: NormalizedF32::ONE,
        rule: FillRule::NonZero,
    }
}

fn rect_path(x: f64, y: f64, w: f64, h: f64) -> Option<krilla::geom::Path> {
    let r = krilla::geom::Rect::from_xywh(x as f32, y as f32, w as f32, h as f32)?;
    let mut pb = PathBuilder::new();
    pb.push_rect(r);
    pb.finish()
}

fn draw_op(s: &mut Surface, fonts: &Fonts, op: &Op, clips: &mut usize) -> Result<(), PdfError> {
    match op {
        Op::Text {
            x,
            y,
            text,
            size,
            bold,
            colour: c,
        } => {
            s.set_stroke(None);
            s.set_fill(Some(fill_of(*c)));
            fonts.draw(s, *x, *y, text, *size, *bold);
        }
        Op::Path {
            points,
            closed,
            stroke,
            width,
            dashed,
        } => {
            let Some(first) = points.first() else {
                return Ok(());
            };
            let mut pb = PathBuilder::new();
            pb.move_to(first[0] as f32, first[1] as f32);
            for p in &points[1..] {
                pb.line_to(p[0] as f32, p[1] as f32);
            }
            if *closed {
                pb.close();
            }
            if let Some(path) = pb.finish() {
                s.set_fill(None);
                s.set_stroke(Some(stroke_of(*stroke, *width, *dashed)));
                s.draw_path(&path);
            }
        }
        Op::Rect {
            x,
            y,
            w,
            h,
            fill,
            stroke,
        } => {
            if let Some(path) = rect_path(*x, *y, *w, *h) {
                s.set_fill(fill.map(fill_of));
                s.set_stroke(stroke.map(|c| stroke_of(c, 0.5, false)));
                s.draw_path(&path);
            }
        }
        Op::Image { x, y, w, h, image } => {
            let img = Image::from_custom(Grey(image.clone()), false).map_err(PdfError::Write)?;
            if let Some(size) = Size::from_wh(*w as f32, *h as f32) {
                s.push_transform(&Transform::from_translate(*x as f32, *y as f32));
                s.draw_image(img, size);
                s.pop();
            }
        }
        Op::Clip { x, y, w, h } => {
            if let Some(path) = rect_path(*x, *y, *w, *h) {
                s.push_clip_path(&path, &FillRule::NonZero);
                *clips += 1;
            }
        }
        Op::Unclip => {
            if *clips > 0 {
                s.pop();
                *clips -= 1;
            }
        }
    }
    Ok(())
}

/// krilla's date from an RFC 3339 UTC timestamp.
fn pdf_date(rfc3339: &str) -> DateTime {
    let d: Vec<u32> = rfc3339
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(6)
        .map(|s| s.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| d.get(i).copied().unwrap_or(0);
    DateTime::new(at(0).min(9999) as u16)
        .month(at(1).clamp(1, 12) as u8)
        .day(at(2).clamp(1, 31) as u8)
        .hour(at(3).min(23) as u8)
        .minute(at(4).min(59) as u8)
        .second(at(5).min(59) as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0)
}

/// Renders `doc` as a PDF/A-2b file. `footer` is printed on every page
/// with its number.
pub fn render(
    doc: &Document,
    footer: &str,
    created_rfc3339: &str,
    fonts: &Fonts,
) -> Result<Vec<u8>, PdfError> {
    let mut l = Layout::new(fonts);
    l.paragraph(&doc.title, 16.0, true);
    l.y += 6.0;
    for b in &doc.blocks {
        match b {
            Block::Heading(h) => {
                l.need(60.0);
                l.y += 6.0;
                l.paragraph(h, 12.0, true);
                l.y += 2.0;
            }
            Block::Paragraph(p) => {
                l.paragraph(p, BODY, false);
                l.y += 3.0;
            }
            Block::Strong(p) => {
                l.paragraph(p, BODY + 1.0, true);
                l.y += 3.0;
            }
            Block::Table(t) => l.table(t),
            Block::Figure(f) => l.figure(f),
            Block::PageBreak => {
                if l.y > MARGIN {
                    l.new_page();
                }
            }
        }
    }
    if l.pages.len() > 1 && l.pages.last().is_some_and(Vec::is_empty) {
        l.pages.pop();
    }

    let configuration = ConfigurationBuilder::new()
        .with_archival_validator(Archival::A2_B)
        .finish()
        .map_err(|e| PdfError::Write(format!("{e:?}")))?;
    let settings = SerializeSettings {
        configuration,
        enable_tagging: false,
        ..SerializeSettings::default()
    };
    let mut pdf = PdfDocument::new_with(settings);
    let count = l.pages.len();
    for (i, ops) in l.pages.iter().enumerate() {
        let page_settings = PageSettings::from_wh(PAGE_W as f32, PAGE_H as f32)
            .ok_or_else(|| PdfError::Write("page size".into()))?;
        let mut page = pdf.start_page_with(page_settings);
        let mut s = page.surface();
        let mut clips = 0;
        for op in ops {
            draw_op(&mut s, fonts, op, &mut clips)?;
        }
        while clips > 0 {
            s.pop();
            clips -= 1;
        }
        let foot = format!("{footer}  —  page {} of {count}", i + 1);
        s.set_fill(Some(fill_of([102, 102, 102])));
        fonts.draw(&mut s, MARGIN, PAGE_H - MARGIN / 2.0, &foot, 7.0, false);
        s.finish();
        page.finish();
    }
    pdf.set_metadata(
        Metadata::new()
            .title(doc.title.clone())
            .creator("rtnode report stage".into())
            .producer(format!("rtnode {}", env!("CARGO_PKG_VERSION")))
            .language("en".into())
            .creation_date(pdf_date(created_rfc3339)),
    );
    pdf.finish().map_err(|e| PdfError::Write(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::fonts::tests::fonts;
    use super::*;
    use crate::report::model::Table;

    #[test]
    fn a_document_renders_as_pdf_a() {
        let Some(f) = fonts() else { return };
        let doc = Document {
            title: "T".into(),
            blocks: vec![
                Block::Paragraph("Dvořák Antonín, Διονυσιος, 山田 太郎, 홍길동, \u{13000}".into()),
                Block::PageBreak,
                Block::Table(Table {
                    header: vec!["a".into(), "b".into()],
                    rows: vec![vec!["1".into(), "2".into()]],
                }),
            ],
        };
        let pdf = render(&doc, "foot", "2026-01-02T03:04:05Z", &f).unwrap();
        assert!(pdf.starts_with(b"%PDF-1.7"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("pdfaid:part"), "PDF/A identification");
        assert!(text.contains("/Count 2"), "two pages");
        // No font has the hieroglyph: it is a '?' in the first.
        assert_eq!(f.glyph('\u{13000}', false), f.glyph('?', false));
    }
}
