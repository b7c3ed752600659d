# What every bench script shares (sourced, not run): strict mode, the sluice binary, a scratch
# directory removed at exit with every background job stopped, and a free loopback port.
set -euo pipefail
BIN=${SLUICE_BIN:-${CARGO_TARGET_DIR:-/var/tmp/sluice-target}/release/sluice}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
