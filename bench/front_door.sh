#!/usr/bin/env bash
# The front door's capacity, side by side in one run, with the same load generator:
#   1. Mosquitto alone: QoS 1 publish-in, PUBACK only, no subscriber (the bare broker);
#   2. Sluice's MQTT gateway into the embedded Kafka broker (PUBACK after Kafka confirmed),
#      with `--baseline` adding a bare rdkafka producer's rate on the same broker.
# Prints each run's table and the gateway ÷ Mosquitto ratio of acknowledged msg/s.
#
#   bench/front_door.sh                      # RATE=150000 SECS=20 DEVICES=1000 CONNECTIONS=8
#   RATE=60000 SECS=10 bench/front_door.sh
#
# Only loopback addresses are used; every run is bounded by SECS and --drain-secs.
source "$(dirname "$0")/lib.sh"
RATE=${RATE:-150000}
SECS=${SECS:-20}
DEVICES=${DEVICES:-1000}
CONNECTIONS=${CONNECTIONS:-8}
load() { "$BIN" loadtest --profile "steady:$RATE:$SECS" --devices "$DEVICES" --connections "$CONNECTIONS" --drain-secs 20 "$@"; }

echo "== Mosquitto alone (QoS 1 publish-in, no subscriber)"
mport=$(port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1000\nmax_queued_messages 0\n' "$mport" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
mpid=$!
sleep 0.5 # mosquitto has no readiness probe; the load test retries its connects anyway
load --broker "127.0.0.1:$mport" --report "$work/mosquitto.json" || true
kill "$mpid"

echo "== Sluice's gateway into the embedded Kafka broker"
loopback_config
SLUICE_LOG=warn "$BIN" run --config "$work/sluice.toml" --only brokers --only ingest &
spid=$!
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$hport/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
load --broker "127.0.0.1:$gport" --kafka "127.0.0.1:$kport" --baseline --config "$work/sluice.toml" \
  --report "$work/gateway.json" || true
kill -TERM "$spid"
wait "$spid" || true

python3 - "$work/mosquitto.json" "$work/gateway.json" <<'EOF'
import json, sys
m, g = (json.load(open(p)) for p in sys.argv[1:3])
rate = lambda r: sum(s["achieved_rate"] * s["secs"] for s in r["stages"]) / sum(s["secs"] for s in r["stages"])
print(f"mosquitto alone: {rate(m):,.0f} msg/s acknowledged (PUBACK p99 {m['puback']['p99_ms']:.1f} ms)")
print(f"gateway:         {rate(g):,.0f} msg/s acknowledged after Kafka (PUBACK p99 {g['puback']['p99_ms']:.1f} ms), lost {g.get('lost')}")
b = g.get("baseline") or {}
if b.get("bare_producer_rate"):
    print(f"bare rdkafka producer on the embedded broker: {b['bare_producer_rate']:,.0f} records/s; gateway burst {b['ingest_rate']:,.0f} msg/s ({b['gateway_ratio']:.2f})")
print(f"gateway / mosquitto: {rate(g) / rate(m):.2f}")
EOF
