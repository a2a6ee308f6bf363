"""Entry points of the console: run it, or render it to a PNG without a display.

Contract:
- :class:`Console` composes one model, one API client and the main window
  for a server URL; :meth:`Console.login` logs in (waiting),
  :meth:`Console.start` opens the push channel.
- :func:`run_console` shows the console until its window closes (a login
  dialog asks for what is missing or refused); returns the exit code.
- :func:`render_screenshot` logs in, waits until the snapshot, the network
  and its topology are shown (or the server has no network), trends the
  points asked for (by default each feeder head's active power, else
  current: :meth:`hmi.model.ConsoleModel.feeder_head_points`), lets pushed
  values flow for ``settle_s`` and until every trend has a line (samples
  over ``trend_span_s``, waited for at most ``timeout_s``), and saves the
  window to a PNG. Without a display it uses Qt's offscreen platform.
- :func:`command` is ``pyadms hmi`` (:func:`main` parses its arguments).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QApplication, QDialog

from hmi.client import ApiError, ConsoleClient
from hmi.model.console import ConnectionState, ConsoleModel, Session
from hmi.qt.diagram import Colouring
from hmi.qt.login import LoginDialog
from hmi.qt.main_window import MainWindow

__all__ = ["Console", "application", "command", "main", "render_screenshot", "run_console"]


def application(offscreen: bool | None = None) -> QApplication:
    """The QApplication (made once). ``offscreen`` None: offscreen when there is no display."""
    existing = QCoreApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    no_display = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if offscreen or (offscreen is None and no_display and sys.platform.startswith("linux")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    return QApplication([sys.argv[0] if sys.argv else "pyadms-hmi"])


class Console:
    """Model, client and main window for one server."""

    def __init__(self, server_url: str) -> None:
        self.app = application()
        self.model = ConsoleModel()
        self.client = ConsoleClient(server_url)
        self.client.start()
        self.window = MainWindow(self.model, self.client)

    def login(self, username: str, password: str) -> Session:
        """Log in (waits); :class:`hmi.client.ApiError` when refused."""
        session = self.client.login(username, password)
        self.model.set_session(session)
        return session

    def start(self) -> None:
        """Open the push channel (reconnecting until :meth:`close`)."""
        self.client.start_push()

    def process_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Run the GUI event loop until ``predicate`` holds or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                return False
            self.app.processEvents()
            time.sleep(0.005)
        return True

    def ready(self) -> bool:
        """Connected, snapshot shown, and the network with its topology (if the server has one)."""
        m = self.model
        if m.connection != ConnectionState.CONNECTED or not len(m.points):
            return False
        return self.window.network_error is not None or (
            m.network is not None and m.topology.loaded
        )

    def close(self) -> None:
        """Close the window and the client, and delete their Qt objects now.

        Deleting here, on the GUI thread, matters: otherwise Python's garbage
        collector may free the last reference on another thread (the client's
        worker), and Qt objects must not be destroyed there.
        """
        self.window.close()
        self.client.close()
        self.window.deleteLater()
        self.client.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        self.app.processEvents()
        gc.collect()


def run_console(
    server_url: str,
    username: str | None = None,
    password: str | None = None,
    *,
    layout: str = "geographic",
) -> int:
    """Run the console until its window is closed; the exit code."""
    console = Console(server_url)
    message = ""
    if username and password:
        try:
            console.login(username, password)
        except ApiError as exc:
            message = str(exc)
    if console.model.session is None:
        dialog = LoginDialog(console.client, username or "", message)
        if dialog.exec() != QDialog.DialogCode.Accepted or dialog.session is None:
            console.close()
            return 1
        console.model.set_session(dialog.session)
    console.window.diagram.set_layout(layout)
    console.window.show()
    console.start()
    try:
        return console.app.exec()
    finally:
        console.close()


def render_screenshot(
    server_url: str,
    username: str,
    password: str,
    path: str | os.PathLike[str],
    *,
    layout: str = "geographic",
    colouring: str = "feeder",
    focus: str | None = None,
    tab: str | None = None,
    trend: Sequence[str] | None = None,
    trend_window: str = "1 min",
    trend_span_s: float = 30.0,
    size: tuple[int, int] = (1600, 1000),
    settle_s: float = 1.0,
    timeout_s: float = 30.0,
) -> Path:
    """Render the console's main window for ``server_url`` to a PNG; returns its path.

    ``focus`` zooms the diagram onto an element; ``tab`` selects a tab by its title;
    ``trend`` names the points to trend (None: the feeder heads') over the live
    ``trend_window``, waiting (at most ``timeout_s``) until they span ``trend_span_s``.
    Raises TimeoutError if the console is not ready within
    ``timeout_s``, ValueError naming a point to trend that the server does not have.
    """
    application()
    console = Console(server_url)
    try:
        console.login(username, password)
        window = console.window
        window.resize(*size)
        window.show()
        console.start()
        if not console.process_until(console.ready, timeout_s):
            raise TimeoutError(
                f"console not ready after {timeout_s:g} s: {console.model.connection} "
                f"{console.model.connection_detail}"
            )
        window.diagram.set_layout(layout)
        window.diagram.colour_box.setCurrentText(Colouring(colouring).value)
        if tab is not None:
            for i in range(window.tabs.count()):
                if window.tabs.tabText(i) == tab:
                    window.tabs.setCurrentIndex(i)
        trends = window.trends
        trends.window_box.setCurrentText(trend_window)
        names = list(trend) if trend is not None else console.model.feeder_head_points()
        for name in names:
            if not trends.add_point(name):
                raise ValueError(f"cannot trend {name!r}: {trends.note.text()}")

        def spans(name: str) -> float:
            xs, _ = trends.data(name)
            return xs[-1] - xs[0] if len(xs) >= 2 else -1.0

        end = time.monotonic() + settle_s
        console.process_until(
            lambda: time.monotonic() > end and all(spans(n) >= trend_span_s for n in names),
            max(settle_s, timeout_s),
        )
        if focus is not None:
            window.diagram.view.zoom_to(focus)
        console.process_until(lambda: False, 0.2)
        out = Path(path)
        if not window.grab().save(str(out), "PNG"):
            raise OSError(f"could not write {out}")
        return out
    finally:
        console.close()


def command(
    server_url: str,
    username: str | None,
    password: str | None,
    *,
    screenshot: str | None = None,
    layout: str = "geographic",
    focus: str | None = None,
    settle_s: float = 2.0,
) -> int:
    """``pyadms hmi``: run the console, or render it to ``screenshot`` and exit; the exit code.

    Without ``password`` the environment variable ``PYADMS_PASSWORD`` gives it.
    """
    password = password or os.environ.get("PYADMS_PASSWORD")
    if screenshot is None:
        return run_console(server_url, username, password, layout=layout)
    if not (username and password):
        print("pyadms hmi: --screenshot needs --user and --password", file=sys.stderr)
        return 2
    try:
        out = render_screenshot(
            server_url,
            username,
            password,
            screenshot,
            layout=layout,
            focus=focus,
            settle_s=settle_s,
        )
    except (ApiError, TimeoutError, OSError, ValueError) as exc:
        print(f"pyadms hmi: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hmi.app --server URL --user U --password P [--screenshot FILE.png]``."""
    parser = argparse.ArgumentParser(prog="pyadms hmi", description="the operator console")
    parser.add_argument("--server", default="http://127.0.0.1:8080", help="control centre URL")
    parser.add_argument("--user", help="user name (asked for when missing)")
    parser.add_argument("--password", help="default: $PYADMS_PASSWORD; asked for when missing")
    parser.add_argument("--screenshot", metavar="FILE.png", help="render to a PNG and exit")
    parser.add_argument("--layout", choices=["geographic", "schematic"], default="geographic")
    parser.add_argument("--focus", help="with --screenshot: zoom onto this element id")
    parser.add_argument("--settle-s", type=float, default=2.0, help="with --screenshot")
    args = parser.parse_args(argv)
    return command(
        args.server,
        args.user,
        args.password,
        screenshot=args.screenshot,
        layout=args.layout,
        focus=args.focus,
        settle_s=args.settle_s,
    )


if __name__ == "__main__":
    sys.exit(main())
