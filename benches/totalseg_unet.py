"""A TotalSegmentator-sized 3-D U-Net with random weights, for timing only.

nnU-Net's 3d_fullres network as TotalSegmentator trains it at 1.5 mm
(PlainConvUNet): six resolution stages with 32, 64, 128, 256, 320, 320
features, strides 1, 2, 2, 2, 2, 2, two 3x3x3 convolutions per stage with
instance norm and leaky ReLU, transposed-convolution upsampling with skip
connections, a 1x1x1 head; 128^3 patches. The weights are random: the
timing of a forward pass does not depend on them. The head's background
bias is raised so that the argmax gives regions rather than voxel noise,
which no trained network gives and whose tracing would dominate the
stage's time.

  python3 benches/totalseg_unet.py make OUT.pt CLASSES
  python3 benches/totalseg_unet.py forward OUT.pt PATCHES BATCH [cuda|cpu]
      times PATCHES patches of 128^3 through the saved model in batches of
      BATCH (half precision on CUDA, as rtnode runs it), after one warm-up
      batch: the network's own time, to compare with rtnode's record.
"""

import sys
import time

import torch
from torch import nn

FEATURES = [32, 64, 128, 256, 320, 320]
STRIDES = [1, 2, 2, 2, 2, 2]
PATCH = 128


def conv(cin, cout, stride):
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, stride=stride, padding=1),
        nn.InstanceNorm3d(cout, affine=True, eps=1e-5),
        nn.LeakyReLU(0.01, inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.down = nn.ModuleList()
        cin = 1
        for f, s in zip(FEATURES, STRIDES):
            self.down.append(nn.Sequential(conv(cin, f, s), conv(f, f, 1)))
            cin = f
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for i in range(len(FEATURES) - 1, 0, -1):
            s = STRIDES[i]
            self.up.append(nn.ConvTranspose3d(FEATURES[i], FEATURES[i - 1], s, stride=s))
            self.merge.append(
                nn.Sequential(conv(2 * FEATURES[i - 1], FEATURES[i - 1], 1),
                              conv(FEATURES[i - 1], FEATURES[i - 1], 1)))
        self.head = nn.Conv3d(FEATURES[0], classes, 1)

    def forward(self, x):
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def make(out, classes):
    torch.manual_seed(0)
    model = UNet(classes).eval()
    with torch.no_grad():
        model.head.bias[0] += 3.0
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.zeros(1, 1, 64, 64, 64))
    traced.save(out)
    print(f"saved {out}: {params / 1e6:.1f} M parameters, {classes} classes")


def forward(path, patches, batch, device):
    dev = torch.device(device)
    model = torch.jit.load(path, map_location=dev).eval()
    half = dev.type == "cuda"
    if half:
        model = model.half()
    dtype = torch.float16 if half else torch.float32
    x = torch.randn(batch, 1, PATCH, PATCH, PATCH, device=dev, dtype=dtype)
    sync = torch.cuda.synchronize if half else (lambda: None)
    with torch.inference_mode():
        model(x)
        sync()
        t = time.perf_counter()
        done = 0
        while done < patches:
            n = min(batch, patches - done)
            model(x[:n]).float().softmax(1)
            done += n
        sync()
    s = time.perf_counter() - t
    print(f"python torch {torch.__version__} {device}: {patches} patches of {PATCH}^3 in "
          f"batches of {batch}: {s:.2f} s ({1000 * s / patches:.1f} ms/patch)")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "forward":
        forward(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                sys.argv[5] if len(sys.argv) > 5 else "cuda")
    else:
        sys.exit(__doc__)
