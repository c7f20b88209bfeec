"""Running the app under uvicorn: in the foreground (`bitsmith serve`) or on a background thread
(the chat pane's toggle, tests, benchmarks). The socket is bound here first, so the address is
known (and a port in use reported in one line) before uvicorn starts."""

from __future__ import annotations

import errno
import socket
import threading

from ..config import ServerSettings
from ..config.ecosystem import DEFAULT_PORT
from ..errors import InvalidInput
from ..runtime.base import Backend
from .app import build_app
from .slot import ModelSlot


def bind(settings: ServerSettings) -> socket.socket:
    """A listening socket on the requested address. The default port, when taken, gives way to a
    free one (the caller prints it); a port the user chose must be the one used."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET

    def try_bind(port: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.host, port))
        except BaseException:
            sock.close()
            raise
        sock.listen(128)
        sock.set_inheritable(True)
        return sock

    try:
        return try_bind(settings.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and settings.port == DEFAULT_PORT:
            return try_bind(0)
        reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror or exc})"
        raise InvalidInput(f"{settings.host}:{settings.port} {reason}",
                           suggestion="choose another --port, or 0 for any free port") from None


class LocalServer:
    """The model served on an address until `stop()`; also a context manager."""

    def __init__(self, backend: Backend, settings: ServerSettings = ServerSettings(),
                 backend_lock: threading.Lock | None = None):
        import uvicorn

        self.backend, self.settings = backend, settings
        self.slot = ModelSlot(backend, settings.max_queue, backend_lock)
        self.app = build_app(backend, settings, self.slot)
        self._sock = bind(settings)
        host, port = self._sock.getsockname()[:2]
        self.host, self.port = host, port
        # uvicorn's own log lines are off: the CLI prints its own, and the GUI has no console.
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, timeout_graceful_shutdown=3,
                                lifespan="off", ws="none")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def model_id(self) -> str:
        return self.app.state.model_id

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted (uvicorn handles Ctrl-C)."""
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self.slot.cancel_all()
            self._sock.close()

    def start(self) -> "LocalServer":
        """Serve on a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="bitsmith-server", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise InvalidInput(f"the server on {self.url} stopped as it started")
            self._thread.join(0.02)
        return self

    def stop(self) -> None:
        """Stop accepting requests, end any answer in progress, and wait for the server to close."""
        self.slot.cancel_all()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> "LocalServer":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
