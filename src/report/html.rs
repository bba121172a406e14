//! The report as one self-contained HTML file: inline CSS, figures as
//! inline SVG, CT slices as PNG data URIs under their SVG contours.

use std::fmt::Write as _;

use anyhow::Result;

use super::model::{Anchor, Block, Document, Figure, Rgb, Shape, Table};
use super::png;

/// `s` with `& < > " '` replaced by HTML character references, safe in
/// element text and in quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn colour(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

fn n(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

const STYLE: &str = "body{font-family:Helvetica,Arial,sans-serif;font-size:13px;margin:2em auto;max-width:60em;color:#111}\
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5em 0 1em}th,td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
th{background:#f0f3f8}tr:nth-child(even) td{background:#f8f9fb}figure{margin:1em 0}figcaption{font-size:.9em;color:#444}\
footer{margin-top:2em;color:#666;font-size:.85em}";

fn table(out: &mut String, t: &Table) {
    out.push_str("<table>\n<thead><tr>");
    for h in &t.header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for r in &t.rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", escape(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

fn figure(out: &mut String, f: &Figure) -> Result<()> {
    let _ = writeln!(
        out,
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"Helvetica,Arial,sans-serif\">",
        w = n(f.width),
        h = n(f.height)
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
                if points.is_empty() {
                    continue;
                }
                let mut d = String::new();
                for (i, p) in points.iter().enumerate() {
                    let _ = write!(
                        d,
                        "{}{} {} ",
                        if i == 0 { "M" } else { "L" },
                        n(p[0]),
                        n(p[1])
                    );
                }
                if *closed {
                    d.push('Z');
                }
                let _ = writeln!(
                    out,
                    "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{}/>",
                    d.trim_end(),
                    colour(*stroke),
                    n(*width),
                    if *dashed {
                        " stroke-dasharray=\"3 2\""
                    } else {
                        ""
                    }
                );
            }
            Shape::Rect {
                x,
                y,
                w,
                h,
                fill,
                stroke,
            } => {
                let _ = writeln!(
                    out,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"{}\"/>",
                    n(*x),
                    n(*y),
                    n(*w),
                    n(*h),
                    fill.map(colour).unwrap_or_else(|| "none".into()),
                    stroke.map(colour).unwrap_or_else(|| "none".into())
                );
            }
            Shape::Text {
                x,
                y,
                text,
                size,
                anchor,
                colour: c,
            } => {
                let a = match anchor {
                    Anchor::Start => "start",
                    Anchor::Middle => "middle",
                    Anchor::End => "end",
                };
                let _ = writeln!(
                    out,
                    "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"{a}\" fill=\"{}\">{}</text>",
                    n(*x),
                    n(*y),
                    n(*size),
                    colour(*c),
                    escape(text)
                );
            }
            Shape::Image { x, y, w, h, image } => {
                let png = png::encode(image)?;
                let _ = writeln!(
                    out,
                    "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" preserveAspectRatio=\"none\" href=\"data:image/png;base64,{}\"/>",
                    n(*x),
                    n(*y),
                    n(*w),
                    n(*h),
                    png::base64(&png)
                );
            }
        }
    }
    out.push_str("</svg>");
    if !f.caption.is_empty() {
        let _ = write!(out, "<figcaption>{}</figcaption>", escape(&f.caption));
    }
    out.push_str("</figure>\n");
    Ok(())
}

/// The whole HTML page for `doc`, with `footer` (plain text, e.g. the
/// program version and time of making) at the bottom. Fails only if a CT
/// slice cannot be PNG-encoded.
pub fn render(doc: &Document, footer: &str) -> Result<String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>",
        t = escape(&doc.title)
    );
    for b in &doc.blocks {
        match b {
            Block::Heading(h) => {
                let _ = writeln!(out, "<h2>{}</h2>", escape(h));
            }
            Block::Paragraph(p) => {
                let _ = writeln!(out, "<p>{}</p>", escape(p));
            }
            Block::Strong(p) => {
                let _ = writeln!(out, "<p><strong>{}</strong></p>", escape(p));
            }
            Block::PageBreak => out.push_str("<hr>\n"),
            Block::Table(t) => table(&mut out, t),
            Block::Figure(f) => figure(&mut out, f)?,
        }
    }
    let _ = writeln!(out, "<footer>{}</footer>\n</body></html>", escape(footer));
    Ok(out)
}
