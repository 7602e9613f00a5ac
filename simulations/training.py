r"""Train a network on source classes and track neural collapse on source and new classes.

The experiment of Galanti, György & Hutter (ICLR 2022, §5): a feature map :math:`f` with a
linear head is trained with cross-entropy on :math:`l` *source* classes; every
``eval_every`` epochs we measure, on three sample sets,

- ``source_train``: a fixed subset of the training samples (``eval_train_per_class`` per
  class, chosen once from ``data_seed``),
- ``source_test``: held-out samples of the source classes (T3: CDNV generalises to new
  samples of the same classes),
- ``target``: samples of new classes (T4: CDNV generalises to new classes),

the average CDNV :math:`\mathrm{Avg}_{i\ne j} V_f(S_i, S_j)` and the Papyan et al. metrics
NC1, NC2 (THEORY.md T0), NC3 and NC4 and the network's accuracy (source sets only, where the
classifier applies), and the 5-way 1-shot and 5-shot accuracy of the ridge and
nearest-class-mean heads (T1's rule) with 95% Student-t intervals over episodes
(:func:`ncbounds.fewshot.evaluate`). The episodes of each set are drawn once from
``data_seed``, so every evaluation of every run sees the same episodes (common random
numbers: curves against epoch and comparisons across runs carry no episode noise).

:func:`train` runs one configuration (:class:`TrainConfig`); :func:`run_training_experiment`
runs the experiments N1–N3 of issue 5:

- ``"n1"``: the four curves of the paper's figure (CDNV on source-train, source-test and
  target, and few-shot accuracy) against epoch, for one run.
- ``"n2"``: final target CDNV and few-shot accuracy against the number of source classes
  :math:`l` (T4 predicts improvement as :math:`l` grows); the target classes are the same
  for every :math:`l` (nested source subsets of one data set).
- ``"n3"``: transferability (Li et al., "What deep representations should we learn? A
  neural collapse perspective"): runs that vary weight decay, label smoothing, training
  length and width one at a time around a base configuration, and the Spearman rank
  correlation between source NC1, target CDNV and few-shot accuracy at the end of training,
  with a Fisher-z confidence interval.

Results store
-------------
Everything goes to ``OUT/results.sqlite``, the store of :mod:`simulations.sweep`, readable
with :func:`simulations.sweep.load_results`. Each *evaluation* of a run is one stored cell
(keyed by the run's configuration, its ``epoch`` and ``seed``) written in one transaction
as soon as it is measured, so the rows of a running or interrupted run can be read at any
time and a resumed run never duplicates them. Sweep names: the ``sweep`` argument of
:func:`train` (default ``"train"``), ``"n1"``, ``"n2"``, ``"n3"`` for the experiments and
``"n3-correlations"`` for the correlation table (load it with
``load_results(path, name="n3-correlations")``).

Columns of a training row (tidy long form: one row per measurement):

- configuration (one column each, constant within a run): every :class:`TrainConfig`
  field except the runtime ones (``device``, ``num_threads``, ``keep_checkpoints``), with
  ``n_source_classes`` resolved to the number of classes actually trained on and ``amp``
  to whether mixed precision was used; ``seed`` (the training seed); ``epoch`` (0 is the
  initialisation);
- ``run``: a short id of the run (hash of its configuration and seed);
- ``split``: ``"source_train"``, ``"source_test"``, ``"target"``, or ``"train"`` for
  optimisation and timing records;
- ``metric``: one of
  ``cdnv``, ``nc1``, ``nc2_equinorm``, ``nc2_equiangular``, ``nc2_maxangle``,
  ``nc2_etf_distance`` (all splits), ``nc3``, ``nc4``, ``accuracy`` (source splits: NC3
  self-duality, NC4 agreement with the nearest-class-mean rule, network top-1 accuracy),
  ``fewshot_accuracy`` (all splits, with ``head``, ``shots``, ``ways``, ``queries``,
  ``episodes``, ``ci_low``, ``ci_high``); for ``split="train"``: ``loss`` and
  ``accuracy`` (mean over the last epoch's mini-batches, in training mode), ``lr`` (at
  the end of the epoch), and the timings in :data:`TIMING_METRICS`: ``train_seconds``
  (training time since the previous evaluation), ``eval_seconds`` (this evaluation's
  tracking time), ``train_seconds_total``, ``eval_seconds_total`` (cumulative over the
  run, across resumptions), and at epoch 0 ``data_seconds`` (loading or rendering the
  data) and ``setup_seconds`` (one-off imports and kernel compilation, paid before the
  tracking is timed);
- ``value``; ``ci_low``, ``ci_high`` (95% interval, few-shot rows only);
- ``head`` (``"ridge"`` / ``"ncm"``), ``shots``, ``ways``, ``queries``, ``episodes``
  (few-shot rows only; missing elsewhere);
- ``n_samples``, ``n_classes`` (size of the evaluated set);
- ``device`` (``"cpu"`` / ``"cuda"``).

Columns of a correlation row (``n3-correlations``): configuration ``experiment``, ``size``;
fields ``x``, ``y`` (quantity names such as ``source_train_nc1``, ``target_cdnv``,
``fewshot_ridge_5shot``), ``spearman``, ``ci_low``, ``ci_high`` (Fisher z with the
Bonett–Wright variance), ``p_value`` (scipy's), ``n_runs``, ``confidence``.

Checkpoints
-----------
Each evaluation also writes ``OUT/checkpoints/<run>/epoch-NNNN.pt`` (atomically): the model,
optimiser and gradient-scaler state dicts, the epoch, the configuration and the rows of that
evaluation — plain tensors, numbers and strings, loadable with
``torch.load(path, weights_only=True)``. ``keep_checkpoints`` (default 1) are retained. A
rerun of the same configuration and ``out`` resumes from the latest checkpoint: the data
order of an epoch, the learning rate of a step and the few-shot episodes depend only on the
seeds and the epoch, so on CPU a resumed run gives exactly the rows of an uninterrupted one
(timings aside). Work after the last checkpoint is redone.

A loss that becomes NaN or infinite stops the run with an :class:`~ncbounds.NCBoundsError`
naming the epoch, the step and the learning rate; the last good checkpoint stays in place.

Reproducibility: on CPU the run is deterministic (seeded initialisation inside
``torch.random.fork_rng``, per-epoch permutations from ``numpy.random.default_rng([seed,
epoch])``, ``torch.use_deterministic_algorithms`` switched on for the duration of the call).
No global random state, numpy's or torch's, is changed. On CUDA, ``amp`` (default on) uses
bfloat16 autocast where supported (float16 with a gradient scaler otherwise); results are then
reproducible only up to the nondeterminism of cuDNN.

This module implements issue 5 §2–§4; THEORY.md T0 (metrics), T1 (nearest-mean rule), T3,
T4 (what the three splits test).

>>> import tempfile
>>> from simulations.sweep import load_results
>>> cfg = TrainConfig(model="mlp", dataset="gaussian_mixture", width=16, epochs=1,
...                   data_source_classes=5, data_target_classes=5, data_per_class=30,
...                   input_dim=8, fewshot_episodes=20, device="cpu")
>>> with tempfile.TemporaryDirectory() as tmp:
...     frame = load_results(train(cfg, out=tmp, progress=False))
>>> sorted(frame["epoch"].unique().tolist()), sorted(frame["split"].unique())
([0, 1], ['source_test', 'source_train', 'target', 'train'])
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ncbounds._errors import NCBoundsError, NCBoundsWarning
from ncbounds._validation import check_positive_int, describe

__all__ = [
    "TrainConfig",
    "train",
    "run_training_experiment",
    "experiment_configs",
    "summarize",
    "format_summary",
    "load_trained_model",
    "spearman_with_ci",
    "TIMING_METRICS",
    "EXPERIMENTS",
    "SIZES",
]

#: Metrics of ``split="train"`` rows that are wall-clock timings (not reproducible).
TIMING_METRICS = ("train_seconds", "eval_seconds", "train_seconds_total", "eval_seconds_total",
                  "data_seconds", "setup_seconds")
EXPERIMENTS = ("n1", "n2", "n3")
#: Sizes of :func:`run_training_experiment`: ``tiny`` (tests, seconds), ``mlp`` (MLP on the
#: Gaussian mixture, about a minute on CPU), ``quick`` (CNN on glyphs, the ``--quick``
#: command: a few minutes on 2 CPU cores), ``full`` (a wider CNN on 400 + 100 glyph classes:
#: the default without ``--quick``; an hour or so on CPU, minutes on a GPU), ``paper``
#: (WRN-28-4, the paper's network, on 32 × 32 glyphs; for a GPU).
SIZES = ("tiny", "mlp", "quick", "full", "paper")

DATASETS = ("glyphs", "gaussian_mixture", "cifar_fs", "fc100", "mini_imagenet")
_RUNTIME_FIELDS = ("device", "num_threads", "keep_checkpoints")
_CKPT_FORMAT = "ncbounds.training/1"
_SPLITS = ("source_train", "source_test", "target")
_SHOTS = (1, 5)
_HEADS = ("ridge", "ncm")
_NC_FIELDS = ("cdnv", "nc1", "nc2_equinorm", "nc2_equiangular", "nc2_maxangle",
              "nc2_etf_distance")
_EVAL_BATCH = 1024
_CHUNK = 4096  # rows per chunk when standardising the inputs


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (issue 5 §2).

    Model and data
        ``model``: ``"mlp"``, ``"cnn"`` (:class:`~simulations.networks.SmallCNN`) or
        ``"wrn"`` (:class:`~simulations.networks.WideResNet`); ``width``: MLP units, CNN
        first-block channels or WRN widening factor k; ``depth``: MLP hidden blocks
        (default 2) or WRN depth (default 28). ``dataset``: ``"glyphs"``,
        ``"gaussian_mixture"``, or ``"cifar_fs"``, ``"fc100"``, ``"mini_imagenet"`` (local
        copies under ``data_root``). ``data_source_classes``, ``data_target_classes``,
        ``data_per_class``, ``data_test_per_class``, ``image_size`` (glyphs),
        ``input_dim`` (Gaussian mixture) and ``data_seed`` define the synthetic data sets
        (the real ones have fixed splits). ``n_source_classes``: train on this many of the
        data set's source classes (the first of a ``data_seed`` permutation, so smaller
        sets are nested in larger ones; None: all). Inputs are standardised per channel
        (per feature for vectors) with the source-train mean and standard deviation.
    Optimisation
        ``epochs``, ``batch_size`` (the last incomplete batch of an epoch is dropped),
        ``optimizer`` (``"sgd"`` with Nesterov-free ``momentum``, or ``"adamw"``), ``lr``,
        ``schedule`` (``"cosine"``: per-step cosine decay to 0; ``"step"``: multiply by
        ``lr_gamma`` every ``lr_step_every`` epochs, default epochs // 3),
        ``weight_decay``, ``label_smoothing`` (of the cross-entropy), ``seed``.
    Tracking
        ``eval_every`` epochs (and at epoch 0 and the last epoch);
        ``eval_train_per_class`` source-train samples per class (the fixed subset),
        ``eval_test_per_class`` and ``eval_target_per_class`` caps (None: all);
        ``fewshot_ways``, ``fewshot_queries`` (at most; fewer when a class of the set has
        fewer samples), ``fewshot_episodes``, ``ridge_lambda``, ``fewshot_normalize``
        (see :func:`ncbounds.fewshot.evaluate`).
    Runtime (not part of the run's identity)
        ``device``: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"``; ``amp``: mixed precision, None = on for CUDA (never on CPU);
        ``num_threads``: torch intra-op threads during the call (None: leave as is);
        ``keep_checkpoints``: how many evaluation checkpoints to retain.

    >>> TrainConfig(epochs=2).replace(lr=0.1).lr
    0.1
    """

    model: str = "cnn"
    width: int = 16
    depth: int | None = None
    dataset: str = "glyphs"
    data_source_classes: int = 64
    data_target_classes: int = 20
    data_per_class: int = 40
    data_test_per_class: int | None = None
    image_size: int = 28
    input_dim: int = 64
    data_seed: int = 0
    data_root: str | None = None
    n_source_classes: int | None = None
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    schedule: str = "cosine"
    lr_step_every: int | None = None
    lr_gamma: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    seed: int = 0
    eval_every: int = 1
    eval_train_per_class: int | None = 20
    eval_test_per_class: int | None = None
    eval_target_per_class: int | None = None
    fewshot_ways: int = 5
    fewshot_queries: int = 15
    fewshot_episodes: int = 500
    ridge_lambda: float = 1.0
    fewshot_normalize: str | None = "center"
    device: str = "auto"
    amp: bool | None = None
    num_threads: int | None = None
    keep_checkpoints: int = 1

    def __post_init__(self) -> None:
        from . import networks

        _choice(self.model, "model", networks.MODELS)
        _choice(self.dataset, "dataset", DATASETS)
        _choice(self.optimizer, "optimizer", ("sgd", "adamw"))
        _choice(self.schedule, "schedule", ("cosine", "step"))
        _choice(self.fewshot_normalize, "fewshot_normalize", (None, "center", "l2"))
        for name in ("width", "data_source_classes", "data_target_classes", "image_size",
                     "input_dim", "epochs", "batch_size", "eval_every", "fewshot_queries",
                     "keep_checkpoints"):
            check_positive_int(getattr(self, name), name)
        # two episodes at least, for the interval over episodes
        check_positive_int(self.fewshot_episodes, "fewshot_episodes", minimum=2)
        check_positive_int(self.data_per_class, "data_per_class", minimum=2)
        check_positive_int(self.fewshot_ways, "fewshot_ways", minimum=2)
        for name in ("data_seed", "seed"):
            check_positive_int(getattr(self, name), name, minimum=0)
        for name in ("depth", "data_test_per_class", "lr_step_every", "eval_test_per_class",
                     "eval_target_per_class", "eval_train_per_class", "num_threads"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        if self.n_source_classes is not None:
            check_positive_int(self.n_source_classes, "n_source_classes", minimum=2)
        _number(self.lr, "lr", 0.0, math.inf, open_low=True)
        _number(self.momentum, "momentum", 0.0, 1.0, open_high=True)
        _number(self.lr_gamma, "lr_gamma", 0.0, 1.0, open_low=True)
        _number(self.weight_decay, "weight_decay", 0.0, math.inf)
        _number(self.label_smoothing, "label_smoothing", 0.0, 1.0, open_high=True)
        _number(self.ridge_lambda, "ridge_lambda", 0.0, math.inf, open_low=True)
        if self.amp not in (None, True, False):
            raise NCBoundsError(f"amp: expected None, True or False, got {describe(self.amp)}")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
        ):
            raise NCBoundsError(
                f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {describe(self.device)}"
            )
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise NCBoundsError(
                f"data_root: expected a path as str or None, got {describe(self.data_root)}"
            )
        if self.dataset in ("cifar_fs", "fc100", "mini_imagenet") and self.data_root is None:
            raise NCBoundsError(
                f"data_root: expected the folder or archive of the local {self.dataset} copy, "
                "got None (nothing is downloaded)"
            )

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _choice(value: Any, name: str, allowed: Sequence[Any]) -> None:
    if value not in allowed or (value is not None and not isinstance(value, str)):
        raise NCBoundsError(f"{name}: expected one of {tuple(allowed)}, got {describe(value)}")


def _number(value: Any, name: str, lo: float, hi: float, *, open_low: bool = False,
            open_high: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise NCBoundsError(f"{name}: expected a number, got {describe(value)}")
    v = float(value)
    ok = math.isfinite(v) or (hi == math.inf and v == math.inf and not open_high)
    ok = ok and (v > lo if open_low else v >= lo) and (v < hi if open_high else v <= hi)
    if not ok:
        interval = f"{'(' if open_low else '['}{lo:g}, {hi:g}{')' if open_high else ']'}"
        raise NCBoundsError(f"{name}: expected a finite number in {interval}, got {v!r}")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Data:
    """Tensors on the device and the fixed evaluation sets (numpy labels)."""

    x_train: Any  # (N, ...) float32 tensor, standardised
    y_train: Any  # (N,) int64 tensor, dense labels 0..l-1
    eval_x: dict[str, Any]  # split -> tensor
    eval_y: dict[str, np.ndarray]  # split -> labels (dense for source splits, original for target)
    episodes: dict[tuple[str, int], Any]  # (split, shots) -> Episodes
    source_classes: np.ndarray
    input_shape: tuple[int, ...]


def _load_splits(config: TrainConfig, progress: bool | None):
    from . import datasets

    if config.dataset == "glyphs":
        return datasets.glyphs(
            n_source_classes=config.data_source_classes,
            n_target_classes=config.data_target_classes, per_class=config.data_per_class,
            test_per_class=config.data_test_per_class, size=config.image_size,
            rng=config.data_seed, progress=progress,
        )
    if config.dataset == "gaussian_mixture":
        return datasets.gaussian_mixture(
            n_source_classes=config.data_source_classes,
            n_target_classes=config.data_target_classes, per_class=config.data_per_class,
            test_per_class=config.data_test_per_class, input_dim=config.input_dim,
            rng=config.data_seed,
        )
    if config.dataset == "mini_imagenet":
        return datasets.mini_imagenet(config.data_root, rng=config.data_seed)
    return getattr(datasets, config.dataset)(config.data_root)


def _per_class_subset(y: np.ndarray, k: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices: up to ``k`` rows of every class, a seeded choice (all if None)."""
    if k is None:
        return np.arange(y.size)
    order = rng.permutation(y.size)
    sort = np.argsort(y[order], kind="stable")  # positions in `order`, grouped by class
    grouped = y[order][sort]
    rank = np.arange(y.size) - np.searchsorted(grouped, grouped, side="left")
    return np.sort(order[sort[rank < k]])


def _channel_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 0, zeros replaced by 1) per feature of vectors
    (N, d) or per channel of images (N, C, H, W), in float64, two passes over row chunks;
    shaped to broadcast against a chunk."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    count = x.size / x.shape[1]
    total = sum(x[lo : lo + _CHUNK].sum(axis=axes, dtype=np.float64, keepdims=True)
                for lo in range(0, x.shape[0], _CHUNK))
    mean = total / count
    sq = sum(((x[lo : lo + _CHUNK] - mean) ** 2).sum(axis=axes, keepdims=True)
             for lo in range(0, x.shape[0], _CHUNK))
    std = np.sqrt(sq / count)
    std[std == 0] = 1.0
    return mean, std


def _prepare_data(splits: Any, config: TrainConfig, device: Any) -> _Data:
    import torch

    from ncbounds.fewshot import sample_episodes

    classes = splits.source_classes
    l_all = classes.size
    l = l_all if config.n_source_classes is None else config.n_source_classes
    if l > l_all:
        raise NCBoundsError(
            f"n_source_classes: expected at most the {l_all} source classes of the data set, "
            f"got {l}"
        )
    rng = np.random.default_rng([config.data_seed, 101])
    chosen = np.sort(rng.permutation(classes)[:l])

    def source_part(ds: Any) -> tuple[np.ndarray, np.ndarray]:
        mask = np.isin(ds.y, chosen)
        return ds.x[mask], np.searchsorted(chosen, ds.y[mask]).astype(np.int64)

    x_tr, y_tr = source_part(splits.source_train)
    x_te, y_te = source_part(splits.source_test)
    x_tg, y_tg = splits.target.x, splits.target.y
    mean, std = _channel_moments(x_tr)

    def tensor(x: np.ndarray) -> Any:
        """Standardised float32 copy on the device, converted in chunks of rows (a
        float64 copy of a whole image data set would not fit in memory)."""
        out = torch.empty(x.shape, dtype=torch.float32, device=device)
        for lo in range(0, x.shape[0], _CHUNK):
            z = (x[lo : lo + _CHUNK].astype(np.float64) - mean) / std
            out[lo : lo + _CHUNK] = torch.from_numpy(z.astype(np.float32))
        return out

    sets = {
        "source_train": (x_tr, y_tr, config.eval_train_per_class),
        "source_test": (x_te, y_te, config.eval_test_per_class),
        "target": (x_tg, y_tg, config.eval_target_per_class),
    }
    eval_x, eval_y, episodes = {}, {}, {}
    for i, (split, (x, y, cap)) in enumerate(sets.items()):
        idx = _per_class_subset(y, cap, np.random.default_rng([config.data_seed, 102, i]))
        eval_x[split], eval_y[split] = tensor(x[idx]), y[idx]
        counts = np.bincount(np.unique(y[idx], return_inverse=True)[1])
        ways = min(config.fewshot_ways, counts.size)
        for shots in _SHOTS:
            queries = min(config.fewshot_queries, int(counts.min()) - shots)
            if ways < 2 or queries < 1:
                continue  # too few samples per class (or classes) for this episode shape
            episodes[(split, shots)] = sample_episodes(
                y[idx], ways=ways, shots=shots, queries=queries,
                episodes=config.fewshot_episodes,
                rng=np.random.default_rng([config.data_seed, 103, i, shots]),
            )
    return _Data(
        x_train=tensor(x_tr), y_train=torch.from_numpy(y_tr).to(device), eval_x=eval_x,
        eval_y=eval_y, episodes=episodes, source_classes=chosen,
        input_shape=tuple(x_tr.shape[1:]),
    )


# --------------------------------------------------------------------------------------------
# Device, precision, determinism
# --------------------------------------------------------------------------------------------


def _resolve_device(name: str) -> Any:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NCBoundsError(
            f"device: expected an available device, got {name!r} but CUDA is not available"
        )
    return torch.device(name)


@contextlib.contextmanager
def _runtime(config: TrainConfig, device: Any) -> Iterator[None]:
    """Thread counts and determinism for the duration of a run, restored afterwards.

    ``config.num_threads`` limits torch, numba and, through threadpoolctl when it is
    installed, the BLAS and OpenMP pools of numpy/scipy: on a loaded machine a 100 × 128
    SVD with two OpenBLAS threads took up to a second instead of milliseconds.
    """
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    with contextlib.ExitStack() as stack:
        try:
            if config.num_threads is not None:
                stack.enter_context(_limit_other_pools(config.num_threads))
                torch.set_num_threads(config.num_threads)
            if device.type == "cpu":
                torch.use_deterministic_algorithms(True)
            else:
                torch.backends.cudnn.benchmark = True
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.backends.cudnn.benchmark = benchmark


@contextlib.contextmanager
def _limit_other_pools(n: int) -> Iterator[None]:
    """numba's thread count and (with threadpoolctl) the BLAS/OpenMP pools, at most ``n``."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # optional: without it the BLAS pools keep their size
            limiter: Any = contextlib.nullcontext()
        else:
            limiter = threadpool_limits(limits=n)
        with limiter:
            yield
    finally:
        numba.set_num_threads(previous)


def _set_threads(config: TrainConfig) -> None:
    """Apply ``config.num_threads``. Called before every epoch and evaluation: the first
    parallel numba kernel (ncbounds' statistics) initialises numba's OpenMP pool and sets
    the OpenMP thread count, which torch shares."""
    import torch

    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)


def _amp_dtype(device: Any) -> Any:
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(device: Any, amp: bool) -> Any:
    import torch

    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=_amp_dtype(device))


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------
# Identity, store, checkpoints
# --------------------------------------------------------------------------------------------


def _identity(config: TrainConfig, l: int, amp: bool) -> dict[str, Any]:
    """The run's configuration as stored (columns): runtime fields and ``seed`` removed."""
    d = dataclasses.asdict(config)
    for name in (*_RUNTIME_FIELDS, "seed"):
        d.pop(name)
    d["n_source_classes"] = int(l)
    d["amp"] = bool(amp)
    return d


def _run_id(identity: Mapping[str, Any], seed: int) -> str:
    text = json.dumps({"config": identity, "seed": seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run_folder(out: str | os.PathLike, config: TrainConfig, identity: Mapping[str, Any]) -> Path:
    run = _run_id(identity, config.seed)
    return Path(out) / "checkpoints" / f"{config.model}-{config.dataset}-{run}"


# Rows handed from train() to the store through simulations.sweep.run_sweep: the cell
# function below returns the rows train() registered for exactly this (config, seed). The
# sweep runs inline (n_jobs=1), in this process, so the hand-over is immediate.
_PENDING: dict[str, list[dict]] = {}


def _stored_rows(config: dict, seed: int) -> list[dict]:
    """The sweep cell of one evaluation: the rows measured by :func:`train` (internal)."""
    from .sweep import cell_key

    key = cell_key(_stored_rows, config, seed)
    if key not in _PENDING:
        raise NCBoundsError(
            "config: the rows of a training evaluation are written by simulations.training."
            "train(); they cannot be recomputed by a sweep"
        )
    return _PENDING[key]


def _write_rows(store: Path, sweep: str, config: dict, seed: int, rows: list[dict]) -> None:
    """Commit ``rows`` as one cell (skipped when that cell is already stored)."""
    from .sweep import cell_key, failed_cells, run_sweep

    key = cell_key(_stored_rows, config, seed)
    _PENDING[key] = rows
    try:
        result = run_sweep(_stored_rows, [config], seeds=[seed], store=store, name=sweep,
                           n_jobs=1, progress=False)
    finally:
        _PENDING.pop(key, None)
    if result.failed:
        failed = failed_cells(store, name=sweep)
        error = failed.loc[failed["cell_key"] == key, "error"].iloc[0]
        raise NCBoundsError(f"store: could not write the rows to {store}: {error}")


def _checkpoint_files(folder: Path) -> list[tuple[int, Path]]:
    out = []
    for p in folder.glob("epoch-*.pt"):
        try:
            out.append((int(p.stem.split("-")[1]), p))
        except (IndexError, ValueError):
            continue
    return sorted(out)


def _save_checkpoint(folder: Path, state: dict, keep: int) -> Path:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"epoch-{state['epoch']:04d}.pt"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".epoch-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for _, old in _checkpoint_files(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _load_checkpoint(path: Path, device: Any) -> dict:
    import torch

    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise NCBoundsError(
            f"out: expected a readable checkpoint at {path}, got an error ({exc}); delete the "
            "file to resume from the previous checkpoint or start over"
        ) from None
    if not isinstance(state, dict) or state.get("format") != _CKPT_FORMAT:
        raise NCBoundsError(f"out: expected a checkpoint of format {_CKPT_FORMAT!r} at {path}")
    return state


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _forward_features(model: Any, x: Any, amp: bool, device: Any) -> tuple[Any, Any]:
    """(features float32, logits float32) of ``x`` in eval mode, in batches."""
    import torch

    feats, logits = [], []
    with torch.no_grad(), _autocast(device, amp):
        for lo in range(0, x.shape[0], _EVAL_BATCH):
            f = model.features(x[lo : lo + _EVAL_BATCH])
            feats.append(f.float())
            logits.append(model.classifier(f).float())
    return torch.cat(feats), torch.cat(logits)


def _warm_up(device: Any) -> None:
    """Pay the one-off costs of the tracking code before it is timed: importing
    scipy.stats and loading (or compiling) the numba kernels for float32 features."""
    import scipy.stats  # noqa: F401 - the few-shot intervals import it on first use

    from ncbounds.fewshot import evaluate
    from ncbounds.metrics import nc_metrics

    if device.type != "cpu":
        return  # CUDA features take the torch path, which has nothing to compile
    x = np.random.default_rng(0).standard_normal((24, 4)).astype(np.float32)
    y = np.repeat(np.arange(4), 6)
    nc_metrics(x, y, weights=np.eye(4, dtype=np.float32), predictions=y)
    for head in _HEADS:
        evaluate(x, y, ways=2, shots=1, queries=2, episodes=2, head=head, rng=0)


def _evaluate(model: Any, data: _Data, config: TrainConfig, amp: bool, device: Any) -> list[dict]:
    """The tracking rows of one evaluation (THEORY.md T0 metrics, T1 few-shot heads)."""
    from ncbounds.fewshot import evaluate
    from ncbounds.metrics import nc_metrics

    was_training = model.training
    model.eval()
    rows: list[dict] = []
    try:
        weights = model.classifier.weight.detach().float().cpu().numpy()
        for split in _SPLITS:
            _set_threads(config)
            feats, logits = _forward_features(model, data.eval_x[split], amp, device)
            y = data.eval_y[split]
            # the numba kernels on CPU, batched torch linear algebra on CUDA tensors
            f = feats.cpu().numpy() if device.type == "cpu" else feats
            source = split != "target"
            pred = logits.argmax(dim=1).cpu().numpy() if source else None
            m = nc_metrics(f, y, weights=weights if source else None, predictions=pred)
            size = {"n_samples": m.n_samples, "n_classes": m.n_classes}
            names = _NC_FIELDS + (("nc3", "nc4") if source else ())
            rows += [{"split": split, "metric": k, "value": getattr(m, k), **size} for k in names]
            if source:
                rows.append({"split": split, "metric": "accuracy",
                             "value": float(np.mean(pred == y)), **size})
            for shots in _SHOTS:
                ep = data.episodes.get((split, shots))
                if ep is None:
                    continue
                for head in _HEADS:
                    res = evaluate(f, y, head=head, episode_set=ep,
                                   ridge_lambda=config.ridge_lambda,
                                   normalize=config.fewshot_normalize)
                    low, high = res.confidence_interval(0.95)
                    rows.append({
                        "split": split, "metric": "fewshot_accuracy", "value": res.mean,
                        "ci_low": low, "ci_high": high, "head": head, "shots": shots,
                        "ways": ep.ways, "queries": ep.queries, "episodes": ep.n_episodes,
                        **size,
                    })
    finally:
        model.train(was_training)
    return rows


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _lr_factor(config: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning-rate multiplier at ``step`` (0-based) of ``epoch`` (1-based)."""
    if config.schedule == "cosine":
        total = config.epochs * steps_per_epoch
        t = (epoch - 1) * steps_per_epoch + step
        return 0.5 * (1.0 + math.cos(math.pi * t / total))
    every = config.lr_step_every or max(1, config.epochs // 3)
    return config.lr_gamma ** ((epoch - 1) // every)


def _make_optimizer(model: Any, config: TrainConfig) -> Any:
    import torch

    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


class _Diverged(Exception):
    def __init__(self, epoch: int, step: int, loss: float, lr: float) -> None:
        super().__init__(epoch, step, loss, lr)
        self.epoch, self.step, self.loss, self.lr = epoch, step, loss, lr


def _train_epoch(model: Any, opt: Any, scaler: Any, data: _Data, config: TrainConfig,
                 epoch: int, amp: bool, device: Any) -> dict[str, float]:
    """One epoch of mini-batch cross-entropy; raises _Diverged on a non-finite loss."""
    import torch
    import torch.nn.functional as F

    n = data.x_train.shape[0]
    bs = min(config.batch_size, n)
    steps = n // bs
    order = np.random.default_rng([config.seed, 1, epoch]).permutation(n)
    perm = torch.from_numpy(order).to(device)
    # check the loss every step on CPU (it is cheap there); every 16 steps on CUDA, where
    # reading a value back stalls the pipeline
    check_every = 1 if device.type == "cpu" else 16
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    model.train()
    lr = config.lr
    for step in range(steps):
        lr = config.lr * _lr_factor(config, epoch, step, steps)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = perm[step * bs : (step + 1) * bs]
        xb, yb = data.x_train[idx], data.y_train[idx]
        if device.type == "cuda" and xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=config.label_smoothing)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        loss_sum += loss.detach()
        correct += (logits.detach().argmax(dim=1) == yb).sum()
        if (step + 1) % check_every == 0 or step == steps - 1:
            total = float(loss_sum)
            if not math.isfinite(total):
                raise _Diverged(epoch, step, total, lr)
    return {"loss": float(loss_sum) / steps, "accuracy": float(correct) / (steps * bs), "lr": lr}


def _show_progress(progress: bool | None) -> bool:
    if progress not in (None, True, False):
        raise NCBoundsError(f"progress: expected None, True or False, got {describe(progress)}")
    return sys.stderr.isatty() if progress is None else progress


def _headline(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Progress-bar postfix: target CDNV and target 5-shot ridge accuracy."""
    out = {}
    for r in rows:
        if r["split"] == "target" and r["metric"] == "cdnv":
            out["target_cdnv"] = f"{r['value']:.3g}"
        if (r["split"] == "target" and r["metric"] == "fewshot_accuracy"
                and r.get("head") == "ridge" and r.get("shots") == 5):
            out["5shot"] = f"{r['value']:.3f}"
    return out


def train(
    config: TrainConfig,
    *,
    out: str | os.PathLike,
    progress: bool | None = None,
    sweep: str = "train",
    callback: Callable[[dict], None] | None = None,
) -> Path:
    """Train ``config`` with cross-entropy on the source classes, tracking neural collapse.

    Every ``config.eval_every`` epochs, at epoch 0 (the initialisation) and at the last
    epoch, the rows described in the module docstring are computed on source-train (a fixed
    subset), source-test and target, committed to ``out/results.sqlite`` (sweep ``sweep``)
    and a checkpoint is written to ``out/checkpoints/<run>/``. A rerun with the same
    configuration and ``out`` resumes from the latest checkpoint (see the module docstring);
    a finished run returns at once.

    Parameters
    ----------
    config : TrainConfig
    out : folder for ``results.sqlite`` and ``checkpoints/`` (created if missing).
    progress : a tqdm bar over epochs; None shows it when stderr is a terminal.
    sweep : the name under which the rows are stored.
    callback : called after every epoch (after its evaluation and checkpoint, if any) with
        a dict ``{"epoch", "loss", "accuracy", "lr", "evaluated", "checkpoint", "run"}``;
        an exception it raises propagates (the run then resumes from the last checkpoint).

    Returns
    -------
    Path of ``results.sqlite``.

    Raises
    ------
    NCBoundsError
        bad arguments, a device that is not available, an unreadable checkpoint, or a loss
        that became NaN or infinite (the message names the epoch, step and learning rate,
        and where the last good checkpoint is).
    """
    import torch

    from .networks import build_model

    if not isinstance(config, TrainConfig):
        raise NCBoundsError(f"config: expected a TrainConfig, got {describe(config)}")
    if not isinstance(out, (str, os.PathLike)) or str(out) == "":
        raise NCBoundsError(f"out: expected a folder path, got {describe(out)}")
    if not isinstance(sweep, str) or not sweep:
        raise NCBoundsError(f"sweep: expected a non-empty str, got {describe(sweep)}")
    show = _show_progress(progress)
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise NCBoundsError(f"out: expected a folder, got the file {out}")
    store = out / "results.sqlite"
    device = _resolve_device(config.device)
    amp = device.type == "cuda" and config.amp is not False

    with _runtime(config, device):
        t0 = time.perf_counter()
        splits = _load_splits(config, progress=show)
        data = _prepare_data(splits, config, device)
        data_seconds = time.perf_counter() - t0
        l = int(data.source_classes.size)
        identity = _identity(config, l, amp)
        run = _run_id(identity, config.seed)
        folder = _run_folder(out, config, identity)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = build_model(config.model, input_shape=data.input_shape, num_classes=l,
                                width=config.width, depth=config.depth)
        model = model.to(device)
        if device.type == "cuda" and len(data.input_shape) == 3:
            model = model.to(memory_format=torch.channels_last)
        opt = _make_optimizer(model, config)
        scaler = torch.amp.GradScaler("cuda", enabled=amp and _amp_dtype(device) == torch.float16) \
            if device.type == "cuda" else torch.amp.GradScaler("cpu", enabled=False)

        def emit(epoch: int, rows: list[dict]) -> None:
            common = {"run": run, "device": device.type}
            _write_rows(store, sweep, {**identity, "epoch": epoch}, config.seed,
                        [{**common, **r} for r in rows])

        def checkpoint(epoch: int, rows: list[dict], totals: dict) -> Path:
            state = {
                "format": _CKPT_FORMAT, "config": json.dumps(identity, sort_keys=True),
                "seed": config.seed, "epoch": epoch, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                "rows": rows, "totals": totals,
            }
            return _save_checkpoint(folder, state, config.keep_checkpoints)

        totals = {"train_seconds_total": 0.0, "eval_seconds_total": 0.0}
        existing = _checkpoint_files(folder)
        if existing:
            last_path = existing[-1][1]
            state = _load_checkpoint(last_path, device)
            same = state["config"] == json.dumps(identity, sort_keys=True)
            if not same or state["seed"] != config.seed:
                raise NCBoundsError(
                    f"out: the checkpoint {last_path} belongs to another configuration; "
                    "use another out folder"
                )
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            start = int(state["epoch"])
            totals = {k: float(v) for k, v in state["totals"].items()}
            emit(start, state["rows"])  # idempotent: skipped when already stored
        else:
            t0 = time.perf_counter()
            _warm_up(device)
            setup_seconds = time.perf_counter() - t0
            _sync(device)
            t0 = time.perf_counter()
            rows = _evaluate(model, data, config, amp, device)
            _sync(device)
            totals["eval_seconds_total"] = dt = time.perf_counter() - t0
            rows += _train_rows({"train_seconds": 0.0, "eval_seconds": dt, **totals,
                                 "data_seconds": data_seconds, "setup_seconds": setup_seconds})
            emit(0, rows)
            last_path = checkpoint(0, rows, totals)
            start = 0

        bar = _progress_bar(show, config, start, run)
        try:
            pending_train = 0.0
            for epoch in range(start + 1, config.epochs + 1):
                _set_threads(config)
                _sync(device)
                t0 = time.perf_counter()
                try:
                    stats = _train_epoch(model, opt, scaler, data, config, epoch, amp, device)
                except _Diverged as d:
                    raise NCBoundsError(
                        f"training diverged: the loss became {d.loss} at epoch {d.epoch}, "
                        f"step {d.step + 1} (learning rate {d.lr:.3g}, lr={config.lr:g}, "
                        f"optimizer={config.optimizer!r}); the run stopped, and its last good "
                        f"checkpoint is kept at {last_path}. Lower lr (or raise weight_decay) "
                        "and train again in another out folder"
                    ) from None
                _sync(device)
                dt = time.perf_counter() - t0
                pending_train += dt
                totals["train_seconds_total"] += dt
                evaluated = epoch % config.eval_every == 0 or epoch == config.epochs
                if evaluated:
                    t0 = time.perf_counter()
                    rows = _evaluate(model, data, config, amp, device)
                    _sync(device)
                    dt = time.perf_counter() - t0
                    totals["eval_seconds_total"] += dt
                    rows += _train_rows({
                        "loss": stats["loss"], "accuracy": stats["accuracy"], "lr": stats["lr"],
                        "train_seconds": pending_train, "eval_seconds": dt, **totals,
                    })
                    emit(epoch, rows)
                    last_path = checkpoint(epoch, rows, totals)
                    pending_train = 0.0
                    bar.set_postfix(_headline(rows), refresh=False)
                bar.update(1)
                if callback is not None:
                    callback({"epoch": epoch, **stats, "evaluated": evaluated,
                              "checkpoint": last_path, "run": run})
        finally:
            bar.close()
    return store


def _train_rows(values: Mapping[str, float]) -> list[dict]:
    return [{"split": "train", "metric": k, "value": float(v)} for k, v in values.items()]


def _progress_bar(show: bool, config: TrainConfig, start: int, run: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=config.epochs, initial=start,
                desc=f"{config.model}/{config.dataset} {run[:6]}", unit="epoch",
                disable=not show, dynamic_ncols=True, leave=False)


def load_trained_model(
    config: TrainConfig, *, out: str | os.PathLike, epoch: int | None = None, device: str = "cpu"
) -> Any:
    """The network of a run of :func:`train` from its checkpoint (the latest, or ``epoch``).

    Loads with ``torch.load(..., weights_only=True)``. The data set is loaded (from its cache)
    to recover the input shape and the number of source classes. Returns the model in eval
    mode on ``device``.
    """
    from .networks import build_model

    dev = _resolve_device(device)
    splits = _load_splits(config, progress=False)
    l_all = splits.source_classes.size
    l = l_all if config.n_source_classes is None else config.n_source_classes
    files: dict[int, Path] = {}
    for amp in (False, True):  # trained on CPU (no mixed precision) or on CUDA (amp)
        folder = _run_folder(out, config, _identity(config, l, amp))
        files = files or dict(_checkpoint_files(folder))
    if not files:
        raise NCBoundsError(
            f"out: expected checkpoints of this configuration under "
            f"{Path(out) / 'checkpoints'}, found none"
        )
    if epoch is None:
        epoch = max(files)
    if epoch not in files:
        raise NCBoundsError(
            f"epoch: expected one of the checkpointed epochs {sorted(files)}, got {epoch!r}"
        )
    state = _load_checkpoint(files[epoch], dev)
    x = splits.source_train.x
    model = build_model(config.model, input_shape=tuple(x.shape[1:]), num_classes=l,
                        width=config.width, depth=config.depth)
    model.load_state_dict(state["model"])
    return model.to(dev).eval()


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def summarize(frame: Any) -> Any:
    """One row per run: its configuration, final metrics and the tracking overhead.

    ``frame`` is :func:`~simulations.sweep.load_results` of a training store (rows of other
    kinds are ignored). Columns: ``run``, ``sweep``, ``model``, ``dataset``, ``width``,
    ``n_source_classes``, ``epochs``, ``weight_decay``, ``label_smoothing``, ``seed``,
    ``epoch`` (the last evaluated), ``source_train_cdnv``, ``source_test_cdnv``,
    ``target_cdnv``, ``source_train_nc1``, ``fewshot_<head>_<shots>shot`` (target),
    ``train_seconds``, ``eval_seconds`` (totals), ``tracking_fraction`` (eval / train),
    ``data_seconds``, ``setup_seconds`` (epoch 0; missing when the run started elsewhere).

    >>> import pandas as pd
    >>> summarize(pd.DataFrame(columns=["run", "split", "metric", "value"])).shape[0]
    0
    """
    import pandas as pd

    keys = ["run", "sweep", "model", "dataset", "width", "n_source_classes", "epochs",
            "weight_decay", "label_smoothing", "seed"]
    if "run" not in frame.columns or frame.empty:
        return pd.DataFrame(columns=keys)
    frame = frame[frame["run"].notna()]
    out = []
    for _, g in frame.groupby(["sweep", "run"], sort=False):
        last = g[g["epoch"] == g["epoch"].max()]
        rec = {k: g[k].iloc[0] for k in keys if k in g.columns}
        rec["epoch"] = int(last["epoch"].iloc[0])

        def value(split: str, metric: str, rows: Any = last, **extra: Any) -> float:
            sel = (rows["split"] == split) & (rows["metric"] == metric)
            for k, v in extra.items():
                sel &= rows[k] == v
            vals = rows.loc[sel, "value"]
            return float(vals.iloc[0]) if len(vals) else math.nan

        for split in _SPLITS:
            rec[f"{split}_cdnv"] = value(split, "cdnv")
        rec["source_train_nc1"] = value("source_train", "nc1")
        for head in _HEADS:
            for shots in _SHOTS:
                rec[f"fewshot_{head}_{shots}shot"] = value("target", "fewshot_accuracy",
                                                           head=head, shots=shots)
        rec["train_seconds"] = value("train", "train_seconds_total")
        rec["eval_seconds"] = value("train", "eval_seconds_total")
        rec["tracking_fraction"] = (rec["eval_seconds"] / rec["train_seconds"]
                                    if rec["train_seconds"] > 0 else math.nan)
        rec["data_seconds"] = value("train", "data_seconds", g)
        rec["setup_seconds"] = value("train", "setup_seconds", g)
        out.append(rec)
    order = [k for k in ("sweep", "model", "dataset", "n_source_classes", "width", "epochs",
                         "weight_decay", "label_smoothing", "seed") if k in frame.columns]
    return pd.DataFrame(out).sort_values(order, kind="stable", ignore_index=True)


def format_summary(summary: Any) -> str:
    """A plain-text table of :func:`summarize` with the overall tracking overhead."""
    if summary.empty:
        return "no training runs"
    cols = [c for c in ("sweep", "model", "width", "n_source_classes", "epochs", "weight_decay",
                        "label_smoothing", "source_train_cdnv", "source_test_cdnv",
                        "target_cdnv", "fewshot_ridge_5shot", "train_seconds", "eval_seconds",
                        "tracking_fraction") if c in summary.columns]
    text = summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    train_s = float(summary["train_seconds"].sum())
    eval_s = float(summary["eval_seconds"].sum())
    frac = eval_s / train_s if train_s > 0 else math.nan
    once = float(summary["data_seconds"].sum() + summary["setup_seconds"].sum())
    return (f"{text}\nneural-collapse tracking: {eval_s:.1f} s for {train_s:.1f} s of training "
            f"= {100 * frac:.1f}% of training time (not counted: {once:.1f} s of data loading "
            "and one-off imports / kernel compilation)")


# --------------------------------------------------------------------------------------------
# Experiments N1-N3
# --------------------------------------------------------------------------------------------


# The base configuration of each experiment size (see SIZES). The CPU sizes train with one
# torch thread: on a 2-core machine shared with other work, two OpenMP threads made an epoch
# of the small CNN 5-10 times slower (threads spinning at barriers while descheduled), while
# one thread lost little when the machine was idle.
_SIZE_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": dict(model="mlp", dataset="gaussian_mixture", width=32, data_source_classes=8,
                 data_target_classes=6, data_per_class=30, input_dim=16, epochs=3,
                 batch_size=32, eval_train_per_class=10, fewshot_episodes=40, num_threads=1),
    "mlp": dict(model="mlp", dataset="gaussian_mixture", width=256, data_source_classes=64,
                data_target_classes=20, data_per_class=100, input_dim=64, epochs=30,
                batch_size=128, eval_every=3, eval_train_per_class=20, eval_test_per_class=10,
                eval_target_per_class=40, fewshot_episodes=500, num_threads=1),
    "quick": dict(model="cnn", dataset="glyphs", width=16, data_source_classes=100,
                  data_target_classes=20, data_per_class=50, data_test_per_class=10,
                  epochs=15, batch_size=64, eval_every=3, eval_train_per_class=8,
                  eval_test_per_class=8, eval_target_per_class=30, fewshot_episodes=300,
                  num_threads=1),
    "full": dict(model="cnn", dataset="glyphs", width=32, data_source_classes=400,
                 data_target_classes=100, data_per_class=60, epochs=40, batch_size=128,
                 eval_every=2, eval_train_per_class=20, fewshot_episodes=1000),
    "paper": dict(model="wrn", dataset="glyphs", width=4, depth=28, image_size=32,
                  data_source_classes=400, data_target_classes=100, data_per_class=60,
                  epochs=60, batch_size=128, eval_every=2, eval_train_per_class=20,
                  fewshot_episodes=1000),
}

# N3 trains nine networks: at the quick size on a smaller glyph set and for fewer epochs, so
# that the whole experiment stays within a few minutes on a CPU.
_N3_QUICK = {("n3", "quick"): dict(data_source_classes=50, data_per_class=30,
                                   data_test_per_class=6, epochs=10)}


def experiment_configs(
    name: str, size: str = "quick", *, device: str = "auto"
) -> list[TrainConfig]:
    """The training runs of experiment ``name`` ("n1", "n2", "n3") at ``size``.

    - n1: the base configuration of the size.
    - n2: the base configuration with ``n_source_classes`` = l for l in a doubling ladder
      up to all source classes, evaluated only at the start and the end.
    - n3: the base configuration and one-at-a-time variations of weight decay (×0, ×10),
      label smoothing (0.1, 0.3), training length (×½, ×2) and width (×½, ×2), evaluated at
      the start and the end (at the quick size: 50 source classes, 10 epochs).

    >>> [c.n_source_classes for c in experiment_configs("n2", "tiny")]
    [2, 4, 8]
    >>> len(experiment_configs("n3", "tiny"))
    9
    """
    _choice(name, "name", EXPERIMENTS)
    _choice(size, "size", SIZES)
    base = TrainConfig(**{**_SIZE_CONFIGS[size], **_N3_QUICK.get((name, size), {})},
                       device=device)
    if name == "n1":
        return [base]
    final_only = {"eval_every": base.epochs}
    if name == "n2":
        ls, l = [], base.data_source_classes
        while l >= 2 and len(ls) < 6:
            ls.append(l)
            l //= 2
        return [base.replace(n_source_classes=l, **final_only) for l in sorted(ls)]
    variants = [
        {},
        {"weight_decay": 0.0}, {"weight_decay": base.weight_decay * 10},
        {"label_smoothing": 0.1}, {"label_smoothing": 0.3},
        {"epochs": max(1, base.epochs // 2)}, {"epochs": base.epochs * 2},
        {"width": max(1, base.width // 2)}, {"width": base.width * 2},
    ]
    configs = []
    for v in variants:
        cfg = base.replace(**v)
        configs.append(cfg.replace(eval_every=cfg.epochs))
    return configs


def spearman_with_ci(x: Sequence[float], y: Sequence[float], *, confidence: float = 0.95) -> dict:
    r"""Spearman's rank correlation with a Fisher-z confidence interval.

    :math:`r_s` is Pearson's correlation of the ranks (scipy.stats.spearmanr, ties get mid
    ranks); the interval is :math:`\tanh(\operatorname{artanh} r_s \pm z_{(1+c)/2}\,
    \sigma)` with :math:`\sigma^2 = (1 + r_s^2/2)/(n - 3)` (Bonett & Wright, Psychometrika
    2000). ``p_value`` is scipy's (t approximation). Needs n ≥ 4 for the interval (NaN
    otherwise); at :math:`|r_s| = 1` the interval collapses to the point (a limitation of
    the Fisher transform with few runs). Constant inputs give NaN and an
    :class:`~ncbounds.NCBoundsWarning`.

    >>> r = spearman_with_ci([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5])
    >>> round(r["spearman"], 4), r["ci_low"] < r["spearman"] < r["ci_high"]
    (0.8286, True)
    """
    from scipy import stats

    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or xa.shape != ya.shape:
        raise NCBoundsError(
            f"x, y: expected two 1-D sequences of equal length, got shapes {xa.shape} and "
            f"{ya.shape}"
        )
    n = int(xa.size)
    nan = {"spearman": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "p_value": math.nan, "n_runs": n, "confidence": confidence}
    ok = np.isfinite(xa) & np.isfinite(ya)
    if n < 3 or not ok.all() or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        warnings.warn(
            f"rank correlation undefined for {n} runs (constant or non-finite values, or "
            "fewer than 3 runs); reported as NaN", NCBoundsWarning, stacklevel=2,
        )
        return nan
    res = stats.spearmanr(xa, ya)
    r = float(res.statistic)
    out = {**nan, "spearman": r, "p_value": float(res.pvalue)}
    if n >= 4:
        z = float(stats.norm.ppf(0.5 + confidence / 2))
        half = z * math.sqrt((1.0 + r * r / 2.0) / (n - 3))
        with np.errstate(divide="ignore"):
            centre = float(np.arctanh(np.clip(r, -1.0, 1.0)))
        out["ci_low"] = float(np.tanh(centre - half))
        out["ci_high"] = float(np.tanh(centre + half))
    return out


def _correlation_rows(summary: Any) -> list[dict]:
    quantities = ["source_train_nc1", "target_cdnv"] + [
        f"fewshot_{h}_{s}shot" for h in _HEADS for s in _SHOTS
    ]
    rows = []
    for i, a in enumerate(quantities[:2]):
        for b in quantities[i + 1 :]:
            r = spearman_with_ci(summary[a].to_numpy(), summary[b].to_numpy())
            rows.append({"x": a, "y": b, **r})
    return rows


def run_training_experiment(
    name: str,
    *,
    out: str | os.PathLike,
    quick: bool = False,
    size: str | None = None,
    device: str = "auto",
    progress: bool | None = None,
) -> Path:
    """Run experiment N1, N2 or N3 of issue 5 into ``out/results.sqlite``.

    ``size`` (see :data:`SIZES`) defaults to ``"quick"`` when ``quick`` else ``"full"``;
    the runs are :func:`experiment_configs`, trained with :func:`train` under the sweep name
    ``name`` (resumable: a rerun continues where it stopped). N3 adds its rank-correlation
    table under ``"n3-correlations"``. Unless ``progress`` is False, a summary is printed at
    the end: per run the final CDNVs and few-shot accuracy, training and tracking times, and
    the tracking overhead and the experiment's wall time.

    Returns the path of ``results.sqlite``.
    """
    _choice(name, "name", EXPERIMENTS)
    if size is None:
        size = "quick" if quick else "full"
    _choice(size, "size", SIZES)
    if not isinstance(out, (str, os.PathLike)) or str(out) == "":
        raise NCBoundsError(f"out: expected a folder path, got {describe(out)}")
    _show_progress(progress)
    started = time.perf_counter()
    configs = experiment_configs(name, size, device=device)
    store = Path(out).expanduser().absolute() / "results.sqlite"
    for cfg in configs:
        train(cfg, out=out, progress=progress, sweep=name)
    from .sweep import load_results

    summary = summarize(load_results(store, name=name))
    if name == "n3":
        _write_rows(store, "n3-correlations", {"experiment": "n3", "size": size},
                    0, _correlation_rows(summary))
    wall = time.perf_counter() - started
    if progress is not False:
        print(f"# {name} ({size}): {len(configs)} run(s) in {store}")
        print(format_summary(summary))
        if name == "n3":
            corr = load_results(store, name="n3-correlations")
            print(corr[["x", "y", "spearman", "ci_low", "ci_high", "p_value", "n_runs"]]
                  .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"wall time of this call: {wall:.1f} s")
    return store
