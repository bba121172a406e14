//! Page layout: the document's blocks flowed down A4 pages as drawing
//! operations in page coordinates — paragraphs wrapped to the text width,
//! tables with columns sized to their text (wrapping past a maximum) and
//! continued on the next page with their header repeated, figures scaled
//! to the width with their caption.

use std::sync::Arc;

use super::super::model::{Anchor, Figure, GrayImage, Rgb, Shape, Table};
use super::fonts::Fonts;

pub(super) const PAGE_W: f64 = 595.0;
pub(super) const PAGE_H: f64 = 842.0;
pub(super) const MARGIN: f64 = 42.0;
pub(super) const BODY: f64 = 9.0;
pub(super) const TABLE_FONT: f64 = 7.5;
pub(super) const CELL_PAD: f64 = 3.0;
/// Widest a table column gets before its text wraps.
pub(super) const MAX_COLUMN: f64 = 240.0;

/// What is drawn, in page coordinates (points, y down).
pub(super) enum Op {
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

/// The pages laid out so far and where the next block goes.
pub(super) struct Layout<'f> {
    fonts: &'f Fonts,
    /// The drawing operations of each page.
    pub(super) pages: Vec<Vec<Op>>,
    /// Distance from the top of the current page, in points.
    pub(super) y: f64,
}

impl<'f> Layout<'f> {
    pub(super) fn new(fonts: &'f Fonts) -> Self {
        Layout {
            fonts,
            pages: vec![Vec::new()],
            y: MARGIN,
        }
    }

    pub(super) fn push(&mut self, op: Op) {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        self.pages[last].push(op);
    }

    pub(super) fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
    }

    /// Starts a new page unless `h` more points fit on this one.
    pub(super) fn need(&mut self, h: f64) {
        if self.y + h > PAGE_H - MARGIN && self.y > MARGIN {
            self.new_page();
        }
    }

    pub(super) fn text(&mut self, x: f64, y: f64, s: &str, size: f64, bold: bool, colour: Rgb) {
        self.push(Op::Text {
            x,
            y,
            text: s.to_string(),
            size,
            bold,
            colour,
        });
    }

    pub(super) fn paragraph(&mut self, s: &str, size: f64, bold: bool) {
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

    pub(super) fn table(&mut self, t: &Table) {
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

    pub(super) fn figure(&mut self, f: &Figure) {
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
