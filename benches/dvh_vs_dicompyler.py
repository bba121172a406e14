"""dicompyler-core side of benches/dvh_vs_dicompyler.sh.

Usage: python dvh_vs_dicompyler.py MODE RTSTRUCT RTDOSE OUT.json
MODE is `default` (get_dvh as shipped) or `accurate` (in-plane
supersampling to 0.5 mm within each structure's extents). Computes every
ROI with contours and writes, per ROI name, the volume and dose metrics
the comparison needs.
"""
import json
import sys

from dicompylercore import dicomparser, dvhcalc


def main():
    mode, rtss, rtdose, out = sys.argv[1:5]
    kwargs = {}
    if mode == "accurate":
        kwargs = dict(interpolation_resolution=0.5, use_structure_extents=True)
    structures = dicomparser.DicomParser(rtss).GetStructures()
    result = {}
    for number, s in structures.items():
        dvh = dvhcalc.get_dvh(rtss, rtdose, number, **kwargs)
        if dvh.volume == 0 or len(dvh.counts) == 0:
            continue
        result[s["name"]] = {
            "volume_cc": float(dvh.volume),
            "Dmin": float(dvh.min),
            "Dmean": float(dvh.mean),
            "Dmax": float(dvh.max),
            "D95": float(dvh.D95.value),
            "D50": float(dvh.D50.value),
            "D5": float(dvh.D5.value),
        }
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
