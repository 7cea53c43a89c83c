#!/usr/bin/env bash
# Session 8's consumer benchmark: before (bb9cff7, the session's start, merge.lua) and after
# (this tree, merge.lua and join.lua), alternating, on a quiet machine.
set -u
cd /work/main
out=docs/results/session8
before=/work/wt/s8base/build/junction
: > $out/consumer-200k.txt
for i in 1 2 3 4 5; do
  echo "## run $i before (bb9cff7, merge.lua)" >> $out/consumer-200k.txt
  JUNCTION_BIN=$before python3 bench/consumer.py --records 200000 2>&1 | grep -v "^== " >> $out/consumer-200k.txt
  echo "## run $i after, merge.lua" >> $out/consumer-200k.txt
  python3 bench/consumer.py --records 200000 --consumer 'merge_script = "scripts/merge.lua"' 2>&1 | grep -v "^== " >> $out/consumer-200k.txt
  echo "## run $i after, join.lua (the default)" >> $out/consumer-200k.txt
  python3 bench/consumer.py --records 200000 2>&1 | grep -v "^== " >> $out/consumer-200k.txt
done
: > $out/consumer-2proc.txt
for i in 1 2 3; do
  echo "## run $i before (bb9cff7, merge.lua)" >> $out/consumer-2proc.txt
  JUNCTION_BIN=$before python3 bench/consumer.py --records 400000 --processes 2 2>&1 | grep -v "^== " >> $out/consumer-2proc.txt
  echo "## run $i after, join.lua" >> $out/consumer-2proc.txt
  python3 bench/consumer.py --records 400000 --processes 2 2>&1 | grep -v "^== " >> $out/consumer-2proc.txt
done
: > $out/consumer-callgrind.txt
echo "## before (bb9cff7, merge.lua)" >> $out/consumer-callgrind.txt
JUNCTION_BIN=$before python3 bench/consumer.py --records 10000 --callgrind 10000 2>&1 | grep callgrind >> $out/consumer-callgrind.txt
echo "## after, merge.lua" >> $out/consumer-callgrind.txt
python3 bench/consumer.py --records 10000 --callgrind 10000 --consumer 'merge_script = "scripts/merge.lua"' 2>&1 | grep callgrind >> $out/consumer-callgrind.txt
echo "## after, join.lua" >> $out/consumer-callgrind.txt
python3 bench/consumer.py --records 10000 --callgrind 10000 2>&1 | grep callgrind >> $out/consumer-callgrind.txt
echo done >> $out/consumer-callgrind.txt
