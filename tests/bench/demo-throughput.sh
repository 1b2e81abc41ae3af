#!/usr/bin/env bash
# Throughput and memory benchmark: N on-ramp and M off-ramp orders end to end through one
# release-build worker (SQLite, in-process sandbox and webhook receiver, real NATS).
#
#   tests/bench/demo-throughput.sh [ONRAMP=500] [OFFRAMP=0]
#
# Prints the demo's JSON summary, orders per second and the peak RSS of the process.
# Measures; asserts nothing (see README: benchmarks measure, tests assert behaviour).
set -euo pipefail
cd "$(dirname "$0")/../.."
orders="${1:-500}"
offramp="${2:-0}"
cargo build --release -p rampd --quiet
out=$(mktemp)
/usr/bin/time -v ./target/release/rampd demo --onramp "$orders" --offramp "$offramp" --json --timeout-secs 600 2>"$out" | tail -n 1 | tee "$out.json"
python3 - "$out" "$out.json" <<'PY'
import json, re, sys
err = open(sys.argv[1]).read()
summary = json.load(open(sys.argv[2]))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
print(f"orders/s: {summary['orders'] / summary['duration_s']:.1f}  "
      f"completed: {summary['completed']}/{summary['orders']}  "
      f"webhooks verified: {summary['webhooks_verified']}/{summary['webhooks_received']}  "
      f"peak RSS: {rss / 1024:.1f} MiB")
PY
rm -f "$out" "$out.json"
