"""The console's Qt views (PySide6 + pyqtgraph): widgets over :mod:`hmi.model`, no business logic.

Contract: views connect to the models' events and render them; operator acts
go to the server through :class:`hmi.client.ConsoleClient` and come back as
pushed changes. Widgets are created and touched on the GUI thread only.
"""
