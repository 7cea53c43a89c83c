#!/usr/bin/env bash
# Runs bench/consumer.py with several junction binaries in turn, RUNS rounds, so that
# before and after share whatever the machine is doing at the time, and appends
# everything to OUT. The medians are read from OUT (see docs/benchmarks.md).
#
#   bench/alternate.sh OUT RUNS label=binary [label=binary...] -- [consumer.py arguments]
#
# e.g. bench/alternate.sh /tmp/2proc.txt 5 before=/work/wt/base/build/junction \
#          after=build/junction -- --records 400000 --processes 2
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then
    sed -n '2,10p' "$0" >&2
    exit 2
fi
out=$1 runs=$2
shift 2
bins=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    bins+=("$1")
    shift
done
[ $# -gt 0 ] && shift
for b in "${bins[@]}"; do
    [ -x "${b#*=}" ] || { echo "alternate.sh: ${b#*=} is not an executable" >&2; exit 2; }
done
echo "$(date -u +%FT%TZ) start; ${bins[*]}; args: $*" >>"$out"
for i in $(seq 1 "$runs"); do
    for b in "${bins[@]}"; do
        echo "== run $i ${b%%=*} (${b#*=})" >>"$out"
        JUNCTION_BIN=${b#*=} python3 bench/consumer.py "$@" >>"$out" 2>&1
    done
done
echo "$(date -u +%FT%TZ) end" >>"$out"
# One line per run: the end-to-end rate, the first record, the consumer CPU per record.
awk '/^== run/ {r = $3 " " $4} /^end to end/ {e = $10 " records/s"; c = $(NF - 1) " " $NF}
     /^first record/ {print r ": " e ", first record " $5 " s, consumer " c}' "$out"
