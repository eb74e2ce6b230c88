#!/usr/bin/env python3
"""Server CPU per WADO-RS whole-study retrieval, interleaved across running servers.

On a 2-core machine where the client shares the CPU, wall-clock MB/s swings with whatever
else runs; the server's own CPU time per retrieval is the steadier figure. For each target
this GETs the study with curl (a client that costs little CPU), reads the on-CPU time of
every thread of the server process from /proc/PID/task/*/schedstat (nanoseconds) before
and after, and reports the median per GET over the rounds, plus the median wall time.
Targets take turns round by round, so a burst of load elsewhere hits them alike.

  wado_cpu.py --study UID --target ours=PID@http://127.0.0.1:8080/dicomweb \\
              --target orthanc=PID@http://127.0.0.1:8042/dicom-web [--rounds 12 --gets 4]

Prints one JSON line.
"""
from __future__ import annotations

import argparse
import glob
import json
import statistics
import subprocess

ACCEPT = 'Accept: multipart/related; type="application/dicom"'


def on_cpu_ns(pid: str) -> int:
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as fh:
                total += int(fh.read().split()[0])
        except OSError:  # a thread that ended meanwhile
            pass
    return total


def get(url: str) -> tuple[float, int]:
    out = subprocess.run(["curl", "-sf", "-o", "/dev/null", "-w", "%{time_total} %{size_download}",
                          "-H", ACCEPT, url], capture_output=True, text=True, check=True).stdout
    seconds, size = out.split()
    return float(seconds), int(size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", required=True)
    ap.add_argument("--target", action="append", required=True, help="NAME=PID@DICOMWEB_ROOT")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--gets", type=int, default=4)
    a = ap.parse_args()
    targets = []
    for spec in a.target:
        name, rest = spec.split("=", 1)
        pid, root = rest.split("@", 1)
        targets.append((name, pid, f"{root.rstrip('/')}/studies/{a.study}"))
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in targets}
    wall: dict[str, list[float]] = {name: [] for name, _, _ in targets}
    size: dict[str, int] = {}
    for _ in range(a.rounds):
        for name, pid, url in targets:
            get(url)  # warm-up outside the measured window
            before = on_cpu_ns(pid)
            for _ in range(a.gets):
                seconds, size[name] = get(url)
                wall[name].append(seconds)
            cpu[name].append((on_cpu_ns(pid) - before) / a.gets / 1e6)
    result = {}
    for name, _, _ in targets:
        w = statistics.median(wall[name])
        result[name] = {"server_cpu_ms_median": round(statistics.median(cpu[name]), 1),
                        "server_cpu_ms_min": round(min(cpu[name]), 1),
                        "wall_ms_median": round(w * 1000, 1),
                        "MB_per_s": round(size[name] / 1e6 / w), "bytes": size[name]}
    print(json.dumps({"bench": "wado_cpu", "study": a.study, "rounds": a.rounds,
                      "gets": a.gets, "targets": result}))


if __name__ == "__main__":
    main()
