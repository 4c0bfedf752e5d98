#!/usr/bin/env bash
# Starts the local AWS emulator on a free loopback port, in the background.
# Prints `export` lines for the caller to eval; the emulator's pid is in $KEYRITE_EMULATOR_PID.
#   eval "$(scripts/emulator.sh start)"   ...   scripts/emulator.sh stop
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
case "${1:-start}" in
  start)
    "$root/scripts/install-emulator.sh" >&2
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log="${TMPDIR:-/tmp}/keyrite-emulator-$port.log"
    # AWS_ENDPOINT_URL: where the functions it runs call AWS (a provided.* bootstrap, such as
    # the Rust signer, gets only this; its Node.js workers default to the emulator anyway).
    BIND_HOST=127.0.0.1 GATEWAY_PORT=$port AWS_ENDPOINT_URL=http://127.0.0.1:$port SERVICES=kms,iam,sts,lambda,apigateway,s3,logs IOT_MTLS_ENABLED=0 SFTP_ENABLED=0 \
      nohup "$root/.venv/ministack/bin/ministack" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
      if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
      kill -0 "$pid" 2>/dev/null || { echo "emulator exited; see $log" >&2; exit 1; }
      sleep 0.1
    done
    echo "local AWS emulator on 127.0.0.1:$port (pid $pid, log $log)" >&2
    cat <<ENV
export KEYRITE_EMULATOR_PID=$pid
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
ENV
    ;;
  stop)
    [ -n "${KEYRITE_EMULATOR_PID:-}" ] && kill "$KEYRITE_EMULATOR_PID" 2>/dev/null || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
