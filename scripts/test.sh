#!/usr/bin/env bash
# The whole test suite: formatting, lints (every feature, and the facade's layers-only
# build), docs without warnings, and every test of the workspace (unit, doc, README,
# property, whole-stack, gateway over real sockets, Redis multi-instance and fault tests).
# Starts a local Redis on 127.0.0.1:6379 if none answers (installing redis-server with
# apt-get if it is missing) and exports REDIS_URL for the tests that need it.
set -euo pipefail
cd "$(dirname "$0")/.."

redis_ping() {
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG
  else
    timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/6379 && printf "PING\r\n" >&3 && head -c 5 <&3' 2>/dev/null | grep -q PONG
  fi
}

if [ -z "${REDIS_URL:-}" ]; then
  if ! redis_ping; then
    if ! command -v redis-server >/dev/null 2>&1; then
      echo "test.sh: installing redis-server"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
    fi
    echo "test.sh: starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 50); do redis_ping && break; sleep 0.1; done
    redis_ping || { echo "test.sh: redis did not start" >&2; exit 1; }
  fi
  export REDIS_URL="redis://127.0.0.1:6379/"
fi
# The gateway's tests drive the official OpenAI and Anthropic Python SDKs against it; here
# they are installed, so a test that cannot import one fails instead of skipping.
for sdk in openai anthropic; do
  if ! python3 -c "import $sdk" >/dev/null 2>&1; then
    echo "test.sh: installing the $sdk Python SDK for the gateway's SDK tests"
    python3 -m pip install -q "$sdk" >/dev/null 2>&1 || python3 -m pip install -q --break-system-packages "$sdk"
  fi
done
export LLM_TOWER_REQUIRE_SDKS=1

# The Redis tests skip when no server answers; here one does, so a skip is a failure.
export LLM_TOWER_REQUIRE_REDIS=1
echo "test.sh: REDIS_URL=$REDIS_URL"

# A one-shot build: incremental artifacts would only double the disk it needs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

cargo fmt --all -- --check
# Every feature on, so the facade's examples and tests that declare required-features
# build and run; then the facade with the layers only, and the config without Redis.
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo clippy -p llm-tower --no-default-features --all-targets --locked -- -D warnings
cargo clippy -p llm-tower-config --no-default-features --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked
cargo test --workspace --all-features --locked
cargo test -p llm-tower-config --no-default-features --test config --locked
