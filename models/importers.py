"""pandapower JSON and CGMES importers; both return a :class:`NetworkModel`.

Contract: the net keeps every pandapower table the source has. Elements get a
``gis_id`` (kept when the source has a unique one; the CIM ``mRID``
(``origin_id``) for CGMES; else ``<table>-<index>``), switches get
``switch_type`` and ``normal_open`` (the state in the file when the source has
no normal state), and feeders are derived from the topology. Every such
default is logged in ``model.repairs``, once per table and field.

Default checks are looser than for GIS imports (transmission-level CIM models
are meshed): ``expect_radial=False, allow_unsupplied=True``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandapower as pp
from pandapower.auxiliary import pandapowerNet

from models.errors import CimImportError, ModelValidationError, SchemaError
from models.gis_import import check_topology, fill_feeders, log_repairs
from models.network import ImportOptions, NetworkModel, Repair, element_tables

__all__ = ["LOOSE_OPTIONS", "from_cgmes", "from_pandapower"]

#: Checks applied by default to pandapower and CGMES imports.
LOOSE_OPTIONS = ImportOptions(expect_radial=False, allow_unsupplied=True)

_SWITCH_TYPE_BY_PP = {
    "CB": "breaker",
    "LBS": "load_break_switch",
    "LS": "load_break_switch",
    "DS": "disconnector",
}
_SWITCH_TYPE_BY_CIM = {
    "Breaker": "breaker",
    "Recloser": "recloser",
    "LoadBreakSwitch": "load_break_switch",
    "Disconnector": "disconnector",
    "Fuse": "fuse",
    "Switch": "load_break_switch",
    "Sectionaliser": "load_break_switch",
    "Jumper": "disconnector",
}


def _complete(net: pandapowerNet, repairs: list[Repair]) -> None:
    """Add gis_id, switch_type and normal_open where the source lacks them."""
    used: set[str] = set()
    for table in element_tables(net):
        frame = net[table]
        proposed: list[str | None] = [None] * len(frame)
        origin = (
            "gis_id"
            if "gis_id" in frame.columns
            else "origin_id"
            if "origin_id" in frame.columns
            else None
        )
        if origin is not None:
            proposed = [v if isinstance(v, str) and v else None for v in frame[origin]]
        ids: list[str] = []
        generated = 0
        for index, value in zip(frame.index, proposed, strict=True):
            if value is None or value in used:
                value = f"{table}-{index}"
                generated += 1
            used.add(value)
            ids.append(value)
        if origin != "gis_id" or generated:
            what = (
                f"from {origin}" if origin and generated < len(frame) else f"as '{table}-<index>'"
            )
            repairs.append(
                Repair(
                    None, table, "gis_id", f"gis_id missing for {len(frame)} element(s), set {what}"
                )
            )
        frame["gis_id"] = ids
    sw = net.switch
    if len(sw):
        if "switch_type" not in sw.columns:
            by_cim = (
                sw["origin_class"].map(_SWITCH_TYPE_BY_CIM)
                if "origin_class" in sw.columns
                else None
            )
            by_pp = sw["type"].map(_SWITCH_TYPE_BY_PP)
            sw["switch_type"] = (by_cim.fillna(by_pp) if by_cim is not None else by_pp).fillna(
                "load_break_switch"
            )
            repairs.append(
                Repair(
                    None,
                    "switch",
                    "switch_type",
                    f"switch_type missing for {len(sw)} switch(es), derived from the switch class",
                )
            )
        if "normal_open" not in sw.columns:
            sw["normal_open"] = ~sw["closed"].astype(bool)
            repairs.append(
                Repair(
                    None,
                    "switch",
                    "normal_open",
                    f"normal_open missing for {len(sw)} switch(es), taken as the state in the file",
                )
            )


def _finish(
    net: pandapowerNet, *, name: str, source: str, source_format: str, options: ImportOptions
) -> NetworkModel:
    repairs: list[Repair] = []
    _complete(net, repairs)
    model = NetworkModel(
        net=net, name=name, source=source, source_format=source_format, repairs=repairs
    )
    errors = check_topology(model, options)
    if errors:
        raise ModelValidationError(errors, source=source)
    had_feeders = any("feeder" in net[t].columns for t in element_tables(net))
    fill_feeders(model, log=False)
    if not had_feeders and model.feeders:
        repairs.append(
            Repair(
                None,
                None,
                "feeder",
                f"feeders derived from the topology: {', '.join(model.feeders)}",
            )
        )
    log_repairs(model)
    return model


def from_pandapower(
    source: str | os.PathLike[str] | pandapowerNet,
    *,
    options: ImportOptions | None = None,
    name: str | None = None,
) -> NetworkModel:
    """Import a pandapower JSON file (``pp.to_json``) or a net (which is copied)."""
    if isinstance(source, pandapowerNet):
        net = copy.deepcopy(source)
        label = name or str(source.get("name") or "pandapower net")
    else:
        path = Path(source)
        if not path.is_file():
            raise SchemaError("no such file", feature_id=str(path))
        net = pp.from_json(str(path))
        label = str(path)
    return _finish(
        net,
        name=name or (Path(label).stem if not isinstance(source, pandapowerNet) else label),
        source=label,
        source_format="pandapower",
        options=options or LOOSE_OPTIONS,
    )


def from_cgmes(
    files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    options: ImportOptions | None = None,
    name: str | None = None,
    **cim_kwargs: Any,
) -> NetworkModel:
    """Import CGMES (zip or XML profiles) through pandapower's ``cim2pp``.

    ``cim_kwargs`` go to ``from_cim`` (e.g. ``use_GL_or_DL_profile``). Raises
    :class:`CimImportError` naming the file(s) if they are missing, malformed
    or hold no network.
    """
    paths = [Path(files)] if isinstance(files, str | os.PathLike) else [Path(f) for f in files]
    label = ", ".join(str(p) for p in paths)
    for path in paths:
        if not path.is_file():
            raise CimImportError("no such file", feature_id=str(path))
    # Imported here: cim2pp needs lxml and takes ~1 s to import; only CGMES users pay.
    from pandapower.converter.cim.cim2pp.from_cim import from_cim

    try:
        net = from_cim(file_list=[str(p) for p in paths], **cim_kwargs)
    # cim2pp raises bare Exception (e.g. "The FullModel is not given"), lxml and
    # zipfile errors on malformed input; all mean the same to the caller.
    except Exception as exc:
        raise CimImportError(
            f"cim2pp failed: {type(exc).__name__}: {exc}", feature_id=label
        ) from exc
    if not len(net.bus):
        raise CimImportError("no buses found (not a CGMES equipment model?)", feature_id=label)
    return _finish(
        net,
        name=name or paths[0].stem,
        source=label,
        source_format="cgmes",
        options=options or LOOSE_OPTIONS,
    )
