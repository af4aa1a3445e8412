#!/usr/bin/env bash
# End-to-end load test of the demo API on loopback with wrk: a protected GET
# route (auth + scope check) against its unprotected twin, in one run:
# first in alternating rounds (the order flips every round),
# then in rounds where both routes are loaded at the same time, which
# cancels the machine's drift best on a shared host.
#
# Usage: benches/load.sh [sqlite|postgres]   (DURATION=5s CONNECTIONS=32 ROUNDS=6)
# postgres needs DATABASE_URL. Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-sqlite}"
duration="${DURATION:-5s}"
conns="${CONNECTIONS:-32}"
rounds="${ROUNDS:-6}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p nuvlyx-api
bin=target/release/nuvlyx-api
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
db_args=()
if [ "$mode" = postgres ]; then
  : "${DATABASE_URL:?set DATABASE_URL for the postgres mode}"
  schema="load_$$"
  db_args=(--database-url "$DATABASE_URL" --database-schema "$schema")
fi
RUST_LOG=warn "$bin" --data-dir "$dir" --addr "127.0.0.1:$port" --failed-auth-limit off --unprotected-twin "${db_args[@]}" >"$dir/out" 2>"$dir/err" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
token=$("$bin" tokens create --data-dir "$dir" "${db_args[@]}" --name load --scopes orders:read 2>/dev/null)
base="https://127.0.0.1:$port"

load() { # path connections -> wrk's report
  wrk -t1 -c"$2" -d"$duration" --latency -H "Authorization: Bearer $token" "$base$1"
}
run() { # path [connections] -> "req/s p99 non2xx"
  parse "$(load "$1" "${2:-$conns}")"
}
parse() { # wrk output -> "req/s p99 non2xx"
  local rps p99 bad
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$1")
  p99=$(awk '$1=="99%" {print $2}' <<<"$1")
  bad=$(awk '/Non-2xx/ {print $5}' <<<"$1"); bad=${bad:-0}
  echo "$rps $p99 $bad"
}
median_pct() { sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", 100*m}'; }
pcts() { awk '{printf "%s%.1f%%", (NR>1?" ":""), 100*$1}'; }

echo "mode=$mode connections=$conns duration=$duration rounds=$rounds ($(nproc) cores, server and wrk on one machine)"
printf '%-6s %-28s %12s %10s %8s\n' round route req/s p99 non-2xx
# Odd rounds measure the twin first, even rounds the protected route first,
# so a drift in machine speed during the run hits both routes alike.
ratios=(); sum_p=0; sum_u=0
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then
    read -r up p99u badu < <(run /unprotected/orders)
    read -r pp p99p badp < <(run /api/v1/external/orders)
  else
    read -r pp p99p badp < <(run /api/v1/external/orders)
    read -r up p99u badu < <(run /unprotected/orders)
  fi
  printf '%-6s %-28s %12s %10s %8s\n' "$r" "unprotected twin" "$up" "$p99u" "$badu"
  printf '%-6s %-28s %12s %10s %8s\n' "$r" "protected (auth + scope)" "$pp" "$p99p" "$badp"
  [ "$badp" = 0 ] || { echo "FAIL: $badp non-2xx answers to valid requests"; exit 1; }
  ratios+=("$(awk -v p="$pp" -v u="$up" 'BEGIN{printf "%.4f", p/u}')")
  sum_p=$(awk -v a="$sum_p" -v b="$pp" 'BEGIN{print a+b}')
  sum_u=$(awk -v a="$sum_u" -v b="$up" 'BEGIN{print a+b}')
done
echo "sequential, per round protected / unprotected: $(printf '%s\n' "${ratios[@]}" | pcts)"
echo "sequential, median of the rounds: $(printf '%s\n' "${ratios[@]}" | median_pct)%"
awk -v p="$sum_p" -v u="$sum_u" 'BEGIN{printf "sequential, all requests: %.1f%%\n", 100*p/u}'

# Both routes at the same time, half the connections each: whatever the
# machine does during a round, it does to both routes alike.
echo
echo "concurrent rounds: both routes at once, $((conns / 2)) connections each"
printf '%-6s %-28s %12s %10s %8s\n' round route req/s p99 non-2xx
cratios=()
for r in $(seq 1 "$rounds"); do
  load /unprotected/orders "$((conns / 2))" >"$dir/twin" &
  twin=$!
  read -r pp p99p badp < <(run /api/v1/external/orders "$((conns / 2))")
  wait "$twin"
  read -r up p99u badu < <(parse "$(cat "$dir/twin")")
  printf '%-6s %-28s %12s %10s %8s\n' "$r" "unprotected twin" "$up" "$p99u" "$badu"
  printf '%-6s %-28s %12s %10s %8s\n' "$r" "protected (auth + scope)" "$pp" "$p99p" "$badp"
  [ "$badp" = 0 ] || { echo "FAIL: $badp non-2xx answers to valid requests"; exit 1; }
  cratios+=("$(awk -v p="$pp" -v u="$up" 'BEGIN{printf "%.4f", p/u}')")
done
echo "concurrent, per round protected / unprotected: $(printf '%s\n' "${cratios[@]}" | pcts)"
echo "concurrent, median of the rounds: $(printf '%s\n' "${cratios[@]}" | median_pct)%"
