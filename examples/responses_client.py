"""Call an llm-tower gateway's Responses API with the official OpenAI Python SDK, unchanged.

The gateway serves `POST /v1/responses` and `GET /v1/responses/{id}` by translating to chat
completions, so any provider behind it answers. Start a gateway (the embedded default config
serves a mock provider, no keys needed):

    cargo run -p llm-tower-gateway --release -- serve

then run:

    pip install openai
    python3 examples/responses_client.py

Environment (all optional): LLM_TOWER_BASE_URL (default http://127.0.0.1:8080/v1),
LLM_TOWER_API_KEY (a gateway key; any string when the gateway requires none),
LLM_TOWER_MODEL (default: the first model the gateway lists).

Exits non-zero on any failure; prints "ok: all calls succeeded" at the end.
"""

import json
import os
import sys

import openai

base_url = os.environ.get("LLM_TOWER_BASE_URL", "http://127.0.0.1:8080/v1")
api_key = os.environ.get("LLM_TOWER_API_KEY", "sk-llm-tower-demo")
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)

model = os.environ.get("LLM_TOWER_MODEL") or next(iter(client.models.list())).id


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


# 1. A plain response.
resp = client.responses.create(
    model=model,
    instructions="You are terse.",
    input="Say something about towers.",
    max_output_tokens=64,
)
print("response:", resp.id, resp.status, repr(resp.output_text))
check(resp.object == "response", "object is response")
check(resp.status == "completed", "status completed")
check(resp.id.startswith("resp_"), "id prefix")
check(resp.output_text, "output_text (the SDK property) is not empty")
check(any(o.type == "message" for o in resp.output), "a message item")
check(resp.usage is not None and resp.usage.total_tokens > 0, "usage")
check(resp.usage.input_tokens_details.cached_tokens >= 0, "cached tokens")
check(resp.usage.output_tokens_details.reasoning_tokens >= 0, "reasoning tokens")

# 2. Continue it with previous_response_id, then read it back.
follow = client.responses.create(
    model=model, input="And one more thing?", previous_response_id=resp.id
)
check(follow.previous_response_id == resp.id, "previous_response_id echoed")
got = client.responses.retrieve(resp.id)
check(got.id == resp.id and got.output_text == resp.output_text, "retrieve")
print("retrieve:", got.id, got.status)

# 3. Streamed, with the SDK's stream helper (it checks the event order itself).
deltas = []
kinds = []
with client.responses.stream(model=model, input="Stream a short answer.") as stream:
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
    final = stream.get_final_response()
print("stream:", "".join(deltas))
check(kinds[0] == "response.created", "stream starts with response.created")
check(kinds[-1] == "response.completed", "stream ends with response.completed")
check(deltas, "text deltas")
check(final.output_text == "".join(deltas), "final text = deltas")
check(final.usage is not None and final.usage.total_tokens > 0, "stream usage")

# 4. Streamed with create(stream=True): raw events with sequence numbers.
seqs = []
with client.responses.create(model=model, input="Once more.", stream=True) as events:
    for event in events:
        seqs.append(event.sequence_number)
check(seqs == list(range(len(seqs))), "sequence numbers count up from 0")

# 5. Function tools, and the function_call_output turn.
tools = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
]
first = client.responses.create(
    model=model, input="What is the weather in Oslo?", tools=tools
)
calls = [o for o in first.output if o.type == "function_call"]
check(calls, "a function call")
call = calls[0]
print("function_call:", call.name, call.arguments, call.call_id)
check(call.name == "get_weather", "function name")
json.loads(call.arguments)
second = client.responses.create(
    model=model,
    tools=tools,
    input=[
        {"role": "user", "content": "What is the weather in Oslo?"},
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
    ],
)
check(second.status == "completed" and second.output_text, "an answer after the tool output")
print("after tool:", repr(second.output_text))

# 6. Errors come back in OpenAI's shape.
try:
    client.responses.create(model=model, input="x", background=True)
    check(False, "background must be refused")
except openai.BadRequestError as e:
    check(e.body.get("param") == "background", "param names the field")

print("ok: all calls succeeded")
