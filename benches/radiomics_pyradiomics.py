"""pyradiomics 3.1.0 over rtnode's masks, for benches/radiomics_vs_pyradiomics.sh.

usage: radiomics_pyradiomics.py PARAMS MASK_DIR OUT_JSON PROCESSES

Every mask-<ROI>.nrrd in MASK_DIR against MASK_DIR/image.nrrd, in a process
pool of PROCESSES (as the predecessor pipeline ran pyradiomics; a lone mask
in this process), features
only (no diagnostics), written as {ROI: {feature: value}}.
"""
import json
import logging
import multiprocessing
import os
import sys

params, mask_dir, out, processes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def one(mask):
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    ex = featureextractor.RadiomicsFeatureExtractor(params)
    r = ex.execute(os.path.join(mask_dir, "image.nrrd"), os.path.join(mask_dir, mask))
    roi = mask[len("mask-") : -len(".nrrd")]
    return roi, {k: float(v) for k, v in r.items() if not k.startswith("diagnostics")}


masks = sorted(m for m in os.listdir(mask_dir) if m.startswith("mask-"))
if len(masks) == 1:
    # One ROI: in this process, as pyradiomics' own command line runs a case.
    result = dict(map(one, masks))
else:
    with multiprocessing.Pool(processes) as pool:
        result = dict(pool.map(one, masks))
json.dump(result, open(out, "w"))
