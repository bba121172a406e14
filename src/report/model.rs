//! The report as a small document model — headings, paragraphs, tables and
//! vector figures — so that the HTML and the PDF are two renderings of one
//! content and cannot drift apart.
//!
//! Figure coordinates are in points (1/72 inch) with y pointing down, the
//! SVG convention; the PDF renderer flips them.

/// A colour as 8-bit red, green, blue (0–255 each), as both renderers take it.
pub type Rgb = [u8; 3];

/// Black: text and axes.
pub const BLACK: Rgb = [0, 0, 0];
/// Mid grey: grid lines and secondary marks.
pub const GREY: Rgb = [150, 150, 150];

/// One report: a title and its content in reading order, rendered alike to
/// HTML and PDF.
#[derive(Debug, Clone)]
pub struct Document {
    /// Document title: the HTML `<title>`, the PDF's title metadata and first heading.
    pub title: String,
    /// The content, top to bottom.
    pub blocks: Vec<Block>,
}

/// One piece of the report's flow.
#[derive(Debug, Clone)]
pub enum Block {
    /// A section heading (plain text).
    Heading(String),
    /// Body text, wrapped to the page width.
    Paragraph(String),
    /// A paragraph that must stand out (the UNAPPROVED notice).
    Strong(String),
    /// A table of text cells.
    Table(Table),
    /// A vector figure with its caption.
    Figure(Figure),
    /// What follows starts on a new page (PDF) or after a rule (HTML).
    PageBreak,
}

/// A table of plain-text cells; the PDF repeats the header on each page
/// the table spans.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column titles; empty for a table without a header row.
    pub header: Vec<String>,
    /// Body rows, each a list of cells (normally as many as `header`).
    pub rows: Vec<Vec<String>>,
}

/// A vector drawing in its own coordinate box: shown at that size in the
/// HTML, shrunk to the text width in the PDF where wider.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Width of the drawing box, points.
    pub width: f64,
    /// Height of the drawing box, points.
    pub height: f64,
    /// What is drawn, in painting order (later shapes on top); coordinates in
    /// points from the box's top-left corner, y down.
    pub shapes: Vec<Shape>,
    /// Text set under the figure; empty for none.
    pub caption: String,
}

/// Which point of a text run its `x` coordinate gives (SVG `text-anchor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// `x` is the left end: left-aligned.
    Start,
    /// `x` is the centre: centred.
    Middle,
    /// `x` is the right end: right-aligned.
    End,
}

/// One element of a [`Figure`]; all lengths and coordinates in points,
/// origin at the figure's top-left, y down.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A polyline (a DVH curve, an axis, a contour).
    Path {
        /// Vertices `[x, y]` in drawing order.
        points: Vec<[f64; 2]>,
        /// Whether the last vertex joins back to the first.
        closed: bool,
        /// Line colour.
        stroke: Rgb,
        /// Line width, points.
        width: f64,
        /// Drawn dashed (e.g. auto contours against solid plan contours).
        dashed: bool,
    },
    /// An axis-aligned rectangle.
    Rect {
        /// Left edge.
        x: f64,
        /// Top edge.
        y: f64,
        /// Width.
        w: f64,
        /// Height.
        h: f64,
        /// Fill colour; `None` leaves the inside unpainted.
        fill: Option<Rgb>,
        /// Outline colour; `None` draws no outline.
        stroke: Option<Rgb>,
    },
    /// A single line of text in Helvetica; `y` is the baseline.
    Text {
        /// Anchor point's x, as `anchor` says.
        x: f64,
        /// Baseline y.
        y: f64,
        /// The text, one line.
        text: String,
        /// Font size, points.
        size: f64,
        /// Which point of the text `x` gives.
        anchor: Anchor,
        /// Text colour.
        colour: Rgb,
    },
    /// A greyscale raster (a CT slice) stretched to the given box.
    Image {
        /// Left edge.
        x: f64,
        /// Top edge.
        y: f64,
        /// Drawn width (the pixels are stretched to it).
        w: f64,
        /// Drawn height.
        h: f64,
        /// The pixels.
        image: GrayImage,
    },
}

/// 8-bit greyscale pixels, row by row from the top.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayImage {
    /// Columns, pixels.
    pub width: usize,
    /// Rows, pixels.
    pub height: usize,
    /// `width * height` grey levels (0 black, 255 white), row-major from the top-left.
    pub pixels: Vec<u8>,
}

impl Shape {
    /// A solid straight line from `a` to `b`, `width` points wide.
    pub fn line(a: [f64; 2], b: [f64; 2], stroke: Rgb, width: f64) -> Shape {
        Shape::Path {
            points: vec![a, b],
            closed: false,
            stroke,
            width,
            dashed: false,
        }
    }

    /// A line of black text at size `size` points, `y` its baseline.
    pub fn text(x: f64, y: f64, text: impl Into<String>, size: f64, anchor: Anchor) -> Shape {
        Shape::Text {
            x,
            y,
            text: text.into(),
            size,
            anchor,
            colour: BLACK,
        }
    }
}

/// Helvetica advance widths (1/1000 em) of the printable ASCII characters,
/// from the standard AFM; WinAnsi shares them. Everything else is taken as
/// the width of a digit, which is close for Latin letters.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278,
    278, // space../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0..?
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // P.._
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // `..o
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // p..~
];

/// Width of `s` set in Helvetica at `size` points. Bold is about 5 % wider;
/// callers leave that much room.
pub fn text_width(s: &str, size: f64) -> f64 {
    let units: u32 = s
        .chars()
        .map(|c| {
            let i = c as u32;
            if (32..127).contains(&i) {
                u32::from(HELVETICA[(i - 32) as usize])
            } else {
                556
            }
        })
        .sum();
    f64::from(units) * size / 1000.0
}

/// Breaks `s` into lines no wider than `width` at `size`: at spaces where
/// possible, inside a word when the word alone is too wide.
pub fn wrap(s: &str, size: f64, width: f64) -> Vec<String> {
    wrap_by(s, width, |t| text_width(t, size))
}

/// Breaks `s` into lines no wider than `width` as `measure` measures them.
pub fn wrap_by(s: &str, width: f64, measure: impl Fn(&str) -> f64) -> Vec<String> {
    let text_width = |t: &str, _: f64| measure(t);
    let size = 0.0;
    let mut lines = Vec::new();
    for para in s.split('\n') {
        let mut line = String::new();
        for word in para.split(' ') {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if text_width(&candidate, size) <= width {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let mut rest = word.to_string();
            while text_width(&rest, size) > width && rest.chars().count() > 1 {
                let mut cut = String::new();
                for c in rest.chars() {
                    if !cut.is_empty() && text_width(&format!("{cut}{c}"), size) > width {
                        break;
                    }
                    cut.push(c);
                }
                rest = rest[cut.len()..].to_string();
                lines.push(cut);
            }
            line = rest;
        }
        lines.push(line);
    }
    lines
}

/// Distinct, printable colours for curves and contours, in order of use.
pub const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [23, 190, 207],
    [188, 189, 34],
    [127, 127, 127],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_the_afm() {
        assert_eq!(text_width("0", 10.0), 5.56);
        assert!((text_width("Wi", 1000.0) - 1166.0).abs() < 1e-9);
    }

    #[test]
    fn wrapping_keeps_every_character_and_the_width() {
        let s = "a fairly long sentence with averyveryveryverylongwordthatmustbesplit inside";
        let lines = wrap(s, 10.0, 80.0);
        assert!(lines.len() > 2);
        for l in &lines {
            assert!(text_width(l, 10.0) <= 80.0, "{l}");
        }
        assert_eq!(lines.join("").replace(' ', ""), s.replace(' ', ""));
    }
}
