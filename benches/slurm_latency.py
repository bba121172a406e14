"""Per stage run on Slurm: seconds from the coordinator's `sbatch` (its
"submitted to Slurm" log line, which names the job array) to the start of
`rtnode run-stage` in the job (the first line of the job's log).

    python3 benches/slurm_latency.py OUT   # OUT.stderr: the coordinator's log; OUT/slurm/*.log
"""
import datetime as dt
import glob
import os
import re
import statistics
import sys

out = sys.argv[1]


def ts(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


submitted = {}
for line in open(out + ".stderr", errors="replace"):
    m = re.match(r"(\S+)\s+INFO .*submitted to Slurm .*name=(\S+)", line)
    if m:
        submitted[m.group(2)] = ts(m.group(1))
lat, per_stage = [], {}
for log in glob.glob(os.path.join(out, "slurm", "*.log")):
    name, _task = os.path.basename(log)[:-4].rsplit("_", 1)
    for line in open(log, errors="replace"):
        if "run-stage started" in line and name in submitted:
            d = ts(line.split()[0]) - submitted[name]
            lat.append(d)
            stage = re.search(r'stage="?(\w+)', line).group(1)
            per_stage.setdefault(stage, []).append(d)
            break
if not lat:
    sys.exit("no stage runs found")
lat.sort()
print(
    f"{len(lat)} runs: min {lat[0]:.2f} s, median {statistics.median(lat):.2f} s, "
    f"p90 {lat[min(len(lat) - 1, int(0.9 * len(lat)))]:.2f} s, max {lat[-1]:.2f} s"
)
for s, v in sorted(per_stage.items()):
    print(f"  {s:<13} n={len(v):4d} median {statistics.median(v):.2f} s")
