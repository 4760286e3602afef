#!/usr/bin/env bash
# Starts or stops a Kafka-protocol broker (Tansu) on a loopback port for the
# `kafka` feature's tests. Installs Tansu with cargo if it is missing (about
# 8 minutes on 2 cores, once per machine).
#
#   scripts/kafka-broker.sh start   # prints nothing; writes the pid file
#   scripts/kafka-broker.sh stop
#
# The tests read MILLPOND_KAFKA_BOOTSTRAP (default 127.0.0.1:19092 here).
set -euo pipefail
PORT="${MILLPOND_KAFKA_PORT:-19092}"
STATE_DIR="${TMPDIR:-/tmp}/millpond-kafka-broker"
PID_FILE="$STATE_DIR/tansu.pid"
LOG_FILE="$STATE_DIR/tansu.log"

ensure_installed() {
    if ! command -v tansu >/dev/null 2>&1; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v tansu >/dev/null 2>&1; then
        echo "installing tansu 0.6.0 (once per machine)..." >&2
        cargo install tansu --version 0.6.0 --locked --features dynostore >&2
    fi
}

wait_for_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "tansu did not open port $PORT; its log:" >&2
    cat "$LOG_FILE" >&2 || true
    return 1
}

case "${1:-}" in
start)
    ensure_installed
    mkdir -p "$STATE_DIR"
    "$0" stop || true
    nohup tansu broker \
        --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" \
        --storage-engine "memory://tansu/" >"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
    wait_for_port
    ;;
stop)
    # Returns once the broker is gone (SIGTERM, then SIGKILL after 10 s),
    # so a caller can rely on it no longer answering.
    if [ -f "$PID_FILE" ]; then
        pid="$(cat "$PID_FILE")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$PID_FILE"
    fi
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
