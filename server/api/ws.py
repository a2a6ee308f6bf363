"""The consoles' WebSocket: ``/api/ws``.

Protocol (JSON text messages):

1. The console connects and sends, within 10 s,
   ``{"type": "hello", "token": "<bearer token>", "resume": {"epoch": E, "seq": N} | null}``
   (the token goes in the message, not the URL, so it never reaches access logs).
2. The server answers ``{"type": "welcome", "user", "role", "epoch", "start"}``
   where ``start`` is ``"snapshot"`` (a snapshot message follows) or
   ``"resumed"`` (the batches after ``seq`` follow); a bad hello or token
   gets ``{"type": "error", "detail"}`` and close code 1008.
3. Then ``snapshot`` and ``changes`` messages as :mod:`server.push` describes.
   ``{"type": "ping"}`` from the console is answered ``{"type": "pong"}`` in
   order with the rest. When the session ends (logout, expiry, account
   changed) the server closes with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status

from server.api.deps import ApiContext
from server.auth import Session
from server.push import Console

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter()

HELLO_TIMEOUT_S = 10.0
#: a console whose session ended (logout, expiry) is closed within this long
SESSION_CHECK_S = 1.0


async def _refuse(websocket: WebSocket, detail: str) -> None:
    await websocket.send_text(json.dumps({"type": "error", "detail": detail}))
    await websocket.close(status.WS_1008_POLICY_VIOLATION, detail[:120])


def _resume(value: Any) -> tuple[str, int] | None:
    if not isinstance(value, dict):
        return None
    epoch, seq = value.get("epoch"), value.get("seq")
    if isinstance(epoch, str) and isinstance(seq, int) and not isinstance(seq, bool):
        return epoch, seq
    return None


@router.websocket("/api/ws")
async def console_channel(websocket: WebSocket) -> None:
    ctx: ApiContext = websocket.app.state.ctx
    await websocket.accept()
    try:
        message = await asyncio.wait_for(websocket.receive(), HELLO_TIMEOUT_S)
    except TimeoutError:
        await _refuse(websocket, f"no hello within {HELLO_TIMEOUT_S:g} s")
        return
    if message["type"] == "websocket.disconnect":
        return
    try:
        hello = json.loads(message.get("text") or "")
    except json.JSONDecodeError:
        hello = None
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        await _refuse(websocket, 'the first message must be {"type": "hello", "token": ...}')
        return
    token = hello.get("token")
    session = ctx.sessions.get(token) if isinstance(token, str) else None
    if session is None:
        await _refuse(websocket, "invalid or expired token: log in again with POST /api/login")
        return
    hub = ctx.cc.push
    console = hub.attach(_resume(hello.get("resume")))
    try:
        await websocket.send_text(
            json.dumps(
                {
                    "type": "welcome",
                    "user": session.username,
                    "role": session.role.value,
                    "epoch": hub.epoch,
                    "start": console.start,
                }
            )
        )
        sender = asyncio.create_task(_send(websocket, console, ctx, session))
        receiver = asyncio.create_task(_receive(websocket, console))
        done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        # either side ending ends the channel; how it ended (a disconnect mostly) is not an error
        for outcome in await asyncio.gather(*done, *pending, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.debug(
                    "console %s of %s: channel ended: %r", console.name, session.username, outcome
                )
    except WebSocketDisconnect:
        pass
    finally:
        hub.detach(console)


async def _send(websocket: WebSocket, console: Console, ctx: ApiContext, session: Session) -> None:
    while True:
        try:
            text: str | None = await asyncio.wait_for(console.queue.get(), SESSION_CHECK_S)
        except TimeoutError:
            text = None  # nothing to send: still check the session
        if ctx.sessions.get(session.token) is None:
            await websocket.close(status.WS_1008_POLICY_VIOLATION, "session ended")
            return
        if text is not None:
            await websocket.send_text(text)


async def _receive(websocket: WebSocket, console: Console) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        with contextlib.suppress(json.JSONDecodeError):
            request = json.loads(message.get("text") or "")
            if isinstance(request, dict) and request.get("type") == "ping":
                console.queue.put_nowait('{"type":"pong"}')
