"""Python torch's side of benches/segmentation_torch.sh.

  make-model OUT CLASSES    a small 3-D U-Net (two levels, 16/32 channels,
                            random weights) saved as TorchScript
  run MODEL VOLUME LABELS   the same sliding-window inference rtnode runs
                            (nnU-Net v2's: steps, Gaussian sigma = patch/8
                            centred at patch//2, weighted sum of logits,
                            argmax), on organize's volume.nrrd, timed cold
                            and then --repeat times warm; and the agreement
                            with rtnode's labels.nrrd

The model grid is the CT grid here (the script's model spacing is the CT's
and the synthetic CT is head first supine, so LPS is the stored order), so
both sides feed the network the same values and any difference in the
labels is a bug, not resampling.
"""

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn


class UNet2(nn.Module):
    def __init__(self, classes):
        super().__init__()

        def block(i, o):
            return nn.Sequential(
                nn.Conv3d(i, o, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv3d(o, o, 3, padding=1),
                nn.ReLU(inplace=True),
            )

        self.enc1 = block(1, 16)
        self.down = nn.MaxPool3d(2)
        self.enc2 = block(16, 32)
        self.up = nn.ConvTranspose3d(32, 16, 2, stride=2)
        self.dec = block(32, 16)
        self.head = nn.Conv3d(16, classes, 1)

    def forward(self, x):
        a = self.enc1(x)
        b = self.enc2(self.down(a))
        return self.head(self.dec(torch.cat([a, self.up(b)], 1)))


def read_nrrd(path):
    with open(path, "rb") as f:
        data = f.read()
    head, _, raw = data.partition(b"\n\n")
    fields = {}
    for line in head.decode().splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        fields[k.strip()] = v.strip()
    sizes = [int(s) for s in fields["sizes"].split()]
    dtype = {"short": "<i2", "float": "<f4"}[fields["type"]]
    return np.frombuffer(raw, dtype=dtype).reshape(sizes[::-1]).astype(np.float32)


def steps(size, patch, overlap):
    target = patch * (1 - overlap)
    n = math.ceil((size - patch) / target) + 1
    if n <= 1:
        return [0]
    actual = (size - patch) / (n - 1)
    return [int(round(actual * i)) for i in range(n)]


def gaussian(patch):
    axes = []
    for p in patch:
        c, s = p // 2, p / 8
        axes.append(torch.exp(-((torch.arange(p, dtype=torch.float64) - c) ** 2) / (2 * s * s)))
    g = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return g.float().clamp_min(torch.finfo(torch.float32).tiny)


def sliding_window(model, x, patch, overlap, batch):
    """Returns (labels, forward seconds, whole seconds)."""
    t0 = time.perf_counter()
    shape = x.shape
    tiles = [
        (z, y, w)
        for z in steps(shape[0], patch[0], overlap)
        for y in steps(shape[1], patch[1], overlap)
        for w in steps(shape[2], patch[2], overlap)
    ]
    g = gaussian(patch)
    agg = None
    weight = torch.zeros(shape)
    forward = 0.0
    with torch.no_grad():
        for i in range(0, len(tiles), batch):
            chunk = tiles[i : i + batch]
            inp = torch.stack(
                [x[z : z + patch[0], y : y + patch[1], w : w + patch[2]] for z, y, w in chunk]
            )[:, None].contiguous()
            tf = time.perf_counter()
            out = model(inp)
            forward += time.perf_counter() - tf
            if agg is None:
                agg = torch.zeros((out.shape[1],) + tuple(shape))
            for (z, y, w), o in zip(chunk, out):
                sl = (slice(z, z + patch[0]), slice(y, y + patch[1]), slice(w, w + patch[2]))
                agg[(slice(None),) + sl] += o * g
                weight[sl] += g
        labels = (agg / weight).argmax(0)
    return labels, forward, time.perf_counter() - t0, len(tiles)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-model")
    m.add_argument("out")
    m.add_argument("classes", type=int)
    r = sub.add_parser("run")
    r.add_argument("model")
    r.add_argument("volume")
    r.add_argument("labels")
    r.add_argument("--patch", required=True)
    r.add_argument("--overlap", type=float, default=0.5)
    r.add_argument("--batch", type=int, default=2)
    r.add_argument("--clip", type=float, nargs=2, default=[-1000, 1000])
    r.add_argument("--mean", type=float, default=0.0)
    r.add_argument("--std", type=float, default=1.0)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    if a.cmd == "make-model":
        torch.manual_seed(0)
        torch.jit.script(UNet2(a.classes).eval()).save(a.out)
        return
    torch.set_num_threads(a.threads)
    patch = [int(p) for p in a.patch.split(",")]
    model = torch.jit.load(a.model, map_location="cpu").eval()
    hu = torch.from_numpy(read_nrrd(a.volume).copy())
    x = (hu.clamp(a.clip[0], a.clip[1]) - a.mean) / a.std
    # Cold: a freshly loaded module, as rtnode's first course; warm: again,
    # `repeat` times.
    labels, f_cold, all_cold, n = sliding_window(model, x, patch, a.overlap, a.batch)
    f_warm, all_warm = [], []
    for _ in range(a.repeat):
        labels, f, w, _ = sliding_window(model, x, patch, a.overlap, a.batch)
        f_warm.append(round(f * 1000))
        all_warm.append(round(w * 1000))
    ours = torch.from_numpy(read_nrrd(a.labels).copy()).long()
    theirs = labels.long()
    agree = (ours == theirs).float().mean().item()
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "patches": n,
                "forward_ms_cold": round(f_cold * 1000),
                "forward_ms_warm": f_warm,
                "inference_ms_cold": round(all_cold * 1000),
                "inference_ms_warm": all_warm,
                "voxels_agreeing": agree,
            }
        )
    )


if __name__ == "__main__":
    main()
