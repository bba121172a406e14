//! The report's figures: cumulative DVH curves, and axial CT slices in a
//! soft-tissue window with the plan's and the auto contours drawn over
//! them. Both are vector shapes in the document model, so the HTML (SVG)
//! and the PDF draw the same thing.

use std::collections::HashMap;

use serde_json::Value;

use super::model::{text_width, Anchor, Figure, GrayImage, Rgb, Shape, GREY, PALETTE};
use crate::rt::RtStruct;
use crate::volume::Volume;

/// Soft-tissue window.
const WINDOW_CENTRE: f64 = 40.0;
const WINDOW_WIDTH: f64 = 400.0;
/// Larger slices are subsampled: the report shows anatomy, not pixels.
const MAX_IMAGE_PX: usize = 512;
const MAX_CURVE_POINTS: usize = 400;

/// One colour per structure name, the same in the DVH plot and on the slices.
#[derive(Default)]
pub struct Colours(HashMap<String, Rgb>);

impl Colours {
    /// The colour of structure `name`: the one it already has, else the
    /// next palette colour (cycling after ten names).
    pub fn get(&mut self, name: &str) -> Rgb {
        let next = PALETTE[self.0.len() % PALETTE.len()];
        *self.0.entry(name.to_string()).or_insert(next)
    }
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

/// An axis label: `v` to at most three decimals, trailing zeros dropped
/// (`2.5`, `10`).
pub fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The cumulative DVH plot, volume in % of each ROI's volume against dose
/// in Gy, from dvh.json (`rois[].dvh.cumulative_cc`, `bin_width_gy`): one
/// curve per ROI, dashed for auto-segmented ROIs, with a legend. `None` when
/// no ROI has a usable curve.
pub fn dvh_figure(dvh: &Value, colours: &mut Colours) -> Option<Figure> {
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

/// Up to three axial CT slices (at a quarter, half and three quarters of
/// the first target's extent in z, else of the scan) in a soft-tissue window
/// (W 400 / L 40 HU), with the `plan` contours solid and the `auto` contours
/// dashed on each. Empty when the CT is not axial (slice normal more than
/// about 8° from patient z) or has no pixels.
pub fn slice_figures(
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(57.0, 8), 10.0);
        assert_eq!(tick_step(7.0, 8), 1.0);
        assert_eq!(tick_step(0.3, 8), 0.05);
    }

    #[test]
    fn the_soft_tissue_window_spans_minus_160_to_240_hu() {
        assert_eq!(window(-1000.0), 0);
        assert_eq!(window(-160.0), 0);
        assert_eq!(window(40.0), 128);
        assert_eq!(window(240.0), 255);
        assert_eq!(window(3000.0), 255);
    }
}
