"""`bitsmith serve` with real models, driven by the official openai client: a chat streamed from
the bundled GGUF and from a GPTQ output, completions with stop sequences, usage counts, and
OpenAI-style errors."""

from __future__ import annotations

import subprocess
import sys

import httpx2 as httpx
import openai
import pytest

from bitsmith.engine.cancel import NEVER
from bitsmith.engine.chat.session import ChatSession
from bitsmith.engine.config import SamplingSettings, ServerSettings
from bitsmith.engine.runtime import load
from bitsmith.engine.runtime.base import GenerationCounts
from bitsmith.engine.runtime.llamacpp_backend import LlamaCppBackend
from bitsmith.engine.server import LocalServer
from tests.engine.weight_only_helpers import quantize_tiny, random_windows

GREEDY = SamplingSettings(temperature=0.0, max_new_tokens=16)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)


def _in_process(backend, messages, settings=GREEDY) -> str:
    session = ChatSession(backend, "", settings)
    session.messages = [m for m in messages if m["role"] != "system"]
    return "".join(e.text for e in session._answer(NEVER) if type(e).__name__ == "TextPiece")


def _streamed_chat(server, messages):
    chunks = list(_client(server).chat.completions.create(
        model=server.model_id, messages=messages, temperature=0, max_tokens=GREEDY.max_new_tokens, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage = chunks[-1].usage
    return pieces, finish, usage


@pytest.fixture(scope="module")
def gptq_dir(tiny_llama_dir, tmp_path_factory):
    return quantize_tiny(tiny_llama_dir, tmp_path_factory.mktemp("gptq") / "tiny-gptq", "gptq",
                         random_windows(2, 16)).out


@pytest.mark.bundled
def test_openai_client_streams_a_chat_from_the_bundled_gguf(bundled_gguf):
    # Two fresh llama.cpp contexts with one thread each evaluate the same prompt in the same batches,
    # so greedy decoding gives the same tokens: the server must add or lose nothing.
    reference = LlamaCppBackend(bundled_gguf, n_ctx=1024, n_threads=1)  # what the chat pane runs, without a second catalog read
    served = LlamaCppBackend(bundled_gguf, n_ctx=1024, n_threads=1)  # `serve` below goes through load()
    try:
        expected = _in_process(reference, QUESTION)
        with LocalServer(served, ServerSettings(port=0)) as server:
            models = _client(server).models.list().data
            assert [m.id for m in models] == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
            pieces, finish, usage = _streamed_chat(server, QUESTION)
        assert len(pieces) >= 2 and "".join(pieces) == expected
        assert finish in (["stop"], ["length"])
        assert usage.prompt_tokens == len(served.tokenize(served.render(QUESTION)))
        assert 1 <= usage.completion_tokens <= GREEDY.max_new_tokens
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    finally:
        reference.close()
        served.close()


def test_openai_client_streams_a_chat_from_a_gptq_output(gptq_dir):
    backend = load(gptq_dir, "cpu")
    expected = _in_process(backend, QUESTION)  # transformers restarts from the prompt each time: same tokens
    with LocalServer(backend, ServerSettings(port=0)) as server:
        pieces, finish, usage = _streamed_chat(server, QUESTION)
        whole = _client(server).chat.completions.create(model="any-name", messages=QUESTION, temperature=0,
                                                        max_tokens=GREEDY.max_new_tokens)
    assert "".join(pieces) == expected == whole.choices[0].message.content
    assert usage.completion_tokens == whole.usage.completion_tokens == GREEDY.max_new_tokens  # random weights never stop early
    assert finish == ["length"] and whole.choices[0].finish_reason == "length"
    assert whole.system_fingerprint == "bitsmith-transformers"


def test_completions_end_before_a_stop_sequence(tiny_llama_dir):
    backend = load(tiny_llama_dir, "cpu")
    settings = SamplingSettings(temperature=0.0, max_new_tokens=24, repetition_penalty=1.0)
    ids = backend.tokenize("The capital of France is")
    free = "".join(backend.stream(ids, settings, NEVER, GenerationCounts()))
    stop = free[len(free) // 2: len(free) // 2 + 3]  # three characters from the middle of the free answer
    expected = free[: free.index(stop)]
    with LocalServer(backend, ServerSettings(port=0)) as server:
        client = _client(server)
        plain = client.completions.create(model="m", prompt="The capital of France is", temperature=0, max_tokens=24,
                                          extra_body={"repetition_penalty": 1.0})
        cut = client.completions.create(model="m", prompt="The capital of France is", temperature=0, max_tokens=24,
                                        stop=[stop], extra_body={"repetition_penalty": 1.0})
        streamed = "".join(c.choices[0].text for c in client.completions.create(
            model="m", prompt="The capital of France is", temperature=0, max_tokens=24, stop=stop, stream=True,
            extra_body={"repetition_penalty": 1.0}) if c.choices)
    assert plain.choices[0].text == free and plain.usage.prompt_tokens == len(ids)
    assert cut.choices[0].text == expected == streamed and cut.choices[0].finish_reason == "stop"


def test_bad_requests_get_openai_style_errors(tiny_llama_dir):
    backend = load(tiny_llama_dir, "cpu")
    with LocalServer(backend, ServerSettings(port=0)) as server:
        client = _client(server)
        cases = [
            (dict(messages=[]), "messages"),
            (dict(messages=QUESTION, temperature=9), None),
            (dict(messages=QUESTION, n=2), "n"),
            (dict(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
            (dict(messages=QUESTION, max_tokens=backend.context_length), "messages"),
        ]
        for kwargs, param in cases:
            with pytest.raises(openai.BadRequestError) as err:
                client.chat.completions.create(model="m", **kwargs)
            assert err.value.body["type"] == "invalid_request_error" and err.value.body["param"] == param
            assert "\n" not in err.value.body["message"]
        with pytest.raises(openai.BadRequestError, match="temperature must be between 0 and 5"):
            client.chat.completions.create(model="m", messages=QUESTION, temperature=9)
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="m", messages=QUESTION, max_tokens=backend.context_length)
        assert err.value.body["code"] == "context_length_exceeded"
        with httpx.Client() as http:
            bad_json = http.post(f"{server.url}/chat/completions", content=b"{nope")
            missing = http.get(f"{server.url}/embeddings")
            wrong_method = http.get(f"{server.url}/chat/completions")
            other_model = http.get(f"{server.url}/models/gpt-4")
        assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert wrong_method.status_code == 405
        assert other_model.status_code == 404 and other_model.json()["error"]["code"] == "model_not_found"


@pytest.mark.bundled
def test_the_serve_command_prints_its_address_and_serves_until_interrupted(bundled_gguf):
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "bitsmith.main", "serve", "bundled", "--port", "0", "--ctx", "512",
                             "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Serving SmolLM2-135M-Instruct.Q4_1.gguf (llama.cpp, cpu) at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)
        r = client.chat.completions.create(model="x", messages=QUESTION, max_tokens=4, temperature=0)
        assert r.usage.completion_tokens >= 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0
    refused = subprocess.run([sys.executable, "-m", "bitsmith.main", "serve", "bundled", "--host", "0.0.0.0"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("bitsmith: error: listening on 0.0.0.0 would expose the model")
