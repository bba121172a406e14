//! The TorchScript runner (feature `torch`): libtorch through tch. Models
//! are loaded once per process and device and kept warm in a cache, since
//! loading a TotalSegmentator-sized network costs seconds and the stage
//! runs once per course.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use ndarray::Array3;
use tch::{CModule, Device, Kind, Tensor};

use super::grid::{self, Plan};
use super::tiles::{self, Aggregate, ForwardError, Placement, Tiling};
use super::{file_hash, DeviceChoice, ModelSpec, SegmentationSection};
use super::{CheckLevel, ModelCheck};
use crate::segmentation::{RoiLabel, Segmenter};
use crate::volume::Volume;

/// The libtorch this binary was built against (from the build script).
pub const LIBTORCH_VERSION: &str = env!("RTNODE_LIBTORCH_VERSION");
/// The directory of the libtorch libraries this binary links (its RUNPATH).
pub const LIBTORCH_LIB: &str = env!("RTNODE_LIBTORCH_LIB");
/// Whether the build linked libtorch_cuda, and if not, why.
pub const CUDA_LINKED: &str = env!("RTNODE_TORCH_CUDA_LINKED");

/// (file, its hash, device, half precision).
type CacheKey = (PathBuf, String, String, bool);

fn cache() -> &'static Mutex<HashMap<CacheKey, Arc<CModule>>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Arc<CModule>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn tch_err(e: tch::TchError) -> ForwardError {
    let m = e.to_string();
    if tiles::is_oom(&m) {
        ForwardError::OutOfMemory(m)
    } else {
        ForwardError::Other(anyhow!(m))
    }
}

fn into_anyhow(e: ForwardError) -> anyhow::Error {
    match e {
        ForwardError::OutOfMemory(m) => anyhow!("out of memory: {m}"),
        ForwardError::Other(e) => e,
    }
}

/// A TorchScript model of the registry.
pub struct TorchSegmenter {
    spec: ModelSpec,
    path: PathBuf,
    hash: String,
    version: String,
    /// Sum the patches' scores where they were computed (None: on a GPU
    /// only). The CPU can do it too, which is how the tests cover that path.
    sum_on_device: Option<bool>,
}

/// A batch's class scores, `[n, C, D, H, W]`: copied to the host, or left
/// on the device to be summed there.
enum Scores {
    Host(Vec<f32>, usize),
    Device(Tensor),
}

/// The Gaussian-weighted class scores summed on the model's device, as
/// nnU-Net does when they fit (its perform_everything_on_device): a
/// patch's scores (C x 128^3 floats, 200 MB for 25 classes) then never
/// cross the bus; the sum does, once. Copying every patch to the host was
/// what made the GPU run slow.
struct DeviceSum {
    /// `[C, D, H, W]` over the padded grid, float32.
    acc: Tensor,
    /// `[pd, ph, pw]`.
    gauss: Tensor,
    patch: [i64; 3],
}

impl DeviceSum {
    fn new(classes: usize, agg: &Aggregate, device: Device) -> Result<DeviceSum, tch::TchError> {
        let [d, h, w] = agg.tiling.padded;
        let [pd, ph, pw] = agg.tiling.patch;
        let patch = [pd as i64, ph as i64, pw as i64];
        let acc = Tensor::f_zeros(
            [classes as i64, d as i64, h as i64, w as i64],
            (Kind::Float, device),
        )?;
        let gauss = Tensor::f_from_slice(agg.gaussian())?
            .f_reshape(patch)?
            .f_to_device_(device, Kind::Float, false, false)?;
        Ok(DeviceSum { acc, gauss, patch })
    }

    fn add(&mut self, out: &Tensor, origins: &[[usize; 3]]) -> Result<(), tch::TchError> {
        tch::no_grad(|| {
            for (i, o) in origins.iter().enumerate() {
                let y = out
                    .f_get(i as i64)?
                    .f_to_kind(Kind::Float)?
                    .f_mul(&self.gauss)?;
                let mut dst = self
                    .acc
                    .f_narrow(1, o[0] as i64, self.patch[0])?
                    .f_narrow(2, o[1] as i64, self.patch[1])?
                    .f_narrow(3, o[2] as i64, self.patch[2])?;
                let _ = dst.f_add_(&y)?;
            }
            Ok(())
        })
    }

    fn to_host(&self) -> Result<Vec<f32>, tch::TchError> {
        tensor_to_host(&self.acc)
    }

    /// The labels on the CT grid, computed where the sums are, as
    /// [`Aggregate::labels_on_ct`] computes them on the host: the sums
    /// divided by their Gaussian weights, resampled linearly to the CT
    /// grid axis by axis (the same taps), the argmax taken there, channels
    /// not in `keep` counted as background. Only the labels (16 bits a
    /// voxel) cross the bus.
    fn labels_on_ct(
        &self,
        agg: &Aggregate,
        plan: &Plan,
        keep: &[bool],
    ) -> Result<Array3<u16>, tch::TchError> {
        let device = self.acc.device();
        tch::no_grad(|| {
            let padded = agg.tiling.padded;
            let pad = agg.tiling.pad_before;
            let dims: Vec<i64> = padded.iter().map(|&n| n as i64).collect();
            let weight = Tensor::f_from_slice(agg.weights())?
                .f_reshape(&dims)?
                .f_to_device_(device, Kind::Float, false, false)?;
            let mut t = self.acc.f_div(&weight)?;
            drop(weight);
            for (a, (ax, &before)) in plan.axes.iter().zip(pad.iter()).enumerate() {
                let dim = 1 + a as i64;
                t = t.f_narrow(dim, before as i64, ax.n_model as i64)?;
                let taps = ax.taps_to_ct();
                let i0: Vec<i64> = taps.iter().map(|p| p.0 as i64).collect();
                let i1: Vec<i64> = taps.iter().map(|p| p.1 as i64).collect();
                let w: Vec<f32> = taps.iter().map(|p| p.2).collect();
                let mut shape = vec![1i64; 4];
                shape[dim as usize] = w.len() as i64;
                let i0 = Tensor::f_from_slice(&i0)?.f_to_device(device)?;
                let i1 = Tensor::f_from_slice(&i1)?.f_to_device(device)?;
                let w = Tensor::f_from_slice(&w)?
                    .f_reshape(&shape)?
                    .f_to_device(device)?;
                let lo = t.f_index_select(dim, &i0)?;
                let hi = t.f_index_select(dim, &i1)?;
                // lo + (hi - lo) * w, as the host blends.
                t = lo.f_add(&hi.f_sub(&lo)?.f_mul(&w)?)?;
            }
            let [s, r, c] = plan.model_axis_of_ct();
            let t = t.f_permute([0, 1 + s as i64, 1 + r as i64, 1 + c as i64])?;
            let best = t.f_argmax(0, false)?;
            drop(t);
            let keep: Vec<i64> = keep.iter().map(|&k| i64::from(k)).collect();
            let keep = Tensor::f_from_slice(&keep)?.f_to_device(device)?;
            let labels = best
                .f_mul(
                    &keep
                        .f_index_select(0, &best.f_flatten(0, -1)?)?
                        .f_view_as(&best)?,
                )?
                .f_to_kind(Kind::Int16)?
                .f_to_device(Device::Cpu)?
                .f_contiguous()?;
            let size = labels.size();
            let mut v = vec![0i16; labels.numel()];
            let len = v.len();
            labels.f_copy_data(&mut v, len)?;
            let (nk, nj, ni) = (size[0] as usize, size[1] as usize, size[2] as usize);
            Array3::from_shape_vec((nk, nj, ni), v.into_iter().map(|l| l as u16).collect())
                .map_err(|e| tch::TchError::Shape(e.to_string()))
        })
    }
}

/// Sums a batch left on the device into `dev_sum`, made at the first
/// batch. When the sums do not fit there, the batch is copied to the host
/// instead (and every later one is), which `note` says once. Returns the
/// host copy when there is one, and the number of classes.
fn sum_on_device(
    t: &Tensor,
    chunk: &[[usize; 3]],
    agg: &mut Option<Aggregate>,
    tiling: &Tiling,
    dev_sum: &mut Option<DeviceSum>,
    note: &mut Option<String>,
    device: Device,
) -> Result<(Option<Vec<f32>>, usize)> {
    let c = t.size().get(1).copied().unwrap_or(0).max(0) as usize;
    let a = agg.get_or_insert_with(|| Aggregate::new(tiling.clone(), c));
    if dev_sum.is_none() && note.is_none() {
        match DeviceSum::new(c, a, device) {
            Ok(d) => *dev_sum = Some(d),
            Err(e) => {
                let e = e.to_string();
                let first = e.lines().next().unwrap_or("").trim();
                *note = Some(format!(
                    "the class sums did not fit on {device:?} ({first}); summed on the host"
                ));
            }
        }
    }
    match dev_sum {
        Some(d) => {
            d.add(t, chunk)
                .map_err(|e| anyhow!("summing scores on {device:?}: {e}"))?;
            Ok((None, c))
        }
        None => Ok((
            Some(tensor_to_host(t).map_err(|e| anyhow!("copying scores: {e}"))?),
            c,
        )),
    }
}

fn tensor_to_host(t: &Tensor) -> Result<Vec<f32>, tch::TchError> {
    let host = t
        .f_to_device_(Device::Cpu, Kind::Float, false, false)?
        .f_contiguous()?;
    let mut v = vec![0f32; host.numel()];
    let len = v.len();
    host.f_copy_data(&mut v, len)?;
    Ok(v)
}

impl TorchSegmenter {
    /// Checks the entry and hashes the file; the model itself is loaded at
    /// its first run (or by [`TorchSegmenter::probe`]).
    pub fn new(spec: &ModelSpec, base_dir: &Path) -> Result<TorchSegmenter> {
        let problems = spec.problems(base_dir);
        if !problems.is_empty() {
            bail!("model {:?}: {}", spec.name, problems.join("; "));
        }
        let path = spec.resolved_file(base_dir);
        let hash = file_hash(&path)?;
        let version = if spec.version.trim().is_empty() {
            hash[..12].to_string()
        } else {
            spec.version.trim().to_string()
        };
        Ok(TorchSegmenter {
            spec: spec.clone(),
            path,
            hash,
            version,
            sum_on_device: None,
        })
    }

    /// Where the patches' scores are summed: `true` on the model's device
    /// (the default on a GPU), `false` on the host (the default on the
    /// CPU). The labels are the same either way, to float rounding.
    pub fn with_sums_on_device(mut self, on: bool) -> TorchSegmenter {
        self.sum_on_device = Some(on);
        self
    }

    fn device(&self) -> Result<Device> {
        let n = tch::Cuda::device_count().max(0) as usize;
        Ok(match DeviceChoice::parse(&self.spec.device)? {
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Auto if n > 0 => Device::Cuda(0),
            DeviceChoice::Auto => Device::Cpu,
            DeviceChoice::Cuda(i) if i < n => Device::Cuda(i),
            DeviceChoice::Cuda(i) => bail!(
                "model {:?} asks for CUDA device {i}; this process sees {n} ({})",
                self.spec.name,
                CUDA_LINKED
            ),
        })
    }

    fn kind(&self, device: Device) -> Kind {
        if device.is_cuda() && self.spec.half_precision {
            Kind::Half
        } else {
            Kind::Float
        }
    }

    /// The model on `device`, from the cache or loaded now.
    fn module(&self, device: Device) -> Result<Arc<CModule>> {
        let half = self.kind(device) == Kind::Half;
        let key = (
            self.path.clone(),
            self.hash.clone(),
            format!("{device:?}"),
            half,
        );
        let mut models = cache().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = models.get(&key) {
            return Ok(m.clone());
        }
        let mut m = CModule::load_on_device(&self.path, device)
            .with_context(|| format!("loading {} on {device:?}", self.path.display()))?;
        m.f_set_eval()?;
        if half {
            // CModule::to panics on a libtorch error (a GPU out of memory
            // while converting): keep that an error of this run.
            let converted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                m.to(device, Kind::Half, false);
                m
            }))
            .map_err(|_| {
                anyhow!(
                    "converting {} to half precision failed",
                    self.path.display()
                )
            })?;
            m = converted;
        }
        let m = Arc::new(m);
        models.insert(key, m.clone());
        Ok(m)
    }

    /// One forward pass over `patches` (`[n, 1, D, H, W]` values) on
    /// `device`: the class scores `[n, C, D, H, W]`, copied to the host as
    /// f32 with C, or left on the device when `keep` is set.
    fn forward(
        &self,
        module: &CModule,
        device: Device,
        patches: &[f32],
        n: usize,
        keep: bool,
    ) -> Result<Scores, ForwardError> {
        let [pd, ph, pw] = self.spec.patch_size;
        let dims = [n as i64, 1, pd as i64, ph as i64, pw as i64];
        let kind = self.kind(device);
        let out = tch::no_grad(|| -> Result<Tensor, tch::TchError> {
            let x = Tensor::f_from_slice(patches)?
                .f_reshape(dims)?
                .f_to_device_(device, kind, false, false)?;
            module.forward_ts(&[x])
        })
        .map_err(tch_err)?;
        let size = out.size();
        let c = match size.as_slice() {
            [b, c, d, h, w] if *b == n as i64 && [*d, *h, *w] == [dims[2], dims[3], dims[4]] => {
                *c as usize
            }
            _ => {
                return Err(ForwardError::Other(anyhow!(
                    "model {:?} answered a {dims:?} input with {size:?}; expected [{n}, classes, {pd}, {ph}, {pw}]",
                    self.spec.name
                )))
            }
        };
        if keep {
            return Ok(Scores::Device(out));
        }
        Ok(Scores::Host(tensor_to_host(&out).map_err(tch_err)?, c))
    }

    /// For `rtnode doctor`: loads the model on its device and runs one
    /// patch of zeros through it.
    pub fn probe(&self) -> Result<String> {
        let t0 = Instant::now();
        let device = self.device()?;
        let module = self.module(device)?;
        let loaded = t0.elapsed();
        let patch: usize = self.spec.patch_size.iter().product();
        let t1 = Instant::now();
        let c = match self
            .forward(&module, device, &vec![0.0; patch], 1, false)
            .map_err(into_anyhow)?
        {
            Scores::Host(_, c) => c,
            Scores::Device(t) => t.size().get(1).copied().unwrap_or(0) as usize,
        };
        let max = self.spec.labels.iter().map(|l| l.value).max().unwrap_or(0);
        ensure!(
            (max as usize) < c,
            "the model has {c} output channels; its label map names channel {max}"
        );
        Ok(format!(
            "{} ({}) loads on {device:?} in {} ms; a {:?} patch gives {c} channels in {} ms",
            self.path.display(),
            self.version,
            loaded.as_millis(),
            self.spec.patch_size,
            t1.elapsed().as_millis()
        ))
    }
}

impl Segmenter for TorchSegmenter {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    fn identity(&self) -> String {
        // The settings that change the labels: not the file's location
        // (moving the models folder must not re-run every course; new
        // weights must, through the hash), nor where or how many patches
        // at a time it runs. Half precision stays: it changes the numbers.
        let mut settings = self.spec.clone();
        settings.file = PathBuf::new();
        settings.device = String::new();
        settings.batch_size = 0;
        format!(
            "{} {} blake3:{} {}",
            self.spec.name,
            self.version,
            self.hash,
            serde_json::to_string(&settings).unwrap_or_default()
        )
    }

    fn labels(&self) -> Vec<RoiLabel> {
        self.spec.labels.iter().map(|l| l.roi()).collect()
    }

    fn description(&self) -> String {
        let s = &self.spec;
        format!(
            "TorchScript model {} at {:?} mm ({}), {:?} patches overlapping {}, Gaussian-weighted, argmax on the CT grid",
            s.name, s.spacing_mm, s.orientation, s.patch_size, s.overlap
        )
    }

    fn segment(&self, volume: &Volume, progress: &(dyn Fn(f64) + Sync)) -> Result<Array3<u16>> {
        self.segment_noted(volume, progress).map(|(l, _)| l)
    }

    fn segment_noted(
        &self,
        volume: &Volume,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<(Array3<u16>, serde_json::Value)> {
        let t0 = Instant::now();
        // libtorch's intra-op pool is process-wide: size it to the threads
        // this stage run was given (the rayon pool it runs in).
        let threads = rayon::current_num_threads().max(1);
        tch::set_num_threads(threads as i32);
        let device = self.device()?;
        let module = self.module(device)?;
        let loaded_ms = t0.elapsed().as_millis() as u64;

        let t = Instant::now();
        let plan = Plan::new(
            &volume.geometry,
            &self.spec.orientation,
            self.spec.spacing_mm,
        )?;
        let input = grid::to_model_grid(volume, &plan, &self.spec.normalise());
        let tiling = Tiling::new(plan.shape(), self.spec.patch_size, self.spec.overlap);
        let resample_ms = t.elapsed().as_millis() as u64;
        progress(0.05);

        let t = Instant::now();
        let plen: usize = self.spec.patch_size.iter().product();
        let total = tiling.tiles.len();
        let mut cpu_module: Option<Arc<CModule>> = None;
        let mut agg: Option<Aggregate> = None;
        let mut done = 0usize;
        let mut forward_ms = 0u64;
        let mut batch_buf: Vec<f32> = Vec::new();
        let mut used_cpu = device == Device::Cpu;
        let sum_here = self.sum_on_device.unwrap_or(device.is_cuda());
        let mut dev_sum: Option<DeviceSum> = None;
        let mut dev_sum_note: Option<String> = None;
        let fallbacks = tiles::run_tiles(
            &tiling.tiles,
            self.spec.batch_size,
            device == Device::Cpu,
            |mode, chunk| {
                batch_buf.resize(chunk.len() * plen, 0.0);
                for (o, dst) in chunk.iter().zip(batch_buf.chunks_mut(plen)) {
                    tiling.extract(&input, *o, dst);
                }
                let (m, d) = match (mode, &cpu_module) {
                    (Placement::Cpu, Some(m)) => (m.clone(), Device::Cpu),
                    (Placement::Cpu, None) => {
                        // The GPU ran out of memory: the same weights in
                        // float32 on the CPU, kept warm like the others.
                        let m = self.module(Device::Cpu).map_err(ForwardError::Other)?;
                        cpu_module = Some(m.clone());
                        (m, Device::Cpu)
                    }
                    _ => (module.clone(), device),
                };
                used_cpu |= d == Device::Cpu;
                let tf = Instant::now();
                // Only the preferred device's scores are summed there; an
                // out-of-memory fallback to the CPU sums on the host.
                let keep = sum_here && d == device;
                let r = self.forward(&m, d, &batch_buf, chunk.len(), keep);
                forward_ms += tf.elapsed().as_millis() as u64;
                r
            },
            |chunk, scores| {
                let (host, c) = match scores {
                    Scores::Host(out, c) => (Some(out), c),
                    Scores::Device(t) => sum_on_device(
                        &t,
                        chunk,
                        &mut agg,
                        &tiling,
                        &mut dev_sum,
                        &mut dev_sum_note,
                        device,
                    )?,
                };
                let a = agg.get_or_insert_with(|| Aggregate::new(tiling.clone(), c));
                ensure!(
                    a.classes == c,
                    "the model's output changed shape between batches"
                );
                match host {
                    Some(out) => {
                        let len = a.classes * plen;
                        ensure!(
                            out.len() == chunk.len() * len,
                            "the model's output changed shape between batches"
                        );
                        for (o, s) in chunk.iter().zip(out.chunks(len)) {
                            a.add(*o, s);
                        }
                    }
                    None => {
                        for o in chunk {
                            a.add_weight(*o);
                        }
                    }
                }
                done += chunk.len();
                progress(0.05 + 0.85 * done as f64 / total.max(1) as f64);
                Ok(())
            },
        )?;
        let infer_ms = t.elapsed().as_millis() as u64;

        let t = Instant::now();
        let mut agg = agg.context("the model produced no output")?;
        let max = self.spec.labels.iter().map(|l| l.value).max().unwrap_or(0) as usize;
        ensure!(
            max < agg.classes,
            "model {:?} has {} output channels; its label map names channel {max}",
            self.spec.name,
            agg.classes
        );
        let mut keep = vec![false; agg.classes];
        for l in &self.spec.labels {
            keep[l.value as usize] = true;
        }
        // With every score summed on the device, the labels are made
        // there too; otherwise (or when that does not fit) on the host.
        let mut on_device = None;
        if let Some(d) = &dev_sum {
            if !agg.has_host_sums() {
                match d.labels_on_ct(&agg, &plan, &keep) {
                    Ok(l) => on_device = Some(l),
                    Err(e) => {
                        let e = e.to_string();
                        let first = e.lines().next().unwrap_or("").trim().to_string();
                        dev_sum_note = Some(format!(
                            "resampling to the CT grid did not fit on {device:?} ({first}); done on the host"
                        ));
                    }
                }
            }
        }
        let (labels, summed_on) = match (on_device, dev_sum.take()) {
            (Some(l), _) => (l, format!("{device:?}")),
            (None, Some(d)) => {
                let sums = d
                    .to_host()
                    .map_err(|e| anyhow!("copying the summed scores from {device:?}: {e}"))?;
                drop(d);
                agg.add_sums(&sums)?;
                (agg.labels_on_ct(&plan, &keep)?, format!("{device:?}"))
            }
            (None, None) => (agg.labels_on_ct(&plan, &keep)?, "host".to_string()),
        };
        let restore_ms = t.elapsed().as_millis() as u64;
        progress(1.0);
        let notes = serde_json::json!({
            "model": self.spec.name,
            "version": self.version,
            "device": format!("{device:?}"),
            "precision": if self.kind(device) == Kind::Half { "float16" } else { "float32" },
            "ran_on_cpu": used_cpu,
            "fallbacks": fallbacks.iter().chain(&dev_sum_note).collect::<Vec<_>>(),
            "scores_summed_on": summed_on,
            "model_grid": plan.shape(),
            "patches": total,
            "batch_size": self.spec.batch_size,
            "classes": agg.classes,
            "threads": threads,
            "timings_ms": {
                "load": loaded_ms,
                "to_model_grid": resample_ms,
                "inference": infer_ms,
                "forward": forward_ms,
                "to_ct_grid": restore_ms,
            },
        });
        Ok((labels, notes))
    }
}

/// `rtnode doctor`'s lines about libtorch and CUDA.
pub fn runtime_findings(section: &SegmentationSection) -> Vec<ModelCheck> {
    let mut out = vec![ModelCheck {
        level: CheckLevel::Ok,
        check: "libtorch".into(),
        detail: format!(
            "{LIBTORCH_VERSION} from {LIBTORCH_LIB} (tch 0.26), {} CPU threads; libtorch_cuda {CUDA_LINKED}",
            tch::get_num_threads()
        ),
    }];
    let n = tch::Cuda::device_count();
    let wants_cuda = section
        .models
        .iter()
        .any(|m| matches!(DeviceChoice::parse(&m.device), Ok(DeviceChoice::Cuda(_))));
    out.push(if n > 0 {
        ModelCheck {
            level: CheckLevel::Ok,
            check: "cuda".into(),
            detail: format!(
                "{n} CUDA device(s); CUDA runtime {}, cuDNN {}",
                tch::utils::version_cudart(),
                if tch::Cuda::cudnn_is_available() {
                    tch::utils::version_cudnn().to_string()
                } else {
                    "absent".into()
                }
            ),
        }
    } else {
        ModelCheck {
            // A model that insists on CUDA will fail every run here.
            level: if wants_cuda {
                CheckLevel::Fail
            } else {
                CheckLevel::Warn
            },
            check: "cuda".into(),
            detail: format!(
                "no CUDA device visible: models run on the CPU (libtorch_cuda {CUDA_LINKED})"
            ),
        }
    });
    out
}
