"""``load_network``: one entry point for bundled networks and files of any supported format.

Dispatch: a bundled name (:data:`BUNDLED_NETWORKS`, or an alias) loads the
GeoJSON in ``models/networks/``; otherwise the argument is a path and its
extension decides: ``.geojson`` -> GIS import, ``.json`` -> GIS import if it
holds a FeatureCollection else pandapower JSON, ``.zip``/``.xml`` -> CGMES.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from models.errors import UnknownNetworkError
from models.gis_import import from_geojson
from models.importers import from_cgmes, from_pandapower
from models.network import ImportOptions, NetworkModel

__all__ = ["ALIASES", "BUNDLED_NETWORKS", "DEFAULT_NETWORK", "bundled_path", "load_network"]

#: Networks shipped in ``models/networks/`` (built by ``python -m models.build_networks``).
BUNDLED_NETWORKS: tuple[str, ...] = ("mv_oberrhein", "baran_wu", "cigre_mv")
DEFAULT_NETWORK = "mv_oberrhein"
ALIASES: dict[str, str] = {"case33bw": "baran_wu", "oberrhein": "mv_oberrhein", "cigre": "cigre_mv"}


def bundled_path(name: str) -> Path:
    """Path of a bundled network's GeoJSON file (alias names accepted)."""
    key = ALIASES.get(name, name)
    if key not in BUNDLED_NETWORKS:
        raise UnknownNetworkError(
            f"not a bundled network (one of: {', '.join(BUNDLED_NETWORKS)})", feature_id=name
        )
    return Path(str(resources.files("models.networks").joinpath(f"{key}.geojson")))


def _holds_feature_collection(path: Path) -> bool:
    with path.open(encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError:
            return False
    return isinstance(data, dict) and data.get("type") == "FeatureCollection"


def load_network(
    name_or_path: str | os.PathLike[str], *, options: ImportOptions | None = None
) -> NetworkModel:
    """Load a bundled network by name, or a file by its extension (see module doc)."""
    text = os.fspath(name_or_path)
    key = ALIASES.get(text, text)
    if key in BUNDLED_NETWORKS:
        return from_geojson(bundled_path(key), options=options, name=key)
    path = Path(text)
    if not path.is_file():
        raise UnknownNetworkError(
            f"neither a bundled network ({', '.join(BUNDLED_NETWORKS)}) nor an existing file",
            feature_id=text,
        )
    suffix = path.suffix.lower()
    if suffix == ".geojson":
        return from_geojson(path, options=options)
    if suffix == ".json":
        if _holds_feature_collection(path):
            return from_geojson(path, options=options)
        return from_pandapower(path, options=options)
    if suffix in (".zip", ".xml"):
        return from_cgmes(path, options=options)
    raise UnknownNetworkError(
        f"unsupported extension {suffix!r} (.geojson, .json, .zip, .xml)", feature_id=text
    )
