#!/usr/bin/env bash
# Issue #24.6's memory test: IDS distinct device ids (default 2 000 000, one reading each)
# through `sluice run` (gateway, embedded Kafka, router) whose rules send every reading to a
# compliance tracker and an alert sink at their default limits (max_devices 1 000 000,
# max_keys 100 000). Prints the process's peak resident memory, the compliance checkpoint
# times, what was refused, and how long a restart takes to show the tracked fleet again; exits
# 1 when a bound README states is missed (BOUND_RSS_MIB, BOUND_CHECKPOINT_S, BOUND_RESTORE_S).
#
#   bench/state_bounds.sh                    # IDS=2000000 RATE=15000
#   IDS=200000 bench/state_bounds.sh         # a quick look
source "$(dirname "$0")/lib.sh"
IDS=${IDS:-2000000}
RATE=${RATE:-15000}
BOUND_RSS_MIB=${BOUND_RSS_MIB:-1792}
BOUND_CHECKPOINT_S=${BOUND_CHECKPOINT_S:-2.5}
BOUND_RESTORE_S=${BOUND_RESTORE_S:-120}
loopback_config
cat >>"$work/sluice.toml" <<TOML

[[rules]]
name = "reports"
sql = "SELECT model, version FROM telemetry"
actions = ["updates"]

[[rules]]
name = "hot"
sql = "SELECT temp FROM telemetry WHERE temp > 0"
actions = ["pager"]

[sinks.updates]
type = "compliance"
updates = [{ id = "cam-1.10", version = "1.10", models = ["cam"] }]

[sinks.pager]
type = "alert"
resolve_after_ms = 3600000
destinations = [{ type = "kafka" }]
TOML
api() { curl -fs "http://127.0.0.1:$hport$1"; }
start() {
  SLUICE_LOG=warn "$BIN" run --config "$work/sluice.toml" >>"$work/sluice.log" 2>&1 &
  spid=$!
  for _ in $(seq 1 3000); do api /readyz >/dev/null 2>&1 && return; sleep 0.1; done
  echo "not ready in 300 s" >&2
  exit 1
}
# Peak resident memory of the process, sampled every second into $work/rss.
watch_rss() {
  while kill -0 "$spid" 2>/dev/null; do
    awk '/VmRSS/ {print $2}' "/proc/$spid/status" >>"$work/rss" 2>/dev/null || true
    sleep 1
  done
}
tracked() { api '/compliance?devices=false' | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"]["devices"])' 2>/dev/null || echo 0; }

start
watch_rss &
secs=$(( (IDS + RATE - 1) / RATE ))
"$BIN" loadtest --profile "steady:$RATE:$secs" --devices "$IDS" --max-messages "$IDS" \
  --field model=choice:cam --field version=choice:1.9,1.10 --field temp=uniform:1:100 \
  --broker "127.0.0.1:$gport" --kafka "127.0.0.1:$kport" --drain-secs 60 \
  --report "$work/load.json" | grep -E "^(sent|in Kafka)" || true
want=$(( IDS < 1000000 ? IDS : 1000000 ))
for _ in $(seq 1 600); do
  [ "$(tracked)" -ge "$want" ] && break
  sleep 1
done
sleep 12 # two more checkpoints (5 s commit interval): the checkpoint after the last new ids
metrics=$(api /metrics)
kill -TERM "$spid"; wait "$spid" || true
peak_kib=$(sort -n "$work/rss" | tail -1)

restart_started=$(date +%s.%N)
start
until [ "$(tracked)" -ge "$want" ]; do
  sleep 0.2
  python3 -c "import sys,time; sys.exit(time.time() - $restart_started > $BOUND_RESTORE_S)" || break
done
restored_in=$(python3 -c "import time; print(round(time.time() - $restart_started, 1))")
after_restart=$(tracked)
kill -TERM "$spid"; wait "$spid" || true

python3 - "$IDS" "$want" "$peak_kib" "$restored_in" "$after_restart" \
  "$BOUND_RSS_MIB" "$BOUND_CHECKPOINT_S" "$BOUND_RESTORE_S" <<PY
import sys
ids, want, peak_kib, restored_in, after, b_rss, b_ckpt, b_restore = sys.argv[1:]
metrics = """$metrics"""
def value(name, label=""):
    for line in metrics.splitlines():
        if line.startswith(name) and label in line and not line.startswith("#"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
n = value("sluice_compliance_checkpoint_seconds_count")
total = value("sluice_compliance_checkpoint_seconds_sum")
slowest = value("sluice_compliance_checkpoint_seconds{", 'quantile="1"')
rss_mib = int(peak_kib) / 1024
print(f"ids {int(ids):,}: tracked {int(want):,}, refused {value('sluice_compliance_reports_refused_total'):,.0f} "
      f"(max_devices); alert keys refused {value('sluice_alert_keys_refused_total'):,.0f} (max_keys)")
print(f"peak resident memory {rss_mib:,.0f} MiB (bound {b_rss})")
print(f"compliance checkpoints {n:.0f}: mean {total / max(n, 1):.3f} s, slowest {slowest:.3f} s (bound {b_ckpt})")
print(f"restart: {int(after):,} devices shown after {restored_in} s (bound {b_restore})")
ok = rss_mib <= float(b_rss) and slowest <= float(b_ckpt) and int(after) >= int(want) \
    and float(restored_in) <= float(b_restore)
print("bounds held" if ok else "A BOUND WAS MISSED")
sys.exit(0 if ok else 1)
PY
