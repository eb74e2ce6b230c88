#!/usr/bin/env python3
"""Markdown tables of one benchmark run: ours against the peers, with ratios and targets.

Reads bench/results/{store,find,rss,load}.jsonl (written by the harness scripts and by
bench/run.sh). For every (bench, target) the latest record wins, or only records whose
`note` contains --run (the run id bench/run.sh puts in BENCH_NOTE).

  report.py [--results DIR] [--run RUN_ID]
"""
from __future__ import annotations

import argparse
import json
import os
from collections import OrderedDict

# project targets (from the task): ingest >= 1.5x Orthanc at 4 associations and >= 1.0x at 1;
# peak RSS < 300 MB per process; study C-FIND p95 < 10 ms at 5,000 studies, < 50 ms at 100,000.
INGEST_N4, INGEST_N1, RSS_MB, P95_5K, P95_100K = 1.5, 1.0, 300, 10.0, 50.0
STORE_ORDER = ["storescp", "orthanc", "pynetdicom", "pacs-sqlite-w1", "pacs-sqlite-w2", "pacs-sqlite-w4", "pacs-sqlite-w8",
               "pacs-pg-w1", "pacs-pg-w2", "pacs-pg-w4", "pacs-pg-w8"]
FIND_ORDER = ["orthanc", "pacs-sqlite", "pacs-pg", "orthanc-100k", "pacs-sqlite-100k", "pacs-pg-100k"]
QUERIES = ["patient_id", "name_wildcard", "date_range", "today"]


def load(path, run):
    out = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if run and run not in (r.get("note") or ""):
                continue
            out.append(r)
    return out


def latest(recs):
    by = OrderedDict()
    for r in recs:
        by[r["target"]] = r
    return by


def ordered(by, order):
    keys = [k for k in order if k in by] + sorted(k for k in by if k not in order)
    return [(k, by[k]) for k in keys]


def med(d):
    return d.get("median") if d and d.get("n") else None


def fmt_sp(d, f="{:.0f}"):
    if not d or not d.get("n"):
        return "n/a"
    s = f.format(d["median"])
    if d["n"] > 1 and d.get("spread_pct") is not None:
        s += f" [{d['spread_pct']:.0f}%]"
    return s


def ok(b):
    return "**meets**" if b else "**misses**"


# issue 4 (DICOMweb) targets, each against Orthanc + DICOMweb plugin in the same run
WEB_CASES = ["study_ct", "study_cr", "series_ct", "meta_instance", "meta_series", "frame_ct",
             "rendered_ct_jpeg", "rendered_ct_png", "rendered_cr_jpeg", "rendered_cr_png"]
CACHED_MS, STREAM_RSS_MB = 5.0, 300


def web_tables(find, retrieve, stream, rss, verdicts):
    """QIDO-RS, WADO-RS and rendering: ours (pacs-web, pacs-web-cached) against orthanc-web."""
    ours, orth = find.get("pacs-web", {}).get("qido"), find.get("orthanc-web", {}).get("qido")
    if ours or orth:
        print("### QIDO-RS study search (5k filler): median / p95 ms, median of repeats\n")
        print("| target | " + " | ".join(QUERIES) + " |")
        print("|---|" + "---|" * len(QUERIES))
        for t in ("orthanc-web", "pacs-web"):
            d = find.get(t, {}).get("qido") or {}
            print(f"| {t} | " + " | ".join(
                f"{d[q]['median_ms']['median']:.1f} / {d[q]['p95_ms']['median']:.1f}" if q in d else "n/a"
                for q in QUERIES) + " |")
        print()
        for q in QUERIES:
            if ours and orth and q in ours and q in orth:
                r = ours[q]["p95_ms"]["median"] / orth[q]["p95_ms"]["median"]
                verdicts.append((f"QIDO-RS p95 {q}: <= 0.5x Orthanc", f"{r:.2f}x", r <= 0.5 and ours[q].get("ok", True)))
    if not retrieve:
        return
    print("### WADO-RS and rendered previews: median ms (MB/s), median of repeats\n")
    targets = [t for t in ("orthanc-web", "pacs-web", "pacs-web-cached") if t in retrieve]
    print("| case | " + " | ".join(targets) + " | ours / Orthanc |")
    print("|---|" + "---|" * len(targets) + "---|")
    sm = {t: retrieve[t]["summary"] for t in targets}
    for c in WEB_CASES:
        if not any(c in sm[t] for t in targets):
            continue
        cells = []
        for t in targets:
            x = sm[t].get(c)
            if not x:
                cells.append("-")
            elif not x.get("ok", True) and not x.get("median_ms"):
                cells.append(f"FAIL ({x.get('error')})")
            else:
                cells.append(f"{x['median_ms']['median']:.1f} ({x['MB_per_s']['median']:.0f})")
        o, p = sm.get("orthanc-web", {}).get(c), sm.get("pacs-web", {}).get(c)
        ratio = None
        if o and p and o.get("median_ms") and p.get("median_ms"):
            ratio = p["median_ms"]["median"] / o["median_ms"]["median"]
        print(f"| {c} | " + " | ".join(cells) + f" | {f'{ratio:.2f}x' if ratio else '-'} |")
        if ratio is None:
            continue
        if c == "meta_series":
            verdicts.append(("series metadata: <= 0.5x Orthanc's time", f"{ratio:.2f}x", ratio <= 0.5))
        elif c.startswith("rendered"):
            verdicts.append((f"{c} uncached: <= 1.0x Orthanc's time", f"{ratio:.2f}x", ratio <= 1.0))
        elif c == "study_ct":
            thr = p["MB_per_s"]["median"] / o["MB_per_s"]["median"]
            verdicts.append(("WADO-RS CT study throughput: >= 1.0x Orthanc", f"{thr:.2f}x", thr >= 1.0))
    for c, x in sm.get("pacs-web-cached", {}).items():
        if x.get("median_ms"):
            ms = x["median_ms"]["median"]
            verdicts.append((f"{c} cached: < {CACHED_MS:.0f} ms", f"{ms:.1f} ms", ms < CACHED_MS))
    print()
    if stream:
        print("### Streaming one whole large study over WADO-RS\n")
        print("| target | bytes | runs: s (MB/s) | peak RSS during stream, MiB (largest process) |")
        print("|---|---|---|---|")
        for t, r in stream.items():
            peaks = [p["hwm_mib"] or 0 for w in rss if w["target"] == f"{t}:stream-1GiB" for p in w["procs"]]
            peak = max(peaks) if peaks else None
            runs = ", ".join(f"{x['seconds']:.1f} ({x['MB_per_s']:.0f})" for x in r["runs"])
            print(f"| {t} | {r['runs'][0]['bytes'] / 2**20:.0f} MiB | {runs} | {f'{peak:.0f}' if peak else 'n/a'} |")
            if t.startswith("pacs") and peak:
                verdicts.append((f"memory flat while streaming {r['runs'][0]['bytes'] / 2**30:.1f} GiB: peak < "
                                 f"{STREAM_RSS_MB} MiB", f"{peak:.0f} MiB", peak < STREAM_RSS_MB))
        print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--run", default="")
    a = ap.parse_args()
    R = a.results
    store = latest(load(os.path.join(R, "store.jsonl"), a.run))
    find = latest(load(os.path.join(R, "find.jsonl"), a.run))
    rss = load(os.path.join(R, "rss.jsonl"), a.run)
    loads = load(os.path.join(R, "load.jsonl"), a.run)
    retrieve = latest(load(os.path.join(R, "retrieve.jsonl"), a.run))
    stream = latest(load(os.path.join(R, "stream.jsonl"), a.run))
    verdicts = []

    # ------------------------------------------------------------------ ingest
    if store:
        ns = sorted({int(k.rsplit("_N", 1)[1]) for r in store.values() for k in r["summary"] if k.startswith("storescu_")})
        orth = store.get("orthanc", {}).get("summary", {})
        print("### C-STORE ingest (storescu, one association per stream): instances/s, median of repeats [spread]\n")
        print("| target | " + " | ".join(f"N={n} inst/s | MB/s" for n in ns) + " | verified | ratio to Orthanc " +
              "/".join(f"N={n}" for n in ns) + " | repeats |")
        print("|---|" + "---|---|" * len(ns) + "---|---|---|")
        for t, r in ordered(store, STORE_ORDER):
            s = r["summary"]
            cells, ratios = [], []
            for n in ns:
                x = s.get(f"storescu_N{n}")
                cells += [fmt_sp(x["inst_per_s"]) if x else "-", fmt_sp(x["MB_per_s"]) if x else "-"]
                o = orth.get(f"storescu_N{n}")
                if x and o and t != "orthanc":
                    ratios.append(f"{med(x['inst_per_s']) / med(o['inst_per_s']):.2f}x")
                else:
                    ratios.append("-")
            ver = all(v.get("all_verified") is not False for v in s.values())
            vm = r.get("verify_method", "").split(":")[0]
            print(f"| {t} | " + " | ".join(cells) + f" | {'yes' if ver else 'NO'} ({vm}) | " + " / ".join(ratios) + f" | {r.get('repeats')} |")
            if t.startswith("pacs") and orth:
                for n, need in ((4, INGEST_N4), (1, INGEST_N1)):
                    x, o = s.get(f"storescu_N{n}"), orth.get(f"storescu_N{n}")
                    if x and o:
                        ratio = med(x["inst_per_s"]) / med(o["inst_per_s"])
                        verdicts.append((f"ingest {t} N={n}: >= {need}x Orthanc", f"{ratio:.2f}x", ratio >= need))
        c = next(iter(store.values()))["corpus"]
        print(f"\ncorpus: {c['instances']} instances, {c['bytes'] / 1e9:.2f} GB, {c['studies']} studies\n")

    # ------------------------------------------------------------------ find
    if find:
        print("### Study-level C-FIND (dcmtk findscu, one association): median / p95 ms (median of repeats)\n")
        print("| target | studies | assoc. ms | " + " | ".join(QUERIES) + " |")
        print("|---|---|---|" + "---|" * len(QUERIES))
        for t, r in ordered(find, FIND_ORDER):
            d = r.get("cfind") or {}
            if not d:
                continue  # a QIDO-only record (web phase)
            nst = r["corpus"]["studies"] + sum(e["studies"] for e in r.get("extra_corpora", []))
            cells = []
            limit = P95_100K if nst > 50_000 else P95_5K
            for q in QUERIES:
                x = d.get(q)
                if not x:
                    cells.append("n/a")
                    continue
                bad = "" if x.get("ok", True) else f" **WRONG COUNT {x.get('matches')} (expected {x.get('expected')})**"
                p95 = x["p95_ms"]["median"]
                cells.append(f"{x['median_ms']['median']:.1f} / {p95:.1f} ({x.get('expected')}){bad}")
                if t.startswith("pacs"):
                    verdicts.append((f"C-FIND p95 {t} {q} ({nst:,} studies): < {limit:.0f} ms", f"{p95:.1f} ms",
                                     p95 < limit and x.get("ok", True)))
            asc = d.get("assoc_setup", {}).get("median_ms")
            print(f"| {t} | {nst:,} | {fmt_sp(asc, '{:.1f}') if asc else '-'} | " + " | ".join(cells) + " |")
        print("\n(n) = expected matches. Ratio ours / Orthanc of the median latency:\n")
        print("| ours | vs | " + " | ".join(QUERIES) + " |")
        print("|---|---|" + "---|" * len(QUERIES))
        for t, r in ordered(find, FIND_ORDER):
            if not t.startswith("pacs"):
                continue
            ref = ("orthanc-100k" if t.endswith("-100k") else
                   "orthanc-web-cfind" if t.endswith("-web-cfind") else "orthanc")
            if ref not in find:
                continue
            o, d = find[ref].get("cfind") or {}, r.get("cfind") or {}
            cells = []
            for q in QUERIES:
                if q in d and q in o and o[q]["median_ms"]["median"]:
                    cells.append(f"{d[q]['median_ms']['median'] / o[q]['median_ms']['median']:.2f}x")
                else:
                    cells.append("-")
            print(f"| {t} | {ref} | " + " | ".join(cells) + " |")
        print()

    # ------------------------------------------------------------------ rss
    if rss:
        print("### Peak RSS (VmHWM) per process, MiB: largest value seen in the phase\n")
        print("| target:phase | main | DICOM workers (each) | resource tracker | other | snapshots |")
        print("|---|---|---|---|---|---|")
        groups = OrderedDict()
        for r in rss:
            if r["event"] == "test":
                continue
            groups.setdefault(r["target"], []).append(r)
        for label, recs in groups.items():
            best = {}
            for r in recs:
                for p in r["procs"]:
                    role = p["role"]
                    if p["name"] == "Orthanc":
                        role = "main"
                    best.setdefault(role, []).append(p["hwm_mib"] or 0)
            def cell(role: str, best: dict = best) -> str:
                return f"{max(best[role]):.0f}" if role in best else "-"
            workers = best.get("dicom-worker")
            wcell = f"{max(workers):.0f} (max), {min(workers):.0f} (min)" if workers else "-"
            print(f"| {label} | {cell('main')} | {wcell} | {cell('resource-tracker')} | {cell('other')} | {len(recs)} |")
            if label.startswith("pacs") and label.endswith(":store"):
                top = max(max(v) for v in best.values())
                verdicts.append((f"peak RSS {label}: every process < {RSS_MB} MB", f"{top:.0f} MiB", top < RSS_MB))
        print()

    # ------------------------------------------------------------------ loads
    if loads:
        print("### Bulk loads (not benchmarks; how the query corpora got in)\n")
        print("| target | what | method | files | s | files/s | detail |")
        print("|---|---|---|---|---|---|---|")
        for r in loads:
            print(f"| {r['target']} | {r['what']} | {r['method']} | {r['files']} | {r['seconds']:.0f} | "
                  f"{r['files_per_s'] if r['files'] else '-'} | {r.get('detail', '')} |")
        print()

    web_tables(find, retrieve, stream, rss, verdicts)

    if verdicts:
        print("### Targets\n")
        print("| target | measured | verdict |")
        print("|---|---|---|")
        for name, val, good in verdicts:
            print(f"| {name} | {val} | {ok(good)} |")
        print()


if __name__ == "__main__":
    main()
