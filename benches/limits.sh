#!/usr/bin/env bash
# Per-token budgets across instances (issue #25), measured: one token limited
# to N requests a second, hammered through 4 instances of the demo server
# sharing one PostgreSQL store and one Redis limiter; the accepted rate in
# total, per second, and every answer's RateLimit fields. Then one instance
# is restarted in the middle of a run (the budget lives in Redis), and
# Redis is made unreachable (each instance keeps N / 4).
#
# Usage: benches/limits.sh        (about 2 minutes on 2 cores)
# Knobs: LIMITS_N (default 100), LIMITS_SECS (20), LIMITS_THREADS (8),
#        DATABASE_URL, REDIS_URL. Needs python3. Loopback only.
# Exits non-zero when the steady accepted rate is outside N ± 5 %, a field
# is missing or wrong, or an answer is neither 200 nor 429.
set -euo pipefail
cd "$(dirname "$0")/.."
url="${DATABASE_URL:-postgres://root@127.0.0.1:5432/test}"
redis="${REDIS_URL:-redis://127.0.0.1:6379}"
n=${LIMITS_N:-100}; secs=${LIMITS_SECS:-20}; threads=${LIMITS_THREADS:-8}; instances=4
cargo build -q --release -p nuvlyx-api
bin=${CARGO_TARGET_DIR:-target}/release/nuvlyx-api
schema="limits_$$"
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$url" -qAt -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/data"
cli=("$bin" --data-dir "$dir/data" --database-url "$url" --database-schema "$schema")

ports=()
start_instance() { # index, redis url
  local i=$1
  RUST_LOG=warn "$bin" --data-dir "$dir/data" --addr "127.0.0.1:${ports[$i]}" --failed-auth-limit off \
    --rate-limit-redis "$2" --instances "$instances" \
    --database-url "$url" --database-schema "$schema" >"$dir/out$i" 2>"$dir/err$i" &
  pids[$i]=$!
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/${ports[$i]}") 2>/dev/null && return; sleep 0.1; done
  echo "FAIL: instance $i did not start"; cat "$dir/err$i"; exit 1
}
start_all() { # redis url
  for i in $(seq 0 $((instances - 1))); do start_instance "$i" "$1"; done
}
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
for i in $(seq 0 $((instances - 1))); do ports+=($((20000 + RANDOM % 20000))); done
all=$(for p in "${ports[@]}"; do printf 'https://127.0.0.1:%s,' "$p"; done | sed 's/,$//')

start_all "$redis"
token=$("${cli[@]}" tokens create --name "paced bot" --scopes orders:read --rate-limit "$n/s" 2>/dev/null)
echo "limits: one token at $n/s (burst $n), $instances instances, $threads client threads, $(nproc) cores"

run() { # label, seconds
  python3 benches/limits_load.py "$token" "$dir/data/cert.pem" "$all" "$2" "$threads" "$n" 1 | tee "$dir/$1.json"
}
judge() { # label, expected rate
  python3 - "$dir/$1.json" "$2" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); want = float(sys.argv[2]); label = sys.argv[3]
per = r["accepted_per_second"][2:-1]          # the burst second, and the last partial one, left out
steady = sum(per) / len(per)
refused = r["refused"]
print(f"{label}: {steady:.1f} accepted/s in total (want {want:.0f} ± 5 %), per second {per}, "
      f"{refused} answered 429, {r['other']} other, {r['errors']} connection errors")
ok = abs(steady - want) <= 0.05 * want and r["other"] == 0 and not r["bad_fields"] and refused > steady
if r["bad_fields"]:
    print("  wrong fields:", r["bad_fields"])
sys.exit(0 if ok else 1)
PY
}

status=0
echo "== 1. steady: $secs s"
run steady "$secs" >/dev/null
judge steady "$n" || status=1

echo "== 2. one instance restarted in the middle of a run"
# The load runs in the background; the restart happens in this shell, so
# that the new process is the one stopped later.
run restart "$secs" >/dev/null &
load=$!
sleep $((secs / 2))
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
start_instance 0 "$redis"
wait "$load"
judge restart "$n" || status=1

echo "== 3. Redis unreachable: each instance keeps $n / $instances"
stop_all
start_all "redis://127.0.0.1:9"   # nothing listens on the discard port
run unreachable "$secs" >/dev/null
# Each instance keeps its share: the total is N again, unless the client
# spreads its requests unevenly over the instances.
judge unreachable "$n" || status=1
exit $status
