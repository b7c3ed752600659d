#!/usr/bin/env bash
# The whole pipeline at a steady rate: `sluice run` (gateway, embedded Kafka broker, router
# with the example config's rules and sinks) fed by the load generator, in STEPS stages of
# STEP_SECS each so the peak lag per stage shows whether lag stays flat.
#
#   bench/pipeline.sh                        # RATE=20000 STEPS=5 STEP_SECS=60 DEVICES=1000
#   RATE=10000 STEPS=1 STEP_SECS=30 bench/pipeline.sh
#   FORMAT=sparkplug RATE=10000 STEPS=1 STEP_SECS=30 bench/pipeline.sh   # the fleet as
#       Sparkplug B edge nodes (NBIRTH, then NDATA by alias; a row per metric)
#
# Only loopback addresses are used; the run is bounded by the stages and --drain-secs.
source "$(dirname "$0")/lib.sh"
RATE=${RATE:-20000}
STEPS=${STEPS:-5}
STEP_SECS=${STEP_SECS:-60}
DEVICES=${DEVICES:-1000}
FORMAT=${FORMAT:-json}
here=$(cd "$(dirname "$0")/.." && pwd)
gport=$(port) kport=$(port) hport=$(port)
cp -r "$here/config" "$work/config"
sed -i -e "s/127.0.0.1:1883\"/127.0.0.1:$gport\"/" -e "s/127.0.0.1:9092\"/127.0.0.1:$kport\"/" \
  -e "s/127.0.0.1:9464\"/127.0.0.1:$hport\"/" "$work/config/sluice.toml"
if [ "$FORMAT" = sparkplug ]; then
  printf '\n[[payloads]]\ntopics = "spBv1.0/#"\nformat = "sparkplug"\n' >>"$work/config/sluice.toml"
fi
for i in $(seq 1 "$STEPS"); do
  printf '[[stage]]\nname = "minute-%s"\nrate = %s\nsecs = %s\n' "$i" "$RATE" "$STEP_SECS"
done >"$work/stages.toml"
SLUICE_LOG=warn "$BIN" run --config "$work/config/sluice.toml" &
spid=$!
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$hport/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
"$BIN" loadtest --stages "$work/stages.toml" --devices "$DEVICES" --drain-secs 30 \
  --broker "127.0.0.1:$gport" --kafka "127.0.0.1:$kport" --sluice-url "http://127.0.0.1:$hport" \
  --format "$FORMAT" --report "$work/pipeline.json" || true
curl -fs "http://127.0.0.1:$hport/scaling" | python3 -c 'import json,sys; r=json.load(sys.stdin)["router"]; print("after the drain: router lag", r["lag_total"], "records, consume rate", round(r["consume_rate"]), "/s")'
kill -TERM "$spid"
wait "$spid" || true
