"""The OpenAI-compatible routes, on Starlette: /v1/models, /v1/chat/completions, /v1/completions,
with server-sent events when the client asks to stream."""

from __future__ import annotations

import hmac
import json
import time
import uuid
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from ..config import ServerSettings
from ..errors import EngineError
from ..runtime.base import Backend
from .requests import ApiError, GenerationRequest, chat_request, completion_request
from .slot import Generation, ModelSlot


def model_id(backend: Backend, settings: ServerSettings) -> str:
    return settings.model_name or Path(backend.path).name


def _error(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _usage(gen: Generation) -> dict:
    c = gen.counts
    return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens + c.completion_tokens}


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def build_app(backend: Backend, settings: ServerSettings, slot: ModelSlot | None = None) -> Starlette:
    slot = slot or ModelSlot(backend, settings.max_queue)
    name = model_id(backend, settings)
    created = int(time.time())

    def authorize(request: Request) -> None:
        if not settings.api_key:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), settings.api_key.encode()):
            raise ApiError(401, "a valid API key is needed: send 'Authorization: Bearer <key>'",
                           code="invalid_api_key")

    async def read_json(request: Request):
        try:
            return json.loads(await request.body())
        except ValueError:
            raise ApiError(400, "the request body is not valid JSON") from None

    async def models(request: Request):
        authorize(request)
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "bitsmith"}]})

    async def model_detail(request: Request):
        authorize(request)
        if request.path_params["model"] != name:
            raise ApiError(404, f"the model '{request.path_params['model']}' is not served here; this server "
                           f"serves '{name}'", param="model", code="model_not_found")
        return JSONResponse({"id": name, "object": "model", "created": created, "owned_by": "bitsmith"})

    async def answer(request: Request, req: GenerationRequest, chat: bool):
        slot.admit()
        try:
            text = (await anyio.to_thread.run_sync(backend.render, req.messages) if chat else req.prompt)
        except Exception as exc:  # noqa: BLE001 - templates refuse conversations with any exception type
            raise ApiError(400, f"the model's chat template refused these messages: {_line(exc)}",
                           param="messages", code="template_error") from None
        try:
            ids, sampling = await anyio.to_thread.run_sync(slot.prepare, text, req.settings, req.max_tokens_given)
        except EngineError as exc:
            raise ApiError(400, str(exc)) from None
        gen = Generation(slot, ids, sampling)
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        base = {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
                "model": name, "system_fingerprint": f"bitsmith-{backend.kind}"}
        if req.stream:
            return StreamingResponse(_stream(gen, base, chat, req.include_usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        parts: list[str] = []
        failed: list[Exception] = []

        async def collect(scope: anyio.CancelScope) -> None:
            try:
                async for piece in gen.pieces():
                    parts.append(piece)
            except Exception as exc:  # noqa: BLE001 - answered as a 500 below, outside the task group
                failed.append(exc)
            scope.cancel()

        async with anyio.create_task_group() as group:  # a client that leaves cancels its answer
            group.start_soon(collect, group.cancel_scope)
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()
        if failed:
            raise ApiError(500, f"the model failed while answering: {_line(failed[0])}", code="generation_failed",
                           kind="server_error")
        text_out = "".join(parts)
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text_out},
                      "finish_reason": gen.finish_reason, "logprobs": None}
        else:
            choice = {"index": 0, "text": text_out, "finish_reason": gen.finish_reason, "logprobs": None}
        return JSONResponse({**base, "choices": [choice], "usage": _usage(gen)})

    async def _stream(gen: Generation, base: dict, chat: bool, include_usage: bool):
        obj = base["object"] + (".chunk" if chat else "")
        if chat:  # OpenAI's first chunk carries the role alone
            yield _sse({**base, "object": obj, "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None}]})
        try:
            async for piece in gen.pieces():
                choice = ({"index": 0, "delta": {"content": piece}, "finish_reason": None, "logprobs": None} if chat
                          else {"index": 0, "text": piece, "finish_reason": None, "logprobs": None})
                yield _sse({**base, "object": obj, "choices": [choice]})
        except Exception as exc:  # noqa: BLE001 - the status is sent already: the error goes in the stream
            yield _sse(ApiError(500, f"the model failed while answering: {_line(exc)}", code="generation_failed",
                                kind="server_error").body())
            return
        last = ({"index": 0, "delta": {}, "finish_reason": gen.finish_reason, "logprobs": None} if chat
                else {"index": 0, "text": "", "finish_reason": gen.finish_reason, "logprobs": None})
        yield _sse({**base, "object": obj, "choices": [last]})
        if include_usage:
            yield _sse({**base, "object": obj, "choices": [], "usage": _usage(gen)})
        yield "data: [DONE]\n\n"

    async def chat_completions(request: Request):
        authorize(request)
        return await answer(request, chat_request(await read_json(request)), chat=True)

    async def completions(request: Request):
        authorize(request)
        return await answer(request, completion_request(await read_json(request)), chat=False)

    async def api_error(_request, exc: ApiError):
        return _error(exc)

    async def http_error(_request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return _error(ApiError(exc.status_code, f"{exc.detail}: this server answers /v1/models, "
                               "/v1/chat/completions and /v1/completions", code=code))

    async def engine_error(_request, exc: Exception):
        return _error(ApiError(500, f"the model failed to answer: {_line(exc)}", code="generation_failed",
                               kind="server_error"))

    routes = [Route("/v1/models", models), Route("/v1/models/{model:path}", model_detail),
              Route("/v1/chat/completions", chat_completions, methods=["POST"]),
              Route("/v1/completions", completions, methods=["POST"])]
    app = Starlette(routes=routes, exception_handlers={ApiError: api_error, HTTPException: http_error,
                                                       Exception: engine_error})
    app.state.slot = slot
    app.state.model_id = name
    return app
