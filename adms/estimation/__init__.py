"""State estimation: weighted least squares over the network model and a measurement snapshot.

Contract:
- :func:`estimate` takes a :class:`models.network.NetworkModel` in its live
  switching state and :class:`Measurement` s (GIS ids; ``v`` p.u., ``p`` MW,
  ``q`` Mvar, ``i`` kA) and returns an :class:`EstimationResult`: bus
  voltages, branch flows and loadings, the chi-square test, bad data removed,
  measurements excluded (bad quality, de-energised), unobservable areas with
  the reason, iterations and solve time. The model is never modified.
- Polar coordinates, sparse Jacobian, Gauss-Newton; the linear step is a
  registered solver (:data:`SOLVERS`: constrained normal equations or the
  Hachtel augmented system, sparse LU). Zero-injection buses are equality
  constraints; unmetered loads and generators get pseudo-measurements.
- Observability is checked before solving; bad data is detected by the
  chi-square test and identified by the largest normalised residual.
- Measurement files (CSV/JSON) are described in ``MEASUREMENTS.md`` and read
  by :func:`load_measurements`; :func:`synthesize` makes a realistic
  measurement set from a power flow, for tests and ``bench``.

Imports ``models``, numpy, scipy, pandas and pandapower only.
"""

from adms.estimation.baddata import ChiSquare
from adms.estimation.errors import (
    EstimationError,
    FileProblem,
    MeasurementError,
    MeasurementFileError,
    UnknownSolverError,
    UnobservableError,
)
from adms.estimation.estimator import (
    check_observability,
    estimate,
    pseudo_measurements,
)
from adms.estimation.measurements import (
    ElementKind,
    Measurement,
    Quantity,
    check_measurement,
    dump_measurements,
    load_measurements,
)
from adms.estimation.observability import UnobservableArea
from adms.estimation.pseudo import PseudoOptions
from adms.estimation.results import BadData, EstimationResult, Excluded
from adms.estimation.solvers import SOLVERS
from adms.estimation.synthetic import Noise, Placement, SyntheticCase, synthesize

__all__ = [
    "SOLVERS",
    "BadData",
    "ChiSquare",
    "ElementKind",
    "EstimationError",
    "EstimationResult",
    "Excluded",
    "FileProblem",
    "Measurement",
    "MeasurementError",
    "MeasurementFileError",
    "Noise",
    "Placement",
    "PseudoOptions",
    "Quantity",
    "SyntheticCase",
    "UnknownSolverError",
    "UnobservableArea",
    "UnobservableError",
    "check_measurement",
    "check_observability",
    "dump_measurements",
    "estimate",
    "load_measurements",
    "pseudo_measurements",
    "synthesize",
]
