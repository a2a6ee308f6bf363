"""Network models: GIS/CIM/pandapower import and export, validation, binding, topology.

Contract:
- Every importer returns a :class:`models.network.NetworkModel`: a pandapower
  net whose elements carry GIS ids (``gis_id``), geometry (``geo``) and
  feeders, plus the log of repairs made to the source data.
  ``models.loader.load_network(name_or_path)`` picks the importer: bundled
  name (``models/networks/``), ``.geojson``, pandapower ``.json``, CGMES
  ``.zip``/``.xml``.
- The GIS format is documented in ``models/GEOJSON.md`` and defined in
  :mod:`models.geojson`; :mod:`models.gis_import` validates and repairs,
  :mod:`models.gis_export` writes the live state back.
- :mod:`models.topology` computes energisation, earthing, islands, feeders and
  loops from live switch states, incrementally per switch change.
- :mod:`models.binding` generates the SCADA configuration of a network
  (devices, points, explicit ``element`` bindings) and checks edited ones.
- Errors are :class:`models.errors.ModelError` subclasses naming the feature
  id and field.

Imports numpy, pandas, pandapower, networkx, scipy and pydantic; below it only
``scada.config`` and ``protocols.base`` (for the binding): never ``adms``,
``server``, protocol adapters or Qt.
"""
