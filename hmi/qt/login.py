"""The login dialog: user name and password for one server; shows the role granted."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from hmi.client import ConsoleClient, Reply
from hmi.model.console import Session

__all__ = ["LoginDialog"]


class LoginDialog(QDialog):
    """Logs the client in; accepted once the server grants a session (:attr:`session`)."""

    def __init__(
        self,
        client: ConsoleClient,
        username: str = "",
        message: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.session: Session | None = None
        self.setWindowTitle("pyadms console - log in")
        self.username = QLineEdit(username)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.status = QLabel(message)
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Server", QLabel(client.server_url))
        form.addRow("User", self.username)
        form.addRow("Password", self.password)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addLayout(form)
        box.addWidget(self.status)
        box.addWidget(self.buttons)
        (self.password if username else self.username).setFocus()

    def submit(self) -> None:
        user = self.username.text().strip()
        if not user or not self.password.text():
            self.status.setText("user name and password, please")
            return
        self.buttons.setEnabled(False)
        self.status.setText("logging in ...")
        self.client.login_async(user, self.password.text(), self._done)

    def _done(self, reply: Reply) -> None:
        self.buttons.setEnabled(True)
        if reply.ok and self.client.session is not None:
            self.session = self.client.session
            self.status.setText(f"logged in as {self.session.username} ({self.session.role})")
            self.accept()
        else:
            self.password.clear()
            self.status.setText(f"<span style='color:#ff3b3b'>{reply.error or 'no answer'}</span>")
