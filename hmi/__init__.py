"""Operator console (PySide6 + pyqtgraph). Talks to the server only over its API.

Contract:
- :mod:`hmi.model`: Qt-free, evented models of everything shown (points,
  alarms, network drawing model and layouts, topology, tags, ADMS estimate
  and plans, session, connection state).
- :mod:`hmi.client`: the API client; network I/O on a worker thread, pushed
  data coalesced per frame, results delivered to the GUI thread by Qt signals.
- :mod:`hmi.qt`: the widgets (diagram with the state-estimate overlay,
  alarms, events/SOE, trends, tables, control dialog, ADMS panel, login,
  main window); no business logic.
- :mod:`hmi.app`: ``run_console``, ``render_screenshot`` and ``pyadms hmi``;
  :mod:`hmi.bench`: diagram load time and frame cost figures.
- Imports nothing of ``scada``, ``models``, ``adms``, ``rig``, ``server`` or
  ``protocols`` (an import-linter contract): diagram geometry, points,
  alarms and topology all come over the API.
"""
