//! A small PDF 1.4 writer for the report: text in the standard Helvetica
//! fonts with WinAnsi encoding (no font embedding, so any reader and
//! `pdftotext` have the glyphs and the text), vector paths for plots and
//! contours, greyscale images as FlateDecode XObjects, a correct xref
//! table. A4 portrait; blocks flow down the page and tables continue on the
//! next page with their header repeated.

use std::fmt::Write as _;

use anyhow::Result;

use super::model::{
    text_width, wrap, Anchor, Block, Document, Figure, GrayImage, Rgb, Shape, Table,
};
use super::png::zlib;

const PAGE_W: f64 = 595.0;
const PAGE_H: f64 = 842.0;
const MARGIN: f64 = 42.0;
const BODY: f64 = 9.0;
const TABLE_FONT: f64 = 7.5;
const CELL_PAD: f64 = 3.0;
/// Widest a table column gets before its text wraps.
const MAX_COLUMN: f64 = 240.0;

/// Maps a character to its WinAnsi byte; what WinAnsi lacks becomes '?'.
fn win_ansi(c: char) -> u8 {
    let u = c as u32;
    match u {
        0x20..=0x7e | 0xa0..=0xff => u as u8,
        _ => match c {
            '€' => 0x80,
            '‚' => 0x82,
            'ƒ' => 0x83,
            '„' => 0x84,
            '…' => 0x85,
            '†' => 0x86,
            '‡' => 0x87,
            'ˆ' => 0x88,
            '‰' => 0x89,
            'Š' => 0x8a,
            '‹' => 0x8b,
            'Œ' => 0x8c,
            'Ž' => 0x8e,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '˜' => 0x98,
            '™' => 0x99,
            'š' => 0x9a,
            '›' => 0x9b,
            'œ' => 0x9c,
            'ž' => 0x9e,
            'Ÿ' => 0x9f,
            '\t' => b' ',
            _ => b'?',
        },
    }
}

/// A PDF literal string: WinAnsi bytes, with the delimiters escaped and
/// everything outside printable ASCII as an octal escape so that the file
/// stays 7-bit outside its streams.
fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('(');
    for c in s.chars() {
        let b = win_ansi(c);
        match b {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push(')');
    out
}

fn n(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn rgb(c: Rgb) -> String {
    format!(
        "{} {} {}",
        n(f64::from(c[0]) / 255.0),
        n(f64::from(c[1]) / 255.0),
        n(f64::from(c[2]) / 255.0)
    )
}

#[derive(Default)]
struct Page {
    ops: String,
    /// Indices into `Layout::images`.
    images: Vec<usize>,
}

struct Layout {
    pages: Vec<Page>,
    images: Vec<GrayImage>,
    /// Distance from the top of the current page, in points.
    y: f64,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            pages: vec![Page::default()],
            images: Vec::new(),
            y: MARGIN,
        }
    }

    fn page(&mut self) -> &mut Page {
        if self.pages.is_empty() {
            self.pages.push(Page::default());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn new_page(&mut self) {
        self.pages.push(Page::default());
        self.y = MARGIN;
    }

    /// Starts a new page unless `h` more points fit on this one.
    fn need(&mut self, h: f64) {
        if self.y + h > PAGE_H - MARGIN && self.y > MARGIN {
            self.new_page();
        }
    }

    fn text(&mut self, x: f64, y_top: f64, s: &str, size: f64, bold: bool, colour: Rgb) {
        let font = if bold { "F2" } else { "F1" };
        let base = PAGE_H - y_top;
        let _ = writeln!(
            self.page().ops,
            "BT {} rg /{font} {} Tf 1 0 0 1 {} {} Tm {} Tj ET",
            rgb(colour),
            n(size),
            n(x),
            n(base),
            literal(s)
        );
    }

    fn paragraph(&mut self, s: &str, size: f64, bold: bool) {
        let lead = size * 1.3;
        for line in wrap(s, size, PAGE_W - 2.0 * MARGIN) {
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
        let avail = PAGE_W - 2.0 * MARGIN;
        let natural = |f: f64| -> Vec<f64> {
            (0..cols)
                .map(|c| {
                    let body = t
                        .rows
                        .iter()
                        .filter_map(|r| r.get(c))
                        .map(|s| text_width(s, f) * 1.0)
                        .fold(0.0, f64::max);
                    // Headers may wrap onto two lines; body values never
                    // should (they are what a reader copies).
                    let head = t
                        .header
                        .get(c)
                        .map(|s| text_width(s, f) * 1.05 + 1.0)
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
        let lead = size * 1.25;
        let lines_of = |row: &[String], bold: bool| -> Vec<Vec<String>> {
            (0..cols)
                .map(|c| {
                    let s = row.get(c).map(String::as_str).unwrap_or("");
                    let w = widths[c] - 2.0 * CELL_PAD;
                    wrap(s, size * if bold { 1.05 } else { 1.0 }, w)
                })
                .collect()
        };
        let header = lines_of(&t.header, true);
        let header_h = header.iter().map(Vec::len).max().unwrap_or(1) as f64 * lead + CELL_PAD;
        let draw_row = |l: &mut Layout, cells: &[Vec<String>], bold: bool, shade: bool| {
            let h = cells.iter().map(Vec::len).max().unwrap_or(1) as f64 * lead + CELL_PAD;
            if shade {
                let op = format!(
                    "0.93 0.95 0.98 rg {} {} {} {} re f\n",
                    n(MARGIN),
                    n(PAGE_H - l.y - h),
                    n(widths.iter().sum()),
                    n(h)
                );
                l.page().ops.push_str(&op);
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
            let op = format!(
                "0.6 G [] 0 d 0.4 w {} {} m {} {} l S\n",
                n(MARGIN),
                n(PAGE_H - l.y),
                n(MARGIN + widths.iter().sum::<f64>()),
                n(PAGE_H - l.y)
            );
            l.page().ops.push_str(&op);
        };
        self.need(header_h + lead * 2.0);
        draw_row(self, &header, true, false);
        for (i, row) in t.rows.iter().enumerate() {
            let cells = lines_of(row, false);
            let h = cells.iter().map(Vec::len).max().unwrap_or(1) as f64 * lead + CELL_PAD;
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
        // Figure space → page space: scale, then flip y.
        let px = |x: f64| x0 + x * scale;
        let py = |y: f64| PAGE_H - (y0 + y * scale);
        let mut ops = String::new();
        let _ = writeln!(
            ops,
            "q {} {} {} {} re W n",
            n(px(0.0)),
            n(py(f.height)),
            n(w),
            n(h)
        );
        for s in &f.shapes {
            match s {
                Shape::Path {
                    points,
                    closed,
                    stroke,
                    width,
                    dashed,
                } => {
                    let Some(first) = points.first() else {
                        continue;
                    };
                    let _ = write!(
                        ops,
                        "{} RG {} w {} {} {} m",
                        rgb(*stroke),
                        n(width * scale),
                        if *dashed { "[3 2] 0 d" } else { "[] 0 d" },
                        n(px(first[0])),
                        n(py(first[1]))
                    );
                    for p in &points[1..] {
                        let _ = write!(ops, " {} {} l", n(px(p[0])), n(py(p[1])));
                    }
                    ops.push_str(if *closed { " s\n" } else { " S\n" });
                }
                Shape::Rect {
                    x,
                    y,
                    w: rw,
                    h: rh,
                    fill,
                    stroke,
                } => {
                    let r = format!(
                        "{} {} {} {} re",
                        n(px(*x)),
                        n(py(y + rh)),
                        n(rw * scale),
                        n(rh * scale)
                    );
                    match (fill, stroke) {
                        (Some(f), Some(s)) => {
                            let _ =
                                writeln!(ops, "{} rg {} RG [] 0 d 0.5 w {r} B", rgb(*f), rgb(*s));
                        }
                        (Some(f), None) => {
                            let _ = writeln!(ops, "{} rg {r} f", rgb(*f));
                        }
                        (None, Some(s)) => {
                            let _ = writeln!(ops, "{} RG [] 0 d 0.5 w {r} S", rgb(*s));
                        }
                        (None, None) => {}
                    }
                }
                Shape::Text {
                    x,
                    y,
                    text,
                    size,
                    anchor,
                    colour,
                } => {
                    let sz = size * scale;
                    let tw = text_width(text, sz);
                    let left = match anchor {
                        Anchor::Start => px(*x),
                        Anchor::Middle => px(*x) - tw / 2.0,
                        Anchor::End => px(*x) - tw,
                    };
                    let _ = writeln!(
                        ops,
                        "BT {} rg /F1 {} Tf 1 0 0 1 {} {} Tm {} Tj ET",
                        rgb(*colour),
                        n(sz),
                        n(left),
                        n(py(*y)),
                        literal(text)
                    );
                }
                Shape::Image {
                    x,
                    y,
                    w: iw,
                    h: ih,
                    image,
                } => {
                    self.images.push(image.clone());
                    let id = self.images.len() - 1;
                    let _ = writeln!(
                        ops,
                        "q {} 0 0 {} {} {} cm /Im{id} Do Q",
                        n(iw * scale),
                        n(ih * scale),
                        n(px(*x)),
                        n(py(y + ih))
                    );
                    self.page().images.push(id);
                }
            }
        }
        ops.push_str("Q\n");
        self.page().ops.push_str(&ops);
        self.y += h;
        if !f.caption.is_empty() {
            self.paragraph(&f.caption, BODY * 0.9, false);
        }
        self.y += BODY * 0.6;
    }
}

/// Objects numbered from 1; `None` is a number reserved and filled later.
struct Objects(Vec<Option<Vec<u8>>>);

impl Objects {
    fn reserve(&mut self) -> usize {
        self.0.push(None);
        self.0.len()
    }

    fn set(&mut self, id: usize, body: Vec<u8>) {
        self.0[id - 1] = Some(body);
    }

    fn add(&mut self, body: Vec<u8>) -> usize {
        self.0.push(Some(body));
        self.0.len()
    }

    fn stream(&mut self, dict: &str, data: &[u8]) -> usize {
        let mut body = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\nendstream");
        self.add(body)
    }
}

/// `D:YYYYMMDDHHmmSSZ` from an RFC 3339 UTC timestamp.
fn pdf_date(rfc3339: &str) -> String {
    let digits: String = rfc3339
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    format!("D:{digits}Z")
}

/// Renders `doc` as a PDF file. `footer` is printed on every page with its
/// number.
pub fn render(doc: &Document, footer: &str, created_rfc3339: &str) -> Result<Vec<u8>> {
    let mut l = Layout::new();
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
            Block::Table(t) => l.table(t),
            Block::Figure(f) => l.figure(f),
        }
    }

    let mut objs = Objects(Vec::new());
    let catalog = objs.reserve();
    let pages_id = objs.reserve();
    let f1 = objs.add(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    );
    let f2 = objs.add(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    );
    let mut image_ids = Vec::with_capacity(l.images.len());
    for img in &l.images {
        let dict = format!(
            "/Type /XObject /Subtype /Image /Width {} /Height {} /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode",
            img.width, img.height
        );
        image_ids.push(objs.stream(&dict, &zlib(&img.pixels)?));
    }
    let count = l.pages.len();
    let mut kids = Vec::with_capacity(count);
    for (i, page) in l.pages.iter().enumerate() {
        let mut ops = page.ops.clone();
        let foot = format!("{footer}  —  page {} of {count}", i + 1);
        let _ = writeln!(
            ops,
            "BT 0.4 0.4 0.4 rg /F1 7 Tf 1 0 0 1 {} {} Tm {} Tj ET",
            n(MARGIN),
            n(MARGIN / 2.0),
            literal(&foot)
        );
        let content = objs.stream("/Filter /FlateDecode", &zlib(ops.as_bytes())?);
        let mut xobjects = String::new();
        for &i in &page.images {
            let _ = write!(xobjects, " /Im{i} {} 0 R", image_ids[i]);
        }
        let page_id = objs.add(
            format!(
                "<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {} {}] /Resources << /Font << /F1 {f1} 0 R /F2 {f2} 0 R >> /XObject <<{xobjects} >> >> /Contents {content} 0 R >>",
                n(PAGE_W),
                n(PAGE_H)
            )
            .into_bytes(),
        );
        kids.push(format!("{page_id} 0 R"));
    }
    objs.set(
        pages_id,
        format!(
            "<< /Type /Pages /Kids [{}] /Count {count} >>",
            kids.join(" ")
        )
        .into_bytes(),
    );
    objs.set(
        catalog,
        format!("<< /Type /Catalog /Pages {pages_id} 0 R >>").into_bytes(),
    );
    let date = pdf_date(created_rfc3339);
    let info = objs.add(
        format!(
            "<< /Title {} /Producer {} /Creator {} /CreationDate ({date}) >>",
            literal(&doc.title),
            literal(concat!("rtnode ", env!("CARGO_PKG_VERSION"))),
            literal("rtnode report stage"),
        )
        .into_bytes(),
    );

    // The binary comment line marks the file as binary for transfer tools.
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objs.0.len());
    for (i, body) in objs.0.iter().enumerate() {
        let body = body
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("PDF object {} left empty", i + 1))?;
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    let mut x = format!("xref\n0 {}\n0000000000 65535 f \n", objs.0.len() + 1);
    for o in offsets {
        let _ = writeln!(x, "{o:010} 00000 n ");
    }
    let _ = write!(
        x,
        "trailer\n<< /Size {} /Root {catalog} 0 R /Info {info} 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objs.0.len() + 1
    );
    out.extend_from_slice(x.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_delimiters_and_map_to_win_ansi() {
        assert_eq!(literal("a(b)c\\"), "(a\\(b\\)c\\\\)");
        assert_eq!(literal("µ–€≤"), "(\\265\\226\\200?)");
    }

    #[test]
    fn the_xref_points_at_every_object() {
        let doc = Document {
            title: "T".into(),
            blocks: vec![
                Block::Paragraph("hello".into()),
                Block::Table(Table {
                    header: vec!["a".into(), "b".into()],
                    rows: vec![vec!["1".into(), "2".into()]],
                }),
            ],
        };
        let pdf = render(&doc, "foot", "2026-01-02T03:04:05Z").unwrap();
        // Offsets are bytes; the streams are binary, so search bytes.
        let sx = pdf.windows(10).rposition(|w| w == b"startxref\n").unwrap();
        let tail = std::str::from_utf8(&pdf[sx + 10..]).unwrap();
        let start: usize = tail.lines().next().unwrap().parse().unwrap();
        let table = std::str::from_utf8(&pdf[start..]).unwrap();
        assert!(table.starts_with("xref\n0 "));
        let count: usize = table.lines().nth(1).unwrap()[2..].parse().unwrap();
        for (i, line) in table.lines().skip(3).take(count - 1).enumerate() {
            let off: usize = line[..10].parse().unwrap();
            assert_eq!(line.len(), 19, "entries are 20 bytes with the EOL");
            assert!(
                pdf[off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {}",
                i + 1
            );
        }
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("/CreationDate (D:20260102030405Z)"));
    }
}
