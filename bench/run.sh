#!/usr/bin/env bash
# Benchmark carryover's snapshot / verify / transplant against tar, zstd, sha256sum and cp.
#
#   bench/run.sh [--scale S] [--runs N] [--version V] [--keep DIR] [--only snapshot,verify,transplant]
#
# Defaults: --scale 1 --runs 5 --version 4.2.0, all steps. See bench/README.md.
# Needs bash >= 5 ($EPOCHREALTIME), python3, GNU time (/usr/bin/time), GNU tar, zstd,
# coreutils, cargo. Writes the report to stdout and to bench/results/latest.md.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=$HERE/lib

SCALE=1
RUNS=5
VERSION=4.2.0
KEEP=""
ONLY="snapshot,verify,transplant"
STATE=(solr/data repository/data repository/database)   # the baseline's STATE
MIN_FREE_MARGIN=$((5 * 1024 * 1024 * 1024))            # keep 5 GiB free for others
PURGE_BYTES=$((${BENCH_PURGE_GIB:-16} * 1024 * 1024 * 1024)) # purge the trash between steps above this
SETTLE_S=${BENCH_SETTLE_S:-65}   # ext4 skips inodes freed in the last 60 s: creating files after a mass delete is slow

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "bench/run.sh: error: $*" >&2; exit 1; }
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --scale) [ $# -ge 2 ] || die "--scale needs a value"; SCALE=$2; shift 2 ;;
    --scale=*) SCALE=${1#*=}; shift ;;
    --runs) [ $# -ge 2 ] || die "--runs needs a value"; RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#*=}; shift ;;
    --version) [ $# -ge 2 ] || die "--version needs a value"; VERSION=$2; shift 2 ;;
    --version=*) VERSION=${1#*=}; shift ;;
    --keep) [ $# -ge 2 ] || die "--keep needs a directory"; KEEP=$2; shift 2 ;;
    --keep=*) KEEP=${1#*=}; shift ;;
    --only) [ $# -ge 2 ] || die "--only needs a list"; ONLY=$2; shift 2 ;;
    --only=*) ONLY=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
python3 -c 'import sys; v = float(sys.argv[1]); sys.exit(0 if v > 0 else 1)' "$SCALE" 2>/dev/null \
  || die "--scale must be a positive number, got '$SCALE'"
DO_SNAPSHOT=0 DO_VERIFY=0 DO_TRANSPLANT=0
IFS=',' read -r -a only_list <<<"$ONLY"
[ ${#only_list[@]} -gt 0 ] || die "--only needs at least one of snapshot, verify, transplant"
for s in "${only_list[@]}"; do
  case $s in
    snapshot) DO_SNAPSHOT=1 ;;
    verify) DO_VERIFY=1 ;;
    transplant) DO_TRANSPLANT=1 ;;
    *) die "--only: unknown step '$s' (use snapshot, verify, transplant)" ;;
  esac
done
[ "${BASH_VERSINFO[0]}" -ge 5 ] || die "needs bash >= 5 (for \$EPOCHREALTIME)"
for t in python3 zstd tar sha256sum find xargs cp sync; do
  command -v "$t" >/dev/null 2>&1 || die "missing tool: $t"
done
[ -x /usr/bin/time ] || die "missing GNU time at /usr/bin/time (apt-get install time)"

# ---------------------------------------------------------------- work dir and cleanup
if [ -n "$KEEP" ]; then
  mkdir -p "$KEEP"
  WORK=$(cd "$KEEP" && pwd)
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/carryover-bench.XXXXXX")
fi
PACK=$WORK/pack
OUTD=$WORK/out
OUT=$OUTD/carryover.tar.zst       # carryover's snapshot (kept for verify/transplant)
X=$OUTD/baseline.tar.zst          # baseline tar | zstd archive
X2=$OUTD/baseline-sha.tar.zst     # archive of the tar | zstd + sha256sum baseline
PSUMS=$OUTD/pack.sha256           # sha256sum of every state file, from the pack
SUMS=$OUTD/SUMS                   # sha256sum of every state file, from an extraction of X
SCRATCH=$WORK/scratch
TRASH=$WORK/trash
LOGS=$WORK/logs
RAW=$WORK/raw.tsv
META=$WORK/meta.tsv
NOTES=$WORK/notes.txt
TPL=$WORK/new-template            # the "updated pack": the pack with empty state paths
COMPLETED=0

# Long children run in the background and are waited for, so that INT/TERM are handled at
# once (bash defers traps while a foreground child runs); cleanup ends them by pid.
CHILD=""
kill_tree() {   # PID: that process and its descendants (by pid, children first)
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$c"; done
  kill -TERM "$1" 2>/dev/null || true
}
bg_wait() {     # CMD...: run CMD as a waited-for background child; returns its exit status
  "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}
cleanup() {
  local rc=$?
  set +e
  if [ -n "$CHILD" ]; then kill_tree "$CHILD"; wait "$CHILD" 2>/dev/null; fi
  if [ -n "$KEEP" ]; then
    # keep pack, archives, logs and raw data; drop the bulky throw-away trees
    log "removing the used trees in $WORK (can take minutes: see bench/README.md)"
    rm -rf "$TRASH" "$SCRATCH" "$TPL" "$WORK/pack.tmp"
    log "done"
    [ "$COMPLETED" = 1 ] || log "kept $WORK (incomplete run)"
  else
    log "removing $WORK (can take minutes: see bench/README.md)"
    rm -rf "$WORK"
    log "done"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

mkdir -p "$OUTD" "$SCRATCH" "$TRASH" "$LOGS"
rm -rf "${LOGS:?}"/* "$SCRATCH"/*
: >"$RAW"; : >"$META"; : >"$NOTES"
export CARRYOVER_CATALOG=$WORK/catalog.db   # never touch the user's catalog
rm -f "$CARRYOVER_CATALOG"

meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
note() { printf '%s\n' "$*" >>"$NOTES"; log "note: $*"; }
trash() { local p; for p in "$@"; do [ -e "$p" ] || [ -L "$p" ] || continue; mv "$p" "$(mktemp -d "$TRASH/t.XXXXXX")/"; done; }
free_bytes() { df -P -B1 "$WORK" | awk 'NR == 2 { print $4 }'; }
# Used trees are renamed into $TRASH (cheap) instead of deleted, because creating many files
# within a minute of deleting many files is several times slower on ext4. The trash is purged
# between steps when it gets big (or when disk space runs short), and the next timed run waits
# until SETTLE_S seconds have passed since the purge (settle).
PURGED_AT=0
purge_trash() {   # WHY
  [ -n "$(ls -A "$TRASH")" ] || return 0
  local t0=$EPOCHSECONDS
  log "purging the trash ($1)"
  bg_wait rm -rf "$TRASH"
  mkdir -p "$TRASH"
  sync
  PURGED_AT=$EPOCHSECONDS
  note "purged the trash $1 in $((PURGED_AT - t0)) s, then let ext4 settle for ${SETTLE_S} s before the next timed run"
}
settle() {
  local left=$((PURGED_AT + SETTLE_S - EPOCHSECONDS))
  if [ "$PURGED_AT" -gt 0 ] && [ "$left" -gt 0 ]; then
    log "waiting ${left} s after the purge (ext4 recently-deleted inodes)"
    bg_wait sleep "$left"
  fi
}
purge_if_big() {   # WHERE
  local t
  t=$(du -sb "$TRASH" | cut -f1)
  [ "$t" -lt "$PURGE_BYTES" ] || purge_trash "$1 ($((t >> 20)) MiB)"
}
# need_space BYTES WHAT: make sure BYTES (+ margin) are free, purging the trash if needed.
need_space() {
  local want=$(($1 + MIN_FREE_MARGIN)) have
  have=$(free_bytes)
  if [ "$have" -lt "$want" ] && [ -n "$(ls -A "$TRASH")" ]; then
    purge_trash "before $2 to free disk space"
    have=$(free_bytes)
  fi
  [ "$have" -ge "$want" ] || die "$2 needs about $(($1 >> 20)) MiB plus a $((MIN_FREE_MARGIN >> 30)) GiB margin; only $((have >> 20)) MiB free in $WORK"
}

# ---------------------------------------------------------------- build
if [ -n "${CARRYOVER_BENCH_BIN:-}" ]; then
  # test hook: benchmark another binary (e.g. a wrapper) instead of building
  CO=$(command -v "$CARRYOVER_BENCH_BIN") || die "CARRYOVER_BENCH_BIN not found: $CARRYOVER_BENCH_BIN"
  note "CARRYOVER_BENCH_BIN set: benchmarked $CO instead of a fresh release build"
else
  log "cargo build --release"
  bg_wait bash -c 'cd "$1" && exec cargo build --release --quiet' _ "$ROOT" || die "cargo build --release failed"
  CO=$ROOT/target/release/carryover
fi
[ -x "$CO" ] || die "no carryover binary at $CO"

# ---------------------------------------------------------------- pack
MKPACK=$ROOT/tests/fixtures/mkpack.py
[ -f "$MKPACK" ] || die "missing $MKPACK"
STAMP_WANT=$(printf 'scale=%s\nversion=%s\nseed=default\nmkpack_sha256=%s\n' \
  "$SCALE" "$VERSION" "$(sha256sum <"$MKPACK" | cut -d' ' -f1)")
if [ -d "$PACK" ] && [ -f "$WORK/pack.stamp" ] && [ "$(cat "$WORK/pack.stamp")" = "$STAMP_WANT" ]; then
  log "reusing pack in $PACK (stamp matches)"
  note "reused the pack from an earlier --keep run (same scale, version and mkpack.py)"
else
  rm -f "$WORK/pack.stamp"
  trash "$PACK" "$WORK/pack.tmp"
  log "generating pack: mkpack.py --scale $SCALE --version $VERSION"
  bg_wait python3 "$MKPACK" "$WORK/pack.tmp" --scale "$SCALE" --version "$VERSION" >"$LOGS/mkpack.log" 2>&1 \
    || { cat "$LOGS/mkpack.log" >&2; die "mkpack.py failed"; }
  mv "$WORK/pack.tmp" "$PACK"
  printf '%s\n' "$STAMP_WANT" >"$WORK/pack.stamp"
fi
for p in "${STATE[@]}"; do [ -d "$PACK/$p" ] || die "pack has no $p"; done
STATE_BYTES=$(cd "$PACK" && du -sb --apparent-size "${STATE[@]}" | awk '{ s += $1 } END { print s }')
PACK_BYTES=$(du -sb --apparent-size "$PACK" | awk '{ print $1 }')
STATE_FILES=$(cd "$PACK" && find "${STATE[@]}" -type f | wc -l)
NONSTATE_BYTES=$((PACK_BYTES - STATE_BYTES))

# ---------------------------------------------------------------- machine info
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
commit_full=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
  commit="$commit+dirty"; commit_full="$commit_full (uncommitted changes in src/ or Cargo.*)"
fi
meta commit "$commit"
meta commit_full "$commit_full"
meta scale "$SCALE"
meta version "$VERSION"
meta runs "$RUNS"
meta steps "$ONLY"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
meta nproc "$(nproc)"
meta mem "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
meta kernel "$(uname -sr)"
meta fs "$(df -P -T "$WORK" | awk 'NR == 2 { print $2 }')"
meta workdir "$WORK"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta tools "$(zstd --version | sed 's/^\*\** *//; s/ *\**$//'), $(tar --version | head -1), $(sha256sum --version | head -1), $(bash --version | head -1 | sed 's/ (.*//')"
meta rustc "$(rustc --version 2>/dev/null || echo unknown)"
meta binary "$CO"
meta mkpack "tests/fixtures/mkpack.py --scale $SCALE --version $VERSION (seed default), sha256 $(sha256sum <"$MKPACK" | cut -c1-12)"
meta state_bytes "$STATE_BYTES"
meta state_files "$STATE_FILES"
meta pack_bytes "$PACK_BYTES"

# ---------------------------------------------------------------- timing
# run_timed STEP TOOL RUN CMD [SYNCCMD]: run CMD (a bash -c string) under /usr/bin/time and
# append a raw row. With SYNCCMD (e.g. `sync -f DIR`), also time it right after a successful
# CMD and append a row for TOOL_sync = CMD + SYNCCMD (the baseline made as durable as
# carryover, which fsyncs its archive and syncfs()es its staged tree).
FAILED_ANY=0
run_timed() {
  local step=$1 tool=$2 run=$3 cmd=$4 synccmd=${5:-}
  local tf=$LOGS/$step.$tool.$run.time ef=$LOGS/$step.$tool.$run.err
  local t0 t1 t2 rc=0 src=0 e="?" m="?" last
  sync
  t0=$EPOCHREALTIME
  bg_wait /usr/bin/time -f '%e %M' -o "$tf" bash -o pipefail -c "$cmd" >"$LOGS/$step.$tool.$run.out" 2>"$ef" || rc=$?
  t1=$EPOCHREALTIME
  last=$(tail -n 1 "$tf" 2>/dev/null || true)
  if [[ $last =~ ^([0-9.]+)\ ([0-9]+)$ ]]; then e=${BASH_REMATCH[1]}; m=${BASH_REMATCH[2]}; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$step" "$tool" "$run" $((${t1/./} - ${t0/./})) "$e" "$m" "$rc" >>"$RAW"
  if [ -n "$synccmd" ] && [ "$rc" -eq 0 ]; then
    bg_wait bash -c "$synccmd" 2>>"$ef" || src=$?
    t2=$EPOCHREALTIME
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$step" "${tool}_sync" "$run" $((${t2/./} - ${t0/./})) "?" "$m" "$src" >>"$RAW"
  fi
  if [ "$rc" -ne 0 ]; then
    FAILED_ANY=1
    log "FAILED ($rc): $step/$tool run $run: $cmd"
    sed 's/^/    /' "$ef" | head -n 20 >&2
    note "$step / $tool run $run exited $rc: $(head -n 3 "$ef" | tr '\n' ' ')"
  fi
  printf '  %-20s %-12s run %s: %6.3f s  %s KiB%s%s\n' "$step" "$tool" "$run" \
    "$(awk -v a="${t0/./}" -v b="${t1/./}" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')" "$m" \
    "$([ "$rc" -eq 0 ] || echo "  exit $rc")" \
    "$([ -z "${t2:-}" ] || awk -v a="${t1/./}" -v b="${t2/./}" 'BEGIN { printf "  (+ %.3f s sync)", (b - a) / 1e6 }')" >&2
}

# Each step defines prep_<tool> RUN (untimed, may be empty) and cmd_<tool> RUN (prints the
# command) and post_<tool> RUN (untimed). run_step runs a warm-up (run 0) and RUNS
# measured runs, rotating the tool order every run to spread the noise.
run_step() {
  local step=$1; shift
  local tools=("$@") n=${#@} run i k tool
  settle
  log "step $step: tools ${tools[*]}, 1 warm-up + $RUNS runs"
  for ((run = 0; run <= RUNS; run++)); do
    for ((i = 0; i < n; i++)); do
      k=$(((i + run) % n))
      tool=${tools[$k]}
      "prep_${step//-/_}_$tool" "$run"
      local synccmd=""
      if declare -F "sync_${step//-/_}_$tool" >/dev/null; then synccmd=$("sync_${step//-/_}_$tool" "$run"); fi
      run_timed "$step" "$tool" "$run" "$("cmd_${step//-/_}_$tool" "$run")" "$synccmd"
      "post_${step//-/_}_$tool" "$run"
    done
  done
}
q() { printf '%q' "$1"; }   # shell-quote a path for the bash -c strings
QSTATE=$(printf '%q ' "${STATE[@]}")

# ---- snapshot
prep_snapshot_co() { rm -f "$OUT" "$OUT.sha256"; }
cmd_snapshot_co() { echo "exec $(q "$CO") snapshot $(q "$PACK") -o $(q "$OUT") -q"; }
post_snapshot_co() { :; }
prep_snapshot_tarzstd() { rm -f "$X"; }
cmd_snapshot_tarzstd() { echo "cd $(q "$PACK") && tar -cf - $QSTATE | zstd -T0 -3 -q -o $(q "$X")"; }
post_snapshot_tarzstd() { :; }
sync_snapshot_tarzstd() { echo "sync $(q "$X") $(q "$OUTD")"; }   # fsync the archive and its dir
prep_snapshot_tarzstd_sha() { rm -f "$X2" "$PSUMS"; }
cmd_snapshot_tarzstd_sha() {
  echo "cd $(q "$PACK") && tar -cf - $QSTATE | zstd -T0 -3 -q -o $(q "$X2") && find $QSTATE -type f -print0 | xargs -0 sha256sum > $(q "$PSUMS")"
}
post_snapshot_tarzstd_sha() { :; }

make_archives_untimed() {
  log "making the archives (untimed)"
  rm -f "$OUT" "$OUT.sha256" "$X"
  bg_wait "$CO" snapshot "$PACK" -o "$OUT" -q || die "carryover snapshot failed (exit $?)"
  bg_wait bash -o pipefail -c 'cd "$1" && x=$2 && shift 2 && tar -cf - "$@" | zstd -T0 -3 -q -o "$x"' _ "$PACK" "$X" "${STATE[@]}" \
    || die "tar | zstd failed"
}

# ---- verify
prep_verify_co() { :; }
cmd_verify_co() { echo "exec $(q "$CO") verify $(q "$OUT") -q"; }
post_verify_co() { :; }
prep_verify_zstd_dc() { :; }
cmd_verify_zstd_dc() { echo "zstd -dcq $(q "$OUT") > /dev/null"; }
post_verify_zstd_dc() { :; }
prep_verify_extract_sha() { mkdir -p "$SCRATCH/verify-x.$1"; }
cmd_verify_extract_sha() {
  echo "zstd -dcq $(q "$X") | tar -x -C $(q "$SCRATCH/verify-x.$1") && cd $(q "$SCRATCH/verify-x.$1") && sha256sum -c --quiet $(q "$SUMS")"
}
post_verify_extract_sha() { trash "$SCRATCH/verify-x.$1"; }

# ---- transplant (NEW copies are all made before the step's timing starts)
new_copy() { bg_wait cp -a "$TPL" "$1"; }
prep_transplant_archive_co() { :; }
cmd_transplant_archive_co() { echo "exec $(q "$CO") transplant $(q "$OUT") $(q "$SCRATCH/ta-co.$1") -q"; }
post_transplant_archive_co() { check_transplant "$SCRATCH/ta-co.$1" "$1" archive; trash "$SCRATCH/ta-co.$1"; }
prep_transplant_archive_extract_sha() { :; }
cmd_transplant_archive_extract_sha() {
  echo "zstd -dcq $(q "$X") | tar -x -C $(q "$SCRATCH/ta-x.$1") && cd $(q "$SCRATCH/ta-x.$1") && sha256sum -c --quiet $(q "$SUMS")"
}
post_transplant_archive_extract_sha() { trash "$SCRATCH/ta-x.$1"; }
sync_transplant_archive_extract_sha() { echo "sync -f $(q "$SCRATCH/ta-x.$1")"; }   # syncfs
prep_transplant_pack_co() { :; }
cmd_transplant_pack_co() { echo "exec $(q "$CO") transplant $(q "$PACK") $(q "$SCRATCH/tp-co.$1") -q"; }
post_transplant_pack_co() { check_transplant "$SCRATCH/tp-co.$1" "$1" pack; trash "$SCRATCH/tp-co.$1"; }
prep_transplant_pack_cp() { :; }
cmd_transplant_pack_cp() { echo "cd $(q "$PACK") && cp -a --parents $QSTATE $(q "$SCRATCH/tp-cp.$1")/"; }
post_transplant_pack_cp() { trash "$SCRATCH/tp-cp.$1"; }
sync_transplant_pack_cp() { echo "sync -f $(q "$SCRATCH/tp-cp.$1")"; }   # syncfs

# Untimed correctness check of carryover's transplant output (warm-up run only: it costs a
# full sha256sum -c of the state).
check_transplant() {
  local dir=$1 run=$2 from=$3
  [ "$run" = 0 ] || return 0
  [ -d "$dir" ] || { note "transplant from $from: $dir missing after the warm-up run"; return 0; }
  if (cd "$dir" && sha256sum -c --quiet "$SUMS" >"$LOGS/check-transplant-$from.log" 2>&1); then
    log "transplant from $from: warm-up output has every STATE file with the right bytes"
  else
    note "transplant from $from: warm-up output FAILED sha256sum -c of the STATE files ($(grep -c FAILED "$LOGS/check-transplant-$from.log" || true) lines FAILED; see $LOGS/check-transplant-$from.log)"
  fi
}

make_new_copies() {   # PREFIX...: one NEW copy per run (warm-up included) for each prefix
  local p run
  need_space $(((RUNS + 1) * $# * (NONSTATE_BYTES + STATE_BYTES))) "transplant ($*)"
  for p in "$@"; do
    for ((run = 0; run <= RUNS; run++)); do new_copy "$SCRATCH/$p.$run"; done
  done
  sync
}

# ---------------------------------------------------------------- run the steps
NOT_RUN=()
SKIPPED=()
if [ "$DO_SNAPSHOT" = 1 ]; then
  need_space $((3 * STATE_BYTES)) snapshot
  run_step snapshot co tarzstd tarzstd_sha
else
  NOT_RUN+=(snapshot)
fi
if [ "$DO_VERIFY" = 1 ] || [ "$DO_TRANSPLANT" = 1 ]; then
  if [ "$DO_SNAPSHOT" != 1 ] || [ ! -s "$OUT" ] || [ ! -s "$X" ]; then make_archives_untimed; fi
  [ -s "$OUT" ] && [ -s "$X" ] || die "archives missing after the snapshot step (see $LOGS)"
  # SUMS: sha256sum of the files extracted from X (made once, untimed)
  need_space "$STATE_BYTES" "SUMS extraction"
  mkdir -p "$SCRATCH/sums-x"
  zstd -dcq "$X" | tar -x -C "$SCRATCH/sums-x"
  (cd "$SCRATCH/sums-x" && find "${STATE[@]}" -type f -print0 | sort -z | xargs -0 sha256sum) >"$SUMS"
  trash "$SCRATCH/sums-x"
  [ "$(wc -l <"$SUMS")" -eq "$STATE_FILES" ] || note "SUMS has $(wc -l <"$SUMS") lines but the pack's STATE has $STATE_FILES files"
  if [ -s "$PSUMS" ]; then
    if cmp -s <(sort "$PSUMS") <(sort "$SUMS"); then
      log "sanity: sha256sum of the pack == sha256sum of the extracted baseline archive"
    else
      note "sanity check FAILED: sha256sums from the pack differ from those of the extracted baseline archive"
    fi
  fi
fi
if [ "$DO_VERIFY" = 1 ]; then
  purge_if_big "before verify"
  need_space $(((RUNS + 1) * STATE_BYTES)) verify
  run_step verify co zstd_dc extract_sha
else
  NOT_RUN+=(verify)
fi

if [ "$DO_TRANSPLANT" = 1 ]; then
  if "$CO" transplant --help >/dev/null 2>&1; then
    purge_if_big "before transplant"
    log "building the NEW template (the pack with its state paths emptied)"
    trash "$TPL"
    mkdir -p "$TPL"
    excludes=()
    for p in "${STATE[@]}"; do excludes+=("--exclude=./$p/*"); done
    (cd "$PACK" && tar -cf - "${excludes[@]}" .) | tar -xf - -C "$TPL"
    for p in "${STATE[@]}"; do
      [ -d "$TPL/$p" ] && [ -z "$(ls -A "$TPL/$p")" ] || die "template: $p is not an empty dir"
    done
    make_new_copies ta-co ta-x
    run_step transplant-archive co extract_sha
    purge_if_big "before transplant-from-pack"
    make_new_copies tp-co tp-cp
    run_step transplant-pack co cp
  else
    echo "transplant: not available, skipped"
    log "transplant: not available, skipped ('$CO transplant --help' fails)"
    note "transplant: not available, skipped (\`carryover transplant --help\` exits non-zero)"
    SKIPPED+=(transplant-archive transplant-pack)
    meta skip_reason_transplant-archive "\`carryover transplant\` not available"
    meta skip_reason_transplant-pack "\`carryover transplant\` not available"
  fi
else
  NOT_RUN+=(transplant-archive transplant-pack)
fi

# The pack must come out untouched (it is reused with --keep): look for any change since the stamp.
if [ -n "$(find "$PACK" -cnewer "$WORK/pack.stamp" -print -quit)" ]; then
  note "the pack changed during the run (e.g. $(find "$PACK" -cnewer "$WORK/pack.stamp" -print -quit)); its stamp was removed so the next --keep run regenerates it"
  rm -f "$WORK/pack.stamp"
fi

# ---------------------------------------------------------------- sizes, selection, report
SELMD=""
if [ -s "$OUT" ] && [ -s "$X" ]; then
  meta size_carryover "$(stat -c %s "$OUT")"
  meta size_baseline "$(stat -c %s "$X")"
  [ -f "$OUT.sha256" ] && meta size_carryover_sidecar "$(stat -c %s "$OUT.sha256")"
  log "comparing carryover's selection with the baseline's STATE"
  python3 "$LIB/selection.py" "$OUT" "$X" --md "$WORK/selection.md" --kv "$WORK/selection.tsv"
  cat "$WORK/selection.tsv" >>"$META"
  SELMD=$WORK/selection.md
  if [ "$(stat -c %s "$OUT")" -gt "$(stat -c %s "$X")" ]; then
    note "carryover's archive is larger than the baseline's ($(stat -c %s "$OUT") > $(stat -c %s "$X") B)"
  fi
fi
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta not_run_steps "$(IFS=,; echo "${NOT_RUN[*]}")"
meta skipped_steps "$(IFS=,; echo "${SKIPPED[*]}")"
[ "$FAILED_ANY" = 0 ] || note "some timed commands failed; their logs are in $LOGS (use --keep to keep them)"
[ -n "$KEEP" ] && note "work dir kept: $WORK (raw.tsv, meta.tsv, logs/, out/)"

mkdir -p "$HERE/results"
echo
python3 "$LIB/report.py" --raw "$RAW" --meta "$META" --notes "$NOTES" --out "$HERE/results/latest.md" \
  ${SELMD:+--selection "$SELMD"}
cp "$RAW" "$HERE/results/latest-raw.tsv"
echo
log "report written to $HERE/results/latest.md (raw rows: $HERE/results/latest-raw.tsv)"
COMPLETED=1
