"""Study entry points: one function per application, returning the JSON a CLI prints.

Each takes a :class:`NetworkModel` or a network name (a bundled name or file
for :func:`models.loader.load_network`, or ``"zhang118"`` for the benchmark in
:mod:`adms.benchmarks`) and returns a plain dict (``json.dumps``-ready) with
the study name, the network and the application's result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from adms.benchmarks import with_line_switches, zhang118
from adms.flisr import study_flisr as _study_flisr
from adms.powerflow import Limits
from adms.reconfiguration import reconfigure
from adms.voltvar import optimise_voltvar
from models.loader import load_network
from models.network import NetworkModel

__all__ = ["load_study_model", "study_flisr", "study_reconfigure", "study_voltvar"]


def load_study_model(model: NetworkModel | str) -> NetworkModel:
    """The model itself, or the network of that name/path."""
    if isinstance(model, NetworkModel):
        return model
    if model == "zhang118":
        return zhang118()
    return load_network(model)


def _limits(vm_min_pu: float, vm_max_pu: float, max_loading_percent: float) -> Limits:
    return Limits(vm_min_pu=vm_min_pu, vm_max_pu=vm_max_pu, max_loading_percent=max_loading_percent)


def study_flisr(
    model: NetworkModel | str,
    fault: str,
    *,
    stuck: Iterable[str] = (),
    vm_min_pu: float = 0.95,
    vm_max_pu: float = 1.05,
    max_loading_percent: float = 100.0,
) -> dict[str, Any]:
    """FLISR for a permanent fault on line ``fault`` (see :func:`adms.flisr.study_flisr`)."""
    m = load_study_model(model)
    result = _study_flisr(
        m, fault, stuck=stuck, limits=_limits(vm_min_pu, vm_max_pu, max_loading_percent)
    )
    return {"study": "flisr", "network": m.name, **result.to_dict()}


def study_reconfigure(
    model: NetworkModel | str,
    *,
    objective: str = "losses",
    all_lines_switchable: bool = False,
    perturbations: int = 0,
    vm_min_pu: float = 0.95,
    vm_max_pu: float = 1.05,
    max_loading_percent: float = 100.0,
) -> dict[str, Any]:
    """Reconfiguration from the present state (see :func:`adms.reconfiguration.reconfigure`).

    ``all_lines_switchable`` first fits a switch to every line without one
    (the assumption of the published benchmarks).
    """
    m = load_study_model(model)
    if all_lines_switchable:
        m = with_line_switches(m)
    result = reconfigure(
        m,
        objective=objective,
        limits=_limits(vm_min_pu, vm_max_pu, max_loading_percent),
        perturbations=perturbations,
    )
    return {"study": "reconfigure", **result.to_dict()}


def study_voltvar(
    model: NetworkModel | str,
    objective: str = "losses",
    *,
    operations_used: Mapping[str, int] | None = None,
    der_q_levels: int = 5,
    vm_min_pu: float = 0.95,
    vm_max_pu: float = 1.05,
    max_loading_percent: float = 100.0,
) -> dict[str, Any]:
    """Volt-VAR optimisation (see :func:`adms.voltvar.optimise_voltvar`)."""
    m = load_study_model(model)
    result = optimise_voltvar(
        m,
        objective=objective,
        limits=_limits(vm_min_pu, vm_max_pu, max_loading_percent),
        operations_used=operations_used,
        der_q_levels=der_q_levels,
    )
    return {"study": "voltvar", "network": m.name, **result.to_dict()}
