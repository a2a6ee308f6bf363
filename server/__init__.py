"""Composition root: wires adapters, FEPs, point database and applications; the ``pyadms`` CLI."""
