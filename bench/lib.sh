# What every bench script shares (sourced, not run): strict mode, the sluice binary, a scratch
# directory removed at exit with every background job stopped, and a free loopback port.
set -euo pipefail
BIN=${SLUICE_BIN:-${CARGO_TARGET_DIR:-/var/tmp/sluice-target}/release/sluice}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# An all-in-one config on fresh loopback ports, written to $work/sluice.toml; the ports are left
# in gport (MQTT gateway), kport (embedded Kafka) and hport (HTTP API). Append rules after it.
loopback_config() {
  gport=$(port) kport=$(port) hport=$(port)
  printf 'data_dir = "%s/data"\n[embedded]\nmqtt_listen = "127.0.0.1:%s"\nkafka_listen = "127.0.0.1:%s"\n[http]\nlisten = "127.0.0.1:%s"\n' \
    "$work" "$gport" "$kport" "$hport" >"$work/sluice.toml"
}
