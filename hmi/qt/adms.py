"""The ADMS panel: the state estimate, FLISR plans, proposals and switch orders, step by step.

Contract:
- :class:`AdmsPanel` shows :attr:`hmi.model.ConsoleModel.adms`: a line on
  the latest state estimate (convergence, chi-squared test, bad data, age;
  "out of date" while disconnected) with *Estimate now*; buttons requesting
  a reconfiguration proposal and a volt-VAR proposal (objective losses or
  CVR); the plans (:class:`PlanTableModel`, open ones first); and the
  selected plan: its title, summary and state, then pages of its steps
  with their states, its before/after figures and its other details (a
  newly selected proposal opens on its figures, any other plan on its
  steps), a progress bar, and *Approve* (execute every remaining step),
  *Execute next step* and *Reject* (with a reason).
- Every act is a request through :class:`hmi.client.ConsoleClient` (its
  worker thread does the waiting; the reply comes back on the GUI thread).
  A plan's reply updates the store at once; execution progress comes with
  the pushed plan updates. Refusals and failures (the server's reason, a
  step that failed with its message) are shown in the panel in red and
  emitted on :data:`AdmsPanel.message`. While a request on a plan is in
  flight its buttons are disabled.
- Acts are for operators: viewers see every button disabled and a note why;
  a plan's buttons follow its state (:meth:`hmi.model.Plan.can_approve` ...).
- A newly proposed plan is selected unless an open one is, and announced on
  :data:`AdmsPanel.planProposed`; double-clicking a step signals its element
  on :data:`AdmsPanel.elementSelected`.
"""

from __future__ import annotations

import html
import time
from functools import partial
from typing import Any

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QObject,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QBrush, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hmi.client import ConsoleClient, Reply
from hmi.model.adms import Estimate, Plan
from hmi.model.console import ConnectionState, ConsoleModel
from hmi.model.points import format_time
from hmi.qt import style
from hmi.qt.rows import Index, RowTableModel

__all__ = ["AdmsPanel", "PlanTableModel"]

PLAN_COLUMNS = ("Created", "App", "State", "Plan")
STEP_COLUMNS = ("#", "Element", "Action", "State", "Message")
FIGURE_COLUMNS = ("Figure", "Before", "After", "Change")
VOLTVAR_OBJECTIVES = ("losses", "cvr")
#: approving waits for every step's select, execute and check-back
APPROVE_TIMEOUT_S = 600.0
#: a proposal is a study (power flows) on the server
STUDY_TIMEOUT_S = 120.0
_OK, _BUSY, _ERROR = "#3ec46d", "#4ea8ff", "#ff3b3b"


def _is_plan(data: Any) -> bool:
    return isinstance(data, dict) and "id" in data and "steps" in data


class PlanTableModel(RowTableModel):
    """The plans of the store, open ones first, newest first."""

    columns = PLAN_COLUMNS

    def __init__(self, model: ConsoleModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.rows: list[Plan] = []
        self._bold = QFont()
        self._bold.setBold(True)

    def refresh(self) -> None:
        self.beginResetModel()
        self.rows = self.model.adms.ordered()
        self.endResetModel()

    def row_of(self, plan_id: str) -> int | None:
        return next((i for i, p in enumerate(self.rows) if p.id == plan_id), None)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        p = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return format_time(p.created)[:8]
            if col == 1:
                return p.app
            if col == 2:
                return p.describe_state()
            return p.title or p.summary
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(style.qcolor(style.PLAN_STATE_COLOURS.get(p.state, style.TEXT)))
        if role == Qt.ItemDataRole.FontRole and p.open:
            return self._bold
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{p.id}: {p.summary}" if p.summary else p.id
        if role == Qt.ItemDataRole.UserRole:
            return p.id
        return None


class AdmsPanel(QWidget):
    """Estimate, proposals, plans and step-by-step execution; see the module docstring."""

    #: a one-line outcome for the status bar
    message = Signal(str)
    #: a plan newly proposed (its id): the operator should look
    planProposed = Signal(str)  # noqa: N815 - Qt naming
    #: an element to show on the diagram (a step's)
    elementSelected = Signal(str)  # noqa: N815

    def __init__(
        self, model: ConsoleModel, client: ConsoleClient, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.client = client
        self.selected_id: str | None = None
        #: plan id (or "estimate", "reconfigure", "voltvar") -> what is in flight
        self.busy: dict[str, str] = {}
        #: the latest outcome shown (text, colour)
        self.outcome: tuple[str, str] = ("", _OK)
        self._seen: set[str] = set()
        self._marking = False

        # ------------------------------------------------------------ estimate
        self.estimate_label = QLabel("state estimate: none yet")
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setTextFormat(Qt.TextFormat.RichText)
        self.estimate_button = QPushButton("Estimate now")
        self.estimate_button.clicked.connect(self.run_estimate)
        estimate_row = QHBoxLayout()
        estimate_row.addWidget(self.estimate_label, 1)
        estimate_row.addWidget(self.estimate_button)

        # ----------------------------------------------------------- proposals
        self.reconfigure_button = QPushButton("Propose reconfiguration")
        self.reconfigure_button.clicked.connect(self.request_reconfiguration)
        self.objective_box = QComboBox()
        self.objective_box.addItems(VOLTVAR_OBJECTIVES)
        self.objective_box.setToolTip("losses: minimise losses; cvr: conservation voltage")
        self.voltvar_button = QPushButton("Propose volt-VAR")
        self.voltvar_button.clicked.connect(lambda: self.request_voltvar())
        proposals = QHBoxLayout()
        proposals.addWidget(self.reconfigure_button)
        proposals.addWidget(self.voltvar_button)
        proposals.addWidget(self.objective_box)
        proposals.addStretch(1)

        # --------------------------------------------------------------- plans
        self.table_model = PlanTableModel(model, self)
        self.table = QTableView()
        self.table.setModel(self.table_model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)

        top = QWidget()
        tbox = QVBoxLayout(top)
        tbox.setContentsMargins(0, 0, 0, 0)
        tbox.addLayout(estimate_row)
        tbox.addLayout(proposals)
        tbox.addWidget(self.table, 1)

        # -------------------------------------------------------------- detail
        self.detail = QGroupBox("Plan")
        self.title_label = QLabel("no plan selected")
        self.title_label.setWordWrap(True)
        self.title_label.setTextFormat(Qt.TextFormat.RichText)
        self.figures = QTableWidget(0, len(FIGURE_COLUMNS))
        self.figures.setHorizontalHeaderLabels(FIGURE_COLUMNS)
        self.figures.verticalHeader().setVisible(False)
        self.figures.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.figures.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.facts = QTableWidget(0, 2)
        self.facts.setHorizontalHeaderLabels(("Detail", "Value"))
        self.facts.verticalHeader().setVisible(False)
        self.facts.horizontalHeader().setSectionResizeMode(
            0, QHeaderView.ResizeMode.ResizeToContents
        )
        self.facts.horizontalHeader().setStretchLastSection(True)
        self.facts.setWordWrap(True)
        self.facts.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.steps = QTableWidget(0, len(STEP_COLUMNS))
        self.steps.setHorizontalHeaderLabels(STEP_COLUMNS)
        self.steps.verticalHeader().setVisible(False)
        self.steps.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.steps.horizontalHeader().setStretchLastSection(True)
        self.steps.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.steps.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.steps.cellDoubleClicked.connect(self._step_activated)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m steps")
        self.approve_button = QPushButton("Approve (execute all)")
        self.step_button = QPushButton("Execute next step")
        self.reject_button = QPushButton("Reject")
        self.reason_edit = QLineEdit()
        self.reason_edit.setPlaceholderText("reason for rejecting (optional)")
        self.approve_button.clicked.connect(lambda: self.approve())
        self.step_button.clicked.connect(lambda: self.execute_step())
        self.reject_button.clicked.connect(lambda: self.reject())
        acts = QHBoxLayout()
        for b in (self.approve_button, self.step_button, self.reject_button):
            acts.addWidget(b)
        self.outcome_label = QLabel("")
        self.outcome_label.setWordWrap(True)
        self.role_note = QLabel("")
        self.role_note.setStyleSheet("color:#ffa726")
        self.role_note.setWordWrap(True)
        self.pages = QTabWidget()
        self.pages.addTab(self.steps, "Steps")
        self.pages.addTab(self.figures, "Before / after")
        self.pages.addTab(self.facts, "Details")
        dbox = QVBoxLayout(self.detail)
        dbox.addWidget(self.title_label)
        dbox.addWidget(self.pages, 1)
        dbox.addWidget(self.progress)
        dbox.addLayout(acts)
        dbox.addWidget(self.reason_edit)
        dbox.addWidget(self.outcome_label)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.detail)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        box = QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addWidget(split, 1)
        box.addWidget(self.role_note)

        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._show_estimate)
        self._clock.start()
        model.adms.estimate_changed.connect(lambda _: self._show_estimate())
        model.adms.plans_changed.connect(self._on_plans)
        model.session_changed.connect(lambda _: self._update_buttons())
        model.connection_changed.connect(lambda _: self._show_estimate())
        self._show_estimate()
        self._show_plan()

    # ------------------------------------------------------------- showing
    @property
    def plan(self) -> Plan | None:
        """The selected plan."""
        return self.model.adms.plans.get(self.selected_id) if self.selected_id else None

    def select(self, plan_id: str | None) -> None:
        """Select a plan (None or unknown: none) in the list and show it."""
        self.selected_id = plan_id if plan_id in self.model.adms.plans else None
        self._mark_row()
        self._show_plan(selected=True)

    def _mark_row(self) -> None:
        row = self.table_model.row_of(self.selected_id) if self.selected_id else None
        self._marking = True
        try:
            if row is None:
                self.table.clearSelection()
            else:
                self.table.selectionModel().setCurrentIndex(
                    self.table_model.index(row, 0),
                    QItemSelectionModel.SelectionFlag.ClearAndSelect
                    | QItemSelectionModel.SelectionFlag.Rows,
                )
        finally:
            self._marking = False

    def _row_changed(self, current: QModelIndex, _: QModelIndex) -> None:
        if current.isValid() and not self._marking:
            self.selected_id = self.table_model.rows[current.row()].id
            self._show_plan(selected=True)

    def _on_plans(self, ids: frozenset[str]) -> None:
        self.table_model.refresh()
        proposed = sorted(
            (p for i in ids - self._seen if (p := self.model.adms.plans[i]).state == "proposed"),
            key=lambda p: -p.created,
        )
        self._seen |= ids
        held = self.plan
        if proposed and (held is None or not held.open):
            # a new proposal takes the place of nothing or of a closed plan, never of one
            # the operator may be working on
            self.select(proposed[0].id)
        else:
            self._mark_row()  # the reset cleared the view's selection
            if self.selected_id in ids:
                self._show_plan()
        for p in proposed:
            self.planProposed.emit(p.id)

    def _show_estimate(self) -> None:
        e: Estimate | None = self.model.adms.estimate
        if e is None:
            self.estimate_label.setText("state estimate: none yet")
            self.estimate_label.setToolTip("")
            self._update_buttons()
            return
        bad = e.error is not None or not e.converged or e.chi2.get("passed") is False
        colour = _ERROR if bad else style.TEXT
        text = html.escape(e.summary())
        if self.model.connection != ConnectionState.CONNECTED:
            text += " <b>(disconnected: may be out of date)</b>"
        self.estimate_label.setText(f"<span style='color:{colour}'>{text}</span>")
        tips = [f"{b.get('measurement')}: r = {b.get('normalised_residual')}" for b in e.bad_data]
        tips += [f"excluded (quality): {p}" for p in e.excluded]
        tips += [
            f"unobservable {', '.join(u.get('buses', []))}: {u.get('reason')}"
            for u in e.unobservable
        ]
        self.estimate_label.setToolTip("\n".join(tips))
        self._update_buttons()

    def _show_plan(self, selected: bool = False) -> None:
        """Show the selected plan; ``selected``: newly selected (pick the page to show)."""
        p = self.plan
        if p is None:
            self.detail.setTitle("Plan")
            self.title_label.setText("no plan selected")
            self.figures.setRowCount(0)
            self.facts.setRowCount(0)
            self.steps.setRowCount(0)
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("no plan")
            self._update_buttons()
            return
        self.detail.setTitle(f"Plan {p.id} ({p.app}, {p.mode})")
        colour = style.PLAN_STATE_COLOURS.get(p.state, style.TEXT)
        approved = f"; approved by {html.escape(p.approved_by)}" if p.approved_by else ""
        self.title_label.setText(
            f"<b>{html.escape(p.title)}</b><br>{html.escape(p.summary)}<br>"
            f"<span style='color:{colour}'>{html.escape(p.describe_state())}</span>"
            f"{approved}; created {format_time(p.created)}, updated {format_time(p.updated)}"
        )
        figures = p.figures()
        self.figures.setRowCount(len(figures))
        for row, f in enumerate(figures):
            pct = f.change_percent
            change = f"{f.change:+.4g}" + ("" if pct is None else f" ({pct:+.1f} %)")
            name = f"{f.name} ({f.unit})" if f.unit else f.name
            for col, text in enumerate((name, f"{f.before:.4g}", f"{f.after:.4g}", change)):
                self.figures.setItem(row, col, QTableWidgetItem(text))
        facts = p.facts()
        self.facts.setRowCount(len(facts))
        for row, (label, text) in enumerate(facts):
            self.facts.setItem(row, 0, QTableWidgetItem(label))
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            self.facts.setItem(row, 1, item)
        self.facts.resizeRowsToContents()
        self.pages.setTabText(0, f"Steps ({len(p.steps)})")
        self.pages.setTabText(1, f"Before / after ({len(figures)})")
        self.pages.setTabText(2, f"Details ({len(facts)})")
        if selected:
            # a proposal is judged on its figures; a plan under way is followed by its steps
            proposal = p.state == "proposed" and p.app in ("reconfiguration", "voltvar")
            self.pages.setCurrentWidget(self.figures if proposal and figures else self.steps)
        self.steps.setRowCount(len(p.steps))
        upcoming = p.next_step
        for row, s in enumerate(p.steps):
            value = "" if s.value is None else f" {s.value:g}"
            cells = (str(s.index), s.element, f"{s.action}{value}", s.state, s.message or s.reason)
            brush = QBrush(style.qcolor(style.PLAN_STATE_COLOURS.get(s.state, style.TEXT)))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setForeground(brush)
                if s is upcoming:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                via = f" via {s.point}" if s.point else " (no telecontrol point)"
                item.setToolTip(f"{s.describe()}{via}" + (f": {s.reason}" if s.reason else ""))
                self.steps.setItem(row, col, item)
        done, total = p.progress
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat("%v / %m steps")
        failed = p.failed_step
        if failed is not None:
            self._set_outcome(
                f"step {failed.index} ({failed.describe()}) failed: {failed.message or p.state}",
                _ERROR,
            )
        self._update_buttons()

    def _update_buttons(self) -> None:
        allowed = self.model.can_command
        p = self.plan
        idle = p is not None and p.id not in self.busy
        self.approve_button.setEnabled(allowed and idle and p is not None and p.can_approve())
        self.step_button.setEnabled(allowed and idle and p is not None and p.can_step())
        self.reject_button.setEnabled(allowed and idle and p is not None and p.can_reject())
        self.reason_edit.setEnabled(self.reject_button.isEnabled())
        self.estimate_button.setEnabled(allowed and "estimate" not in self.busy)
        self.reconfigure_button.setEnabled(allowed and "reconfigure" not in self.busy)
        self.voltvar_button.setEnabled(allowed and "voltvar" not in self.busy)
        self.objective_box.setEnabled(allowed)
        self.role_note.setText(
            ""
            if allowed
            else "viewing only: estimating, proposing, approving and rejecting need an operator"
        )

    def show_unavailable(self, reason: str) -> None:
        """The server gives no ADMS (no network model, or an older server): say why."""
        self._set_outcome(reason, "#ffa726")

    def _set_outcome(self, text: str, colour: str) -> None:
        self.outcome = (text, colour)
        self.outcome_label.setText(text)
        self.outcome_label.setStyleSheet(f"color:{colour}")

    # ---------------------------------------------------------------- acts
    def run_estimate(self) -> None:
        """Run the state estimation now (``POST /api/adms/estimate``)."""
        self._send("estimate", "state estimation", "/api/adms/estimate", None, STUDY_TIMEOUT_S)

    def request_reconfiguration(self) -> None:
        """Ask for a reconfiguration proposal on the live state."""
        self._send(
            "reconfigure", "reconfiguration study", "/api/adms/reconfigure", None, STUDY_TIMEOUT_S
        )

    def request_voltvar(self, objective: str | None = None) -> None:
        """Ask for a volt-VAR proposal (``objective`` default: the one chosen)."""
        objective = objective or self.objective_box.currentText()
        self._send(
            "voltvar",
            f"volt-VAR study ({objective})",
            "/api/adms/voltvar",
            {"objective": objective},
            STUDY_TIMEOUT_S,
        )

    def approve(self, plan_id: str | None = None) -> None:
        """Approve a plan (default: the selected one): execute every remaining step."""
        plan_id = plan_id or self.selected_id
        if plan_id is not None:
            self._send(
                plan_id,
                f"approve {plan_id}",
                f"/api/adms/plans/{plan_id}/approve",
                None,
                APPROVE_TIMEOUT_S,
            )

    def execute_step(self, plan_id: str | None = None) -> None:
        """Execute the next step of a plan (default: the selected one)."""
        plan_id = plan_id or self.selected_id
        p = self.model.adms.plans.get(plan_id) if plan_id else None
        if plan_id is not None:
            step = p.next_step if p is not None else None
            what = f"{plan_id} step {step.index}: {step.describe()}" if step else f"{plan_id} step"
            self._send(plan_id, what, f"/api/adms/plans/{plan_id}/step", None, APPROVE_TIMEOUT_S)

    def reject(self, plan_id: str | None = None, reason: str | None = None) -> None:
        """Reject a plan (default: the selected one, with the reason typed)."""
        plan_id = plan_id or self.selected_id
        reason = self.reason_edit.text().strip() if reason is None else reason
        if plan_id is not None:
            self._send(
                plan_id,
                f"reject {plan_id}",
                f"/api/adms/plans/{plan_id}/reject",
                {"reason": reason} if reason else None,
                STUDY_TIMEOUT_S,
            )

    def _send(self, key: str, what: str, path: str, body: Any, timeout_s: float) -> None:
        if key in self.busy:
            return
        self.busy[key] = what
        self._set_outcome(f"{what} ...", _BUSY)
        self._update_buttons()
        self.client.request(
            "POST",
            path,
            json=body,
            timeout=timeout_s,
            on_done=partial(self._done, key, what, time.monotonic()),
        )

    def _done(self, key: str, what: str, t0: float, reply: Reply) -> None:
        self.busy.pop(key, None)
        took = time.monotonic() - t0
        if not reply.ok:
            status = f"{reply.status} " if reply.status else "no answer: "
            self._set_outcome(f"{what}: refused: {status}{reply.error}", _ERROR)
            self.message.emit(self.outcome[0])
            self._update_buttons()
            return
        text = f"{what}: done in {took:.1f} s"
        colour = _OK
        if _is_plan(reply.data):
            plan = self.model.adms.set_plan(reply.data)
            if key in ("reconfigure", "voltvar"):
                self.select(plan.id)
                text = f"{what}: proposed {plan.id}: {plan.summary or plan.title}"
            else:
                text = f"{what}: {plan.describe_state()}"
                if plan.failed_step is not None:
                    colour = _ERROR
        elif key == "estimate" and isinstance(reply.data, dict):
            e = self.model.adms.set_estimate(reply.data)
            if e is not None and e.error:
                text, colour = f"{what}: {e.error}", _ERROR
        self._set_outcome(text, colour)
        self.message.emit(text)
        self._update_buttons()

    def _step_activated(self, row: int, _: int) -> None:
        p = self.plan
        if p is not None and 0 <= row < len(p.steps):
            self.elementSelected.emit(p.steps[row].element)
