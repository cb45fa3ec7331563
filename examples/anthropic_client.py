"""Call an llm-tower gateway with the official Anthropic Python SDK, unchanged.

The gateway serves Anthropic's Messages API (`POST /v1/messages`,
`POST /v1/messages/count_tokens`) over the same stack as its OpenAI routes, so any model it
serves answers, Claude or not. Start a gateway (the embedded default config serves a mock
provider, no keys needed):

    cargo run -p llm-tower-gateway --release -- serve

then run:

    pip install anthropic
    python3 examples/anthropic_client.py

Environment (all optional): LLM_TOWER_BASE_URL (default http://127.0.0.1:8080: the SDK
adds /v1/messages itself), LLM_TOWER_API_KEY (a gateway key, sent as `x-api-key`; any
string when the gateway requires none), LLM_TOWER_MODEL (default: the first model the
gateway lists), LLM_TOWER_THINKING_MODEL (a model that answers with extended thinking;
the thinking calls are skipped without it).

Claude Code works the same way: ANTHROPIC_BASE_URL=http://127.0.0.1:8080
ANTHROPIC_API_KEY=<gateway key> claude

Errors come back in Anthropic's shape, so the SDK's exception classes work: a rate limit is
`anthropic.RateLimitError` (429, retried by the SDK with the gateway's Retry-After), an
exhausted budget an `anthropic.APIStatusError` with status 402 and type `billing_error`
(not retried), an unknown model `anthropic.NotFoundError`.
"""

import json
import os
import sys
import urllib.request

import anthropic

base_url = os.environ.get("LLM_TOWER_BASE_URL", "http://127.0.0.1:8080").rstrip("/")
api_key = os.environ.get("LLM_TOWER_API_KEY", "sk-llm-tower-demo")
thinking_model = os.environ.get("LLM_TOWER_THINKING_MODEL")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what)


def first_model():
    req = urllib.request.Request(base_url + "/v1/models", headers={"x-api-key": api_key})
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)["data"][0]["id"]


model = os.environ.get("LLM_TOWER_MODEL") or first_model()
client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=2)

# A message.
msg = client.messages.create(
    model=model,
    max_tokens=64,
    system="You are terse.",
    messages=[{"role": "user", "content": "Say something about towers."}],
)
text = "".join(b.text for b in msg.content if b.type == "text")
print("message:", text)
print(
    "usage: input=%d output=%d cache_read=%s cache_write=%s"
    % (
        msg.usage.input_tokens,
        msg.usage.output_tokens,
        msg.usage.cache_read_input_tokens,
        msg.usage.cache_creation_input_tokens,
    )
)
check(msg.type == "message" and msg.role == "assistant", "message shape")
check(msg.id.startswith("msg_"), "message id starts with msg_")
check(bool(text), "message has text")
check(msg.stop_reason in ("end_turn", "max_tokens"), "stop_reason %r" % msg.stop_reason)
check(msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0, "usage is reported")

# A stream: text as it comes, then the whole message.
with client.messages.stream(
    model=model,
    max_tokens=64,
    messages=[{"role": "user", "content": "Stream something about towers."}],
) as stream:
    streamed = "".join(stream.text_stream)
    final = stream.get_final_message()
print("stream:", streamed)
check(bool(streamed), "stream has text")
final_text = "".join(b.text for b in final.content if b.type == "text")
check(final_text == streamed, "final message text equals the streamed text")
check(final.usage.output_tokens > 0, "stream usage is reported")
check(final.stop_reason in ("end_turn", "max_tokens"), "stream stop_reason %r" % final.stop_reason)

# Tools: the model calls one, the result goes back in a second turn.
tools = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": [],
        },
    }
]
question = {"role": "user", "content": "What is the weather in Paris?"}
first = client.messages.create(model=model, max_tokens=64, tools=tools, messages=[question])
calls = [b for b in first.content if b.type == "tool_use"]
print("tool call:", [(c.name, c.input) for c in calls])
check(first.stop_reason == "tool_use", "tool turn stop_reason %r" % first.stop_reason)
check(len(calls) == 1 and calls[0].name == "get_weather", "one get_weather call")
check(calls and isinstance(calls[0].input, dict), "tool input is an object")
if calls:
    second = client.messages.create(
        model=model,
        max_tokens=64,
        tools=tools,
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": calls[0].id, "content": "Sunny, 21 C."}
                ],
            },
        ],
    )
    answer = "".join(b.text for b in second.content if b.type == "text")
    print("after the tool result:", answer)
    check(bool(answer), "an answer after the tool result")

# Extended thinking: the thinking blocks come first, signed, and go back unchanged.
if thinking_model:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    ask = {"role": "user", "content": "What is 2 + 2?"}
    msg = client.messages.create(
        model=thinking_model, max_tokens=256, thinking=thinking, messages=[ask]
    )
    kinds = [b.type for b in msg.content]
    print("thinking blocks:", kinds)
    check(kinds and kinds[0] == "thinking", "thinking comes first")
    check(msg.content[0].signature != "", "the thinking block is signed")
    with client.messages.stream(
        model=thinking_model, max_tokens=256, thinking=thinking, messages=[ask]
    ) as stream:
        final = stream.get_final_message()
    streamed_kinds = [b.type for b in final.content]
    check(streamed_kinds == kinds, "streamed blocks %r == %r" % (streamed_kinds, kinds))
    check(
        final.content[0].thinking == msg.content[0].thinking
        and final.content[0].signature == msg.content[0].signature,
        "streamed thinking and signature equal the message's",
    )
    again = client.messages.create(
        model=thinking_model,
        max_tokens=256,
        thinking=thinking,
        messages=[ask, {"role": "assistant", "content": msg.content}, {"role": "user", "content": "And 3 + 3?"}],
    )
    check(again.type == "message", "a turn after thinking blocks")

# Token counting (no provider call).
count = client.messages.count_tokens(
    model=model,
    system="You are terse.",
    messages=[{"role": "user", "content": "How many tokens is this?"}],
)
print("count_tokens:", count.input_tokens)
check(count.input_tokens > 0, "count_tokens counts")

# Errors in Anthropic's shape.
try:
    client.messages.create(
        model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    check(False, "an unknown model is refused")
except anthropic.NotFoundError as e:
    print("unknown model:", e.status_code, e.body["error"]["type"])
    check(e.body["error"]["type"] == "not_found_error", "not_found_error")

bad = anthropic.Anthropic(base_url=base_url, api_key="sk-wrong", max_retries=0)
try:
    bad.messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    print("note: this gateway requires no key")
except anthropic.AuthenticationError as e:
    print("wrong key:", e.status_code, e.body["error"]["type"])
    check(e.body["error"]["type"] == "authentication_error", "authentication_error")

if failures:
    print("failed: %d check(s): %s" % (len(failures), "; ".join(failures)))
    sys.exit(1)
print("ok: all calls succeeded")
