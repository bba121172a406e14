"""Makes tests/models/tiny_lung_shift.pt, the TorchScript model of the
`torch` feature's tests.

Its output is known exactly but is not voxel-local: class 1 wherever the
voxel one step further along the model's first spatial axis (D, the slice
axis; z + 1, superior in LPS order) lies in the lung band, -900 to -500 HU
after the intensity preprocessing the test config names (clip -1000..1000,
mean -100, std 500). A runner that swaps axes, flips the slice order or
stitches tiles at the wrong offsets moves the lungs' inferior boundary by a
slice or more, which the test's Dice against the mask computed in Rust from
the HU volume catches.

Layers: a 3x3x3 Conv3d whose only non-zero taps read in[z+1, y, x] (two
ramps, one per band edge), a hardtanh that saturates them, and a 1x1x1
Conv3d that makes two-channel logits (0 for background, +1 inside the band,
-1 outside). The bounded logits keep the Gaussian-weighted average of
overlapping tiles on the right side of zero where a tile edge sees the
conv's zero padding instead of the next slice.

Run with any torch >= 2.0 (the file is what torch==2.13.0 writes):
    python tests/models/make_tiny_model.py tests/models/tiny_lung_shift.pt
"""

import sys

import torch
from torch import nn

MEAN, STD = -100.0, 500.0
BAND_HU = (-900.0, -500.0)
# Ramp steepness, per normalised unit: the hardtanh saturates within
# 0.05 units (25 HU) of a band edge.
STEEP = 20.0


def norm(hu):
    return (hu - MEAN) / STD


class TinyLungShift(nn.Module):
    def __init__(self):
        super().__init__()
        self.ramps = nn.Conv3d(1, 2, kernel_size=3, padding=1)
        self.clamp = nn.Hardtanh(-1.0, 1.0)
        self.logits = nn.Conv3d(2, 2, kernel_size=1)
        lo, hi = norm(BAND_HU[0]), norm(BAND_HU[1])
        with torch.no_grad():
            self.ramps.weight.zero_()
            # Cross-correlation with padding 1: tap [2, 1, 1] reads z + 1.
            self.ramps.weight[0, 0, 2, 1, 1] = STEEP  # above the lower edge
            self.ramps.weight[1, 0, 2, 1, 1] = -STEEP  # below the upper edge
            self.ramps.bias.copy_(torch.tensor([-STEEP * lo, STEEP * hi]))
            self.logits.weight.zero_()
            self.logits.bias.zero_()
            # Background: 0. Class 1: r0 + r1 - 1 = +1 in the band, -1 out.
            self.logits.weight[1, 0, 0, 0, 0] = 1.0
            self.logits.weight[1, 1, 0, 0, 0] = 1.0
            self.logits.bias[1] = -1.0

    def forward(self, x):
        return self.logits(self.clamp(self.ramps(x)))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tiny_lung_shift.pt"
    torch.manual_seed(0)
    model = TinyLungShift().eval()
    scripted = torch.jit.script(model)
    # A self-check of the rule before the file is written.
    x = torch.full((1, 1, 4, 3, 3), norm(20.0))
    x[0, 0, 2] = norm(-800.0)
    y = scripted(x).argmax(1)[0]
    assert y[1].all() and not y[0].any() and not y[2].any() and not y[3].any(), y
    scripted.save(out)
    print(f"wrote {out} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
