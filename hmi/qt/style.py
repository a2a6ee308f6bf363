"""Colours of the console: energisation, feeders, estimate bands, alarm priorities, quality.

One place, so every display uses the same conventions (dark background):
de-energised grey, earthed brown, energised and earthed red, looped
magenta; feeders from a fixed palette; alarm priorities 1 red, 2 orange,
3 yellow, 4 blue; quality comm-fail magenta, invalid red, stale yellow,
substituted cyan; state-estimate overlay: bus voltage bands from blue (under)
through green (normal) to red (over), branch loading bands from green (light)
to red (overload), blue-grey for what the estimate does not cover; plan and
step states.
"""

from __future__ import annotations

from PySide6.QtGui import QColor

__all__ = [
    "BACKGROUND",
    "DEENERGISED",
    "EARTHED",
    "ENERGISED",
    "ENERGISED_EARTHED",
    "FEEDER_PALETTE",
    "HV",
    "LOADING_COLOURS",
    "LOOPED",
    "NOT_ESTIMATED",
    "PLAN_STATE_COLOURS",
    "PRIORITY_COLOURS",
    "QUALITY_COLOURS",
    "SOURCE",
    "TEXT",
    "VOLTAGE_COLOURS",
    "feeder_colour",
    "qcolor",
]

BACKGROUND = "#101820"
TEXT = "#d8dee9"
DEENERGISED = "#6e7681"
EARTHED = "#b5773a"
ENERGISED_EARTHED = "#ff2d2d"
LOOPED = "#ff4fd8"
ENERGISED = "#3ec46d"
HV = "#e06c4c"
#: energised but upstream of every feeder breaker (busbars, transformers)
SOURCE = "#f0f0f0"
FEEDER_PALETTE = (
    "#4ea8ff",
    "#ffb547",
    "#7ee07e",
    "#c792ea",
    "#4fe0d0",
    "#f78c6c",
    "#e0e070",
    "#82aaff",
)
PRIORITY_COLOURS = {1: "#e53935", 2: "#fb8c00", 3: "#fdd835", 4: "#42a5f5"}
QUALITY_COLOURS = {
    "comm_fail": "#ff40ff",
    "invalid": "#ff3b3b",
    "not_init": "#9e9e9e",
    "stale": "#ffd54f",
    "substituted": "#4dd0e1",
    "questionable": "#ffa726",
}

#: bands of :data:`hmi.model.adms.VOLTAGE_BANDS`
VOLTAGE_COLOURS = {
    "under": "#3d6bff",
    "low": "#4fc3f7",
    "normal": "#3ec46d",
    "high": "#ffb547",
    "over": "#ff3b3b",
}
#: bands of :data:`hmi.model.adms.LOADING_BANDS`
LOADING_COLOURS = {
    "light": "#3ec46d",
    "medium": "#d4e157",
    "heavy": "#ffa726",
    "overload": "#ff3b3b",
}
NOT_ESTIMATED = "#90a4ae"
#: plan states and step states
PLAN_STATE_COLOURS = {
    "proposed": "#4ea8ff",
    "pending": "#b0bec5",
    "executing": "#ffd54f",
    "done": "#3ec46d",
    "failed": "#ff3b3b",
    "rejected": "#9e9e9e",
    "superseded": "#9e9e9e",
    "skipped": "#9e9e9e",
}

_cache: dict[str, QColor] = {}


def qcolor(name: str) -> QColor:
    """A shared QColor for a ``#rrggbb`` name."""
    c = _cache.get(name)
    if c is None:
        c = _cache[name] = QColor(name)
    return c


def feeder_colour(feeders: list[str], feeder: str | None) -> str:
    """The palette colour of a feeder (by its place among ``feeders``); SOURCE for None."""
    if feeder is None:
        return SOURCE
    try:
        i = feeders.index(feeder)
    except ValueError:
        i = sum(map(ord, feeder))
    return FEEDER_PALETTE[i % len(FEEDER_PALETTE)]
