"""The network diagram: a QGraphicsScene drawn in a few batched layers, and its view and panel.

Contract:
- :class:`DiagramScene` draws the console model's network in a layout
  (``geographic`` or ``schematic``, :meth:`hmi.model.NetworkGraph.layout`)
  in a few items, not one per element: lines grouped by style into one path
  each, point symbols (fixed pixel size at any zoom, each look drawn once
  as a sprite and blitted), labels and values, and a highlight. Detail
  follows the zoom: loads and DER, element names and measured values
  appear once lines are long enough on screen. It follows
  the model's events: topology changes recolour, point changes redraw
  switch positions, FPIs and values with their quality, tag changes redraw
  tag marks.
- Colouring by feeder or by energisation; de-energised is grey, earthed
  brown, energised and earthed red, looped branches magenta, whatever the
  mode. :meth:`DiagramScene.style_of` says how an element is drawn now.
- The state-estimate overlay (:meth:`DiagramScene.set_estimate_overlay`),
  while on and an estimate is held, colours buses (and what hangs on one
  bus) by the estimated voltage's band and lines and transformers by their
  loading's band (:mod:`hmi.model.adms`); de-energised and earthed colours
  still win. It follows each new estimate. Tooltips give the estimated
  values whether the overlay is on or not.
- :class:`DiagramView` pans (drag), zooms (wheel, about the cursor), shows
  tooltips, and signals double-clicks and context menus on elements.
  :class:`DiagramPanel` adds search by id or name, layout and colouring
  choices, the estimate overlay toggle, fit, and a legend (of the overlay's
  bands while it is on).
"""

from __future__ import annotations

import enum
import html
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QLineF, QObject, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPolygonF,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QGraphicsItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyleOptionGraphicsItem,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from hmi.model.adms import LOADING_BANDS, VOLTAGE_BANDS, Estimate, loading_band, voltage_band
from hmi.model.console import ConsoleModel
from hmi.model.network import Element, Layout, NetworkGraph
from hmi.qt import style

__all__ = ["Colouring", "DiagramPanel", "DiagramScene", "DiagramView", "ElementStyle"]

#: symbol kinds drawn in the symbol layer, bottom to top
SYMBOL_KINDS = (
    "substation",
    "bus",
    "ext_grid",
    "transformer",
    "regulator",
    "load",
    "der",
    "capacitor",
    "switch",
    "fpi",
)
#: pixel offsets from the element's place, so symbols at one bus do not cover each other
_OFFSETS = {
    "load": (0.0, 10.0),
    "der": (10.0, -10.0),
    "capacitor": (-10.0, 10.0),
    "ext_grid": (0.0, -16.0),
    "fpi": (8.0, -9.0),
}
#: element names and measured values are written once a typical line is drawn this long
LABEL_PX = 70.0
VALUE_PX = 55.0
#: kinds the estimate gives a loading for (by id), the others take their bus's voltage
_BRANCH_KINDS = frozenset({"line", "transformer", "regulator"})
#: loads and DER (many, and beside their bus) are drawn from this detail on
PASSIVE_PX = 20.0
_PASSIVE = frozenset({"load", "der"})


class Colouring(enum.StrEnum):
    FEEDER = "feeder"
    ENERGISATION = "energisation"


@dataclass(frozen=True)
class ElementStyle:
    """How an element is drawn: its colour and why."""

    colour: str
    energised: bool
    earthed: bool
    looped: bool


@dataclass
class _Symbol:
    gid: str
    kind: str
    pos: QPointF
    colour: str
    subtype: str = ""
    closed: bool | None = True
    telemetered: bool = False
    severity: str | None = None
    marks: str = ""
    abnormal: bool = False
    tag: str | None = None
    flagged: bool = False
    #: the pixmap of its present look (None: draw or look it up at the next paint)
    sprite: QPixmap | None = field(default=None, repr=False, compare=False)


@dataclass
class _ValueLabel:
    point: str
    pos: QPointF
    row: int


class _Layer(QGraphicsItem):
    """A scene-wide item painting many elements in one paint call."""

    def __init__(self, scene: DiagramScene) -> None:
        super().__init__()
        self.diagram = scene
        self._rect = QRectF()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def set_rect(self, rect: QRectF) -> None:
        self.prepareGeometryChange()
        self._rect = rect

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return self._rect


class _LineLayer(_Layer):
    """Every line, grouped into one path per style.

    Its pixels are cached in device coordinates (redrawn when a line's style
    changes or the view pans or zooms), so the symbols above it can repaint
    every frame without the lines being stroked again.
    """

    def __init__(self, scene: DiagramScene) -> None:
        super().__init__(scene)
        self.paths: dict[str, QPainterPath] = {}
        self.keys: dict[str, tuple[str, bool, bool]] = {}
        self._groups: dict[tuple[str, bool, bool], QPainterPath] | None = None
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def clear(self) -> None:
        self.paths.clear()
        self.keys.clear()
        self.restyled()

    def restyled(self) -> None:
        """Paths or styles changed: group and stroke them again at the next paint."""
        self._groups = None
        self.update()

    def set_key(self, gid: str, key: tuple[str, bool, bool]) -> None:
        if self.keys.get(gid) != key:
            self.keys[gid] = key
            self.restyled()

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if self._groups is None:
            groups: dict[tuple[str, bool, bool], QPainterPath] = {}
            for gid, path in self.paths.items():
                groups.setdefault(self.keys[gid], QPainterPath()).addPath(path)
            self._groups = groups
        for (colour, earthed, looped), path in self._groups.items():
            pen = QPen(style.qcolor(colour), 3.0 if looped else 1.8)
            pen.setCosmetic(True)
            if earthed:
                pen.setStyle(Qt.PenStyle.DashDotLine)
            painter.setPen(pen)
            painter.drawPath(path)


class _SymbolLayer(_Layer):
    """Point symbols at a fixed pixel size: painted in device coordinates.

    Each distinct look (kind, colour, position, quality, marks, tag ...) is
    drawn once into a small pixmap (a sprite) and blitted wherever it
    appears: a repaint of the whole network is hundreds of blits, not
    hundreds of antialiased shapes.
    """

    #: sprite size, pixels: room for the largest symbol (a substation) and a switch's marks
    SPRITE = (64, 48)

    def __init__(self, scene: DiagramScene) -> None:
        super().__init__(scene)
        self.symbols: dict[str, _Symbol] = {}
        self.order: list[_Symbol] = []
        self._font = QFont()
        self._font.setPixelSize(10)
        self._font.setBold(True)
        self._sprites: dict[tuple[Any, ...], QPixmap] = {}
        self._ratio = 0.0
        #: per symbol of :attr:`order`: scene position, pixel offset, passive kind
        self._xy = np.zeros((0, 2))
        self._offset = np.zeros((0, 2))
        self._passive = np.zeros(0, bool)

    def placed(self) -> None:
        """The symbols are all in :attr:`order`: index their positions for painting."""
        self._xy = np.array([(s.pos.x(), s.pos.y()) for s in self.order], float).reshape(-1, 2)
        self._offset = np.array(
            [_OFFSETS.get(s.kind, (0.0, 0.0)) for s in self.order], float
        ).reshape(-1, 2)
        self._passive = np.array([s.kind in _PASSIVE for s in self.order], bool)

    def sprite(self, s: _Symbol, ratio: float) -> QPixmap:
        """The pixmap of a symbol's look at a device pixel ratio (drawn on first use)."""
        key = (
            s.kind,
            s.subtype,
            s.colour,
            s.closed,
            s.telemetered,
            s.severity,
            s.marks,
            s.abnormal,
            s.tag,
            s.flagged,
            ratio,
        )
        pixmap = self._sprites.get(key)
        if pixmap is None:
            w, h = self.SPRITE
            pixmap = QPixmap(round(w * ratio), round(h * ratio))
            pixmap.setDevicePixelRatio(ratio)
            pixmap.fill(Qt.GlobalColor.transparent)
            painter = QPainter(pixmap)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
            painter.setFont(self._font)
            _draw_symbol(painter, s, QPointF(w / 2, h / 2))
            painter.end()
            self._sprites[key] = pixmap
        return pixmap

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        t = painter.worldTransform()
        margin = 30.0 / max(self.diagram.px_per_unit, 1e-9)
        visible = option.exposedRect.adjusted(-margin, -margin, margin, margin)
        painter.setWorldTransform(QTransform())
        device = painter.device()
        ratio = device.devicePixelRatioF() if device is not None else 1.0
        if ratio != self._ratio:
            self._ratio = ratio
            for s in self.order:
                s.sprite = None
        x, y = self._xy[:, 0], self._xy[:, 1]
        show = (
            (x >= visible.left())
            & (x <= visible.right())
            & (y >= visible.top())
            & (y <= visible.bottom())
        )
        if self.diagram.detail_px < PASSIVE_PX:
            show &= ~self._passive
        w, h = self.SPRITE
        # the view only scales and translates: device = m * scene + d, then the pixel offset
        px = np.rint(t.m11() * x + t.dx() + self._offset[:, 0] - w / 2).astype(int).tolist()
        py = np.rint(t.m22() * y + t.dy() + self._offset[:, 1] - h / 2).astype(int).tolist()
        order = self.order
        for i in np.flatnonzero(show).tolist():
            s = order[i]
            sprite = s.sprite
            if sprite is None:
                sprite = s.sprite = self.sprite(s, ratio)
            painter.drawPixmap(px[i], py[i], sprite)


class _LabelLayer(_Layer):
    """Substation names always; element names and measured values when zoomed in."""

    def __init__(self, scene: DiagramScene) -> None:
        super().__init__(scene)
        self.names: list[tuple[QPointF, str, bool]] = []
        self.values: list[_ValueLabel] = []
        self._font = QFont()
        self._font.setPixelSize(11)
        self._big = QFont()
        self._big.setPixelSize(13)
        self._big.setBold(True)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        d = self.diagram
        t = painter.worldTransform()
        margin = 200.0 / max(d.px_per_unit, 1e-9)
        visible = option.exposedRect.adjusted(-margin, -margin, margin, margin)
        painter.setWorldTransform(QTransform())
        detail = d.detail_px
        for pos, text, always in self.names:
            if (always or detail >= LABEL_PX) and visible.contains(pos):
                p = t.map(pos)
                painter.setFont(self._big if always else self._font)
                painter.setPen(style.qcolor(style.TEXT if always else "#9fb3c8"))
                # substation names above their frame, element ids below-right of the symbol
                at = QPointF(p.x() - 22, p.y() - 20) if always else QPointF(p.x() + 8, p.y() + 14)
                painter.drawText(at, text)
        if detail < VALUE_PX:
            return
        painter.setFont(self._font)
        points = d.model.points
        for v in self.values:
            if not visible.contains(v.pos):
                continue
            p = t.map(v.pos)
            state = points.get(v.point)
            if state is None:
                continue
            severity = points.severity(v.point)
            colour = style.QUALITY_COLOURS.get(severity, "#e8e8a0") if severity else "#e8e8a0"
            painter.setPen(style.qcolor(colour))
            suffix = v.point.rsplit(".", 1)[-1]
            marks = points.marks(v.point)
            text = f"{suffix} {state.value_text()}{(' ' + marks) if marks else ''}"
            painter.drawText(QPointF(p.x() + 8, p.y() + 12 + 12 * v.row), text)


class _Highlight(QGraphicsItem):
    """A ring around the searched or selected element (pixel size)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        self.setZValue(10)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return QRectF(-20, -20, 40, 40)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        pen = QPen(style.qcolor("#ffe000"), 2.5)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(QPointF(0, 0), 16, 16)


class DiagramScene(QGraphicsScene):
    """The network of a console model, drawn in layers; see the module docstring."""

    def __init__(self, model: ConsoleModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.colouring = Colouring.FEEDER
        #: colour by the state estimate (voltage and loading bands) while one is held
        self.estimate_overlay = False
        self.layout_name = "geographic"
        self.layout: Layout | None = None
        self.px_per_unit = 1.0
        #: the median line length, scene units (labels appear when it is long enough on screen)
        self.typical_length = 1.0
        self.build_ms = 0.0
        self.setBackgroundBrush(QBrush(style.qcolor(style.BACKGROUND)))
        self.lines = _LineLayer(self)
        self.symbols = _SymbolLayer(self)
        self.labels = _LabelLayer(self)
        self.highlight = _Highlight()
        self.highlight.setVisible(False)
        self._line_highlight = self.addPath(QPainterPath())
        pen = QPen(QColor(255, 224, 0, 150), 8.0)
        pen.setCosmetic(True)
        self._line_highlight.setPen(pen)
        self._line_highlight.setZValue(-1)
        for z, item in enumerate((self.lines, self.symbols, self.labels, self.highlight)):
            item.setZValue(z)
            self.addItem(item)
        self._feeders: list[str] = []
        self._segments: list[tuple[str, QLineF]] = []
        self._value_points: dict[str, list[_ValueLabel]] = {}
        self._points_of_symbol: dict[str, str] = {}
        model.topology.changed.connect(self._on_topology)
        model.points.changed.connect(self._on_points)
        model.tags_changed.connect(lambda _: self._refresh_switches(None))
        model.network_changed.connect(self._on_network)
        model.adms.estimate_changed.connect(self._on_estimate)

    # ---------------------------------------------------------------- build
    @property
    def network(self) -> NetworkGraph | None:
        return self.model.network

    def build(self, layout_name: str | None = None) -> float:
        """Draw the model's network in a layout; returns the milliseconds it took."""
        t0 = time.perf_counter()
        net = self.network
        if layout_name is not None:
            self.layout_name = layout_name
        self.lines.clear()
        self.symbols.symbols.clear()
        self.symbols.order.clear()
        self.symbols.placed()
        self.labels.names.clear()
        self.labels.values.clear()
        self._segments.clear()
        self._value_points.clear()
        self._points_of_symbol.clear()
        self.highlight.setVisible(False)
        self._line_highlight.setPath(QPainterPath())
        if net is None:
            self.layout = None
            self.update()
            return 0.0
        layout = net.layout(self.layout_name)
        self.layout = layout
        self._feeders = net.feeders()
        for gid, path in layout.paths.items():
            qpath = QPainterPath(QPointF(*path[0]))
            for x, y in path[1:]:
                qpath.lineTo(x, y)
            self.lines.paths[gid] = qpath
            self.lines.keys[gid] = self._line_key(gid)
            for a, b in zip(path, path[1:], strict=False):
                self._segments.append((gid, QLineF(QPointF(*a), QPointF(*b))))
        rank = {k: i for i, k in enumerate(SYMBOL_KINDS)}
        elements = sorted(
            (net.elements[g] for g in layout.points if net.elements[g].kind in rank),
            key=lambda e: rank[e.kind],
        )
        for e in elements:
            s = _Symbol(e.id, e.kind, QPointF(*layout.points[e.id]), "")
            s.subtype = _subtype(e)
            self.symbols.symbols[e.id] = s
            self.symbols.order.append(s)
            self._style_symbol(s)
            if e.kind == "substation":
                self.labels.names.append((s.pos, e.name, True))
            elif e.kind in ("switch", "transformer", "regulator", "ext_grid"):
                self.labels.names.append((s.pos, e.id, False))
            for binding in net.points_of(e.id):
                if e.kind in ("switch", "fpi") and binding.qualifier is None:
                    self._points_of_symbol[binding.point] = e.id
        self.symbols.placed()
        self._place_values(net, layout)
        lengths = sorted(p.length() for p in self.lines.paths.values())
        self.typical_length = lengths[len(lengths) // 2] if lengths else 1.0
        x0, y0, x1, y1 = layout.bounds()
        pad = max(x1 - x0, y1 - y0, 1.0) * 0.05
        rect = QRectF(x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad)
        for layer in (self.lines, self.symbols, self.labels):
            layer.set_rect(rect)
        self.setSceneRect(rect)
        self.lines.restyled()
        self.update()
        self.build_ms = (time.perf_counter() - t0) * 1e3
        return self.build_ms

    def _place_values(self, net: NetworkGraph, layout: Layout) -> None:
        """An anchor per measured point: its line end, else its element."""
        rows: dict[tuple[float, float], int] = {}
        for gid, bindings in net.bindings.items():
            for b in bindings:
                if (
                    b.table == "switch"
                    or b.table == "fpi"
                    or b.qualifier in ("trip", "tap", "step")
                ):
                    continue
                path = layout.paths.get(gid)
                if path is not None:
                    at = path[0] if b.qualifier != "to" else path[-1]
                    nxt = path[1] if b.qualifier != "to" else path[-2]
                    anchor = (at[0] + (nxt[0] - at[0]) * 0.3, at[1] + (nxt[1] - at[1]) * 0.3)
                elif gid in layout.points:
                    anchor = layout.points[gid]
                else:
                    continue
                row = rows.get(anchor, 0)
                rows[anchor] = row + 1
                label = _ValueLabel(b.point, QPointF(*anchor), row)
                self.labels.values.append(label)
                self._value_points.setdefault(b.point, []).append(label)

    # -------------------------------------------------------------- styling
    def style_of(self, gid: str) -> ElementStyle:
        """How element ``gid`` is drawn now (colour by the current colouring)."""
        topo = self.model.topology
        st = topo.state(gid)
        looped = gid in topo.looped
        if st.energised and st.earthed:
            colour = style.ENERGISED_EARTHED
        elif st.earthed:
            colour = style.EARTHED
        elif not st.energised:
            colour = style.DEENERGISED
        elif (estimated := self._estimate_colour(gid)) is not None:
            colour = estimated
        elif looped:
            colour = style.LOOPED
        elif self.colouring == Colouring.FEEDER:
            e = self.network.elements.get(gid) if self.network else None
            feeder = st.feeder if topo.loaded else (e.feeder if e else None)
            colour = style.feeder_colour(self._feeders, feeder)
        else:
            colour = self._voltage_colour(gid)
        return ElementStyle(colour, st.energised, st.earthed, looped)

    def _estimate_colour(self, gid: str) -> str | None:
        """The overlay's colour of an element; None when the overlay is off or has nothing."""
        estimate = self.model.adms.estimate
        net = self.network
        if not self.estimate_overlay or estimate is None or not estimate.buses or net is None:
            return None
        e = net.elements.get(gid)
        if e is None:
            return None
        if e.kind in _BRANCH_KINDS:
            flow = estimate.branches.get(gid)
            if flow is None or flow.loading_percent is None:
                return style.NOT_ESTIMATED
            return style.LOADING_COLOURS[loading_band(flow.loading_percent)]
        buses = e.buses()
        bus = estimate.buses.get(buses[0]) if buses else None
        return style.VOLTAGE_COLOURS[voltage_band(bus.vm_pu)] if bus else style.NOT_ESTIMATED

    def _voltage_colour(self, gid: str) -> str:
        net = self.network
        e = net.elements.get(gid) if net else None
        if e is None or net is None:
            return style.ENERGISED
        buses = e.buses()
        vn = net.elements[buses[0]].props.get("vn_kv") if buses and buses[0] in net else None
        return style.HV if isinstance(vn, (int, float)) and vn >= 60 else style.ENERGISED

    def _line_key(self, gid: str) -> tuple[str, bool, bool]:
        st = self.style_of(gid)
        return (st.colour, st.earthed, st.looped)

    def _style_symbol(self, s: _Symbol) -> None:
        s.colour = self.style_of(s.gid).colour
        if s.kind == "switch":
            v = self.model.switch_view(s.gid)
            s.closed, s.telemetered, s.severity = v.closed, v.telemetered, v.severity
            s.marks, s.abnormal, s.tag = v.marks, v.abnormal, v.tag
        elif s.kind == "fpi" and self.network is not None:
            point = next(
                (b.point for b in self.network.points_of(s.gid) if b.qualifier is None), None
            )
            p = self.model.points.get(point) if point else None
            s.telemetered = p is not None
            s.flagged = bool(p is not None and p.value)
            s.severity = self.model.points.severity(point) if point and p else None
        s.sprite = None

    def set_colouring(self, colouring: Colouring) -> None:
        self.colouring = colouring
        self._restyle(None)

    def set_estimate_overlay(self, on: bool) -> None:
        """Colour by the state estimate (True) or by the colouring chosen (False)."""
        if on != self.estimate_overlay:
            self.estimate_overlay = on
            self._restyle(None)

    def _restyle(self, ids: Iterable[str] | None) -> None:
        targets = set(self.lines.paths) | set(self.symbols.symbols) if ids is None else set(ids)
        for gid in targets:
            if gid in self.lines.paths:
                self.lines.set_key(gid, self._line_key(gid))
            s = self.symbols.symbols.get(gid)
            if s is not None:
                self._style_symbol(s)
        self.update()

    def _refresh_switches(self, ids: Iterable[str] | None) -> None:
        for gid in ids if ids is not None else list(self.symbols.symbols):
            s = self.symbols.symbols.get(gid)
            if s is not None and s.kind in ("switch", "fpi"):
                self._style_symbol(s)
        self.symbols.update()

    # --------------------------------------------------------------- events
    def _on_network(self, _: NetworkGraph) -> None:
        self.build(self.layout_name)

    def _on_estimate(self, _: Estimate | None) -> None:
        if self.layout is not None and self.estimate_overlay:
            self._restyle(None)

    def _on_topology(self, ids: frozenset[str]) -> None:
        if self.layout is not None:
            self._restyle(ids)

    def _on_points(self, names: frozenset[str]) -> None:
        if self.layout is None:
            return
        symbols = {self._points_of_symbol[n] for n in names if n in self._points_of_symbol}
        if symbols:
            self._refresh_switches(symbols)
        if self.detail_px >= VALUE_PX and any(n in self._value_points for n in names):
            self.labels.update()

    # -------------------------------------------------------------- queries
    def element_ids(self) -> set[str]:
        """Every element drawn (symbols and lines)."""
        return set(self.symbols.symbols) | set(self.lines.paths)

    def position_of(self, gid: str) -> QPointF | None:
        s = self.symbols.symbols.get(gid)
        if s is not None:
            return s.pos
        path = self.lines.paths.get(gid)
        return path.pointAtPercent(0.5) if path is not None else None

    def element_at(self, pos: QPointF, tolerance_px: float = 8.0) -> str | None:
        """The element drawn nearest ``pos`` (scene), within ``tolerance_px`` pixels."""
        tol = tolerance_px / max(self.px_per_unit, 1e-9)
        best, best_d = None, tol
        k = 1.0 / max(self.px_per_unit, 1e-9)
        for s in reversed(self.symbols.order):
            dx, dy = _OFFSETS.get(s.kind, (0.0, 0.0))
            d = math.hypot(s.pos.x() + dx * k - pos.x(), s.pos.y() + dy * k - pos.y())
            if d < best_d and (s.kind != "bus" or best is None):
                best, best_d = s.gid, d
        if best is not None:
            return best
        for gid, seg in self._segments:
            if _segment_distance(seg, pos) < best_d:
                best, best_d = gid, _segment_distance(seg, pos)
        return best

    def show_highlight(self, gid: str | None) -> None:
        """Ring the element (a symbol) or thicken it (a line); None clears."""
        self.highlight.setVisible(False)
        self._line_highlight.setPath(QPainterPath())
        if gid is None:
            return
        if gid in self.lines.paths:
            self._line_highlight.setPath(self.lines.paths[gid])
        pos = self.position_of(gid)
        if pos is not None:
            self.highlight.setPos(pos)
            self.highlight.setVisible(True)

    @property
    def detail_px(self) -> float:
        """A typical line's length on screen, pixels."""
        return self.typical_length * self.px_per_unit

    def set_view_scale(self, px_per_unit: float) -> None:
        """The view's scale, for pixel-sized symbols and detail-dependent labels."""
        self.px_per_unit = px_per_unit


def _subtype(e: Element) -> str:
    if e.kind == "switch":
        return e.switch_type or "breaker"
    if e.kind == "bus":
        return "busbar" if e.props.get("type") == "b" else "node"
    return ""


def _segment_distance(seg: QLineF, p: QPointF) -> float:
    a, b = seg.p1(), seg.p2()
    dx, dy = b.x() - a.x(), b.y() - a.y()
    length2 = dx * dx + dy * dy
    t = (
        0.0
        if length2 == 0
        else max(0.0, min(1.0, ((p.x() - a.x()) * dx + (p.y() - a.y()) * dy) / length2))
    )
    return math.hypot(a.x() + t * dx - p.x(), a.y() + t * dy - p.y())


# ------------------------------------------------------------------ symbols
def _pen(colour: str, width: float = 1.5) -> QPen:
    return QPen(style.qcolor(colour), width)


def _draw_symbol(painter: QPainter, s: _Symbol, p: QPointF) -> None:
    colour = style.qcolor(s.colour)
    kind = s.kind
    if kind == "bus":
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        if s.subtype == "busbar":
            painter.drawRect(QRectF(p.x() - 7, p.y() - 2.5, 14, 5))
        else:
            painter.drawEllipse(p, 2.5, 2.5)
    elif kind == "switch":
        _draw_switch(painter, s, p)
    elif kind == "transformer":
        painter.setPen(_pen(s.colour, 1.8))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(QPointF(p.x() - 4, p.y()), 6.5, 6.5)
        painter.drawEllipse(QPointF(p.x() + 4, p.y()), 6.5, 6.5)
    elif kind == "regulator":
        painter.setPen(_pen(s.colour, 1.8))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(p, 7, 7)
        painter.drawLine(QPointF(p.x() - 6, p.y() + 6), QPointF(p.x() + 6, p.y() - 6))
    elif kind == "load":
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawPolygon(
            QPolygonF(
                [
                    QPointF(p.x() - 4, p.y() - 3),
                    QPointF(p.x() + 4, p.y() - 3),
                    QPointF(p.x(), p.y() + 4),
                ]
            )
        )
    elif kind == "der":
        painter.setPen(_pen(s.colour, 1.4))
        painter.setBrush(style.qcolor(style.BACKGROUND))
        painter.drawEllipse(p, 5.5, 5.5)
        wave = QPainterPath(QPointF(p.x() - 3.5, p.y()))
        wave.cubicTo(p.x() - 2, p.y() - 4, p.x() - 0.5, p.y() - 4, p.x(), p.y())
        wave.cubicTo(p.x() + 0.5, p.y() + 4, p.x() + 2, p.y() + 4, p.x() + 3.5, p.y())
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(wave)
    elif kind == "capacitor":
        painter.setPen(_pen(s.colour, 2.0))
        painter.drawLine(QPointF(p.x() - 2, p.y() - 5), QPointF(p.x() - 2, p.y() + 5))
        painter.drawLine(QPointF(p.x() + 2, p.y() - 5), QPointF(p.x() + 2, p.y() + 5))
    elif kind == "fpi":
        tri = QPolygonF(
            [
                QPointF(p.x(), p.y() - 5),
                QPointF(p.x() + 5, p.y() + 4),
                QPointF(p.x() - 5, p.y() + 4),
            ]
        )
        ring = style.QUALITY_COLOURS.get(s.severity) if s.severity else None
        painter.setPen(_pen(ring or ("#ff3030" if s.flagged else "#c8c8c8"), 1.2))
        painter.setBrush(style.qcolor("#ff3030") if s.flagged else Qt.BrushStyle.NoBrush)
        painter.drawPolygon(tri)
    elif kind == "ext_grid":
        painter.setPen(_pen(style.SOURCE, 1.5))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        r = QRectF(p.x() - 7, p.y() - 7, 14, 14)
        painter.drawRect(r)
        painter.drawLine(r.topLeft(), r.bottomRight())
        painter.drawLine(r.topRight(), r.bottomLeft())
    elif kind == "substation":
        pen = _pen("#8aa0b8", 1.2)
        pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(QRectF(p.x() - 22, p.y() - 16, 44, 32), 4, 4)


def _draw_switch(painter: QPainter, s: _Symbol, p: QPointF) -> None:
    size = 10.0 if s.telemetered else 7.0
    h = size / 2
    colour = style.qcolor(s.colour)
    ring = style.QUALITY_COLOURS.get(s.severity) if s.severity else None
    border = style.qcolor(ring) if ring else style.qcolor("#f0f0f0" if s.telemetered else s.colour)
    painter.setPen(QPen(border, 2.0 if ring else 1.2))
    painter.setBrush(colour if s.closed else style.qcolor(style.BACKGROUND))
    rect = QRectF(p.x() - h, p.y() - h, size, size)
    kind = s.subtype
    if kind in ("breaker", "recloser"):
        painter.drawRect(rect)
        if kind == "recloser":
            painter.setBrush(style.qcolor(style.BACKGROUND) if s.closed else colour)
            painter.drawEllipse(p, h * 0.45, h * 0.45)
    elif kind == "disconnector":
        painter.drawPolygon(
            QPolygonF(
                [
                    QPointF(p.x(), p.y() - h),
                    QPointF(p.x() + h, p.y()),
                    QPointF(p.x(), p.y() + h),
                    QPointF(p.x() - h, p.y()),
                ]
            )
        )
    elif kind == "fuse":
        painter.drawRect(QRectF(p.x() - h, p.y() - h * 0.55, size, size * 0.55))
        painter.drawLine(QPointF(p.x() - h - 2, p.y()), QPointF(p.x() + h + 2, p.y()))
    elif kind == "earthing_switch":
        painter.drawPolygon(
            QPolygonF(
                [
                    QPointF(p.x() - h, p.y() - h),
                    QPointF(p.x() + h, p.y() - h),
                    QPointF(p.x(), p.y() + h),
                ]
            )
        )
    else:  # load-break switch
        painter.drawEllipse(p, h, h)
    if s.closed is None:
        painter.setPen(_pen("#ffd54f", 2.0))
        painter.drawLine(QPointF(p.x() - h, p.y() - h), QPointF(p.x() + h, p.y() + h))
        painter.drawLine(QPointF(p.x() + h, p.y() - h), QPointF(p.x() - h, p.y() + h))
    if s.abnormal:
        pen = _pen("#ffffff", 1.0)
        pen.setStyle(Qt.PenStyle.DotLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRectF(p.x() - h - 3, p.y() - h - 3, size + 6, size + 6))
    if s.tag is not None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(style.qcolor("#ffd000" if s.tag == "caution" else "#ff3030"))
        flag = QRectF(p.x() - h - 9, p.y() - h - 9, 9, 7)
        painter.drawRect(flag)
        painter.setPen(_pen("#000000", 1))
        painter.drawText(flag, Qt.AlignmentFlag.AlignCenter, "T")
    if s.marks:
        painter.setPen(_pen(ring or style.TEXT))
        painter.drawText(QPointF(p.x() + h + 3, p.y() - h + 2), s.marks)


# --------------------------------------------------------------------- view
class DiagramView(QGraphicsView):
    """Pan, zoom and element picking over a :class:`DiagramScene`."""

    #: an element was double-clicked
    elementActivated = Signal(str)  # noqa: N815 - Qt naming
    #: right-click on an element: (id, global position)
    elementContext = Signal(str, QPoint)  # noqa: N815

    MAX_ZOOM = 400.0

    def __init__(self, scene: DiagramScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.diagram = scene
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setMouseTracking(True)
        self._fit_scale = 1.0

    def fit(self) -> None:
        """Show the whole network."""
        rect = self.diagram.sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self._fit_scale = self.transform().m11()
        self._scale_changed()

    def zoom_by(self, factor: float) -> None:
        current = self.transform().m11() / max(self._fit_scale, 1e-12)
        factor = max(0.5 / current, min(factor, self.MAX_ZOOM / current))
        self.scale(factor, factor)
        self._scale_changed()

    def zoom_to(self, gid: str, zoom: float = 6.0) -> bool:
        """Centre on an element at ``zoom`` times the fit scale and ring it."""
        pos = self.diagram.position_of(gid)
        if pos is None:
            return False
        s = self._fit_scale * zoom
        self.setTransform(QTransform.fromScale(s, s))
        self._scale_changed()
        self.centerOn(pos)
        self.diagram.show_highlight(gid)
        return True

    def _scale_changed(self) -> None:
        self.diagram.set_view_scale(self.transform().m11())
        self.diagram.update()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.25**steps)
        event.accept()

    def _element_under(self, pos: QPoint) -> str | None:
        return self.diagram.element_at(self.mapToScene(pos))

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        gid = self._element_under(event.position().toPoint())
        if gid is not None:
            self.diagram.show_highlight(gid)
            self.elementActivated.emit(gid)
        event.accept()

    def contextMenuEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        gid = self._element_under(event.pos())
        if gid is not None:
            self.diagram.show_highlight(gid)
            self.elementContext.emit(gid, event.globalPos())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        super().mouseMoveEvent(event)
        if event.buttons() != Qt.MouseButton.NoButton:
            return
        gid = self._element_under(event.position().toPoint())
        if gid is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(
                event.globalPosition().toPoint(), describe(self.diagram.model, gid), self
            )

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if abs(self.transform().m11() - self._fit_scale) < 1e-12:
            self.fit()


def describe(model: ConsoleModel, gid: str) -> str:
    """Tooltip text: the element, its state, its switch position and bound values."""
    net = model.network
    if net is None or gid not in net:
        return gid
    e = net.elements[gid]
    st = model.topology.state(gid)
    kind = e.switch_type.replace("_", " ") if e.kind == "switch" and e.switch_type else e.kind
    lines = [f"<b>{e.name}</b> ({gid}) - {kind}"]
    state = "energised" if st.energised else "de-energised"
    if st.earthed:
        state += ", earthed"
    lines.append(f"{state}; feeder {st.feeder or e.feeder or '-'}")
    if gid in model.topology.looped:
        lines.append("<span style='color:#ff4fd8'>in a loop</span>")
    if e.kind == "switch":
        v = model.switch_view(gid)
        pos = {True: "closed", False: "open", None: "unknown"}[v.closed]
        normal = "open" if e.normal_open else "closed"
        src = "telemetered" if v.telemetered else "not telemetered (model state)"
        lines.append(f"{pos} (normally {normal}), {src}")
        for t in model.tags_on(v.point) if v.point else []:
            lines.append(f"tag {t.kind} by {t.owner}: {t.reason}")
    estimate = model.adms.estimate
    bad = estimate.bad_points() if estimate is not None else {}
    for b in net.points_of(gid):
        p = model.points.get(b.point)
        if p is not None:
            marks = model.points.marks(b.point)
            lines.append(f"{b.point}: {p.value_text()} {marks}".rstrip())
        if b.point in bad:
            lines.append(
                f"<span style='color:#ff3b3b'>{b.point}: bad data "
                f"(normalised residual {bad[b.point]:.1f})</span>"
            )
        elif estimate is not None and b.point in estimate.excluded:
            lines.append(f"<span style='color:#ffa726'>{b.point}: left out of the estimate</span>")
    if estimate is not None:
        lines.extend(_estimate_lines(estimate, gid))
    return "<br>".join(lines)


def _estimate_lines(estimate: Estimate, gid: str) -> list[str]:
    """The estimated values of one element, for its tooltip."""
    tag = f"estimate #{estimate.id}"
    out = []
    bus = estimate.buses.get(gid)
    if bus is not None:
        colour = style.VOLTAGE_COLOURS[voltage_band(bus.vm_pu)]
        out.append(
            f"{tag}: <span style='color:{colour}'>{bus.vm_pu:.4f} pu</span>, "
            f"{bus.va_degree:.2f} deg"
        )
    flow = estimate.branches.get(gid)
    if flow is not None:
        loading = ""
        if flow.loading_percent is not None:
            colour = style.LOADING_COLOURS[loading_band(flow.loading_percent)]
            loading = f", loading <span style='color:{colour}'>{flow.loading_percent:.1f} %</span>"
        out.append(f"{tag}: P {flow.p_from_mw:.3f} MW, Q {flow.q_from_mvar:.3f} Mvar{loading}")
    return out


# -------------------------------------------------------------------- panel
class DiagramPanel(QWidget):
    """The diagram with search, layout and colouring choices, fit and a legend."""

    def __init__(self, model: ConsoleModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.scene = DiagramScene(model, self)
        self.view = DiagramView(self.scene)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search element id or name (Enter)")
        self.search.returnPressed.connect(self._search)
        self.layout_box = QComboBox()
        self.layout_box.addItems(["geographic", "schematic"])
        self.layout_box.currentTextChanged.connect(self.set_layout)
        self.colour_box = QComboBox()
        self.colour_box.addItems([c.value for c in Colouring])
        self.colour_box.currentTextChanged.connect(
            lambda text: self.scene.set_colouring(Colouring(text))
        )
        self.overlay_box = QCheckBox("State estimate")
        self.overlay_box.setToolTip(
            "colour buses by estimated voltage and lines/transformers by loading"
        )
        self.overlay_box.toggled.connect(self.set_estimate_overlay)
        fit = QPushButton("Fit")
        fit.clicked.connect(self.view.fit)
        self.status = QLabel("")
        bar = QHBoxLayout()
        bar.addWidget(self.search, 2)
        bar.addWidget(QLabel("Layout"))
        bar.addWidget(self.layout_box)
        bar.addWidget(QLabel("Colour by"))
        bar.addWidget(self.colour_box)
        bar.addWidget(self.overlay_box)
        bar.addWidget(fit)
        bar.addWidget(self.status, 1)
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        box = QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addLayout(bar)
        box.addWidget(self.view, 1)
        box.addWidget(self.legend)
        model.network_changed.connect(self._on_network)
        model.topology.changed.connect(lambda _: self._update_status())
        model.adms.estimate_changed.connect(lambda _: self._update_legend())

    def set_estimate_overlay(self, on: bool) -> None:
        """Toggle the state-estimate overlay (and its legend)."""
        if self.overlay_box.isChecked() != on:
            self.overlay_box.setChecked(on)
            return
        self.scene.set_estimate_overlay(on)
        self._update_legend()

    def _on_network(self, net: NetworkGraph) -> None:
        completer = QCompleter(
            sorted({*net.elements, *(e.name for e in net.elements.values())}), self
        )
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.activated.connect(lambda _: self._search())
        self.search.setCompleter(completer)
        self.view.fit()
        self._update_legend()
        self._update_status()

    def set_layout(self, name: str) -> None:
        if self.layout_box.currentText() != name:
            self.layout_box.setCurrentText(name)
            return
        self.scene.build(name)
        self.view.fit()
        self._update_status()

    def _search(self) -> None:
        net = self.model.network
        if net is None:
            return
        found = net.search(self.search.text())
        if found:
            self.view.zoom_to(found[0])
            self.status.setText(f"{found[0]} ({len(found)} match{'es' if len(found) > 1 else ''})")
        else:
            self.status.setText(f"no element matches {self.search.text()!r}")

    def _update_status(self) -> None:
        net = self.model.network
        if net is None:
            self.status.setText("no network model from the server")
            return
        off = self.model.customers_off()
        paralleled = ", ".join(f"{a}/{b}" for a, b in self.model.topology.paralleled_feeders)
        self.status.setText(
            f"{net.name}: {len(net)} elements, drawn in {self.scene.build_ms:.0f} ms"
            + (f"; {off} customers off supply" if off else "")
            + (f"; paralleled feeders {paralleled}" if paralleled else "")
        )

    def _update_legend(self) -> None:
        net = self.model.network
        if net is None:
            self.legend.setText("")
            return
        swatch = "<span style='color:{}'>&#9632;</span> {}"
        if self.scene.estimate_overlay:
            estimate = self.model.adms.estimate
            if estimate is None or not estimate.buses:
                why = estimate.error if estimate is not None and estimate.error else "none yet"
                items = [f"state estimate: {html.escape(why)} (colours as chosen)"]
            else:
                items = [f"<b>estimate #{estimate.id}</b> voltage:"]
                items += [
                    swatch.format(style.VOLTAGE_COLOURS[b], html.escape(t))
                    for _, b, t in VOLTAGE_BANDS
                ]
                items.append("<b>loading:</b>")
                items += [
                    swatch.format(style.LOADING_COLOURS[b], html.escape(t))
                    for _, b, t in LOADING_BANDS
                ]
                items.append(swatch.format(style.NOT_ESTIMATED, "not estimated"))
            items += [
                swatch.format(style.DEENERGISED, "de-energised"),
                swatch.format(style.EARTHED, "earthed"),
            ]
            self.legend.setText("&nbsp;&nbsp;".join(items))
            return
        feeders = net.feeders()
        items = [swatch.format(style.feeder_colour(feeders, f), f) for f in feeders]
        items += [
            swatch.format(style.SOURCE, "source side"),
            swatch.format(style.DEENERGISED, "de-energised"),
            swatch.format(style.EARTHED, "earthed"),
            swatch.format(style.ENERGISED_EARTHED, "energised+earthed"),
            swatch.format(style.LOOPED, "looped"),
            "&#9632; closed &#9633; open; ring: "
            + ", ".join(
                f"<span style='color:{c}'>{k.replace('_', '-')}</span>"
                for k, c in style.QUALITY_COLOURS.items()
            )
            + "; T tag; dotted: off-normal",
        ]
        self.legend.setText("&nbsp;&nbsp;".join(items))
