"""Input validation shared by the public functions of ncbounds.

Every check raises :class:`~ncbounds.NCBoundsError` naming the argument, what was expected
and what was received (DESIGN.md, "Errors"). torch is never imported here: tensors are
recognised by their type's module, so ``import ncbounds`` stays torch-free.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._errors import NCBoundsError

__all__ = [
    "is_torch_tensor",
    "as_generator",
    "check_features",
    "check_labels",
    "check_positive_int",
    "check_probability",
    "describe",
    "raise_nonfinite",
    "to_numpy",
]


def is_torch_tensor(x: Any) -> bool:
    """True when ``x`` is a ``torch.Tensor`` (checked without importing torch)."""
    t = type(x)
    return t.__module__.startswith("torch") and hasattr(x, "device") and hasattr(x, "dtype")


def describe(x: Any) -> str:
    """A short description of a value for error messages: type, shape and dtype."""
    if is_torch_tensor(x):
        return f"torch.Tensor of shape {tuple(x.shape)}, dtype {x.dtype}, on {x.device}"
    if isinstance(x, np.ndarray):
        return f"numpy array of shape {x.shape}, dtype {x.dtype}"
    r = repr(x)
    if len(r) > 60:
        r = r[:57] + "..."
    return f"{type(x).__name__} {r}"


def to_numpy(x: Any) -> np.ndarray:
    """A CPU tensor or array-like as a numpy array (no copy when possible).

    float16 / bfloat16 tensors are widened to float32 (exactly) because numpy has no
    bfloat16. CUDA tensors are copied to the host; callers that want to stay on the GPU
    must branch before calling this.
    """
    if is_torch_tensor(x):
        import torch  # only reached when the caller already holds a tensor

        t = x.detach()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        return t.cpu().numpy()
    return np.asarray(x)


def as_generator(rng: Any, *, name: str = "rng") -> np.random.Generator:
    """A numpy Generator from ``rng`` (a Generator or an int seed); never global state."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (numbers.Integral, np.integer)) and not isinstance(rng, bool):
        if int(rng) < 0:
            raise NCBoundsError(f"{name}: expected a non-negative int seed, got {int(rng)}")
        return np.random.default_rng(int(rng))
    if isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    raise NCBoundsError(
        f"{name}: expected a numpy.random.Generator or an int seed, got {describe(rng)}"
    )


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise NCBoundsError(f"{name}: expected an integer >= {minimum}, got {describe(value)}")
    if int(value) < minimum:
        raise NCBoundsError(f"{name}: expected an integer >= {minimum}, got {int(value)}")
    return int(value)


def check_probability(value: Any, name: str, *, open_interval: bool = True) -> float:
    """``value`` as a float in (0, 1) (or [0, 1] when ``open_interval`` is False)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NCBoundsError(f"{name}: expected a number in (0, 1), got {describe(value)}") from None
    ok = (0.0 < v < 1.0) if open_interval else (0.0 <= v <= 1.0)
    if not ok:
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise NCBoundsError(f"{name}: expected a number in {interval}, got {v!r}")
    return v


def raise_nonfinite(features: Any, name: str = "features") -> None:
    """Raise the NaN/inf error for ``features``: how many rows, and the first one.

    Called only after a cheap check (a non-finite accumulator) found something wrong, so
    the full scan costs nothing on good data.
    """
    if is_torch_tensor(features):
        import torch

        bad_rows = (~torch.isfinite(features)).reshape(features.shape[0], -1).any(dim=1)
        idx = torch.nonzero(bad_rows).flatten().cpu().numpy()
    else:
        arr = np.asarray(features)
        idx = np.flatnonzero(~np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1))
    if idx.size == 0:  # pragma: no cover - only when the accumulator itself overflowed
        raise NCBoundsError(
            f"{name}: the values are finite but too large: their squares overflow float64"
        )
    raise NCBoundsError(
        f"{name}: expected finite values, got NaN or inf in {idx.size} row(s); "
        f"the first is row {int(idx[0])}"
    )


def check_features(features: Any, name: str = "features") -> Any:
    """Validate a 2-D float feature matrix (numpy array or torch tensor); return it.

    Integer and boolean inputs are converted to float64 numpy arrays; float tensors and
    arrays are returned as they are (no copy). Finiteness is *not* checked here: the
    accumulators detect NaN/inf for free and call :func:`raise_nonfinite`.
    """
    if is_torch_tensor(features):
        if features.ndim != 2:
            raise NCBoundsError(
                f"{name}: expected a 2-D (samples, dim) tensor, got {describe(features)}"
            )
        if features.shape[1] == 0:
            raise NCBoundsError(f"{name}: expected at least one feature column, got {describe(features)}")
        if not (features.is_floating_point()):
            features = features.double()
        return features
    if isinstance(features, (list, tuple)) or not isinstance(features, np.ndarray):
        try:
            features = np.asarray(features)
        except Exception:  # pragma: no cover - exotic inputs
            raise NCBoundsError(
                f"{name}: expected a 2-D array of numbers, got {describe(features)}"
            ) from None
    if features.ndim != 2:
        raise NCBoundsError(f"{name}: expected a 2-D (samples, dim) array, got {describe(features)}")
    if features.shape[1] == 0:
        raise NCBoundsError(f"{name}: expected at least one feature column, got {describe(features)}")
    if features.dtype.kind in "biu":
        features = features.astype(np.float64)
    elif features.dtype.kind != "f":
        raise NCBoundsError(
            f"{name}: expected a floating-point (or integer) array, got dtype {features.dtype}"
        )
    return features


def check_labels(labels: Any, n: int | None = None, name: str = "labels") -> np.ndarray:
    """Validate 1-D integer labels (any integer values) as an int64 numpy array.

    ``n`` is the number of feature rows the labels must match.
    """
    if is_torch_tensor(labels):
        if labels.is_floating_point() or labels.is_complex():
            raise NCBoundsError(f"{name}: expected 1-D integer labels, got {describe(labels)}")
        labels = labels.detach().cpu().numpy()
    else:
        labels = np.asarray(labels)
    if labels.ndim != 1:
        raise NCBoundsError(f"{name}: expected 1-D integer labels, got {describe(labels)}")
    if labels.size == 0 and labels.ndim == 1:
        labels = labels.astype(np.int64)  # an empty list has no integer dtype of its own
    if labels.dtype.kind not in "iub":
        if labels.dtype.kind == "f" and labels.size and np.all(np.isfinite(labels)) and np.all(
            labels == np.round(labels)
        ):
            raise NCBoundsError(
                f"{name}: expected 1-D integer labels, got float dtype {labels.dtype} "
                "(whole numbers: convert with labels.astype(int))"
            )
        raise NCBoundsError(f"{name}: expected 1-D integer labels, got dtype {labels.dtype}")
    if labels.dtype.kind == "u" and labels.dtype.itemsize == 8 and labels.size and labels.max() > np.iinfo(np.int64).max:
        raise NCBoundsError(
            f"{name}: expected labels that fit in int64, got an unsigned label {int(labels.max())}"
        )
    if n is not None and labels.shape[0] != n:
        raise NCBoundsError(
            f"{name}: expected one label per feature row ({n}), got {labels.shape[0]} labels"
        )
    return labels.astype(np.int64, copy=False)
