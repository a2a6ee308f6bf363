"""The README's commands run as a user runs them (examples never rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def pyadms(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_config_check_of_the_example_and_of_a_broken_file(tmp_path: Path) -> None:
    ok = pyadms("config", "check", "examples/field.yaml")
    assert ok.returncode == 0 and "5 devices, 29 points" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices:\n  - {name: X, template: nope, protocol: iec104, port: 1}\n")
    result = pyadms("config", "check", str(bad))
    assert result.returncode == 2
    assert "device 'X': key 'template': unknown template 'nope'" in result.stderr


def test_demo_runs_headless_and_connects_every_device() -> None:
    result = pyadms("demo", "--seconds", "12", "--port", "0", timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "63/63 devices connected" in result.stdout, result.stdout[-2000:]


def test_study_prints_json() -> None:
    result = pyadms("study", "flisr", "--model", "baran_wu", "--fault", "L10", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"study": "flisr"' in result.stdout
    missing = pyadms("study", "flisr", "--model", "baran_wu", "--fault", "NOPE", "--json")
    assert missing.returncode == 2 and "NOPE" in missing.stderr
