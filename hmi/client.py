"""The console's API client: REST (httpx) and the push channel (websockets) on a worker thread.

Contract:
- :class:`ConsoleClient` runs an asyncio loop on its own thread; every
  network call happens there, never on the GUI thread. Results come back to
  the GUI thread through Qt signals (queued across threads): a request's
  ``on_done`` callback runs on the GUI thread with a :class:`Reply`.
- The push channel (``/api/ws``, see ``server/api/ws.py``) is kept open
  from :meth:`ConsoleClient.start_push` until :meth:`ConsoleClient.close`: it reconnects after a
  drop with growing delays (0.25 s .. 4 s), resuming from the last batch it
  applied when the server still holds the batches after it (else the server
  sends a snapshot), and logs in again with the stored credentials when the
  session has ended. :data:`ConsoleClient.connectionChanged` reports
  ``(state, detail)`` with the states of
  :class:`hmi.model.ConnectionState`.
- A REST call refused with 401 (session expired, server restarted) logs in
  again once with the stored credentials and is sent again.
- Pushed messages are parsed on the worker thread and merged into a
  pending :class:`hmi.model.Updates` (latest value per point); the first
  message after a drain emits :data:`ConsoleClient.updatesPending` once,
  and the GUI drains with :meth:`ConsoleClient.take_updates` at its own
  frame rate, so a flood of changes costs the GUI one apply per frame.
- A batch out of sequence (a gap) drops the connection and asks for a
  fresh snapshot rather than showing an inconsistent state.
- The client connects directly to the URL it is given (no proxies from the
  environment).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from PySide6.QtCore import QObject, Signal
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from hmi.model.console import ConnectionState, Session, Updates

__all__ = ["ApiError", "ConsoleClient", "Reply"]

log = logging.getLogger(__name__)

#: REST calls may wait for a command's check-back
REQUEST_TIMEOUT_S = 30.0
#: reconnect delays grow from the first to the last
RECONNECT_DELAYS_S = (0.25, 0.5, 1.0, 2.0, 4.0)
#: the server closes a console whose session ended with this code
_POLICY_VIOLATION = 1008


class ApiError(Exception):
    """A request the server refused or could not answer: status and the server's detail."""

    def __init__(self, method: str, path: str, reply: Reply) -> None:
        super().__init__(f"{method} {path}: {reply.status or 'no answer'} {reply.error}")
        self.reply = reply


@dataclass(frozen=True)
class Reply:
    """A REST answer: HTTP status (0: none came), the JSON body, the error text if not 2xx."""

    status: int
    data: Any
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # a 422: name each field
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg')}" for d in detail
        )
    return str(detail if detail is not None else body)


class ConsoleClient(QObject):
    """One console's connection to a control centre; see the module docstring."""

    #: (state, detail): state is a :class:`ConnectionState` value
    connectionChanged = Signal(str, str)  # noqa: N815 - Qt naming
    #: pushed data waits in :meth:`take_updates`
    updatesPending = Signal()  # noqa: N815
    _replied = Signal(object)

    def __init__(self, server_url: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.server_url = server_url.rstrip("/")
        self.ws_url = self.server_url.replace("http", "ws", 1) + "/api/ws"
        self.session: Session | None = None
        self._token: str | None = None
        self._credentials: tuple[str, str] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="hmi-client", daemon=True)
        self._http: httpx.AsyncClient | None = None
        self._push_task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._pending = Updates()
        self._signalled = False
        self._resume: dict[str, Any] | None = None
        self.state = ConnectionState.DISCONNECTED
        self._replied.connect(self._dispatch)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if not self._thread.is_alive():
            self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def close(self) -> None:
        """Close the push channel and HTTP client, stop the worker thread (idempotent)."""
        if self._thread.is_alive():
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    async def _shutdown(self) -> None:
        await self._stop_push()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        self.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # ----------------------------------------------------------------- REST
    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.server_url, timeout=REQUEST_TIMEOUT_S, trust_env=False
            )
        return self._http

    async def _request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> Reply:
        reply = await self._send(method, path, json_body, params, timeout_s)
        if reply.status == 401 and self._credentials is not None and path != "/api/login":
            # the session expired (or the server restarted): log in again once and retry
            if (await self._login(*self._credentials)).ok:
                reply = await self._send(method, path, json_body, params, timeout_s)
        return reply

    async def _send(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: dict[str, Any] | None,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> Reply:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            r = await self._client().request(
                method, path, json=json_body, params=params, headers=headers, timeout=timeout_s
            )
        except httpx.HTTPError as exc:
            return Reply(
                0, None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            )
        data: Any = None
        if r.content:
            try:
                data = r.json()
            except ValueError:
                data = r.text
        return Reply(r.status_code, data, "" if r.is_success else _detail(r))

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        on_done: Callable[[Reply], None] | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> concurrent.futures.Future[Reply]:
        """Send a request from any thread; ``on_done`` runs on the GUI thread with the reply.

        ``timeout`` bounds each read from the server: longer for acts the
        server answers only when done (an ADMS plan executed step by step).
        """
        future = self._submit(self._request(method, path, json, params, timeout))
        if on_done is not None:
            future.add_done_callback(lambda f: self._replied.emit((on_done, _result(f))))
        return future

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> Reply:
        """A request waited for (scripts and start-up, not GUI callbacks); ApiError if not 2xx."""
        reply = self.request(method, path, json=json, params=params, timeout=timeout).result(
            timeout + 5
        )
        if not reply.ok:
            raise ApiError(method, path, reply)
        return reply

    def _dispatch(self, item: tuple[Callable[[Reply], None], Reply]) -> None:
        callback, reply = item
        callback(reply)

    # -------------------------------------------------------------- session
    async def _login(self, username: str, password: str) -> Reply:
        reply = await self._request(
            "POST", "/api/login", {"username": username, "password": password}
        )
        if reply.ok:
            self._token = reply.data["token"]
            self._credentials = (username, password)
            self.session = Session(self.server_url, reply.data["username"], reply.data["role"])
        return reply

    def login(self, username: str, password: str, timeout: float = REQUEST_TIMEOUT_S) -> Session:
        """Log in (waits); ApiError on refusal. The credentials are kept to log in again."""
        reply = self._submit(self._login(username, password)).result(timeout)
        if not reply.ok or self.session is None:
            raise ApiError("POST", "/api/login", reply)
        return self.session

    def login_async(self, username: str, password: str, on_done: Callable[[Reply], None]) -> None:
        """Log in without waiting; ``on_done`` runs on the GUI thread."""
        future = self._submit(self._login(username, password))
        future.add_done_callback(lambda f: self._replied.emit((on_done, _result(f))))

    # ----------------------------------------------------------------- push
    def start_push(self) -> None:
        """Open the push channel and keep it open (reconnecting) until :meth:`stop_push`."""
        self._submit(self._start_push()).result(5)

    async def _start_push(self) -> None:
        if self._push_task is None or self._push_task.done():
            self._push_task = asyncio.get_running_loop().create_task(self._push_loop())

    async def _stop_push(self) -> None:
        task, self._push_task = self._push_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_state(ConnectionState.DISCONNECTED, "stopped")

    def take_updates(self) -> Updates:
        """Everything pushed since the last call (GUI thread, once per frame)."""
        with self._lock:
            updates, self._pending = self._pending, Updates()
            self._signalled = False
        return updates

    def deliver(self, message: dict[str, Any]) -> None:
        """Merge one pushed message for the next frame (any thread; the push loop's path).

        The first message after a drain emits :data:`updatesPending`.
        """
        with self._lock:
            self._pending.merge(message)
            signal = not self._signalled
            self._signalled = True
        if signal:
            self.updatesPending.emit()

    def _set_state(self, state: ConnectionState, detail: str) -> None:
        self.state = state
        self.connectionChanged.emit(state.value, detail)

    async def _push_loop(self) -> None:
        attempt = 0
        while True:
            self._set_state(ConnectionState.CONNECTING, f"connecting to {self.ws_url}")
            detail = "connection lost"
            try:
                async with connect(
                    self.ws_url,
                    open_timeout=5,
                    ping_interval=5,
                    ping_timeout=5,
                    close_timeout=2,
                    max_size=None,
                    proxy=None,
                ) as ws:
                    welcome = await self._hello(ws)
                    if welcome is None:
                        detail = "session ended: logging in again"
                        await self._relogin()
                    else:
                        attempt = 0
                        connected = f"{welcome['user']} ({welcome['role']}), {welcome['start']}"
                        if welcome["start"] == "resumed":
                            self._set_state(ConnectionState.CONNECTED, connected)
                            connected = ""
                        await self._receive(ws, connected)
            except ConnectionClosed as exc:
                detail = f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
                if exc.rcvd is not None and exc.rcvd.code == _POLICY_VIOLATION:
                    await self._relogin()
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                detail = (
                    f"cannot connect: {exc}"
                    if str(exc)
                    else f"cannot connect: {type(exc).__name__}"
                )
            except _Gap as exc:
                detail = str(exc)
            delay = RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]
            attempt += 1
            self._set_state(ConnectionState.DISCONNECTED, f"{detail}; reconnecting in {delay:g} s")
            await asyncio.sleep(delay)

    async def _hello(self, ws: ClientConnection) -> dict[str, Any] | None:
        """Send hello; the welcome, or None when the token was refused."""
        await ws.send(json.dumps({"type": "hello", "token": self._token, "resume": self._resume}))
        welcome = json.loads(await ws.recv())
        if welcome.get("type") != "welcome":
            log.info("push channel refused: %s", welcome.get("detail"))
            return None
        if welcome.get("epoch") != (self._resume or {}).get("epoch"):
            self._resume = None
        return dict(welcome)

    async def _relogin(self) -> None:
        if self._credentials is not None:
            reply = await self._login(*self._credentials)
            if not reply.ok:
                log.warning("logging in again failed: %s", reply.error)

    async def _receive(self, ws: ClientConnection, connected: str) -> None:
        """Merge pushed messages; report ``connected`` once the first snapshot is merged."""
        async for text in ws:
            message = json.loads(text)
            kind = message.get("type")
            if kind == "snapshot":
                self._resume = {"epoch": message["epoch"], "seq": message["seq"]}
            elif kind == "changes":
                resume = self._resume
                if resume is None or message["epoch"] != resume["epoch"]:
                    self._resume = None
                    raise _Gap("changes from another server start: asking for a snapshot")
                if message["seq"] <= resume["seq"]:
                    continue  # already applied (sent again after a resume)
                if message["seq"] != resume["seq"] + 1:
                    self._resume = None
                    raise _Gap(
                        f"batch {message['seq']} after {resume['seq']}: asking for a snapshot"
                    )
                resume["seq"] = message["seq"]
            else:
                continue
            self.deliver(message)
            if connected and kind == "snapshot":
                # values turn current only once the snapshot is there to show
                self._set_state(ConnectionState.CONNECTED, connected)
                connected = ""


class _Gap(Exception):
    """Pushed batches out of sequence: reconnect for a snapshot."""


def _result(future: concurrent.futures.Future[Reply]) -> Reply:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - any failure reaches the operator as a reply
        return Reply(0, None, f"{type(exc).__name__}: {exc}")
