#!/usr/bin/env python3
"""Print one JSON line with the memory of a process and all its descendants.

For every process: pid, ppid, role, VmHWM (peak resident set since the process started)
and VmRSS (now), in MiB (1 MiB = 2^20 bytes), read from /proc/PID/status. VmHWM is a
high-water mark, so one reading after a run gives that process's peak during the run.

Roles for `pacs serve`: main (HTTP + coordinator; also the DICOM listener when
PACS_DICOM_WORKERS=1), dicom-worker (the spawned `pacs-dicom-N` processes),
resource-tracker (multiprocessing helper), other.

  rss.py --pid PID [--label L] [--event E] [--note N]
  rss.py --watch PIDFILE [--interval 1] [--label L] ...   (until SIGTERM/SIGINT: then one JSON
        line with the largest VmHWM seen per process; follows the PID in PIDFILE across
        restarts, e.g. Orthanc being reset before every store run)
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os


def status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in ("Name", "PPid", "VmHWM", "VmRSS"):
                out[k] = v.strip()
    return out


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(status(int(d)).get("PPid", "0"))
        except (OSError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def role(cmd: str, is_root: bool) -> str:
    if is_root:
        return "main"
    if "resource_tracker" in cmd:
        return "resource-tracker"
    if "multiprocessing.spawn" in cmd or "spawn_main" in cmd:
        return "dicom-worker"
    return "other"


def kib_to_mib(v: str | None) -> float | None:
    if not v:
        return None
    return round(int(v.split()[0]) / 1024.0, 1)


def tree(root: int) -> list[dict]:
    kids = children_map()
    procs, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        try:
            st, cmd = status(pid), cmdline(pid)
        except OSError:
            continue
        procs.append({"pid": pid, "ppid": int(st.get("PPid", 0)), "role": role(cmd, pid == root),
                      "name": st.get("Name"), "hwm_mib": kib_to_mib(st.get("VmHWM")),
                      "rss_mib": kib_to_mib(st.get("VmRSS")), "cmd": cmd[:160]})
        todo.extend(sorted(kids.get(pid, [])))
    return procs


def watch(a) -> None:
    import signal
    import time

    seen: dict[int, dict] = {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    samples = 0
    while not stop:
        try:
            with open(a.watch) as fh:
                root = int(fh.read().strip() or 0)
        except (OSError, ValueError):
            root = 0
        if root:
            for p in tree(root):
                old = seen.get(p["pid"])
                if old is None or (p["hwm_mib"] or 0) >= (old["hwm_mib"] or 0):
                    seen[p["pid"]] = p
            samples += 1
        time.sleep(a.interval)
    procs = sorted(seen.values(), key=lambda p: p["pid"])
    print(json.dumps({"ts": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "bench": "rss",
                      "target": a.label, "event": a.event, "note": a.note, "mode": "watch",
                      "interval_s": a.interval, "samples": samples, "procs": procs,
                      "max_hwm_mib": max((p["hwm_mib"] or 0) for p in procs) if procs else None}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--watch", help="pid file to follow")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--label", default="")
    ap.add_argument("--event", default="snapshot")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    if a.watch:
        return watch(a)
    if not a.pid:
        ap.error("--pid or --watch")
    procs = tree(a.pid)
    print(json.dumps({"ts": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "bench": "rss",
                      "target": a.label, "event": a.event, "note": a.note, "procs": procs,
                      "max_hwm_mib": max((p["hwm_mib"] or 0) for p in procs) if procs else None}))


if __name__ == "__main__":
    main()
