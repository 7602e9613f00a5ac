"""ncbounds: the theory of neural collapse in transfer learning, made checkable.

Galanti, György & Hutter, "On the Role of Neural Collapse in Transfer Learning", ICLR 2022
(arXiv 2112.15121). THEORY.md items T0–T5 are the specification.

Public names are loaded lazily so that ``import ncbounds`` is cheap and never imports torch,
matplotlib or seaborn.

>>> import numpy as np, ncbounds
>>> x = np.array([[0.0, 0.0], [0.0, 2.0], [4.0, 0.0], [4.0, 2.0]])
>>> float(ncbounds.cdnv(x, [0, 0, 1, 1]))   # (1 + 1) / (2 * 4**2)
0.0625
"""

from __future__ import annotations

import importlib
from typing import Any

from ._errors import NCBoundsError, NCBoundsWarning

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY = {
    "ClassStats": "stats",
    "cdnv": "metrics",
    "cdnv_matrix": "metrics",
    "nc_metrics": "metrics",
    "NCMetrics": "metrics",
    "check": "verdict",
    "check_coverage": "verdict",
    "Verdict": "verdict",
    "CoverageResult": "verdict",
    "Measurement": "verdict",
    "ConfidenceInterval": "verdict",
    "clopper_pearson": "verdict",
    "Bound": "bounds",
    "sample_episodes": "fewshot",
    "Episodes": "fewshot",
    "FewShotResult": "fewshot",
}
_SUBMODULES = {"bounds", "fewshot", "stats", "metrics", "verdict", "cli"}

__all__ = ["NCBoundsError", "NCBoundsWarning", "__version__", *_LAZY, *sorted(_SUBMODULES)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'ncbounds' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
