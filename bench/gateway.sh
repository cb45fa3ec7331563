#!/usr/bin/env bash
# Load test of the llm-tower gateway on loopback.
#
#   bash bench/gateway.sh            # 10 s per run
#   DURATION=5 bash bench/gateway.sh
#   WORKERS=1 bash bench/gateway.sh  # the gateway on a single-threaded runtime (--workers 1)
#
# Builds the release binary, then for each target runs wrk at 1 and 64 connections,
# non-streaming and streaming chat completions:
#   (a) the gateway over the mock provider;
#   (b) the gateway over an OpenAI-compatible upstream (nginx from Debian returning a
#       fixed chat completion / a fixed SSE stream), and that upstream called directly,
#       to get the latency the gateway adds.
# Both gateway configs have rate limits (a per-caller leaky bucket, a per-provider token
# bucket in wait mode), token counting and cost tracking (prices, a global budget) on, and
# log at `warn` (at `info` every request logs a line).
#
# Reports requests/s, p50/p99 latency, the gateway's CPU time per request (utime+stime
# from /proc/<pid>/stat before/after a run, divided by the requests) and its peak RSS
# (VmHWM). Needs wrk and nginx (`apt-get install -y wrk nginx-light`; installed when
# missing and running as root). Loopback only; every run is bounded.
set -euo pipefail

DURATION="${DURATION:-10}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/llm-tower-bench.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

need() {
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$1" ]; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null
    else
      echo "missing $1: apt-get install -y $2" >&2; exit 1
    fi
  fi
}
need wrk wrk
need nginx nginx-light
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

echo "building the release binary..."
(cd "$ROOT" && cargo build --release -q -p llm-tower-gateway --bin llm-tower)
BIN="$ROOT/target/release/llm-tower"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---- the upstream: nginx with a fixed JSON completion and a fixed SSE stream -------------
UP_PORT="$(free_port)"
CHAT_JSON='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"the model answers with tokens through the tower layer service request stream budget limit retry provider gateway latency cost window bucket caller prompt reply cache count exact."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":32,"total_tokens":52}}'
SSE=""
CHUNK_HEAD='data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":'
SSE+="${CHUNK_HEAD}{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
# 12 content chunks: nginx limits one `return` string to 4 KiB.
for w in the model answers with tokens through the tower layer service request stream; do
  SSE+="${CHUNK_HEAD}{\"content\":\" $w\"},\"finish_reason\":null}]}\n\n"
done
SSE+="${CHUNK_HEAD}{},\"finish_reason\":\"stop\"}]}\n\n"
SSE+='data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":12,"total_tokens":32}}\n\n'
SSE+='data: [DONE]\n\n'
esc() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
mkdir -p "$WORK/nginx/logs"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP_PORT;
    location = /json/v1/chat/completions {
      default_type application/json;
      return 200 '$(esc "$CHAT_JSON")';
    }
    location = /sse/v1/chat/completions {
      default_type text/event-stream;
      return 200 '$(printf '%b' "$SSE" | sed -e "s/'/\\\\'/g")';
    }
  }
}
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)

# ---- gateway configs ------------------------------------------------------------------------
COMMON_LIMITS='
  "rate_limits": [
    { "name": "per_caller", "algorithm": "leaky_bucket", "rate": 100000000, "per": "1m",
      "burst": 1000000, "key": "caller", "mode": "reject", "scope": "caller" },
    { "name": "provider_tpm", "algorithm": "leaky_bucket", "rate": 100000000000, "per": "1m",
      "burst": 1000000000, "unit": "tokens", "key": "provider", "mode": "wait",
      "max_wait": "1s", "scope": "provider" }
  ],
  "retry": { "max_retries": 2, "base": "100ms", "max": "1s" },
  "budgets": [ { "name": "daily", "scope": "global", "period": "day", "limit_usd": "1000000" } ],
  "store": { "type": "memory" },
  "logging": { "format": "json", "level": "warn" }'
PRICE='"price": { "input": "0.15", "cached_input": "0.075", "output": "0.60" }, "tokenizer": "o200k_base"'
cat > "$WORK/mock.json" <<EOF
{
  "providers": { "mock": { "type": "mock", "reply": { "lorem": 24 }, "models": { "gpt-4o-mini": { $PRICE } } } },
  "routes": { "chat": ["mock/gpt-4o-mini"], "chat-stream": ["mock/gpt-4o-mini"] },
  $COMMON_LIMITS
}
EOF
# The same with a model without an exact tokenizer: no tokenizer tables in memory.
HEUR_PRICE='"price": { "input": "0.15", "output": "0.60" }, "tokenizer": "heuristic"'
cat > "$WORK/mock-heuristic.json" <<EOF
{
  "providers": { "mock": { "type": "mock", "reply": { "lorem": 24 }, "models": { "local-model": { $HEUR_PRICE } } } },
  "routes": { "chat": ["mock/local-model"], "chat-stream": ["mock/local-model"] },
  $COMMON_LIMITS
}
EOF
cat > "$WORK/upstream.json" <<EOF
{
  "providers": {
    "upjson": { "type": "openai_compatible", "base_url": "http://127.0.0.1:$UP_PORT/json/v1", "models": { "gpt-4o-mini": { $PRICE } } },
    "upsse": { "type": "openai_compatible", "base_url": "http://127.0.0.1:$UP_PORT/sse/v1", "models": { "gpt-4o-mini": { $PRICE } } }
  },
  "routes": { "chat": ["upjson/gpt-4o-mini"], "chat-stream": ["upsse/gpt-4o-mini"] },
  $COMMON_LIMITS
}
EOF
"$BIN" check-config "$WORK/mock.json" >/dev/null
"$BIN" check-config "$WORK/upstream.json" >/dev/null

# ---- wrk scripts ---------------------------------------------------------------------------
for kind in plain stream; do
  if [ $kind = plain ]; then
    BODY='{"model":"chat","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say something about towers."}],"max_tokens":64}'
  else
    BODY='{"model":"chat-stream","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say something about towers."}],"max_tokens":64}'
  fi
  cat > "$WORK/$kind.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, non2xx))
end
EOF
done

start_gateway() { # config -> sets GW_PID, GW_ADDR
  "$BIN" serve --config "$1" --listen 127.0.0.1:0 ${WORKERS:+--workers "$WORKERS"} >"$WORK/gw.out" 2>"$WORK/gw.err" &
  GW_PID=$!
  PIDS+=("$GW_PID")
  for _ in $(seq 1 100); do
    grep -q 'http://' "$WORK/gw.out" 2>/dev/null && break
    sleep 0.1
  done
  GW_ADDR="$(grep -o 'http://[0-9.:]*' "$WORK/gw.out" | head -1)"
  [ -n "$GW_ADDR" ] || { echo "gateway did not start:"; cat "$WORK/gw.err"; exit 1; }
}
stop_gateway() { kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# run LABEL URL SCRIPT CONNS [PID]
run() {
  local label="$1" url="$2" script="$3" conns="$4" pid="${5:-}"
  local threads=1
  [ "$conns" -gt 1 ] && threads=2
  local before=0 after=0
  [ -n "$pid" ] && before="$(cpu_ticks "$pid")"
  local out
  out="$(wrk -t"$threads" -c"$conns" -d"${DURATION}s" --timeout 10s -s "$WORK/$script.lua" "$url" | grep '^RESULT')"
  [ -n "$pid" ] && after="$(cpu_ticks "$pid")"
  eval "$(echo "$out" | sed 's/^RESULT //')"
  local rps=$((requests * 1000000 / duration_us))
  local cpu="-"
  if [ -n "$pid" ] && [ "$requests" -gt 0 ]; then
    cpu=$(( (after - before) * TICK_US / requests ))
  fi
  printf "%-34s %4d %10d %9d %9d %9s %6d\n" "$label" "$conns" "$rps" "$p50_us" "$p99_us" "$cpu" "$((errors + non2xx))"
  eval "P50_${6:-x}=$p50_us"
}

header() {
  printf "%-34s %4s %10s %9s %9s %9s %6s\n" "run" "conn" "req/s" "p50_us" "p99_us" "cpu_us/r" "errors"
}

echo
echo "== (a) gateway over the mock provider (${DURATION}s per run) =="
start_gateway "$WORK/mock.json"
wrk -t1 -c4 -d2s -s "$WORK/plain.lua" "$GW_ADDR/v1/chat/completions" >/dev/null # warm-up
header
run "mock chat" "$GW_ADDR/v1/chat/completions" plain 1 "$GW_PID"
run "mock chat" "$GW_ADDR/v1/chat/completions" plain 64 "$GW_PID"
run "mock chat stream" "$GW_ADDR/v1/chat/completions" stream 1 "$GW_PID"
run "mock chat stream" "$GW_ADDR/v1/chat/completions" stream 64 "$GW_PID"
echo "gateway peak RSS (VmHWM): $(( $(hwm_kb "$GW_PID") / 1024 )) MiB (o200k_base tables included)"
stop_gateway

echo
echo "== (a') the same, model with the heuristic tokenizer (no exact tokenizer tables loaded) =="
start_gateway "$WORK/mock-heuristic.json"
wrk -t1 -c4 -d2s -s "$WORK/plain.lua" "$GW_ADDR/v1/chat/completions" >/dev/null # warm-up
header
run "mock chat (heuristic)" "$GW_ADDR/v1/chat/completions" plain 64 "$GW_PID"
run "mock chat stream (heuristic)" "$GW_ADDR/v1/chat/completions" stream 64 "$GW_PID"
echo "gateway peak RSS (VmHWM): $(( $(hwm_kb "$GW_PID") / 1024 )) MiB"
stop_gateway

echo
echo "== (b) OpenAI-compatible upstream (nginx, fixed response) direct and through the gateway =="
start_gateway "$WORK/upstream.json"
UP="http://127.0.0.1:$UP_PORT"
wrk -t1 -c4 -d2s -s "$WORK/plain.lua" "$GW_ADDR/v1/chat/completions" >/dev/null # warm-up
header
run "upstream direct" "$UP/json/v1/chat/completions" plain 1 "" direct1
run "gateway -> upstream" "$GW_ADDR/v1/chat/completions" plain 1 "$GW_PID" gw1
run "upstream direct" "$UP/json/v1/chat/completions" plain 64 ""
run "gateway -> upstream" "$GW_ADDR/v1/chat/completions" plain 64 "$GW_PID"
run "upstream direct stream" "$UP/sse/v1/chat/completions" stream 1 "" sdirect1
run "gateway -> upstream stream" "$GW_ADDR/v1/chat/completions" stream 1 "$GW_PID" sgw1
run "upstream direct stream" "$UP/sse/v1/chat/completions" stream 64 ""
run "gateway -> upstream stream" "$GW_ADDR/v1/chat/completions" stream 64 "$GW_PID"
echo "gateway peak RSS (VmHWM): $(( $(hwm_kb "$GW_PID") / 1024 )) MiB (o200k_base tables included)"
echo "added p50 latency at 1 connection: $((P50_gw1 - P50_direct1)) us (non-streaming), $((P50_sgw1 - P50_sdirect1)) us (streaming)"
stop_gateway
