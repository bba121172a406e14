#!/usr/bin/env bash
# Installs libtorch for the `torch` feature and prints the environment to
# build with, for `eval` (through a variable, so that `set -e` sees a
# failed install, which `eval "$(...)"` would hide):
#
#   torch_env=$(bash tests/setup-torch.sh)
#   eval "$torch_env"
#   cargo test --locked --features torch --lib --test torch
#
# tch 0.26 needs libtorch 2.13.0, and the only one our machines can reach is
# the one inside PyPI's torch==2.13.0 wheel (the CUDA 13 build; there is no
# CPU-only wheel for Linux x86_64). It goes into a virtual environment of the
# repository, .venv-torch (ignored by git; RTNODE_TORCH_VENV moves it).
#
#   full (default): `pip install torch==2.13.0`, about 2.7 GB downloaded and
#       4.7 GB on disk. libtorch_cuda.so and every CUDA library it needs are
#       there, so the build links libtorch_cuda and tests/torch/linking.rs
#       checks that it did; without a GPU everything runs on the CPU.
#   slim: the wheel alone plus the two CUDA libraries libtorch_cpu.so needs
#       (1.2 GB). It builds and runs on the CPU, but libtorch_cuda.so cannot
#       load there, so build.rs leaves it out (with a warning) and the
#       linking test can only check the rpath.
#
# We build against the wheel's torch/ directory with LIBTORCH= rather than
# LIBTORCH_USE_PYTORCH=1, which would need `import torch` (not possible in
# the slim install) and the venv's python first on PATH. LIBTORCH skips
# tch's version check, so the version is pinned here and build.rs refuses
# any other.
set -euo pipefail
mode="${1:-full}"
case "$mode" in full | slim) ;; *)
  echo "usage: $0 [full|slim]" >&2
  exit 2
  ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
venv="${RTNODE_TORCH_VENV:-$here/.venv-torch}"
torch_version=2.13.0

present() {
  [ -x "$venv/bin/python" ] || return 1
  local site
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  grep -q "__version__ = '$torch_version" "$site/torch/version.py" 2>/dev/null || return 1
  # A slim install lacks cuBLAS; a full one is asked for.
  if [ "$mode" = full ]; then
    [ -d "$site/nvidia/cu13/lib" ] && ls "$site/nvidia/cu13/lib"/libcublas.so.* >/dev/null 2>&1
  fi
}

if ! present; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  if [ "$mode" = full ]; then
    "$venv/bin/pip" install -q "torch==$torch_version" >&2
  else
    "$venv/bin/pip" install -q --no-deps "torch==$torch_version" \
      "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85" >&2
  fi
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "libtorch $torch_version ($mode) in $site/torch" >&2
echo "export LIBTORCH=$site/torch"
# A LIBTORCH_USE_PYTORCH left in the environment would override LIBTORCH.
echo "unset LIBTORCH_USE_PYTORCH"
