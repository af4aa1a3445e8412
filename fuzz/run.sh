#!/usr/bin/env bash
# Runs the fuzz targets on stable Rust (cargo-fuzz without sanitizer).
# Usage: fuzz/run.sh [RUNS]   (default 10000000 executions per target)
# New corpus entries go to a scratch directory; fuzz/seeds/ is the seed corpus.
set -euo pipefail
cd "$(dirname "$0")"
runs="${1:-10000000}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
scratch="${FUZZ_CORPUS_DIR:-$(mktemp -d)}"
for target in parse_header layer feed_message client_address; do
  mkdir -p "$scratch/$target"
  echo "== $target: $runs runs"
  log="$scratch/$target.log"
  status=0
  cargo fuzz run -s none "$target" "$scratch/$target" "seeds/$target" -- \
    -runs="$runs" -max_len=256 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^Done|stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|panicked" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"
    echo "fuzz target $target failed (exit $status)"
    exit 1
  fi
done
