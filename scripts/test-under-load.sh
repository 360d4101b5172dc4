#!/usr/bin/env bash
# The whole suite N times in a row (default 3) while stress-ng loads every core, each run in a fresh
# clone of this checkout's HEAD, as CI runs it (CI=true bash scripts/test.sh). Its own command, not part
# of the suite: about 30 minutes a run on 2 cores. Results: a line a run in $OUT/summary.log (the pytest
# summary, seconds, load average, and whether stress-ng was still on), each run's output beside it.
#
#   bash scripts/test-under-load.sh [N]        OUT=/tmp/berth-under-load by default
set -uo pipefail
runs=${1:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp/berth-under-load}
commit=$(git -C "$repo" rev-parse HEAD)
mkdir -p "$out"
command -v stress-ng >/dev/null || apt-get install -y -q stress-ng >/dev/null
stress-ng --cpu "$(nproc)" --timeout 0 >"$out/stress-ng.log" 2>&1 &
load=$!
trap 'kill $load 2>/dev/null' EXIT
echo "start $(date -u +%FT%TZ) commit ${commit:0:7}, stress-ng --cpu $(nproc)" | tee -a "$out/summary.log"
failed=0
for i in $(seq 1 "$runs"); do
  dir=$(mktemp -d /tmp/berth-under-load-XXXXXX)
  git clone -q "$repo" "$dir" && git -C "$dir" checkout -q "$commit"
  start=$(date +%s)
  (cd "$dir" && CI=true bash scripts/test.sh >"$out/run-$i.log" 2>&1)
  rc=$?
  [ $rc -eq 0 ] || failed=1
  summary=$(grep -E '^=+ .*(passed|failed|error)' "$out/run-$i.log" | tail -1)
  on=$(kill -0 $load 2>/dev/null && echo on || echo OFF)
  echo "run $i: rc=$rc $(( $(date +%s) - start )) s; $summary; load $(cut -d' ' -f1-3 /proc/loadavg); stress-ng $on" \
    | tee -a "$out/summary.log"
  rm -rf "$dir"
done
exit $failed
