"""Bundled networks (GeoJSON), built by ``python -m models.build_networks``."""
