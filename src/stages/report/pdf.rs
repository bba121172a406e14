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

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use krilla::color::rgb;
use krilla::configure::{Archival, ConfigurationBuilder};
use krilla::geom::{PathBuilder, Point, Size, Transform};
use krilla::image::{BitsPerComponent, CustomImage, Image, ImageColorspace};
use krilla::metadata::{DateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, FillRule, Stroke, StrokeDash};
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use krilla::{Document as PdfDocument, SerializeSettings};
use skrifa::instance::{LocationRef, Size as FontSize};
use skrifa::raw::TableProvider;
use skrifa::{FontRef, MetadataProvider};

use super::model::{wrap_by, Anchor, Block, Document, Figure, GrayImage, Rgb, Shape, Table};

const PAGE_W: f64 = 595.0;
const PAGE_H: f64 = 842.0;
const MARGIN: f64 = 42.0;
const BODY: f64 = 9.0;
const TABLE_FONT: f64 = 7.5;
const CELL_PAD: f64 = 3.0;
/// Widest a table column gets before its text wraps.
const MAX_COLUMN: f64 = 240.0;

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

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("report font {path} is missing{hint}")]
    MissingFont { path: PathBuf, hint: String },
    #[error("report font {path}: {reason}")]
    BadFont { path: PathBuf, reason: String },
    #[error("writing the report PDF: {0}")]
    Write(String),
}

/// Which font files the report uses: `regular` in fallback order, `bold`
/// tried before them for bold text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FontFiles {
    pub regular: Vec<PathBuf>,
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
    fn glyph(&self, c: char, bold: bool) -> Placed {
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

    fn wrap(&self, s: &str, size: f64, bold: bool, width: f64) -> Vec<String> {
        wrap_by(s, width, |t| self.width(t, size, bold))
    }

    /// Draws `s` with its left end of the baseline at (x, y), in runs of
    /// one font each.
    fn draw(&self, surface: &mut Surface, x: f64, y: f64, s: &str, size: f64, bold: bool) {
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

/// What is drawn, in page coordinates (points, y down).
enum Op {
    Text {
        x: f64,
        y: f64,
        text: String,
        size: f64,
        bold: bool,
        colour: Rgb,
    },
    Path {
        points: Vec<[f64; 2]>,
        closed: bool,
        stroke: Rgb,
        width: f64,
        dashed: bool,
    },
    Rect {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        fill: Option<Rgb>,
        stroke: Option<Rgb>,
    },
    Image {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        image: Arc<GrayImage>,
    },
    Clip {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
    },
    Unclip,
}

struct Layout<'f> {
    fonts: &'f Fonts,
    pages: Vec<Vec<Op>>,
    /// Distance from the top of the current page, in points.
    y: f64,
}

impl<'f> Layout<'f> {
    fn new(fonts: &'f Fonts) -> Self {
        Layout {
            fonts,
            pages: vec![Vec::new()],
            y: MARGIN,
        }
    }

    fn push(&mut self, op: Op) {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        self.pages[last].push(op);
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
    }

    /// Starts a new page unless `h` more points fit on this one.
    fn need(&mut self, h: f64) {
        if self.y + h > PAGE_H - MARGIN && self.y > MARGIN {
            self.new_page();
        }
    }

    fn text(&mut self, x: f64, y: f64, s: &str, size: f64, bold: bool, colour: Rgb) {
        self.push(Op::Text {
            x,
            y,
            text: s.to_string(),
            size,
            bold,
            colour,
        });
    }

    fn paragraph(&mut self, s: &str, size: f64, bold: bool) {
        let lead = size * 1.3;
        for line in self
            .fonts
            .wrap(s, size, bold, PAGE_W - 2.0 * MARGIN)
            .into_iter()
        {
            self.need(lead);
            self.y += lead;
            let y = self.y - size * 0.25;
            self.text(MARGIN, y, &line, size, bold, [0, 0, 0]);
        }
    }

    fn table(&mut self, t: &Table) {
        let cols = t
            .header
            .len()
            .max(t.rows.iter().map(Vec::len).max().unwrap_or(0));
        if cols == 0 {
            return;
        }
        let fonts = self.fonts;
        let avail = PAGE_W - 2.0 * MARGIN;
        let natural = |f: f64| -> Vec<f64> {
            (0..cols)
                .map(|c| {
                    let body = t
                        .rows
                        .iter()
                        .filter_map(|r| r.get(c))
                        .map(|s| fonts.width(s, f, false))
                        .fold(0.0, f64::max);
                    // Headers may wrap onto two lines; body values never
                    // should (they are what a reader copies).
                    let head = t
                        .header
                        .get(c)
                        .map(|s| fonts.width(s, f, true) + 1.0)
                        .unwrap_or(0.0);
                    (body.max(head.min(body.max(80.0))) + 2.0 * CELL_PAD).min(MAX_COLUMN)
                })
                .collect()
        };
        let mut size = TABLE_FONT;
        let mut widths = natural(size);
        while widths.iter().sum::<f64>() > avail && size > 5.0 {
            size -= 0.5;
            widths = natural(size);
        }
        let total: f64 = widths.iter().sum();
        if total > avail {
            widths.iter_mut().for_each(|w| *w *= avail / total);
        }
        let table_w: f64 = widths.iter().sum();
        let lead = size * 1.25;
        let lines_of = |row: &[String], bold: bool| -> Vec<Vec<String>> {
            (0..cols)
                .map(|c| {
                    let s = row.get(c).map(String::as_str).unwrap_or("");
                    fonts.wrap(s, size, bold, widths[c] - 2.0 * CELL_PAD)
                })
                .collect()
        };
        let header = lines_of(&t.header, true);
        let height =
            |cells: &[Vec<String>]| cells.iter().map(Vec::len).max().unwrap_or(1) as f64 * lead;
        let header_h = height(&header) + CELL_PAD;
        let draw_row = |l: &mut Layout, cells: &[Vec<String>], bold: bool, shade: bool| {
            let h = height(cells) + CELL_PAD;
            if shade {
                l.push(Op::Rect {
                    x: MARGIN,
                    y: l.y,
                    w: table_w,
                    h,
                    fill: Some([237, 242, 250]),
                    stroke: None,
                });
            }
            let mut x = MARGIN;
            for (c, lines) in cells.iter().enumerate() {
                for (k, line) in lines.iter().enumerate() {
                    let y = l.y + (k as f64 + 1.0) * lead - size * 0.2;
                    l.text(x + CELL_PAD, y, line, size, bold, [0, 0, 0]);
                }
                x += widths[c];
            }
            l.y += h;
            l.push(Op::Path {
                points: vec![[MARGIN, l.y], [MARGIN + table_w, l.y]],
                closed: false,
                stroke: [153, 153, 153],
                width: 0.4,
                dashed: false,
            });
        };
        self.need(header_h + lead * 2.0);
        draw_row(self, &header, true, false);
        for (i, row) in t.rows.iter().enumerate() {
            let cells = lines_of(row, false);
            let h = height(&cells) + CELL_PAD;
            if self.y + h > PAGE_H - MARGIN {
                self.new_page();
                draw_row(self, &header, true, false);
            }
            draw_row(self, &cells, false, i % 2 == 1);
        }
        self.y += lead * 0.8;
    }

    fn figure(&mut self, f: &Figure) {
        let avail = PAGE_W - 2.0 * MARGIN;
        let scale = (avail / f.width).min(1.0);
        let (w, h) = (f.width * scale, f.height * scale);
        self.need(h + BODY * 2.0);
        let (x0, y0) = (MARGIN, self.y);
        let px = |x: f64| x0 + x * scale;
        let py = |y: f64| y0 + y * scale;
        self.push(Op::Clip { x: x0, y: y0, w, h });
        for s in &f.shapes {
            match s {
                Shape::Path {
                    points,
                    closed,
                    stroke,
                    width,
                    dashed,
                } => self.push(Op::Path {
                    points: points.iter().map(|p| [px(p[0]), py(p[1])]).collect(),
                    closed: *closed,
                    stroke: *stroke,
                    width: width * scale,
                    dashed: *dashed,
                }),
                Shape::Rect {
                    x,
                    y,
                    w: rw,
                    h: rh,
                    fill,
                    stroke,
                } => self.push(Op::Rect {
                    x: px(*x),
                    y: py(*y),
                    w: rw * scale,
                    h: rh * scale,
                    fill: *fill,
                    stroke: *stroke,
                }),
                Shape::Text {
                    x,
                    y,
                    text,
                    size,
                    anchor,
                    colour,
                } => {
                    let sz = size * scale;
                    let tw = self.fonts.width(text, sz, false);
                    let left = match anchor {
                        Anchor::Start => px(*x),
                        Anchor::Middle => px(*x) - tw / 2.0,
                        Anchor::End => px(*x) - tw,
                    };
                    self.text(left, py(*y), text, sz, false, *colour);
                }
                Shape::Image {
                    x,
                    y,
                    w: iw,
                    h: ih,
                    image,
                } => self.push(Op::Image {
                    x: px(*x),
                    y: py(*y),
                    w: iw * scale,
                    h: ih * scale,
                    image: Arc::new(image.clone()),
                }),
            }
        }
        self.push(Op::Unclip);
        self.y += h;
        if !f.caption.is_empty() {
            self.paragraph(&f.caption, BODY * 0.9, false);
        }
        self.y += BODY * 0.6;
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
    use super::*;

    fn fonts() -> Option<Fonts> {
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
