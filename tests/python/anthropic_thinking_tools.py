"""The official Anthropic SDK through the gateway to an Anthropic-wire upstream: a thinking +
tool-use conversation over three turns, sending back each turn's content blocks (thinking
blocks with their signatures) unchanged. Exits non-zero on any failure."""

import os
import sys

import anthropic

client = anthropic.Anthropic(
    base_url=os.environ["LLM_TOWER_BASE_URL"],
    api_key=os.environ["LLM_TOWER_API_KEY"],
    max_retries=0,
)
tools = [
    {"name": "get_weather", "description": "Weather for a city",
     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"name": "get_time", "description": "Time in a zone",
     "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}},
]
messages = [{"role": "user", "content": "Weather and time in Paris?"}]
for turn in (1, 2, 3):
    kwargs = dict(
        model=os.environ["LLM_TOWER_MODEL"],
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=tools,
        messages=messages,
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    if turn == 2:
        # The streamed variant of the same turn: the SDK assembles the events.
        with client.messages.stream(**kwargs) as stream:
            msg = stream.get_final_message()
    else:
        msg = client.messages.create(**kwargs)
    kinds = [b.type for b in msg.content]
    if turn < 3:
        assert msg.stop_reason == "tool_use", (turn, msg.stop_reason)
        assert kinds[0] == "thinking" and kinds[-1] == "tool_use", kinds
        assert msg.content[0].signature, msg.content[0]
        messages.append({"role": "assistant", "content": [b.model_dump() for b in msg.content]})
        call = msg.content[-1]
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "ok"}]})
    else:
        assert msg.stop_reason == "end_turn", msg.stop_reason
        assert msg.content[0].text == "Sunny, 21 C, and it is noon.", msg.content
        assert msg.usage.cache_read_input_tokens == 10, msg.usage
print("ok: three turns with thinking and tools")
sys.exit(0)
