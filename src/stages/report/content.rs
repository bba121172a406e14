//! What the report says, built from the course's stage outputs into the
//! document model. Every section is optional: what an upstream stage did
//! not produce is left out and named at the end, never invented.

use std::collections::HashMap;

use serde_json::Value;

use super::csv::Csv;
use super::model::{
    text_width, Anchor, Block, Document, Figure, GrayImage, Rgb, Shape, Table, GREY, PALETTE,
};
use crate::rt::RtStruct;
use crate::stages::qc;
use crate::volume::Volume;

/// Everything the report is made from; `None` where the course or its
/// stages have none.
#[derive(Debug, Default)]
pub struct ReportInputs {
    pub course_id: String,
    pub version: u32,
    pub patient_name: String,
    pub patient_id: String,
    pub created: String,
    pub ct: Option<Volume>,
    pub plan_structures: Option<RtStruct>,
    pub auto_structures: Option<RtStruct>,
    /// dvh.json.
    pub dvh: Option<Value>,
    pub dvh_metrics: Option<Csv>,
    pub dvh_constraints: Option<Csv>,
    pub qc: Option<qc::Report>,
    pub radiomics: Option<Csv>,
    /// The version's manifest.json.
    pub manifest: Option<Value>,
    /// Inputs that were missing or unreadable, in words.
    pub missing: Vec<String>,
}

/// ROI columns per metric table: what fits across A4 at a legible size.
const ROIS_PER_TABLE: usize = 6;
/// Soft-tissue window.
const WINDOW_CENTRE: f64 = 40.0;
const WINDOW_WIDTH: f64 = 400.0;
/// Larger slices are subsampled: the report shows anatomy, not pixels.
const MAX_IMAGE_PX: usize = 512;
const MAX_CURVE_POINTS: usize = 400;

/// One colour per structure name, the same in the DVH plot and on the slices.
struct Colours(HashMap<String, Rgb>);

impl Colours {
    fn get(&mut self, name: &str) -> Rgb {
        let next = PALETTE[self.0.len() % PALETTE.len()];
        *self.0.entry(name.to_string()).or_insert(next)
    }
}

pub fn build(inp: &ReportInputs) -> Document {
    let mut colours = Colours(HashMap::new());
    let mut blocks = Vec::new();
    blocks.push(Block::Paragraph(summary_line(inp)));

    blocks.push(Block::Heading("Dose-volume histograms".into()));
    match inp.dvh.as_ref().and_then(|d| dvh_figure(d, &mut colours)) {
        Some(f) => blocks.push(Block::Figure(f)),
        None => blocks.push(Block::Paragraph("No DVH for this course.".into())),
    }

    blocks.push(Block::Heading("DVH metrics".into()));
    match &inp.dvh_metrics {
        Some(csv) => {
            for c in &csv.comments {
                blocks.push(Block::Paragraph(c.clone()));
            }
            blocks.extend(metric_tables(csv).into_iter().map(Block::Table));
        }
        None => blocks.push(Block::Paragraph("No DVH metrics for this course.".into())),
    }

    blocks.push(Block::Heading("Dose constraints".into()));
    match &inp.dvh_constraints {
        Some(csv) if !csv.rows.is_empty() => blocks.push(Block::Table(Table {
            header: csv.header.clone(),
            rows: csv.rows.clone(),
        })),
        Some(_) => blocks.push(Block::Paragraph(
            "No constraint is configured (dvh.constraints).".into(),
        )),
        None => blocks.push(Block::Paragraph("No constraint results.".into())),
    }

    blocks.push(Block::Heading("CT with contours".into()));
    match &inp.ct {
        Some(ct) => {
            let figs = slice_figures(
                ct,
                inp.plan_structures.as_ref(),
                inp.auto_structures.as_ref(),
                &mut colours,
            );
            if figs.is_empty() {
                blocks.push(Block::Paragraph(
                    "The image series is not axial; no slices are shown.".into(),
                ));
            }
            blocks.extend(figs.into_iter().map(Block::Figure));
        }
        None => blocks.push(Block::Paragraph("No CT volume.".into())),
    }

    if let Some(r) = &inp.radiomics {
        blocks.push(Block::Heading("Radiomics".into()));
        blocks.extend(radiomics(r));
    }

    blocks.push(Block::Heading("Quality checks".into()));
    match &inp.qc {
        Some(q) => blocks.extend(qc_blocks(q)),
        None => blocks.push(Block::Paragraph("No QC report.".into())),
    }

    if let Some(t) = inp.manifest.as_ref().and_then(stage_table) {
        blocks.push(Block::Heading("Stages".into()));
        blocks.push(Block::Table(t));
    }

    if !inp.missing.is_empty() {
        blocks.push(Block::Heading("Not in this report".into()));
        for m in &inp.missing {
            blocks.push(Block::Paragraph(m.clone()));
        }
    }
    Document {
        title: format!("Course report {} v{}", inp.course_id, inp.version),
        blocks,
    }
}

fn summary_line(inp: &ReportInputs) -> String {
    let mut parts = vec![
        format!("Patient: {} ({})", inp.patient_name, inp.patient_id),
        format!("course {} version {}", inp.course_id, inp.version),
        format!("made {}", inp.created),
    ];
    if let Some(d) = &inp.dvh {
        if let Some(desc) = d["dose"]["description"].as_str() {
            parts.push(format!("dose: {desc}"));
        }
    }
    if let Some(rs) = &inp.plan_structures {
        parts.push(format!("structure set {}", rs.sop_instance_uid));
    }
    if let Some(rs) = &inp.auto_structures {
        parts.push(format!("auto contours {}", rs.sop_instance_uid));
    }
    parts.join("; ")
}

/// A tick step of 1, 2 or 5 × 10^k giving at most `max` intervals.
fn tick_step(range: f64, max: usize) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / max as f64;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn dvh_figure(dvh: &Value, colours: &mut Colours) -> Option<Figure> {
    struct Curve {
        name: String,
        dashed: bool,
        bin: f64,
        pct: Vec<f64>,
    }
    let mut curves = Vec::new();
    for roi in dvh["rois"].as_array()? {
        let name = roi["name"].as_str().unwrap_or("?").to_string();
        let bin = roi["dvh"]["bin_width_gy"].as_f64().unwrap_or(0.0);
        let cum: Vec<f64> = roi["dvh"]["cumulative_cc"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let total = cum.first().copied().unwrap_or(0.0);
        if bin <= 0.0 || total <= 0.0 {
            continue;
        }
        let dashed = roi["source"]["kind"].as_str() == Some("auto_segmentation");
        curves.push(Curve {
            name,
            dashed,
            bin,
            pct: cum.iter().map(|c| 100.0 * c / total).collect(),
        });
    }
    if curves.is_empty() {
        return None;
    }
    let max_dose = curves
        .iter()
        .map(|c| c.pct.iter().rposition(|v| *v > 0.0).unwrap_or(0) as f64 * c.bin)
        .fold(0.0, f64::max)
        .max(1e-3);
    let step = tick_step(max_dose, 8);
    let x_max = (max_dose / step).ceil() * step;

    let (w, h) = (515.0, 300.0);
    let (left, top, pw, ph) = (46.0, 12.0, 310.0, 240.0);
    let px = |d: f64| left + pw * d / x_max;
    let py = |v: f64| top + ph * (1.0 - v / 100.0);
    let mut shapes = vec![Shape::Rect {
        x: left,
        y: top,
        w: pw,
        h: ph,
        fill: None,
        stroke: Some(GREY),
    }];
    let mut d = 0.0;
    while d <= x_max + step * 1e-6 {
        shapes.push(Shape::line(
            [px(d), top + ph],
            [px(d), top + ph + 4.0],
            GREY,
            0.5,
        ));
        shapes.push(Shape::text(
            px(d),
            top + ph + 14.0,
            fmt_tick(d),
            8.0,
            Anchor::Middle,
        ));
        d += step;
    }
    for v in (0..=100).step_by(20) {
        let v = f64::from(v);
        shapes.push(Shape::line([left - 4.0, py(v)], [left, py(v)], GREY, 0.5));
        shapes.push(Shape::text(
            left - 6.0,
            py(v) + 3.0,
            fmt_tick(v),
            8.0,
            Anchor::End,
        ));
    }
    shapes.push(Shape::text(
        left + pw / 2.0,
        h - 18.0,
        "Dose (Gy)",
        9.0,
        Anchor::Middle,
    ));
    shapes.push(Shape::text(
        4.0,
        top - 2.0 + ph / 2.0,
        "Vol %",
        9.0,
        Anchor::Start,
    ));
    let legend_x = left + pw + 16.0;
    let shown = curves.len().min(19);
    for (i, c) in curves.iter().enumerate() {
        let colour = colours.get(&c.name);
        let stride = c.pct.len().div_ceil(MAX_CURVE_POINTS).max(1);
        let mut points: Vec<[f64; 2]> = c
            .pct
            .iter()
            .enumerate()
            .step_by(stride)
            .map(|(j, v)| [px(j as f64 * c.bin), py(*v)])
            .collect();
        if let Some(last) = c.pct.last() {
            points.push([px((c.pct.len() - 1) as f64 * c.bin), py(*last)]);
        }
        shapes.push(Shape::Path {
            points,
            closed: false,
            stroke: colour,
            width: 1.2,
            dashed: c.dashed,
        });
        if i < shown {
            let y = top + 6.0 + i as f64 * 12.5;
            shapes.push(Shape::Path {
                points: vec![[legend_x, y - 3.0], [legend_x + 16.0, y - 3.0]],
                closed: false,
                stroke: colour,
                width: 1.5,
                dashed: c.dashed,
            });
            shapes.push(Shape::text(
                legend_x + 20.0,
                y,
                clip(&c.name, 120.0, 8.0),
                8.0,
                Anchor::Start,
            ));
        }
    }
    if curves.len() > shown {
        let y = top + 6.0 + shown as f64 * 12.5;
        shapes.push(Shape::text(
            legend_x,
            y,
            format!("and {} more", curves.len() - shown),
            8.0,
            Anchor::Start,
        ));
    }
    Some(Figure {
        width: w,
        height: h,
        shapes,
        caption: format!(
            "Cumulative DVHs ({}); dashed: auto-segmented structures.",
            dvh["dose"]["description"].as_str().unwrap_or("dose")
        ),
    })
}

/// Shortens a label to `width` points, marking the cut.
fn clip(s: &str, width: f64, size: f64) -> String {
    if text_width(s, size) <= width {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        if text_width(&format!("{out}{c}…"), size) > width {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// dvh_metrics.csv as tables of metric rows × ROI columns, values as
/// written in the file.
fn metric_tables(csv: &Csv) -> Vec<Table> {
    let (Some(roi), Some(metric), Some(value)) =
        (csv.column("roi"), csv.column("metric"), csv.column("value"))
    else {
        return vec![Table {
            header: csv.header.clone(),
            rows: csv.rows.clone(),
        }];
    };
    let source = csv.column("source");
    let unit = csv.column("unit");
    let mut rois: Vec<(String, String)> = Vec::new();
    let mut metrics: Vec<(String, String)> = Vec::new();
    let mut cells: HashMap<(usize, usize), String> = HashMap::new();
    for r in &csv.rows {
        let get = |i: Option<usize>| i.and_then(|i| r.get(i)).cloned().unwrap_or_default();
        let key = (get(Some(roi)), get(source));
        let ri = rois.iter().position(|k| *k == key).unwrap_or_else(|| {
            rois.push(key);
            rois.len() - 1
        });
        let m = get(Some(metric));
        let mi = metrics.iter().position(|k| k.0 == m).unwrap_or_else(|| {
            metrics.push((m, get(unit)));
            metrics.len() - 1
        });
        cells.insert((mi, ri), get(Some(value)));
    }
    let label = |(name, source): &(String, String)| {
        if source.starts_with("autoseg") {
            format!("{name} (auto)")
        } else if source == "derived" {
            format!("{name} (derived)")
        } else {
            name.clone()
        }
    };
    (0..rois.len())
        .step_by(ROIS_PER_TABLE)
        .map(|start| {
            let cols: Vec<usize> = (start..(start + ROIS_PER_TABLE).min(rois.len())).collect();
            let mut header = vec!["metric".to_string(), "unit".to_string()];
            header.extend(cols.iter().map(|&c| label(&rois[c])));
            let rows = metrics
                .iter()
                .enumerate()
                .filter(|(mi, _)| cols.iter().any(|&c| cells.contains_key(&(*mi, c))))
                .map(|(mi, (m, u))| {
                    let mut row = vec![m.clone(), u.clone()];
                    row.extend(
                        cols.iter()
                            .map(|&c| cells.get(&(mi, c)).cloned().unwrap_or_default()),
                    );
                    row
                })
                .collect();
            Table { header, rows }
        })
        .collect()
}

fn window(hu: f32) -> u8 {
    let lo = WINDOW_CENTRE - WINDOW_WIDTH / 2.0;
    ((f64::from(hu) - lo) / WINDOW_WIDTH * 255.0)
        .round()
        .clamp(0.0, 255.0) as u8
}

/// Slice indices worth showing: through the target (PTV, CTV or GTV) when
/// the plan has one, else through the volume, at a quarter, half and three
/// quarters of its extent.
fn chosen_slices(ct: &Volume, plan: Option<&RtStruct>) -> Vec<usize> {
    let g = &ct.geometry;
    let n = g.size[2];
    if n == 0 {
        return Vec::new();
    }
    let z_of = |k: usize| g.position(k as f64, 0.0, 0.0)[2];
    let target = plan.and_then(|rs| {
        rs.rois.iter().find(|r| {
            let t = r.interpreted_type.to_ascii_uppercase();
            let name = r.name.to_ascii_uppercase();
            (matches!(t.as_str(), "PTV" | "CTV" | "GTV") || name.starts_with("PTV"))
                && !r.planes.is_empty()
        })
    });
    let (lo, hi) = match target {
        Some(r) => (
            r.planes.first().map(|p| p.z).unwrap_or(0.0),
            r.planes.last().map(|p| p.z).unwrap_or(0.0),
        ),
        None => (z_of(0), z_of(n - 1)),
    };
    let mut ks: Vec<usize> = [0.25, 0.5, 0.75]
        .iter()
        .map(|f| {
            let z = lo + f * (hi - lo);
            (0..n)
                .min_by(|a, b| (z_of(*a) - z).abs().total_cmp(&(z_of(*b) - z).abs()))
                .unwrap_or(0)
        })
        .collect();
    ks.dedup();
    ks
}

fn slice_figures(
    ct: &Volume,
    plan: Option<&RtStruct>,
    auto: Option<&RtStruct>,
    colours: &mut Colours,
) -> Vec<Figure> {
    let g = &ct.geometry;
    if g.directions[2][2].abs() < 0.99 {
        return Vec::new();
    }
    let (cols, rows) = (g.size[0], g.size[1]);
    if cols == 0 || rows == 0 || ct.data.dim() != (g.size[2], rows, cols) {
        return Vec::new();
    }
    let stride = cols.max(rows).div_ceil(MAX_IMAGE_PX).max(1);
    let (iw, ih) = (cols.div_ceil(stride), rows.div_ceil(stride));
    // Physical aspect kept: pixels may be rectangular.
    let (mw, mh) = (cols as f64 * g.spacing[0], rows as f64 * g.spacing[1]);
    let scale = (300.0 / mw).min(300.0 / mh);
    let (fw, fh) = (mw * scale, mh * scale);
    let to_fig = |p: [f64; 3]| -> [f64; 2] {
        let d: Vec<f64> = (0..3).map(|a| p[a] - g.origin[a]).collect();
        let i = (0..3).map(|a| d[a] * g.directions[0][a]).sum::<f64>() / g.spacing[0];
        let j = (0..3).map(|a| d[a] * g.directions[1][a]).sum::<f64>() / g.spacing[1];
        [
            (i + 0.5) * g.spacing[0] * scale,
            (j + 0.5) * g.spacing[1] * scale,
        ]
    };
    let half = g.spacing[2].abs() / 2.0;
    let mut figs = Vec::new();
    for k in chosen_slices(ct, plan) {
        let z = g.position(k as f64, 0.0, 0.0)[2];
        let mut pixels = Vec::with_capacity(iw * ih);
        for j in (0..rows).step_by(stride) {
            for i in (0..cols).step_by(stride) {
                pixels.push(window(ct.data[[k, j, i]]));
            }
        }
        let mut shapes = vec![Shape::Image {
            x: 0.0,
            y: 0.0,
            w: fw,
            h: fh,
            image: GrayImage {
                width: iw,
                height: ih,
                pixels,
            },
        }];
        let mut legend: Vec<(String, Rgb, bool)> = Vec::new();
        for (rs, dashed) in [(plan, false), (auto, true)] {
            let Some(rs) = rs else { continue };
            for roi in &rs.rois {
                let planes: Vec<_> = roi
                    .planes
                    .iter()
                    .filter(|p| (p.z - z).abs() <= half + 1e-6)
                    .collect();
                if planes.is_empty() {
                    continue;
                }
                let colour = colours.get(&roi.name);
                for p in planes {
                    for poly in &p.polygons {
                        shapes.push(Shape::Path {
                            points: poly.iter().map(|q| to_fig([q[0], q[1], z])).collect(),
                            closed: true,
                            stroke: colour,
                            width: 1.0,
                            dashed,
                        });
                    }
                }
                legend.push((roi.name.clone(), colour, dashed));
            }
        }
        let lx = fw + 14.0;
        for (i, (name, colour, dashed)) in legend.iter().enumerate().take(22) {
            let y = 10.0 + i as f64 * 12.5;
            shapes.push(Shape::Path {
                points: vec![[lx, y - 3.0], [lx + 16.0, y - 3.0]],
                closed: false,
                stroke: *colour,
                width: 1.5,
                dashed: *dashed,
            });
            let label = if *dashed {
                format!("{name} (auto)")
            } else {
                name.clone()
            };
            shapes.push(Shape::text(
                lx + 20.0,
                y,
                clip(&label, 140.0, 8.0),
                8.0,
                Anchor::Start,
            ));
        }
        figs.push(Figure {
            width: 515.0,
            height: fh.max(12.5 * legend.len().min(22) as f64 + 10.0),
            shapes,
            caption: format!(
                "Axial slice {} of {} at z = {} mm, window {WINDOW_WIDTH}/{WINDOW_CENTRE} HU; solid: plan structures, dashed: auto contours.",
                k + 1,
                g.size[2],
                fmt_tick(z)
            ),
        });
    }
    figs
}

/// Significant figures enough for a summary; the CSV keeps full precision.
fn short_number(s: &str) -> String {
    match s.trim().parse::<f64>() {
        Ok(v) if s.len() > 10 => {
            if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) {
                format!("{v:.3e}")
            } else {
                let digits = (4 - v.abs().log10().floor() as i32 - 1).clamp(0, 6) as usize;
                format!("{v:.digits$}")
            }
        }
        _ => s.to_string(),
    }
}

const PREFERRED_FEATURES: &[&str] = &[
    "shape_VoxelVolume",
    "shape_MeshVolume",
    "shape_Sphericity",
    "shape_Maximum3DDiameter",
    "firstorder_Mean",
    "firstorder_StandardDeviation",
    "firstorder_Entropy",
    "glcm_Contrast",
];
const FEATURES_SHOWN: usize = 8;

fn radiomics(csv: &Csv) -> Vec<Block> {
    let lower: Vec<String> = csv.header.iter().map(|h| h.to_ascii_lowercase()).collect();
    let label = ["roi", "roi_name", "structure", "name"]
        .iter()
        .find_map(|k| lower.iter().position(|h| h == k))
        .unwrap_or(0);
    let numeric = |c: usize| {
        let h = &lower[c];
        c != label
            && !h.starts_with("diagnostics")
            && !h.contains("roi_number")
            && csv
                .rows
                .iter()
                .any(|r| r.get(c).is_some_and(|v| !v.is_empty()))
            && csv.rows.iter().all(|r| {
                r.get(c)
                    .is_none_or(|v| v.is_empty() || v.trim().parse::<f64>().is_ok())
            })
    };
    let mut chosen: Vec<usize> = PREFERRED_FEATURES
        .iter()
        .filter_map(|f| {
            let f = f.to_ascii_lowercase();
            (0..csv.header.len()).find(|&c| lower[c].ends_with(&f) && numeric(c))
        })
        .collect();
    for c in 0..csv.header.len() {
        if chosen.len() >= FEATURES_SHOWN {
            break;
        }
        if !chosen.contains(&c) && numeric(c) {
            chosen.push(c);
        }
    }
    let all_numeric = (0..csv.header.len()).filter(|&c| numeric(c)).count();
    let mut out = vec![Block::Paragraph(format!(
        "{} ROI(s), {} numeric feature(s) in radiomics/radiomics.csv; {} shown.",
        csv.rows.len(),
        all_numeric,
        chosen.len()
    ))];
    for start in (0..csv.rows.len()).step_by(ROIS_PER_TABLE) {
        let rows_here = &csv.rows[start..(start + ROIS_PER_TABLE).min(csv.rows.len())];
        let mut header = vec!["feature".to_string()];
        header.extend(
            rows_here
                .iter()
                .map(|r| r.get(label).cloned().unwrap_or_default()),
        );
        let rows = chosen
            .iter()
            .map(|&c| {
                let mut row = vec![csv.header[c].clone()];
                row.extend(
                    rows_here
                        .iter()
                        .map(|r| r.get(c).map(|v| short_number(v)).unwrap_or_default()),
                );
                row
            })
            .collect();
        out.push(Block::Table(Table { header, rows }));
    }
    out
}

fn qc_blocks(q: &qc::Report) -> Vec<Block> {
    let count = |v: qc::Verdict| q.checks.iter().filter(|c| c.status == v).count();
    let verdict = serde_json::to_value(q.verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut checks: Vec<&qc::Check> = q.checks.iter().collect();
    // What needs attention first.
    checks.sort_by_key(|c| std::cmp::Reverse(c.status));
    vec![
        Block::Paragraph(format!(
            "Verdict {verdict}: {} pass, {} warning(s), {} fail.",
            count(qc::Verdict::Pass),
            count(qc::Verdict::Warning),
            count(qc::Verdict::Fail)
        )),
        Block::Table(Table {
            header: vec![
                "status".into(),
                "category".into(),
                "check".into(),
                "detail".into(),
            ],
            rows: checks
                .iter()
                .map(|c| {
                    vec![
                        serde_json::to_value(c.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        c.category.clone(),
                        c.id.clone(),
                        c.detail.clone(),
                    ]
                })
                .collect(),
        }),
    ]
}

const STAGE_ORDER: &[&str] = &["organize", "segmentation", "qc", "dvh", "radiomics"];

/// The stages that ran before the report, from the version's manifest.
fn stage_table(manifest: &Value) -> Option<Table> {
    let stages = manifest["stages"].as_object()?;
    let mut names: Vec<&String> = stages
        .keys()
        .filter(|k| !matches!(k.as_str(), "report" | "export"))
        .collect();
    names.sort_by_key(|n| {
        (
            STAGE_ORDER
                .iter()
                .position(|s| s == n)
                .unwrap_or(STAGE_ORDER.len()),
            n.to_string(),
        )
    });
    let rows = names
        .into_iter()
        .map(|name| {
            let s = &stages[name];
            let time = s["duration_ms"]
                .as_u64()
                .map(|ms| format!("{:.2} s", ms as f64 / 1000.0))
                .unwrap_or_default();
            let note = s["reused_from"]
                .as_str()
                .map(|v| format!("reused from {v}"))
                .or_else(|| s["skip_reason"].as_str().map(str::to_string))
                .or_else(|| s["error"].as_str().map(str::to_string))
                .unwrap_or_default();
            vec![
                name.clone(),
                s["state"].as_str().unwrap_or("").to_string(),
                time,
                note,
            ]
        })
        .collect();
    Some(Table {
        header: vec!["stage".into(), "state".into(), "time".into(), "note".into()],
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_tables_keep_values_verbatim_and_split_rois() {
        let mut text = String::from("# dose: x\nroi,roi_number,source,status,metric,value,unit\n");
        for r in 0..8 {
            text.push_str(&format!("R{r},{r},rtstruct,ok,Dmean,{r}.500000,Gy\n"));
            text.push_str(&format!("R{r},{r},rtstruct,ok,D95,1e-7,Gy\n"));
        }
        text.push_str("R0,0,autoseg:body,ok,Dmean,3.25,Gy\n");
        let t = metric_tables(&Csv::parse(&text));
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].header[..3], ["metric", "unit", "R0"]);
        assert_eq!(t[0].rows[0][2], "0.500000");
        assert_eq!(t[0].rows[1][2], "1e-7");
        assert_eq!(t[1].header.last().map(String::as_str), Some("R0 (auto)"));
    }

    #[test]
    fn radiomics_shows_preferred_features_per_roi() {
        let csv = Csv::parse(
            "roi,roi_number,diagnostics_Versions_PyRadiomics,original_firstorder_Mean,original_shape_VoxelVolume,original_glszm_ZoneEntropy\n\
             PTV,1,3.1.0,41.123456789012,33466.0,5.5\n\
             Lung_L,2,3.1.0,-812.5,1200000.25,6.25\n",
        );
        let blocks = radiomics(&csv);
        let Block::Paragraph(p) = &blocks[0] else {
            panic!("summary first")
        };
        assert!(p.starts_with("2 ROI(s), 3 numeric feature(s)"), "{p}");
        let Block::Table(t) = &blocks[1] else {
            panic!("then a table")
        };
        assert_eq!(t.header, ["feature", "PTV", "Lung_L"]);
        // Preferred features first, then the others; diagnostics never.
        assert_eq!(t.rows[0][0], "original_shape_VoxelVolume");
        assert_eq!(t.rows[1], ["original_firstorder_Mean", "41.12", "-812.5"]);
        assert_eq!(t.rows[2][0], "original_glszm_ZoneEntropy");
        assert_eq!(t.rows.len(), 3);
    }

    #[test]
    fn a_report_without_any_stage_output_says_what_is_missing() {
        let doc = build(&ReportInputs {
            course_id: "P-1".into(),
            version: 2,
            missing: vec!["dvh.json: unreadable (bad)".into()],
            ..ReportInputs::default()
        });
        assert_eq!(doc.title, "Course report P-1 v2");
        let text: Vec<String> = doc
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Paragraph(p) | Block::Heading(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        for expected in [
            "No DVH for this course.",
            "No CT volume.",
            "No QC report.",
            "dvh.json: unreadable (bad)",
        ] {
            assert!(text.iter().any(|t| t == expected), "{expected}: {text:?}");
        }
        assert!(!text.iter().any(|t| t == "Radiomics"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(57.0, 8), 10.0);
        assert_eq!(tick_step(7.0, 8), 1.0);
        assert_eq!(tick_step(0.3, 8), 0.05);
    }

    #[test]
    fn short_numbers_only_shorten_long_ones() {
        assert_eq!(short_number("12.5"), "12.5");
        assert_eq!(short_number("123.456789012"), "123.5");
        assert_eq!(short_number("0.000012345678"), "1.235e-5");
        assert_eq!(short_number("not a number at all"), "not a number at all");
    }
}
