"""``pyadms study APP``: the ADMS applications as studies on any model file or bundled network."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_parsers"]


def _print(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2, default=str, allow_nan=False))


def _guarded(func: Any) -> Any:
    """Turn the applications' input errors into a message and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        from adms.errors import AdmsError
        from adms.estimation import EstimationError
        from models.errors import ModelError

        try:
            _print(func(args))
        except (AdmsError, EstimationError, ModelError) as exc:
            print(f"pyadms study: {exc}", file=sys.stderr)
            return 2
        return 0

    return run


# The applications import pandapower: only a study command pays for it.
def _estimate(args: argparse.Namespace) -> dict[str, Any]:
    from adms.estimation import estimate, load_measurements
    from models.loader import load_network

    model = load_network(args.model)
    measurements = load_measurements(args.measurements, model)
    result = estimate(model, measurements, pseudo_loads=not args.no_pseudo)
    return {"study": "estimate", "network": model.name, **result.to_dict()}


def _flisr(args: argparse.Namespace) -> dict[str, Any]:
    from adms.studies import study_flisr

    return study_flisr(args.model, args.fault, stuck=args.stuck)


def _reconfigure(args: argparse.Namespace) -> dict[str, Any]:
    from adms.studies import study_reconfigure

    return study_reconfigure(
        args.model, objective=args.objective, all_lines_switchable=args.all_lines_switchable
    )


def _voltvar(args: argparse.Namespace) -> dict[str, Any]:
    from adms.studies import study_voltvar

    return study_voltvar(args.model, args.objective)


def _bench_estimation(args: argparse.Namespace) -> dict[str, Any]:
    from adms.estimation import bench as estimation_bench

    return estimation_bench.run(args.network, repeats=args.repeats)


def add_parsers(sub: Any, bench_sub: Any) -> None:
    """Add ``study ...`` to the top-level subparsers and ``estimation`` to ``bench``."""
    study = sub.add_parser("study", help="run an ADMS application as a study, print JSON")
    apps = study.add_subparsers(dest="study_command", required=True, metavar="APP")

    def app(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = apps.add_parser(name, help=help_text)
        p.add_argument(
            "--model",
            default="mv_oberrhein",
            help="bundled network name or a GeoJSON / pandapower JSON / CGMES file",
        )
        p.add_argument("--json", action="store_true", help="print JSON (the only format)")
        p.set_defaults(func=_guarded(func))
        return p

    est = app("estimate", "state estimation from a measurement file", _estimate)
    est.add_argument("--measurements", required=True, help="CSV or JSON measurement file")
    est.add_argument(
        "--no-pseudo", action="store_true", help="no pseudo-measurements for unmetered loads"
    )
    fl = app("flisr", "fault location, isolation and restoration for a line fault", _flisr)
    fl.add_argument("--fault", required=True, help="id of the faulted line")
    fl.add_argument("--stuck", nargs="*", default=[], help="switches that will not operate")
    rc = app("reconfigure", "loss-minimising (or balancing) radial reconfiguration", _reconfigure)
    rc.add_argument("--objective", choices=["losses", "balance"], default="losses")
    rc.add_argument(
        "--all-lines-switchable",
        action="store_true",
        help="fit a switch to every line (as the published benchmarks assume)",
    )
    vv = app("voltvar", "discrete volt-VAR optimisation", _voltvar)
    vv.add_argument("--objective", choices=["losses", "cvr"], default="losses")

    be = bench_sub.add_parser("estimation", help="our WLS against pandapower's, same measurements")
    be.add_argument("--network", default="mv_oberrhein", help="bundled name, or NAME_xN copies")
    be.add_argument("--repeats", type=int, default=30)
    be.add_argument("--json", action="store_true", help="print JSON (the only format)")
    be.set_defaults(func=_guarded(_bench_estimation))
