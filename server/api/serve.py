"""Serving the API with uvicorn inside the running event loop (beside the FEPs).

Contract: :class:`ApiServer` binds its socket itself (port 0: the OS picks
one, read :attr:`ApiServer.port`), serves HTTP or, with a certificate and key,
HTTPS and WSS, and leaves signal handling to its caller (uvicorn's own
would replace the server's SIGINT/SIGTERM handling).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

__all__ = ["ApiServer"]


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the caller owns SIGINT, SIGTERM and SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ApiServer:
    """uvicorn serving ``app`` on ``host:port`` in the current loop."""

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.tls = tls_cert is not None
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
        self._server: _Server | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._socket is not None, "start() first"
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """``http(s)://host:port``; the WebSocket is at ``ws(s)://host:port/api/ws``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; returns once connections are accepted (raises OSError if not)."""
        self._socket = _listen(self.host, self._config.port)
        server = _Server(self._config)
        self._server = server
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[self._socket]))
        while not server.started:
            if self._task.done():
                self._task.result()  # its exception
                raise OSError(f"API server on {self.host}:{self.port} stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Close connections (consoles get close code 1012) and stop serving."""
        server, self._server = self._server, None
        if server is None or self._task is None:
            return
        server.should_exit = True
        await self._task
        self._task = None
        self._socket = None


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket; raises OSError when the address cannot be had.

    The protocol is given explicitly: asyncio sets TCP_NODELAY on accepted
    connections only when it is IPPROTO_TCP (``socket.create_server`` leaves
    it 0, and every response then waits ~40 ms for a delayed ACK).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock
