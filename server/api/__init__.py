"""The control centre's authenticated API: REST for queries and commands, a WebSocket push.

Contract:
- :func:`create_app` builds the FastAPI application over one
  :class:`~server.wiring.ControlCentre`; its OpenAPI schema is published at
  ``/openapi.json`` (interactive docs at ``/docs``).
- Every route but login and health needs a bearer token; roles gate what a
  caller may do (:mod:`server.api.deps`), refusals for lack of role are audited.
- Bad input is a 4xx whose ``detail`` names the field, point, alarm, user or
  tag concerned; a 5xx means the server (its database) failed.
- :class:`ApiServer` serves the application with uvicorn in the running loop.
"""

from server.api.app import create_app
from server.api.serve import ApiServer

__all__ = ["ApiServer", "create_app"]
