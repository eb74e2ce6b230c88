#!/usr/bin/env bash
# Filmless PACS benchmark: our server (SQLite and PostgreSQL index) against Orthanc and dcmtk
# storescp, in ONE run, with the shared harness (../shared/bench) doing the measuring.
#
#   bench/run.sh                       everything (see README.md); results in bench/results/*.jsonl
#   BENCH_PHASES=report bench/run.sh   only the tables (bench/results/summary.md)
#
# Phases (BENCH_PHASES, comma list, in this order):
#   setup        bench/.venv with the harness requirements; checks dcmtk, Orthanc, PostgreSQL
#   corpus       small (2,000 inst), filler (5,000 studies), filler100k (100,000 studies) + delta list
#   storescp     dcmtk storescp: C-STORE ingest (C++ best case)
#   orthanc      Orthanc: C-STORE ingest, + filler 5k, C-FIND at 5k studies
#   pacs-sqlite  ours on SQLite: ingest per worker count, filler 5k, C-FIND at 5k, +95k, C-FIND at 100k
#   pacs-pg      ours on PostgreSQL: ingest, filler 5k, C-FIND at 5k, 100k index, C-FIND at 100k
#   orthanc-100k Orthanc again (its 5k archive kept on disk), +95k by C-STORE, C-FIND at 100k
#   web          DICOMweb (issue 4): ours (SQLite) and Orthanc + DICOMweb plugin, each holding small +
#                filler 5k + one ~1 GiB CT study: QIDO-RS, WADO-RS study/series/metadata/frame,
#                rendered CT/CR (ours with the render cache off = uncached, then on = cached),
#                and peak RSS while streaming the 1 GiB study; C-FIND (findscu) on the same archives
#   report       markdown tables -> bench/results/summary.md
# Optional (not in the default list): pynetdicom = the harness's bare pynetdicom receiver
#   (what pure Python costs without any indexing), ingest only.
#
# Knobs (defaults in brackets):
#   BENCH_REPEATS [3] store repeats (peers)      BENCH_PACS_REPEATS [=BENCH_REPEATS] (ours)
#   BENCH_FIND_REPEATS [3] BENCH_FIND_ITER [30]  C-FIND repeats x iterations per query at 5k
#   BENCH_FIND_REPEATS_100K [2] BENCH_FIND_ITER_100K [15]  the same at 100k (hundreds of matches)
#   BENCH_PARALLEL_LOADS [1]           run the two untimed 95k bulk loads (Orthanc by C-STORE,
#       ours by pacs import) at the same time, to save wall time; 0 = one after the other
#   BENCH_PARALLEL [1,2,4]             BENCH_PACS_WORKERS [4,2]  PACS_DICOM_WORKERS values for
#       ingest; each gets a full store test, the LAST one stays up for the filler/query steps
#   BENCH_PACS_EXTRA_PARALLEL [2,4]    N values for the other worker counts (N=1 is one
#       association = one process whatever the worker count, so it is measured once)
#   BENCH_PG_WORKERS [2]               workers for the PostgreSQL ingest test
#   BENCH_100K [1]                     0 = stop ours after C-FIND at 5k (no 95k load, no 100k
#       queries): ingest + 5k in ~15 min, e.g. to re-measure a change of the ingest path
#   BENCH_100K_LOAD [import]           how ours gets the 95,000 extra studies on SQLite:
#       import = `pacs import` of the files (4 processes, server running), cstore = storescu
#   BENCH_PG_100K_LOAD [copy]          PostgreSQL: copy = rows of the SQLite 100k index copied
#       by copy_index.py (needs pacs-sqlite in the same run), import, cstore
#   BENCH_WEB_ITER [10] BENCH_WEB_REPEATS [3]   bench_retrieve.py iterations x repeats (web)
#   BENCH_BIG_MIB [1024]               size of the streamed study (web)
#   BENCH_FIND_CLIENTS [findscu]       bench_find.py --dimse-client (findscu,pynetdicom for both)
#   BENCH_PACS_REV [HEAD]              the commit of ours to measure: `git archive` into
#       bench/work/code-<sha>, run from there (PYTHONPATH), so edits to the working tree during a
#       run cannot mix versions; BENCH_PACS_REV=worktree runs the live tree instead
#   BENCH_HARNESS [../shared/bench]    BENCH_WORK [bench/work]  BENCH_RESULTS [bench/results]
#   Ports: ours 11400/8400 (PACS_BENCH_DICOM_PORT/_HTTP_PORT), Orthanc 4242/8042
#   (ORTHANC_DICOM_PORT/_HTTP_PORT), storescp 11120 (STORESCP_PORT).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
HARNESS="$(cd "${BENCH_HARNESS:-$REPO/../shared/bench}" && pwd)"
WORK="${BENCH_WORK:-$HERE/work}"
export BENCH_RESULTS="${BENCH_RESULTS:-$HERE/results}"
PY="$HERE/.venv/bin/python"
export BENCH_PY="$PY" BENCH_HARNESS="$HARNESS"
CORPUS="$WORK/corpus"
export BENCH_CORPUS="$CORPUS/small"
FILLER="$CORPUS/filler"
FILLER100K="$CORPUS/filler100k"
DELTA="$CORPUS/filler100k-delta.txt"
PHASES="${BENCH_PHASES:-setup,corpus,storescp,orthanc,pacs-sqlite,pacs-pg,orthanc-100k,web,report}"
WEB_ITER="${BENCH_WEB_ITER:-10}"
WEB_REPEATS="${BENCH_WEB_REPEATS:-3}"
BIG="$CORPUS/big"
BIG_MIB="${BENCH_BIG_MIB:-1024}"
STORE_REPEATS="${BENCH_REPEATS:-3}"
PACS_REPEATS="${BENCH_PACS_REPEATS:-$STORE_REPEATS}"
FIND_REPEATS="${BENCH_FIND_REPEATS:-3}"
FIND_ITER="${BENCH_FIND_ITER:-30}"
FIND_REPEATS_100K="${BENCH_FIND_REPEATS_100K:-2}"
FIND_ITER_100K="${BENCH_FIND_ITER_100K:-15}"
PARALLEL_LOADS="${BENCH_PARALLEL_LOADS:-1}"
FIND_CLIENTS="${BENCH_FIND_CLIENTS:-findscu}"
PARALLEL="${BENCH_PARALLEL:-1,2,4}"
WORKERS_LIST="${BENCH_PACS_WORKERS:-4,2}"
EXTRA_PARALLEL="${BENCH_PACS_EXTRA_PARALLEL:-2,4}"   # N for worker counts other than the last
PG_WORKERS="${BENCH_PG_WORKERS:-2}"
WITH100K="${BENCH_100K:-1}"
LOAD100K="${BENCH_100K_LOAD:-import}"
PG_LOAD100K="${BENCH_PG_100K_LOAD:-copy}"
RUN_ID="$(date +%Y%m%dT%H%M%S)"
PACS_REV="${BENCH_PACS_REV:-HEAD}"
if [[ $PACS_REV == worktree ]]; then
  CODE_DESC="worktree $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- . ':!bench' || echo +dirty)"
  unset PACS_BENCH_CODE
else
  SHA="$(git -C "$REPO" rev-parse --short "$PACS_REV")"
  export PACS_BENCH_CODE="${BENCH_WORK:-$HERE/work}/code-$SHA"
  if [[ ! -f $PACS_BENCH_CODE/.bench-rev ]]; then
    mkdir -p "$PACS_BENCH_CODE"
    git -C "$REPO" archive "$SHA" | tar -x -C "$PACS_BENCH_CODE"
    echo "$SHA" >"$PACS_BENCH_CODE/.bench-rev"
  fi
  CODE_DESC="commit $SHA"
fi
export BENCH_NOTE="${BENCH_NOTE:-bench/run.sh $RUN_ID; pacs $CODE_DESC}"
export TCP_NODELAY=1                       # dcmtk clients (storescu, findscu): see the harness README
export ORTHANC_RUN="${ORTHANC_RUN:-$WORK/orthanc}"
export STORESCP_OUT="${STORESCP_OUT:-$WORK/storescp-out}"
export PACS_BENCH_RSS_FILE="$BENCH_RESULTS/rss.jsonl"
PACS_DP="${PACS_BENCH_DICOM_PORT:-11400}"
ORTHANC_DP="${ORTHANC_DICOM_PORT:-4242}"
mkdir -p "$BENCH_RESULTS" "$WORK"
LOGF="$BENCH_RESULTS/run-$RUN_ID.log"

has() { [[ ",$PHASES," == *",$1,"* ]]; }
say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOGF" >&2; }
elapsed() { python3 -c "import time;print(round(time.time()-$1,1))"; }

WATCHER=""
stop_watch() { if [[ -n $WATCHER ]]; then kill "$WATCHER" 2>/dev/null || true; wait "$WATCHER" 2>/dev/null || true; WATCHER=""; fi; }
cleanup() {
  stop_watch
  PACS_BENCH_DB=sqlite PACS_BENCH_RUN="$WORK/pacs-sqlite" "$HERE/pacs.sh" stop >/dev/null 2>&1 || true
  PACS_BENCH_DB=postgres PACS_BENCH_RUN="$WORK/pacs-postgres" "$HERE/pacs.sh" stop >/dev/null 2>&1 || true
  "$HARNESS/targets/orthanc.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# peak RSS of every process of a target, sampled each second for the length of a phase
watch_rss() {  # PIDFILE LABEL
  "$PY" "$HERE/rss.py" --watch "$1" --interval 1 --label "$2" --event watch --note "$BENCH_NOTE" \
        >>"$BENCH_RESULTS/rss.jsonl" &
  WATCHER=$!
}

record_load() {  # TARGET WHAT METHOD FILES SECONDS [DETAIL]
  python3 - "$@" <<'PY' >>"$BENCH_RESULTS/load.jsonl"
import datetime as d, json, os, sys
a = sys.argv[1:] + [""]
print(json.dumps({"ts": d.datetime.now().astimezone().isoformat(timespec="seconds"), "bench": "load",
                  "target": a[0], "what": a[1], "method": a[2], "files": int(a[3]), "seconds": float(a[4]),
                  "files_per_s": round(int(a[3]) / max(float(a[4]), 1e-9), 1), "detail": a[5],
                  "note": os.environ.get("BENCH_NOTE", "")}))
PY
}

# C-STORE a list of files (stdin: paths) with 2 storescu streams, as run_all.sh's filler step does
cstore_files() {  # AEC PORT < paths
  split -n r/2 --filter="xargs -s 100000 storescu -xy -R -nh -aet BENCHSCU -aec $1 127.0.0.1 $2" -
}

load_filler5k() {  # TARGET AEC PORT
  local t0 n; t0=$(date +%s.%N); n=$(find "$FILLER" -name '*.dcm' | wc -l)
  find "$FILLER" -name '*.dcm' | sort | cstore_files "$2" "$3"
  local dt; dt=$(elapsed "$t0")
  say "$1: filler loaded ($n instances) by C-STORE in $dt s"
  record_load "$1" filler5k cstore "$n" "$dt"
}

load_delta_cstore() {  # TARGET AEC PORT
  local t0 n dt; t0=$(date +%s.%N); n=$(wc -l <"$DELTA")
  cstore_files "$2" "$3" <"$DELTA"
  dt=$(elapsed "$t0")
  say "$1: +$n filler100k instances by C-STORE in $dt s"
  record_load "$1" filler100k-delta cstore "$n" "$dt"
}

load_delta_import() {  # TARGET   (pacs.sh env must describe the target; server may be running)
  local t0 n dt out; t0=$(date +%s.%N); n=$(wc -l <"$DELTA")
  out="$WORK/import-$1.log"
  # `pacs import` stores each file through the same Archive.store as C-STORE (parse header,
  # put object with fsync, index + audit in one transaction). 4 processes x 2 threads.
  ( eval "$("$HERE/pacs.sh" env | sed 's/^/export /')"
    split -n r/4 --filter="xargs -s 200000 $REPO/.venv/bin/pacs import --quiet --jobs 2" - <"$DELTA" ) >"$out" 2>&1 || true
  dt=$(elapsed "$t0")
  local stored; stored=$(awk '/files:/{s+=$3} END{print s+0}' "$out")
  say "$1: +$n filler100k instances by pacs import in $dt s ($stored stored; see $out)"
  grep -h "skipped [0-9]\|not found\|Error\|error" "$out" | sort | uniq -c | head -5 | tee -a "$LOGF" >&2 || true
  record_load "$1" filler100k-delta "pacs import (4 processes x --jobs 2)" "$n" "$dt" "stored=$stored"
}

find_step() {  # TARGET-LABEL PORT AEC EXTRA-CORPUS
  local r=$FIND_REPEATS i=$FIND_ITER
  if [[ $4 == "$FILLER100K" ]]; then r=$FIND_REPEATS_100K i=$FIND_ITER_100K; fi
  say "$1: C-FIND (${FIND_CLIENTS}, $r x $i per query) with $(basename "$4")"
  (cd "$HARNESS" && BENCH_TARGET="$1" "$PY" bench_find.py --host 127.0.0.1 --port "$2" --aec "$3" \
      --corpus "$BENCH_CORPUS" --extra-corpus "$4" --repeats "$r" --iterations "$i" \
      --dimse-client "$FIND_CLIENTS" --dicomweb "" ) >>"$BENCH_RESULTS/find.jsonl" 2> >(tee -a "$LOGF" >&2)
}

store_step_pacs() {  # DB WORKERS LABEL PARALLEL
  say "$3: C-STORE ingest N=$4 x $PACS_REPEATS (db $1, PACS_DICOM_WORKERS=$2)"
  export PACS_BENCH_DB="$1" PACS_BENCH_WORKERS="$2" PACS_BENCH_LABEL="$3:store" PACS_BENCH_RUN="$WORK/pacs-$1"
  "$HERE/pacs.sh" stop >/dev/null; "$HERE/pacs.sh" wipe; "$HERE/pacs.sh" start >/dev/null
  watch_rss "$WORK/pacs-$1/pacs.pid" "$3:store"
  BENCH_NAME="$3" BENCH_PORT="$PACS_DP" BENCH_AEC=PACS BENCH_HOST=127.0.0.1 BENCH_DICOMWEB="" \
    BENCH_RESET_CMD="$HERE/pacs.sh reset" BENCH_VERIFY=cfind BENCH_STEPS=store BENCH_FILLER="" \
    BENCH_REPEATS="$PACS_REPEATS" BENCH_PARALLEL="$4" \
    "$HARNESS/run_all.sh" custom 2> >(tee -a "$LOGF" >&2)
  "$HERE/pacs.sh" rss store-end
  stop_watch
}

# Orthanc's archive after the orthanc phase = small + filler(5k); a marker in its storage
# directory (wiped by targets/orthanc.sh reset) records that the 95k were added.
MARK100K="$ORTHANC_RUN/db/.bench-filler100k-loaded"
orthanc_needs_100k() { [[ -d $ORTHANC_RUN/db && ! -f $MARK100K ]]; }
orthanc_load_100k() {
  "$HARNESS/targets/orthanc.sh" start >/dev/null
  load_delta_cstore orthanc-100k ORTHANC "$ORTHANC_DP"
  touch "$MARK100K"
  "$HARNESS/targets/orthanc.sh" stop >/dev/null
}

pacs_phase() {  # DB LABEL-PREFIX WORKERS-LIST LOAD100K
  local db=$1 pfx=$2 wl=$3 how=$4 w=""
  local last=${wl##*,}
  for w in ${wl//,/ }; do
    store_step_pacs "$db" "$w" "$pfx-w$w" "$([[ $w == "$last" ]] && echo "$PARALLEL" || echo "$EXTRA_PARALLEL")"
  done
  # the server of the last store test holds the small corpus: add the filler, query
  export PACS_BENCH_DB="$db" PACS_BENCH_WORKERS="$w" PACS_BENCH_LABEL="$pfx:query" PACS_BENCH_RUN="$WORK/pacs-$db"
  watch_rss "$WORK/pacs-$db/pacs.pid" "$pfx:query"
  load_filler5k "$pfx" PACS "$PACS_DP"
  find_step "$pfx" "$PACS_DP" PACS "$FILLER"
  "$HERE/pacs.sh" rss find-5k
  if [[ $WITH100K == 0 ]]; then
    stop_watch
    "$HERE/pacs.sh" stop >/dev/null
    return 0
  fi
  case "$how" in
    import)
      local bg=""
      if [[ $PARALLEL_LOADS == 1 ]] && has orthanc-100k && orthanc_needs_100k; then
        say "loading Orthanc's +95k at the same time (untimed bulk loads; BENCH_PARALLEL_LOADS=0 to serialise)"
        orthanc_load_100k & bg=$!
      fi
      load_delta_import "$pfx"
      if [[ -n $bg ]]; then wait "$bg" || say "Orthanc 95k load failed"; fi ;;
    cstore) load_delta_cstore "$pfx" PACS "$PACS_DP" ;;
    copy)
      local src="$WORK/pacs-sqlite/pacs-data/index.db" t0 dt
      [[ -f $src ]] || { say "copy needs the SQLite 100k index of pacs-sqlite ($src)"; return 1; }
      "$HERE/pacs.sh" stop >/dev/null
      "$HERE/pacs.sh" wipe
      t0=$(date +%s.%N)
      (cd "$WORK" && PYTHONPATH="${PACS_BENCH_CODE:-$REPO}" "$REPO/.venv/bin/python" "$HERE/copy_index.py" "sqlite:///$src" \
         "${PACS_BENCH_PGURL:-postgresql+psycopg://postgres@127.0.0.1:5432}/${PACS_BENCH_PGDB:-pacs_bench}") \
         2> >(tee -a "$LOGF" >&2)
      dt=$(elapsed "$t0")
      record_load "$pfx" "index copy from pacs-sqlite (small+filler100k)" copy_index.py 0 "$dt"
      "$HERE/pacs.sh" start >/dev/null ;;
  esac
  find_step "$pfx-100k" "$PACS_DP" PACS "$FILLER100K"
  "$HERE/pacs.sh" rss find-100k
  stop_watch
  "$HERE/pacs.sh" stop >/dev/null
}

say "run $RUN_ID phases=$PHASES harness=$HARNESS results=$BENCH_RESULTS; pacs code: $CODE_DESC"

if has setup; then
  if [[ ! -x $PY ]] || ! "$PY" -c 'import pydicom, pynetdicom, numpy, requests, httpx, PIL, dicomweb_client' 2>/dev/null; then
    say "creating $HERE/.venv with $HARNESS/requirements.txt"
    python3 -m venv "$HERE/.venv"
    "$HERE/.venv/bin/pip" install -q -r "$HARNESS/requirements.txt"
  fi
  for t in storescu storescp findscu echoscu psql createdb dropdb curl; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install dcmtk postgresql-client curl)" >&2; exit 1; }
  done
  [[ -x /usr/sbin/Orthanc && -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]] ||
    { echo "missing Orthanc (apt-get install orthanc orthanc-dicomweb)" >&2; exit 1; }
  [[ -x $REPO/.venv/bin/pacs ]] || { echo "missing $REPO/.venv/bin/pacs (make serve / pip install -e .)" >&2; exit 1; }
  psql -h 127.0.0.1 -U postgres -Atc 'select 1' >/dev/null || { echo "PostgreSQL on 127.0.0.1:5432 (user postgres) not reachable" >&2; exit 1; }
  {
    echo "versions: $(Orthanc --version 2>/dev/null | head -1); $(storescu --version | head -1);"
    echo "  pacs $("$REPO/.venv/bin/python" -c 'import importlib.metadata as m;print(m.version("filmless-pacs"))') ($CODE_DESC),"
    echo "  $("$REPO/.venv/bin/python" -c 'import importlib.metadata as m;print(", ".join(f"{p} {m.version(p)}" for p in ("pydicom","pynetdicom","SQLAlchemy","psycopg","uvicorn")))'),"
    echo "  $(psql -h 127.0.0.1 -U postgres -Atc 'select version()' | cut -d, -f1), SQLite $("$REPO/.venv/bin/python" -c 'import sqlite3;print(sqlite3.sqlite_version)'), Python $("$REPO/.venv/bin/python" -V | cut -d' ' -f2)"
  } | tee -a "$LOGF" >&2
fi

if has corpus; then
  mkdir -p "$CORPUS"
  [[ -f $CORPUS/small/manifest.json ]] || { say "generating small corpus"; "$PY" "$HARNESS/make_corpus.py" --out "$CORPUS/small" --preset small; }
  TODAY=$("$PY" -c "import json;print(json.load(open('$CORPUS/small/manifest.json'))['today'])")
  [[ -f $FILLER/manifest.json ]] || { say "generating filler (5,000 studies)"; "$PY" "$HARNESS/make_corpus.py" --out "$FILLER" --preset filler --today "$TODAY"; }
  FTODAY=$("$PY" -c "import json;print(json.load(open('$FILLER/manifest.json'))['today'])")
  # same seed and 'today' as the 5k filler, so its first 5,000 studies ARE the 5k filler
  [[ -f $FILLER100K/manifest.json ]] || { say "generating filler100k (100,000 studies; ~10-15 min)";
    "$PY" "$HERE/make_corpus_fast.py" --out "$FILLER100K" --instances 100000 --filler --today "$FTODAY"; }
  [[ -s $DELTA ]] || "$PY" "$HERE/corpus_delta.py" "$FILLER" "$FILLER100K" >"$DELTA"
  say "corpora ready: small, filler, filler100k (+$(wc -l <"$DELTA") delta files)"
fi

if has storescp; then
  say "storescp: C-STORE ingest"
  mkdir -p /tmp/bench-storescp "$STORESCP_OUT"   # targets/storescp.sh keeps its pid file and log there
  BENCH_REPEATS="$STORE_REPEATS" BENCH_PARALLEL="$PARALLEL" BENCH_STEPS=store \
    "$HARNESS/run_all.sh" storescp 2> >(tee -a "$LOGF" >&2)
fi

if has pynetdicom; then
  say "pynetdicom: C-STORE ingest (bare receiver, writes bytes)"
  mkdir -p /tmp/bench-pynetdicom
  BENCH_REPEATS="$STORE_REPEATS" BENCH_PARALLEL="$PARALLEL" BENCH_STEPS=store PYSCP_OUT="$WORK/pyscp-out" \
    "$HARNESS/run_all.sh" pynetdicom 2> >(tee -a "$LOGF" >&2)
fi

if has orthanc; then
  say "orthanc: C-STORE ingest, filler, C-FIND at 5k"
  watch_rss "$ORTHANC_RUN/orthanc.pid" "orthanc:store"
  BENCH_REPEATS="$STORE_REPEATS" BENCH_PARALLEL="$PARALLEL" BENCH_STEPS=store \
    "$HARNESS/run_all.sh" orthanc 2> >(tee -a "$LOGF" >&2)
  stop_watch
  "$HARNESS/targets/orthanc.sh" start >/dev/null      # keeps the archive of the last store run
  watch_rss "$ORTHANC_RUN/orthanc.pid" "orthanc:query"
  load_filler5k orthanc ORTHANC "$ORTHANC_DP"
  find_step orthanc "$ORTHANC_DP" ORTHANC "$FILLER"
  stop_watch
  "$HARNESS/targets/orthanc.sh" stop >/dev/null
fi

if has pacs-sqlite; then
  pacs_phase sqlite pacs-sqlite "$WORKERS_LIST" "$LOAD100K"
fi

if has pacs-pg; then
  pacs_phase postgres pacs-pg "$PG_WORKERS" "$PG_LOAD100K"
fi

if has orthanc-100k; then
  say "orthanc-100k: +95k studies by C-STORE (unless loaded already), C-FIND at 100k"
  if orthanc_needs_100k; then orthanc_load_100k; fi
  "$HARNESS/targets/orthanc.sh" start >/dev/null
  watch_rss "$ORTHANC_RUN/orthanc.pid" "orthanc:query-100k"
  find_step orthanc-100k "$ORTHANC_DP" ORTHANC "$FILLER100K"
  stop_watch
  "$HARNESS/targets/orthanc.sh" stop >/dev/null
fi

# --- DICOMweb (issue 4) -------------------------------------------------------------------
web_steps() {  # TARGET DICOMWEB-URL PIDFILE CASES
  say "$1: QIDO-RS (bench_find.py --skip-dimse) with the 5k filler"
  (cd "$HARNESS" && BENCH_TARGET="$1" "$PY" bench_find.py --corpus "$BENCH_CORPUS" --extra-corpus "$FILLER" \
      --skip-dimse --dicomweb "$2" --repeats "$FIND_REPEATS" --iterations "$FIND_ITER") \
      >>"$BENCH_RESULTS/find.jsonl" 2> >(tee -a "$LOGF" >&2)
  say "$1: WADO-RS retrieve ($WEB_REPEATS x $WEB_ITER per case)"
  (cd "$HARNESS" && BENCH_TARGET="$1" "$PY" bench_retrieve.py --corpus "$BENCH_CORPUS" --dicomweb "$2" \
      --repeats "$WEB_REPEATS" --iterations "$WEB_ITER" ${4:+--cases "$4"}) \
      >>"$BENCH_RESULTS/retrieve.jsonl" 2> >(tee -a "$LOGF" >&2)
}

web_stream() {  # TARGET DICOMWEB-URL PIDFILE
  local study; study=$("$PY" -c "import json;print(json.load(open('$BIG/study.json'))['study'])")
  say "$1: streaming the ${BIG_MIB} MiB study over WADO-RS (peak RSS sampled each 0.2 s)"
  "$PY" "$HERE/rss.py" --watch "$3" --interval 0.2 --label "$1:stream-1GiB" --event watch --note "$BENCH_NOTE" \
      >>"$BENCH_RESULTS/rss.jsonl" & WATCHER=$!
  "$PY" "$HERE/stream_study.py" --dicomweb "$2" --study "$study" --target "$1" --note "$BENCH_NOTE" \
      >>"$BENCH_RESULTS/stream.jsonl" 2> >(tee -a "$LOGF" >&2)
  stop_watch
}

web_load() {  # TARGET AEC PORT: small corpus + filler + the big study, by C-STORE (untimed)
  local t0; t0=$(date +%s.%N)
  { find "$BENCH_CORPUS" "$FILLER" "$BIG" -name '*.dcm' | sort; } | cstore_files "$2" "$3"
  say "$1: small + filler + big study loaded by C-STORE in $(elapsed "$t0") s"
}

if has web; then
  [[ -f $BIG/study.json ]] || { say "generating the ${BIG_MIB} MiB study"; "$PY" "$HERE/make_big_study.py" --out "$BIG" --mib "$BIG_MIB" >/dev/null; }
  RENDER="rendered_ct_jpeg,rendered_ct_png,rendered_cr_jpeg,rendered_cr_png"
  # ours: auth off (Orthanc in the harness has none either); render cache off, then on
  export PACS_BENCH_DB=sqlite PACS_BENCH_WORKERS=2 PACS_BENCH_LABEL=pacs-web PACS_BENCH_RUN="$WORK/pacs-web"
  export PACS_AUTH=off PACS_RENDER_CACHE_MAX_MB=0
  "$HERE/pacs.sh" stop >/dev/null; "$HERE/pacs.sh" wipe; "$HERE/pacs.sh" start >/dev/null
  web_load pacs-web PACS "$PACS_DP"
  URL="http://127.0.0.1:${PACS_BENCH_HTTP_PORT:-8400}/dicomweb"
  watch_rss "$WORK/pacs-web/pacs.pid" "pacs-web:retrieve"
  web_steps pacs-web "$URL" "$WORK/pacs-web/pacs.pid" ""
  find_step pacs-web-cfind "$PACS_DP" PACS "$FILLER"   # C-FIND on the same 5k archive
  stop_watch
  # a fresh process, so the peak RSS (VmHWM) seen is the stream's, not the renderer's
  "$HERE/pacs.sh" stop >/dev/null; "$HERE/pacs.sh" start >/dev/null
  web_stream pacs-web "$URL" "$WORK/pacs-web/pacs.pid"
  "$HERE/pacs.sh" stop >/dev/null
  unset PACS_RENDER_CACHE_MAX_MB
  "$HERE/pacs.sh" start >/dev/null
  (cd "$HARNESS" && BENCH_TARGET="pacs-web-cached" "$PY" bench_retrieve.py --corpus "$BENCH_CORPUS" --dicomweb "$URL" \
      --repeats "$WEB_REPEATS" --iterations "$WEB_ITER" --cases "$RENDER") \
      >>"$BENCH_RESULTS/retrieve.jsonl" 2> >(tee -a "$LOGF" >&2)
  "$HERE/pacs.sh" stop >/dev/null
  unset PACS_AUTH
  # Orthanc with its DICOMweb plugin, same data, in a run directory of its own (the 100k
  # archive of the orthanc phases is kept)
  "$HARNESS/targets/orthanc.sh" stop >/dev/null 2>&1 || true
  export ORTHANC_RUN="$WORK/orthanc-web"
  "$HARNESS/targets/orthanc.sh" reset >/dev/null
  web_load orthanc-web ORTHANC "$ORTHANC_DP"
  OURL="http://127.0.0.1:${ORTHANC_HTTP_PORT:-8042}/dicom-web"
  watch_rss "$ORTHANC_RUN/orthanc.pid" "orthanc-web:retrieve"
  web_steps orthanc-web "$OURL" "$ORTHANC_RUN/orthanc.pid" ""
  find_step orthanc-web-cfind "$ORTHANC_DP" ORTHANC "$FILLER"
  stop_watch
  "$HARNESS/targets/orthanc.sh" stop >/dev/null; "$HARNESS/targets/orthanc.sh" start >/dev/null
  web_stream orthanc-web "$OURL" "$ORTHANC_RUN/orthanc.pid"
  "$HARNESS/targets/orthanc.sh" stop >/dev/null
fi

if has report; then
  "$PY" "$HERE/report.py" --results "$BENCH_RESULTS" | tee "$BENCH_RESULTS/summary.md"
fi
say "done: $BENCH_RESULTS"
