"""The control dialog: select-before-operate, tags and manual substitution for one point.

Contract:
- Select sends ``POST /api/control/select`` with the chosen value and
  shows the outcome: selected (with the seconds left to execute, counting
  down) or refused with the server's reason (a tag, an interlock, another
  operator's selection). Execute sends ``POST /api/control/execute`` and
  shows the outcome: confirmed by check-back, accepted (no check-back
  configured), timed out (no check-back) or refused with the reason.
  Cancel releases the selection. Closing the dialog cancels a selection
  still held.
- Tags on the point or its device are listed; operators place (on the
  point or the device) and remove them. Substitution replaces the field
  value (quality substituted) and removes the replacement.
- For viewers every act is disabled; the dialog shows why.
- :attr:`ControlDialog.outcome` holds the latest outcome; every outcome is
  also appended to the dialog's log. A dialog is kept per point and shown
  again (:meth:`ControlDialog.prepare`) when the point is opened again.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from hmi.client import ConsoleClient, Reply
from hmi.model.console import ConsoleModel
from hmi.model.points import format_time
from hmi.qt import style

__all__ = ["ControlDialog"]

TAG_KINDS = ("do_not_operate", "hold", "caution")
_OUTCOME_COLOURS = {
    "selected": "#4ea8ff",
    "confirmed": "#3ec46d",
    "accepted": "#3ec46d",
    "cancelled": "#9e9e9e",
    "timed_out": "#ffa726",
    "refused": "#ff3b3b",
    "error": "#ff3b3b",
}


class ControlDialog(QDialog):
    """SBO control, tags and substitution of one point; see the module docstring."""

    #: (point, outcome status, reason)
    outcomeChanged = Signal(str, str, str)  # noqa: N815 - Qt naming

    def __init__(
        self, model: ConsoleModel, client: ConsoleClient, point: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.client = client
        self.point = point
        self.selection_id: int | None = None
        self.expires_at = 0.0
        self.outcome = ""
        p = model.points.get(point)
        self.kind = p.kind if p else "analog"
        self.device = p.device if p else point.split(".", 1)[0]
        self.setWindowTitle(f"Control {point}")
        self.setMinimumWidth(520)

        head = QFormLayout()
        self.value_label = QLabel()
        self.value_label.setTextFormat(Qt.TextFormat.RichText)
        head.addRow("Point", QLabel(f"<b>{point}</b> {p.description if p else ''}"))
        head.addRow("Device", QLabel(self.device))
        head.addRow("Now", self.value_label)
        self.role_note = QLabel("")
        self.role_note.setStyleSheet("color:#ffa726")

        # ------------------------------------------------------- command (SBO)
        command = QGroupBox("Command (select before operate)")
        cbox = QVBoxLayout(command)
        choice = QHBoxLayout()
        self.values = QButtonGroup(self)
        self.value_spin = QDoubleSpinBox()
        self.value_spin.setRange(-1e9, 1e9)
        self.value_spin.setDecimals(3)
        if self.kind in ("double", "single"):
            on, off = ("Close", "Open") if self.kind == "double" else ("On", "Off")
            self.open_button = QRadioButton(off)
            self.close_button = QRadioButton(on)
            self.values.addButton(self.open_button, 0)
            self.values.addButton(self.close_button, 1)
            choice.addWidget(self.open_button)
            choice.addWidget(self.close_button)
        else:
            for text, value in (("Lower -1", -1.0), ("Raise +1", 1.0)):
                b = QPushButton(text)
                b.clicked.connect(lambda _=False, v=value: self.value_spin.setValue(v))
                choice.addWidget(b)
            choice.addWidget(QLabel("Value"))
            choice.addWidget(self.value_spin)
        choice.addStretch(1)
        cbox.addLayout(choice)
        buttons = QHBoxLayout()
        self.select_button = QPushButton("Select")
        self.execute_button = QPushButton("Execute")
        self.cancel_button = QPushButton("Cancel selection")
        self.select_button.clicked.connect(self.select)
        self.execute_button.clicked.connect(self.execute)
        self.cancel_button.clicked.connect(self.cancel)
        for b in (self.select_button, self.execute_button, self.cancel_button):
            buttons.addWidget(b)
        self.countdown = QLabel("")
        buttons.addWidget(self.countdown, 1)
        cbox.addLayout(buttons)
        self.outcome_label = QLabel("")
        self.outcome_label.setWordWrap(True)
        self.outcome_label.setTextFormat(Qt.TextFormat.RichText)
        cbox.addWidget(self.outcome_label)

        # ---------------------------------------------------------------- tags
        tags = QGroupBox("Tags (on this point or its device)")
        tbox = QVBoxLayout(tags)
        self.tag_list = QListWidget()
        self.tag_list.setMaximumHeight(80)
        tbox.addWidget(self.tag_list)
        trow = QHBoxLayout()
        self.tag_kind = QComboBox()
        self.tag_kind.addItems(list(TAG_KINDS))
        self.tag_reason = QLineEdit()
        self.tag_reason.setPlaceholderText("reason (required)")
        self.tag_point = QPushButton("Tag point")
        self.tag_device = QPushButton("Tag device")
        self.untag = QPushButton("Remove selected")
        self.tag_point.clicked.connect(lambda: self.place_tag(self.point))
        self.tag_device.clicked.connect(lambda: self.place_tag(self.device))
        self.untag.clicked.connect(self.remove_tag)
        for w in (self.tag_kind, self.tag_reason, self.tag_point, self.tag_device, self.untag):
            trow.addWidget(w)
        tbox.addLayout(trow)

        # -------------------------------------------------------- substitution
        subst = QGroupBox("Manual substitution")
        srow = QHBoxLayout(subst)
        self.subst_value = QDoubleSpinBox()
        self.subst_value.setRange(-1e9, 1e9)
        self.subst_value.setDecimals(3)
        if p is not None and p.value is not None:
            self.subst_value.setValue(p.value)
        self.substitute_button = QPushButton("Substitute")
        self.unsubstitute_button = QPushButton("Remove substitution")
        self.substitute_button.clicked.connect(self.substitute)
        self.unsubstitute_button.clicked.connect(self.unsubstitute)
        srow.addWidget(QLabel("Value"))
        srow.addWidget(self.subst_value)
        srow.addWidget(self.substitute_button)
        srow.addWidget(self.unsubstitute_button)
        srow.addStretch(1)

        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(90)
        close = QPushButton("Close")
        close.clicked.connect(self.close)

        box = QVBoxLayout(self)
        box.addLayout(head)
        box.addWidget(self.role_note)
        box.addWidget(command)
        box.addWidget(tags)
        box.addWidget(subst)
        box.addWidget(self.log)
        box.addWidget(close, 0, Qt.AlignmentFlag.AlignRight)

        self._timer = QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._tick)
        model.points.changed.connect(self._on_points)
        model.tags_changed.connect(self._on_tags)
        model.session_changed.connect(self._on_session)
        self.finished.connect(self._closing)
        self._on_tags(model.tags)
        self.prepare()

    # ------------------------------------------------------------- display
    def prepare(self) -> None:
        """Fresh for a new command: no outcome shown, the change of state proposed."""
        self.outcome = ""
        self.outcome_label.setText("")
        p = self.model.points.get(self.point)
        if self.kind in ("double", "single") and p is not None and p.value is not None:
            closed = p.value == 2 if self.kind == "double" else bool(p.value)
            # propose the change: the opposite of the present state
            (self.open_button if closed else self.close_button).setChecked(True)
        self._show_value()
        self._update_enabled()

    def _on_points(self, names: frozenset[str]) -> None:
        if self.point in names:
            self._show_value()

    def _show_value(self) -> None:
        p = self.model.points.get(self.point)
        if p is None:
            self.value_label.setText("<i>unknown point</i>")
            return
        severity = self.model.points.severity(self.point)
        colour = style.QUALITY_COLOURS.get(severity, style.TEXT) if severity else style.TEXT
        flags = ", ".join(p.flags) or "good"
        if not self.model.points.connected:
            flags += ", stale (console disconnected)"
        self.value_label.setText(
            f"<b style='color:{colour}'>{p.value_text()}</b> ({flags}) "
            f"source {format_time(p.source_time)} received {format_time(p.receive_time)}"
        )

    def _on_tags(self, _: Any) -> None:
        self.tag_list.clear()
        for t in self.model.tags_on(self.point):
            item = QListWidgetItem(f"#{t.id} {t.kind} on {t.target} by {t.owner}: {t.reason}")
            item.setData(Qt.ItemDataRole.UserRole, t.id)
            self.tag_list.addItem(item)

    def _update_enabled(self) -> None:
        allowed = self.model.can_command
        controllable = bool(
            self.model.points.get(self.point) and self.model.points.points[self.point].controllable
        )
        selected = self.selection_id is not None
        self.select_button.setEnabled(allowed and controllable and not selected)
        self.execute_button.setEnabled(allowed and selected)
        self.cancel_button.setEnabled(allowed and selected)
        for w in (
            self.tag_point,
            self.tag_device,
            self.untag,
            self.substitute_button,
            self.unsubstitute_button,
        ):
            w.setEnabled(allowed)
        if not allowed:
            role = self.model.session.role if self.model.session else "not logged in"
            self.role_note.setText(
                f"{role}: viewing only - commands, tags and substitution disabled"
            )
        elif not controllable:
            self.role_note.setText("this point has no control: tags and substitution only")
        else:
            self.role_note.setText("")

    def _report(self, status: str, reason: str = "") -> None:
        self.outcome = status
        colour = _OUTCOME_COLOURS.get(status, style.TEXT)
        text = status.replace("_", " ") + (f": {reason}" if reason else "")
        self.outcome_label.setText(f"<b style='color:{colour}'>{text}</b>")
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')} {text}")
        self.outcomeChanged.emit(self.point, status, reason)

    def _tick(self) -> None:
        left = self.expires_at - time.monotonic()
        if self.selection_id is None:
            self._timer.stop()
            self.countdown.setText("")
        elif left <= 0:
            self.selection_id = None
            self._timer.stop()
            self.countdown.setText("")
            self._report("cancelled", "selection expired")
            self._update_enabled()
        else:
            self.countdown.setText(f"execute within {left:.0f} s")

    # ----------------------------------------------------------------- acts
    def chosen_value(self) -> float:
        if self.kind in ("double", "single"):
            return float(self.values.checkedId())
        return float(self.value_spin.value())

    def select(self) -> None:
        if not self.model.can_command:
            return
        self.select_button.setEnabled(False)
        self.client.request(
            "POST",
            "/api/control/select",
            json={"point": self.point, "value": self.chosen_value()},
            on_done=self._selected,
        )

    def _selected(self, reply: Reply) -> None:
        if not reply.ok:
            self._report("error", reply.error)
        elif reply.data["status"] == "selected":
            self.selection_id = int(reply.data["selection_id"])
            self.expires_at = time.monotonic() + float(reply.data.get("expires_in_s") or 0)
            self._timer.start()
            self._report("selected", f"value {reply.data['value']:g}, id {self.selection_id}")
        else:
            self._report("refused", reply.data.get("reason", ""))
        self._update_enabled()

    def execute(self) -> None:
        if self.selection_id is None:
            return
        sel, self.selection_id = self.selection_id, None
        self._timer.stop()
        self.countdown.setText("executing, waiting for check-back ...")
        self._update_enabled()
        self.client.request(
            "POST", "/api/control/execute", json={"selection_id": sel}, on_done=self._executed
        )

    def _executed(self, reply: Reply) -> None:
        self.countdown.setText("")
        if not reply.ok:
            self._report("error", reply.error)
        else:
            status = str(reply.data["status"])
            reason = str(reply.data.get("reason") or "")
            if status == "confirmed" and not reason:
                reason = "check-back received"
            elif status == "timed_out" and not reason:
                reason = "no check-back within the timeout"
            self._report(status, reason)
        self._update_enabled()

    def cancel(self) -> None:
        if self.selection_id is None:
            return
        sel, self.selection_id = self.selection_id, None
        self._timer.stop()
        self._update_enabled()
        self.client.request(
            "POST",
            "/api/control/cancel",
            json={"selection_id": sel},
            on_done=lambda r: self._report("cancelled" if r.ok else "error", r.error),
        )

    def _on_session(self, _: Any) -> None:
        self._update_enabled()

    def _closing(self, _: int) -> None:
        self.cancel()

    def place_tag(self, target: str) -> None:
        reason = self.tag_reason.text().strip()
        if not reason:
            self._report("error", "a tag needs a reason")
            return
        self.client.request(
            "POST",
            "/api/tags",
            json={"target": target, "kind": self.tag_kind.currentText(), "reason": reason},
            on_done=self._tags_changed("tag placed"),
        )

    def remove_tag(self) -> None:
        item = self.tag_list.currentItem()
        if item is None:
            return
        tag_id = item.data(Qt.ItemDataRole.UserRole)
        self.client.request(
            "DELETE", f"/api/tags/{tag_id}", on_done=self._tags_changed("tag removed")
        )

    def _tags_changed(self, what: str) -> Any:
        def done(reply: Reply) -> None:
            if reply.ok:
                self.log.appendPlainText(f"{time.strftime('%H:%M:%S')} {what}")
                self.client.request("GET", "/api/tags", on_done=self._tags_loaded)
            else:
                self._report("error", reply.error)

        return done

    def _tags_loaded(self, reply: Reply) -> None:
        if reply.ok:
            self.model.set_tags(reply.data)

    def substitute(self) -> None:
        self.client.request(
            "POST",
            f"/api/points/{self.point}/substitute",
            json={"value": self.subst_value.value()},
            on_done=self._substituted("substituted"),
        )

    def unsubstitute(self) -> None:
        self.client.request(
            "DELETE",
            f"/api/points/{self.point}/substitute",
            on_done=self._substituted("substitution removed"),
        )

    def _substituted(self, what: str) -> Any:
        def done(reply: Reply) -> None:
            if reply.ok:
                self.log.appendPlainText(f"{time.strftime('%H:%M:%S')} {what}")
            else:
                self._report("error", reply.error)

        return done
