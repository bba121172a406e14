//! The framed, versioned messages between the radiomics stage and its worker
//! processes over the worker's stdin and stdout. No self-describing object
//! format that could run code (the predecessor pickled): a fixed header,
//! lengths that are checked before anything is allocated, JSON for the
//! small parts and little-endian arrays for the voxels.
//!
//! Frame: `RTRW` · version u16 · kind u8 · 0u8 · payload length u32 · payload.
//! Task payload: JSON length u32 · JSON header · image f32 × n · mask u8 × n.

use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
use ndarray::Array3;
use serde::{Deserialize, Serialize};

use super::engine::{Extraction, Task};
use super::resample::Placement;

const MAGIC: &[u8; 4] = b"RTRW";
/// Protocol version in every frame header; a frame of another version is
/// refused (stage and workers are the same binary, so they always agree).
pub const VERSION: u16 = 1;
/// Largest payload accepted: a 512 × 512 × 800 CT crop with its mask
/// (1 GiB) is far beyond any ROI's bounding box.
pub const MAX_PAYLOAD: u32 = 1 << 30;
const MAX_HEADER: u32 = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
/// What a frame carries (its header's kind byte).
pub enum Kind {
    /// Stage to worker: one ROI to extract ([`encode_task`]).
    Task = 1,
    /// Worker to stage: the features and diagnostics, JSON.
    Result = 2,
    /// Worker to stage: the extraction failed, with the message, JSON.
    Error = 3,
}

#[derive(Serialize, Deserialize)]
struct TaskHeader {
    roi: String,
    shape: [usize; 3],
    spacing: [f64; 3],
    params_yaml: String,
    normalisation: Option<[f64; 2]>,
    offset: [usize; 3],
    full_dims: [usize; 3],
    integer_range: Option<[f64; 2]>,
}

#[derive(Serialize, Deserialize)]
struct ResultBody {
    features: Vec<(String, f64)>,
    diagnostics: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct ErrorBody {
    message: String,
}

/// What a worker answers.
#[derive(Debug)]
pub enum Reply {
    /// The ROI's features.
    Done(Extraction),
    /// The extraction itself failed (a bad ROI): deterministic, not retried.
    Failed(String),
}

/// Writes one frame (header and `payload`) and flushes; fails for a
/// payload over [`MAX_PAYLOAD`] or a write error.
pub fn write_frame(w: &mut impl Write, kind: Kind, payload: &[u8]) -> Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_PAYLOAD);
    let Some(len) = len else {
        bail!(
            "message of {} bytes is over the {} byte limit",
            payload.len(),
            MAX_PAYLOAD
        );
    };
    let mut head = [0u8; 12];
    head[..4].copy_from_slice(MAGIC);
    head[4..6].copy_from_slice(&VERSION.to_le_bytes());
    head[6] = kind as u8;
    head[8..12].copy_from_slice(&len.to_le_bytes());
    w.write_all(&head)?;
    w.write_all(payload)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> Result<Option<(Kind, Vec<u8>)>> {
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        let n = r.read(&mut head[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            bail!("stream ended inside a frame header");
        }
        got += n;
    }
    if &head[..4] != MAGIC {
        bail!("not a radiomics worker frame (bad magic)");
    }
    let version = u16::from_le_bytes([head[4], head[5]]);
    if version != VERSION {
        bail!("protocol version {version}, this build speaks {VERSION}");
    }
    let kind = match head[6] {
        1 => Kind::Task,
        2 => Kind::Result,
        3 => Kind::Error,
        k => bail!("unknown message kind {k}"),
    };
    let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if len > MAX_PAYLOAD {
        bail!("message length {len} is over the {MAX_PAYLOAD} byte limit");
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)
        .context("stream ended inside a message")?;
    Ok(Some((kind, payload)))
}

/// A task frame's payload: JSON header, then the image as f32 and the mask
/// as one byte per voxel, little-endian, in `[z, y, x]` order.
pub fn encode_task(t: &Task) -> Result<Vec<u8>> {
    let (z, y, x) = t.image.dim();
    let header = serde_json::to_vec(&TaskHeader {
        roi: t.roi.clone(),
        shape: [z, y, x],
        spacing: t.spacing,
        params_yaml: t.params_yaml.clone(),
        normalisation: t.normalisation,
        offset: t.placement.offset,
        full_dims: t.placement.full_dims,
        integer_range: t.integer_range,
    })?;
    let n = z * y * x;
    let mut out = Vec::with_capacity(4 + header.len() + 5 * n);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    for v in t.image.iter() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend(t.mask.iter().map(|m| *m as u8));
    Ok(out)
}

/// Reads a task payload back, checking every length and the spacing
/// before allocating.
pub fn decode_task(p: &[u8]) -> Result<Task> {
    if p.len() < 4 {
        bail!("task message too short");
    }
    let hlen = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
    if hlen > MAX_HEADER || 4 + hlen as usize > p.len() {
        bail!("task header length {hlen} does not fit the message");
    }
    let h: TaskHeader = serde_json::from_slice(&p[4..4 + hlen as usize]).context("task header")?;
    let n = h
        .shape
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .filter(|n| *n > 0)
        .context("task shape is empty or overflows")?;
    let body = &p[4 + hlen as usize..];
    if body.len() != n.checked_mul(5).context("task shape overflows")? {
        bail!(
            "task holds {} voxel bytes, shape {:?} needs {}",
            body.len(),
            h.shape,
            n * 5
        );
    }
    if h.spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        bail!("task spacing {:?} is not positive", h.spacing);
    }
    let image: Vec<f32> = body[..4 * n]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mask: Vec<bool> = body[4 * n..].iter().map(|b| *b != 0).collect();
    let shape = (h.shape[0], h.shape[1], h.shape[2]);
    Ok(Task {
        roi: h.roi,
        image: Array3::from_shape_vec(shape, image)?,
        mask: Array3::from_shape_vec(shape, mask)?,
        spacing: h.spacing,
        params_yaml: h.params_yaml,
        normalisation: h.normalisation,
        placement: Placement {
            offset: h.offset,
            full_dims: h.full_dims,
        },
        integer_range: h.integer_range,
    })
}

/// A result frame's payload (NaN features are written as JSON null).
pub fn encode_result(e: &Extraction) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&ResultBody {
        features: e.features.clone(),
        diagnostics: e.diagnostics.clone(),
    })?)
}

/// An error frame's payload carrying `message`.
pub fn encode_error(message: &str) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&ErrorBody {
        message: message.to_string(),
    })?)
}

/// Reads a worker's answer of kind `kind` (null features back to NaN);
/// a task frame from a worker is an error.
pub fn decode_reply(kind: Kind, p: &[u8]) -> Result<Reply> {
    match kind {
        Kind::Result => {
            // serde_json writes NaN as null; read it back as NaN.
            let v: serde_json::Value = serde_json::from_slice(p).context("result message")?;
            let mut features = Vec::new();
            for item in v["features"]
                .as_array()
                .context("result without features")?
            {
                let name = item[0].as_str().context("feature name")?.to_string();
                features.push((name, item[1].as_f64().unwrap_or(f64::NAN)));
            }
            let diagnostics: Vec<(String, String)> =
                serde_json::from_value(v["diagnostics"].clone()).context("result diagnostics")?;
            Ok(Reply::Done(Extraction {
                features,
                diagnostics,
            }))
        }
        Kind::Error => {
            let e: ErrorBody = serde_json::from_slice(p).context("error message")?;
            Ok(Reply::Failed(e.message))
        }
        Kind::Task => bail!("a worker answered with a task"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            roi: "GTV".into(),
            image: Array3::from_shape_fn((2, 3, 4), |(z, y, x)| (z * 12 + y * 4 + x) as f32 - 5.5),
            mask: Array3::from_shape_fn((2, 3, 4), |(z, y, x)| (z + y + x) % 2 == 0),
            spacing: [3.0, 0.9, 0.9],
            params_yaml: "setting: {binWidth: 10}".into(),
            normalisation: Some([1.0, 2.0]),
            placement: Placement {
                offset: [1, 2, 3],
                full_dims: [10, 20, 30],
            },
            integer_range: Some([-32768.0, 32767.0]),
        }
    }

    #[test]
    fn a_task_survives_the_round_trip() {
        let t = task();
        let mut buf = Vec::new();
        write_frame(&mut buf, Kind::Task, &encode_task(&t).unwrap()).unwrap();
        let (kind, p) = read_frame(&mut &buf[..]).unwrap().unwrap();
        assert_eq!(kind, Kind::Task);
        let back = decode_task(&p).unwrap();
        assert_eq!(back.image, t.image);
        assert_eq!(back.mask, t.mask);
        assert_eq!(back.spacing, t.spacing);
        assert_eq!(back.params_yaml, t.params_yaml);
        assert_eq!(back.placement, t.placement);
        assert_eq!(back.integer_range, t.integer_range);
    }

    #[test]
    fn lengths_are_checked_before_allocating() {
        let mut head = Vec::from(&MAGIC[..]);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&[1, 0]);
        head.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = read_frame(&mut &head[..]).unwrap_err().to_string();
        assert!(err.contains("over the"), "{err}");
        assert!(read_frame(&mut &b"GARBAGE!!!!!"[..]).is_err());
        assert!(read_frame(&mut &b"RTRW"[..]).is_err());
        assert!(read_frame(&mut &b""[..]).unwrap().is_none());
    }

    #[test]
    fn a_task_whose_shape_disagrees_with_its_bytes_is_refused() {
        let mut p = encode_task(&task()).unwrap();
        p.truncate(p.len() - 1);
        assert!(decode_task(&p)
            .unwrap_err()
            .to_string()
            .contains("voxel bytes"));
        let mut p = encode_task(&task()).unwrap();
        p[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_task(&p).is_err());
    }

    #[test]
    fn nan_features_survive_as_nan() {
        let e = Extraction {
            features: vec![("original_glcm_MCC".into(), f64::NAN), ("x".into(), 1.5)],
            diagnostics: vec![],
        };
        let Reply::Done(back) = decode_reply(Kind::Result, &encode_result(&e).unwrap()).unwrap()
        else {
            panic!("not done")
        };
        assert!(back.features[0].1.is_nan());
        assert_eq!(back.features[1].1, 1.5);
    }
}
