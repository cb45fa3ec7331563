"""Call an llm-tower gateway with the official OpenAI Python SDK, unchanged.

Start a gateway (the embedded default config serves a mock provider, no keys needed):

    cargo run -p llm-tower-gateway --release -- serve

then run:

    pip install openai
    python3 examples/gateway_client.py

Environment (all optional): LLM_TOWER_BASE_URL (default http://127.0.0.1:8080/v1),
LLM_TOWER_API_KEY (a gateway key; any string when the gateway requires none),
LLM_TOWER_MODEL and LLM_TOWER_EMBEDDING_MODEL (default: the first models the gateway lists).

Errors come back in OpenAI's shape, so the SDK's exception classes work: a rate limit is
`openai.RateLimitError` (429, retried by the SDK with the gateway's Retry-After), an
exhausted budget is an `openai.APIStatusError` with status 402 (not retried: the budget
only resets at the end of its period).
"""

import os
import sys

import openai

base_url = os.environ.get("LLM_TOWER_BASE_URL", "http://127.0.0.1:8080/v1")
api_key = os.environ.get("LLM_TOWER_API_KEY", "sk-llm-tower-demo")
# LLM_TOWER_STRICT=1 (the test): a 429 or 402 where a 404 is expected is a failure.
strict = os.environ.get("LLM_TOWER_STRICT") == "1"

client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=2)

# Models.
models = [m.id for m in client.models.list()]
print("models:", ", ".join(models))
chat_model = os.environ.get("LLM_TOWER_MODEL") or models[0]
embedding_model = os.environ.get("LLM_TOWER_EMBEDDING_MODEL") or next(
    (m for m in models if "embedding" in m), None
)

# A chat completion.
resp = client.chat.completions.create(
    model=chat_model,
    messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say something about towers."},
    ],
    max_tokens=64,
)
print("chat:", resp.choices[0].message.content)
print(
    "usage: prompt=%d completion=%d total=%d cached=%d"
    % (
        resp.usage.prompt_tokens,
        resp.usage.completion_tokens,
        resp.usage.total_tokens,
        resp.usage.prompt_tokens_details.cached_tokens,
    )
)
assert resp.object == "chat.completion"

# A streamed chat completion, with the usage chunk at the end.
text = []
usage = None
with client.chat.completions.create(
    model=chat_model,
    messages=[{"role": "user", "content": "Stream a short answer."}],
    stream=True,
    stream_options={"include_usage": True},
) as stream:
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
print("stream:", "".join(text))
assert text, "the stream carried no text"
assert usage is not None and usage.total_tokens > 0, "no usage chunk"

# Embeddings.
if embedding_model:
    emb = client.embeddings.create(model=embedding_model, input=["alpha", "beta"])
    print("embeddings: %d vectors of %d dims" % (len(emb.data), len(emb.data[0].embedding)))
    assert len(emb.data) == 2

# Errors in OpenAI's shape: an unknown model is a 404 the SDK raises as NotFoundError.
try:
    client.chat.completions.create(
        model="no-such-model", messages=[{"role": "user", "content": "hi"}]
    )
    sys.exit("expected a 404 for an unknown model")
except openai.NotFoundError as e:
    print("unknown model ->", e.status_code, e.body.get("code") if isinstance(e.body, dict) else e.body)
except openai.RateLimitError as e:
    # Against a busy demo gateway a limit may come first; the test run is strict.
    if strict:
        raise
    print("rate limited; retry after", e.response.headers.get("retry-after"), "s")
except openai.APIStatusError as e:
    if e.status_code == 402 and not strict:
        print("budget exhausted:", e.message)
    else:
        raise

print("ok: all calls succeeded")
