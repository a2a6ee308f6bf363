#!/usr/bin/env bash
# One entry point for a fresh machine (Python 3.11 with pip and venv is all it needs):
#   ./dev.sh demo   set up .venv, then run the demo control centre on the bundled network
#   ./dev.sh test   set up .venv, then run the checks (ruff, mypy, import contracts) and the tests
# Extra arguments go to the command (e.g. ./dev.sh test -k iec104).
set -euo pipefail
cd "$(dirname "$0")"

python=""
for candidate in "${PYTHON:-}" python3.11 python3; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "dev.sh: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "dev.sh: creating .venv" >&2
  "$python" -m venv .venv
fi
stamp=.venv/.pyadms-installed
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "dev.sh: installing pyadms and its dependencies into .venv" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  echo "$want" > "$stamp"
fi

# The historian tests also run against PostgreSQL (127.0.0.1:5432, database "test").
# Where none answers: start the local cluster if there is one; in CI (CI=true, root)
# install one from Debian's packages. Without PostgreSQL those tests skip and say so.
ensure_postgres() {
  pg_up() { .venv/bin/python - <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(s.connect_ex(("127.0.0.1", 5432)))
PY
  }
  pg_up && return 0
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && [ "${CI:-}" = "true" ] && [ "$(id -u)" = 0 ]; then
    echo "dev.sh: installing PostgreSQL for the historian tests" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null || true
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$version" ]; then
      pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
      for _ in $(seq 1 20); do pg_up && break; sleep 0.5; done
      pg_up && su postgres -c "createdb test" >/dev/null 2>&1 || true
    fi
  fi
  pg_up || echo "dev.sh: no PostgreSQL on 127.0.0.1:5432: its historian tests will be skipped" >&2
}

command=${1:-}
shift || true
case "$command" in
  demo)
    exec .venv/bin/pyadms demo "$@"
    ;;
  test)
    ensure_postgres
    .venv/bin/ruff check .
    .venv/bin/mypy
    .venv/bin/lint-imports
    export QT_QPA_PLATFORM=offscreen
    exec .venv/bin/pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo | ./dev.sh test [pytest arguments]" >&2
    exit 2
    ;;
esac
