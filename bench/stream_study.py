#!/usr/bin/env python3
"""Stream one whole study over WADO-RS and print one JSON line (bytes, seconds, MB/s).

The body is read in 1 MiB chunks and thrown away, so the client's memory does not matter;
the server's memory is sampled meanwhile by rss.py --watch (run.sh `web` phase).

  stream_study.py --dicomweb URL --study UID --target NAME [--repeats 2] [--note N]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import time

import requests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dicomweb", required=True)
    ap.add_argument("--study", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    s = requests.Session()
    s.headers["Accept-Encoding"] = "identity"
    runs = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        r = s.get(f"{a.dicomweb.rstrip('/')}/studies/{a.study}", stream=True,
                  headers={"Accept": 'multipart/related; type="application/dicom"'})
        r.raise_for_status()
        n = 0
        for chunk in r.iter_content(2**20):
            n += len(chunk)
        dt_s = time.perf_counter() - t0
        runs.append({"bytes": n, "seconds": round(dt_s, 3), "MB_per_s": round(n / 1e6 / dt_s, 1)})
    print(json.dumps({"ts": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                      "bench": "stream", "target": a.target, "study": a.study, "runs": runs,
                      "note": a.note}))


if __name__ == "__main__":
    main()
