"""The server's queue, limits and disconnects, driven over real HTTP on 127.0.0.1 with a scripted
backend whose generation the test holds and releases, so the order of events is set by the test
rather than by timing."""

from __future__ import annotations

import threading

import httpx2 as httpx
import openai
import pytest

from bitsmith.engine.config import ServerSettings
from bitsmith.engine.errors import InvalidInput
from bitsmith.engine.runtime.base import Backend
from bitsmith.engine.server import LocalServer

WAIT_S = 20  # an upper bound for things that happen in milliseconds; never a measured duration


class ScriptedBackend(Backend):
    """Answers "w0 w1 w2 ...", one word per token; a gate can hold each answer before its first word,
    and `hold_after_first` keeps it streaming (cancellable) after one word until cancelled."""

    kind, device, context_length, chat_template = "scripted", "cpu", 64, "scripted"

    def __init__(self, words: int = 6):
        self.path = "/models/scripted"
        self.words = words
        self.gate = threading.Event()
        self.gate.set()
        self.hold_after_first = False
        self.active = 0
        self.max_active = 0
        self.started = threading.Semaphore(0)
        self.cancelled = threading.Event()
        self._lock = threading.Lock()

    def render(self, messages, add_generation_prompt=True):
        return " ".join(m["content"] for m in messages)

    def tokenize(self, text):
        return list(range(len(text.split())))

    def stream(self, prompt_ids, settings, cancel, counts):
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.started.release()
        try:
            counts.prompt_tokens = len(prompt_ids)
            assert self.gate.wait(WAIT_S)
            n = 0
            for i in range(min(self.words, settings.max_new_tokens)):
                if cancel.cancelled:
                    break
                n += 1
                yield f"w{i} "
                while self.hold_after_first and not cancel.cancelled:
                    cancel._event.wait(0.01)
            if cancel.cancelled:
                self.cancelled.set()
            counts.completion_tokens = n
            counts.finish_reason = "cancelled" if cancel.cancelled else (
                "length" if n == settings.max_new_tokens else "stop")
        finally:
            with self._lock:
                self.active -= 1


def _client(server: LocalServer, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=key, max_retries=0, timeout=WAIT_S)


def _ask(server, results, i):
    r = _client(server).chat.completions.create(model="m", messages=[{"role": "user", "content": f"hi {i}"}])
    results[i] = r.choices[0].message.content


def test_concurrent_requests_wait_their_turn_and_a_full_queue_says_busy():
    backend = ScriptedBackend()
    backend.gate.clear()
    with LocalServer(backend, ServerSettings(port=0, max_queue=1)) as server:
        results: dict = {}
        first = threading.Thread(target=_ask, args=(server, results, 0))
        first.start()
        assert backend.started.acquire(timeout=WAIT_S)  # the first answer holds the model
        second = threading.Thread(target=_ask, args=(server, results, 1))
        second.start()
        for _ in range(WAIT_S * 100):  # until the second request is queued behind it
            if server.slot.waiting == 1:
                break
            threading.Event().wait(0.01)
        assert server.slot.waiting == 1
        with pytest.raises(openai.InternalServerError) as busy:  # the third finds the queue full
            _client(server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert busy.value.status_code == 503 and busy.value.body["code"] == "queue_full"
        backend.gate.set()
        first.join(WAIT_S)
        second.join(WAIT_S)
    assert results == {0: "w0 w1 w2 w3 w4 w5 ", 1: "w0 w1 w2 w3 w4 w5 "}
    assert backend.max_active == 1  # never two generations at once


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_mid_answer_frees_the_slot(stream):
    backend = ScriptedBackend()
    backend.hold_after_first = True  # the answer would never end on its own
    with LocalServer(backend, ServerSettings(port=0)) as server:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        with httpx.Client(timeout=WAIT_S) as http:
            if stream:
                with http.stream("POST", f"{server.url}/chat/completions", json=body) as r:
                    assert r.status_code == 200
                    next(r.iter_lines())  # the role chunk arrived: the answer is under way; now leave
            else:
                with pytest.raises(httpx.ReadTimeout):  # the answer never comes: give up waiting
                    http.post(f"{server.url}/chat/completions", json=body, timeout=0.5)
        assert backend.cancelled.wait(WAIT_S), "the backend was not told to stop"
        backend.hold_after_first = False
        r = _client(server).chat.completions.create(model="m", messages=[{"role": "user", "content": "again"}],
                                                    max_tokens=2)
        assert r.choices[0].message.content == "w0 w1 " and r.choices[0].finish_reason == "length"


def test_an_api_key_is_checked_and_remote_listening_needs_both_options():
    with pytest.raises(InvalidInput, match="beyond this machine"):
        ServerSettings(host="0.0.0.0")
    with pytest.raises(InvalidInput, match="needs an API key"):
        ServerSettings(host="0.0.0.0", allow_remote=True)
    ServerSettings(host="0.0.0.0", allow_remote=True, api_key="k")  # both given: accepted
    ServerSettings(host="::1")  # loopback in IPv6 needs neither
    with LocalServer(ScriptedBackend(), ServerSettings(port=0, api_key="sesame")) as server:
        with pytest.raises(openai.AuthenticationError) as denied:
            _client(server, "wrong").models.list()
        assert denied.value.body["code"] == "invalid_api_key"
        assert [m.id for m in _client(server, "sesame").models.list()] == ["scripted"]


def test_an_explicit_port_in_use_is_one_line():
    with LocalServer(ScriptedBackend(), ServerSettings(port=0)) as server:
        with pytest.raises(InvalidInput, match=f"127.0.0.1:{server.port} is in use"):
            LocalServer(ScriptedBackend(), ServerSettings(port=server.port))


class FailingBackend(ScriptedBackend):
    """Refuses a system message in its template, and breaks down after one word when asked for more than two."""

    def render(self, messages, add_generation_prompt=True):
        if any(m["role"] == "system" for m in messages):
            raise ValueError("System role not supported")
        return super().render(messages)

    def stream(self, prompt_ids, settings, cancel, counts):
        yield "w0 "
        if settings.max_new_tokens > 2:
            raise RuntimeError("the device went away")


def test_template_refusals_and_failures_mid_answer_reach_the_client():
    with LocalServer(FailingBackend(), ServerSettings(port=0)) as server:
        client = _client(server)
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="m", messages=[{"role": "system", "content": "x"},
                                                                 {"role": "user", "content": "hi"}])
        assert refused.value.body["code"] == "template_error" and "System role not supported" in refused.value.body["message"]
        with pytest.raises(openai.APIError, match="the device went away"):
            list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True))
        with pytest.raises(openai.InternalServerError, match="the device went away"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        ok = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert ok.choices[0].message.content == "w0 "  # the slot was freed after each failure
