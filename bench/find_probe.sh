#!/usr/bin/env bash
# Study-level C-FIND latency of one server configuration, measured as the harness does.
#
#   bench/find_probe.sh WORKERS [sqlite|postgres] [LABEL]
#
# Starts a private server (bench/pacs.sh, on PACS_BENCH_RUN's data directory, which must
# already hold the 5k index: `pacs import` of corpus small + filler), runs the harness's
# bench_find.py with findscu only (3 x 30 queries after 3 warm-ups, in one association per
# query and repeat, times from dcmtk's log), prints median and p95 per query and stops
# the server. For an A/B comparison set PACS_BENCH_CODE to a `git archive` snapshot of
# each commit and interleave the runs; on a shared machine compare medians over several
# rounds, as single p95 figures move by 2x with the load.
#
# Environment: PACS_BENCH_RUN (required), PACS_BENCH_CODE, BENCH_HARNESS [../shared/bench], BENCH_CORPUS_DIR
# [bench/work/corpus], PACS_BENCH_DICOM_PORT/_HTTP_PORT [24010/24011], PACS_HL7_PORT
# [24012], REPEATS [3], BENCH_PY [bench/.venv/bin/python]. Results are appended to
# $PACS_BENCH_RUN/find-results.jsonl.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
W=${1:?workers}; DB=${2:-sqlite}; LABEL=${3:-probe}
: "${PACS_BENCH_RUN:?set PACS_BENCH_RUN to the run directory holding pacs-data}"
CORPUS=${BENCH_CORPUS_DIR:-$HERE/work/corpus}
PY=${BENCH_PY:-$HERE/.venv/bin/python}
export PACS_BENCH_DB=$DB PACS_BENCH_WORKERS=$W PACS_BENCH_PGDB=${PACS_BENCH_PGDB:-pacs_cfind} \
  PACS_BENCH_DICOM_PORT=${PACS_BENCH_DICOM_PORT:-24010} PACS_BENCH_HTTP_PORT=${PACS_BENCH_HTTP_PORT:-24011} \
  PACS_HL7_PORT=${PACS_HL7_PORT:-24012} PACS_FIND_LIMIT=5000 PACS_AUTH=off \
  PACS_BENCH_RSS_FILE=$PACS_BENCH_RUN/rss.jsonl
"$HERE/pacs.sh" start >/dev/null
trap '"$HERE/pacs.sh" stop >/dev/null' EXIT
"$PY" "${BENCH_HARNESS:-$HERE/../../shared/bench}/bench_find.py" --target "$LABEL-w$W-$DB" \
  --corpus "$CORPUS/small" --extra-corpus "$CORPUS/filler" --dimse-client findscu \
  --host 127.0.0.1 --port "$PACS_BENCH_DICOM_PORT" --aec PACS --aet BENCHSCU \
  --repeats "${REPEATS:-3}" --iterations 30 --warmup 3 2>>"$PACS_BENCH_RUN/find-probe.log" |
  tee -a "$PACS_BENCH_RUN/find-results.jsonl" |
  "$PY" -c '
import json, sys
r = json.loads(sys.stdin.read())
print(r["target"])
for k, v in r["cfind"].items():
    if k == "assoc_setup":
        continue
    reps = [round(rep[k]["lat_ms"]["p95"], 1) for rep in r["cfind_reps"]]
    ok = "" if v.get("ok") else "  WRONG MATCH COUNT"
    med, p95 = v["median_ms"]["median"], v["p95_ms"]["median"]
    print(f"  {k:14s} median {med:5.1f} ms  p95 {p95:5.1f} ms  (p95 per repeat {reps}){ok}")
'
