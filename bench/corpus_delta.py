#!/usr/bin/env python3
"""List the files that turn a loaded 5,000-study filler into the 100,000-study filler.

make_corpus.py is deterministic: a filler of 100,000 studies generated with the same seed
and --today as the 5,000-study filler starts with the very same 5,000 studies (same Study
and Series Instance UIDs, patients, dates; only the SOP Instance UIDs of the one image per
study differ, since those are numbered after the plan). So an archive that already holds
small + filler(5k) is brought to small + filler100k by storing the files of studies 5,001..
100,000 of filler100k, and bench_find.py can then be run with `--extra-corpus filler100k`
(its expected match counts are computed from study-level data only).

This script checks that premise (study UIDs, patient IDs and names, dates and the corpus
'today' of the first 5,000 studies are identical) and prints the remaining file paths, one
per line.

  corpus_delta.py FILLER_DIR FILLER100K_DIR > delta.txt
"""
from __future__ import annotations

import json
import os
import sys

KEYS = ("uid", "patient_id", "patient_name", "date", "time", "accession", "description")


def main() -> int:
    small_dir, big_dir = sys.argv[1], sys.argv[2]
    a = json.load(open(os.path.join(small_dir, "manifest.json")))
    b = json.load(open(os.path.join(big_dir, "manifest.json")))
    if a["today"] != b["today"] or a["seed"] != b["seed"]:
        print(f"corpora differ in today/seed: {a['today']}/{a['seed']} vs {b['today']}/{b['seed']}", file=sys.stderr)
        return 1
    n = len(a["studies"])
    if len(b["studies"]) < n:
        print(f"{big_dir} has fewer studies than {small_dir}: not a prefix", file=sys.stderr)
        return 1
    for i, (x, y) in enumerate(zip(a["studies"], b["studies"][:n], strict=True)):
        if any(x.get(k) != y.get(k) for k in KEYS) or [s["uid"] for s in x["series"]] != [s["uid"] for s in y["series"]]:
            print(f"study {i + 1} differs between {small_dir} and {big_dir}: not a prefix", file=sys.stderr)
            return 1
    head = {s["uid"] for s in b["studies"][:n]}
    out = [os.path.join(os.path.abspath(big_dir), f["path"]) for f in b["files"] if f["study"] not in head]
    sys.stdout.write("\n".join(out) + "\n")
    print(f"{len(out)} files of {len(b['studies']) - n} studies to add ({n} studies already in {small_dir})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
