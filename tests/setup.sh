#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, on Debian:
# dcmtk (the interoperability peers: echoscu, storescu, storescp and its
# converters, built with OpenSSL for the TLS tests), dicom3tools (dciodvfy,
# the IOD checker for what we write), openssl (test certificates for
# tests/network/tls.rs), poppler-utils (pdftotext and pdftoppm, which read and
# render the course report back), the report's fonts (fonts-dejavu-core:
# Latin, Greek, Cyrillic; fonts-wqy-microhei: Japanese, Korean, Chinese;
# about 2.6 MB to download, a few seconds) and cmake + g++ (CharLS, the
# JPEG-LS codec, builds from source), and Slurm 22.05 (slurmctld, slurmd,
# slurm-client) with munge: tests/pipeline/slurm.rs starts a one-node cluster on
# localhost (tests/slurm/start-cluster.sh) for the Slurm executor.
set -euo pipefail
need=()
for bin in storescu echoscu storescp dcmdump dcmcjpls dciodvfy openssl pdftotext pdftoppm cmake g++ \
  sbatch squeue scancel slurmctld slurmd munged; do
  command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
for font in /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
  /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf \
  /usr/share/fonts/truetype/wqy/wqy-microhei.ttc; do
  [ -f "$font" ] || need+=("$font")
done
if ((${#need[@]})); then
  pkgs=(dcmtk dicom3tools openssl poppler-utils fonts-dejavu-core fonts-wqy-microhei cmake g++
    slurmctld slurmd slurm-client munge)
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
# pynetdicom/pydicom: a peer that answers chosen DIMSE statuses, and a second
# reader of what rtnode writes; dicomweb-client: the DICOMweb client of
# tests/network/dicomweb.rs. In a venv of the repo (.venv, ignored by git).
here=$(cd "$(dirname "$0")/.." && pwd)
if ! "$here/.venv/bin/python" -c "import pynetdicom, pydicom, dicomweb_client" 2>/dev/null; then
  [ -x "$here/.venv/bin/python" ] || python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q "pynetdicom==3.0.4" "pydicom==3.0.2" "dicomweb-client==0.60.1"
fi
echo "test dependencies present: $(storescu --version 2>&1 | head -1 | tr -s ' ')"
