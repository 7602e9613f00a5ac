"""The ``ncbounds`` command line.

Commands (``ncbounds --help``):

* ``metrics FILE.npz | --example``: CDNV and the neural-collapse metrics of a feature set.
* ``fewshot FILE.npz | --example``: few-shot accuracy (ridge or nearest-mean head) with a 95%
  confidence interval over episodes.
* ``bounds``: every statement of THEORY.md as a checkable bound, with its assumptions.
* ``check FILE.npz | --example``: the features' CDNV, the k-way n-shot bound T1b, the measured
  nearest-mean error on episodes, and the verdict.
* ``simulate NAME --out DIR``: the simulation experiments E1–E5 (resumable sweeps).
* ``train --out DIR``: train a network on source classes and track neural collapse (N1–N3).
* ``reproduce [--quick | --full] --out DIR``: every experiment, every figure and ``report.md``.

This module is the project's face: it may import the upper layers (``simulations``,
``figures``), but only lazily inside the commands that need them (DESIGN.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ._errors import NCBoundsError

__all__ = ["main", "example_features", "load_npz"]


def example_features(rng: Any = 0, *, n_classes: int = 20, per_class: int = 100, dim: int = 64):
    """A built-in synthetic feature set: Gaussian classes around random means.

    Class means are i.i.d. N(0, I_p) scaled to norm 4; each class adds isotropic noise of
    total variance 1, so the population CDNV of a pair is about (1 + 1)/(2 · 32) = 1/32 (the example shows
    partial collapse). Returns ``(features float32 (C·n × p), labels int64)``.

    >>> x, y = example_features(0)
    >>> x.shape, x.dtype, len(set(y.tolist()))
    ((2000, 64), dtype('float32'), 20)
    """
    from ._validation import as_generator

    g = as_generator(rng)
    means = g.standard_normal((n_classes, dim))
    means *= 4.0 / np.linalg.norm(means, axis=1, keepdims=True)
    noise = g.standard_normal((n_classes, per_class, dim)) / np.sqrt(dim)
    x = (means[:, None, :] + noise).reshape(-1, dim).astype(np.float32)
    y = np.repeat(np.arange(n_classes, dtype=np.int64), per_class)
    return x, y


def load_npz(path: str | Path, features_key: str = "features", labels_key: str = "labels"):
    """Features and labels from an ``.npz`` file (no pickles), with errors naming the keys."""
    p = Path(path)
    if not p.is_file():
        raise NCBoundsError(f"FILE: expected an existing .npz file, got {str(p)!r} (not found)")
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - report any unreadable file the same way
        raise NCBoundsError(f"FILE: expected a readable .npz file, got {str(p)!r} ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise NCBoundsError(
            f"FILE: expected an .npz archive with arrays {features_key!r} and {labels_key!r}, "
            f"got a single array in {str(p)!r} (save both with numpy.savez)"
        )
    with data:
        keys = list(data.files)
        missing = [k for k in (features_key, labels_key) if k not in keys]
        if missing:
            raise NCBoundsError(
                f"FILE: expected keys {features_key!r} and {labels_key!r} in {str(p)!r}, "
                f"missing {missing}; the file has {keys} (choose with --features-key / --labels-key)"
            )
        try:
            return data[features_key], data[labels_key]
        except ValueError as exc:  # object arrays need pickles, which are never loaded
            raise NCBoundsError(f"FILE: expected numeric arrays in {str(p)!r}, got: {exc}") from None


def _json(obj: dict) -> str:
    """Strict JSON: NaN and ±inf (not JSON) are written as null."""
    def clean(v):
        if isinstance(v, float) and not np.isfinite(v):
            return None
        return v

    return json.dumps({k: clean(v) for k, v in obj.items()}, indent=2, allow_nan=False)


def _load(args) -> tuple[np.ndarray, np.ndarray, str]:
    if args.example:
        x, y = example_features(args.seed)
        return x, y, "built-in example (20 Gaussian classes, p = 64)"
    if args.file is None:
        raise NCBoundsError("FILE: expected a path to an .npz file or --example, got neither")
    x, y = load_npz(args.file, args.features_key, args.labels_key)
    return x, y, str(args.file)


def _cmd_metrics(args) -> int:
    from . import metrics

    x, y, source = _load(args)
    m = metrics.nc_metrics(x, y)
    if args.json:
        print(_json({"source": source, **m.__dict__}))
    else:
        print(f"# {source}: {m.n_samples} samples, {m.n_classes} classes, dim {m.dim}")
        print(m)
    return 0


def _cmd_fewshot(args) -> int:
    from . import fewshot

    x, y, source = _load(args)
    res = fewshot.evaluate(
        x, y, ways=args.ways, shots=args.shots, queries=args.queries,
        episodes=args.episodes, head=args.head, rng=args.seed,
    )
    low, high = res.confidence_interval(0.95)
    if args.json:
        print(_json({
            "source": source, "head": args.head, "ways": args.ways, "shots": args.shots,
            "queries": args.queries, "episodes": args.episodes, "accuracy": float(res.mean),
            "ci95_low": float(low), "ci95_high": float(high),
        }))
    else:
        print(f"# {source}")
        print(
            f"{args.ways}-way {args.shots}-shot, {args.head} head, {args.episodes} episodes: "
            f"accuracy {100 * res.mean:.2f}% ± {100 * (high - low) / 2:.2f}% (95% CI)"
        )
    return 0


def _cmd_bounds(args) -> int:
    from . import bounds

    reg = bounds.registry()
    if args.name:
        unknown = [n for n in args.name if n not in reg]
        if unknown:
            raise NCBoundsError(f"NAME: expected one of {sorted(reg)}, got {unknown}")
        reg = {n: reg[n] for n in args.name}
    print("\n\n".join(b.describe() for b in reg.values()))
    return 0


def _cmd_check(args) -> int:
    """T1b on real features: bound from the CDNV of all classes, error measured on episodes.

    Averaging the T1b bound over random k-class tasks gives 16 (k − 1)(1 + 2/n) times the
    average CDNV over all pairs of classes (each pair is equally likely to be in a task), so
    that is the bound compared with the mean episode error. The feature set is treated as the
    population (each class uniform on its samples); episodes draw support and queries
    without replacement, a small departure from the i.i.d. draws of the statement.

    The per-episode error rates r_e ∈ [0, 1] are i.i.d. with mean E_S err, but the queries
    inside an episode share a support set, so pooling them as Bernoulli trials would be
    over-confident. Instead each episode is reduced to one Bernoulli(r_e) draw (seeded
    randomised rounding): those are i.i.d. Bernoulli(E_S err) trials, so the exact
    Clopper–Pearson interval applies with no approximation.
    """
    from . import bounds, fewshot, metrics, verdict

    x, y, source = _load(args)
    v = metrics.cdnv(x, y)
    bound = float(bounds.nearest_mean(cdnv=v, shots=args.shots, ways=args.ways))
    res = fewshot.evaluate(
        x, y, ways=args.ways, shots=args.shots, queries=args.queries,
        episodes=args.episodes, head="ncm", rng=args.seed,
    )
    rates = 1.0 - np.asarray(res.accuracies, dtype=float)
    draws = np.random.default_rng([args.seed, 1]).random(rates.size) < rates
    measured = verdict.Measurement.error_rate(int(draws.sum()), int(rates.size))
    ver = verdict.check(bound, measured, confidence=args.confidence)
    if args.json:
        print(_json({
            "source": source, "ways": args.ways, "shots": args.shots, "episodes": args.episodes,
            "cdnv": v, "bound": bound, "bound_capped": min(bound, 1.0),
            "error": float(rates.mean()), "error_rounded": ver.estimate, "low": ver.low, "high": ver.high, "confidence": ver.confidence,
            "status": ver.status, "slack": float(ver.slack), "vacuous": bool(ver.vacuous),
        }))
        return 0
    print(f"# {source}")
    print(f"statement   T1b: E_S err <= 16 (k-1)(1+2/n) Avg V   (k = {args.ways}, n = {args.shots})")
    print(f"CDNV        {v:.6g}")
    print(f"bound       {bound:.6g}" + ("   (vacuous: >= 1)" if bound >= 1 else ""))
    print(
        f"measured    {rates.mean():.6g}   nearest-mean error over {args.episodes} episodes; "
        f"{100 * ver.confidence:g}% Clopper-Pearson interval [{ver.low:.4g}, {ver.high:.4g}]"
    )
    print(f"verdict     {ver.status}   slack (bound / measured) {ver.slack:.3g}")
    return 0


def _cmd_simulate(args) -> int:
    from simulations import experiments

    path = experiments.run_experiment(
        args.name, out=args.out, quick=args.quick, size=args.size,
        n_jobs=None if args.executor else args.n_jobs, executor=args.executor,
        progress=False if args.quiet else None,
    )
    key = experiments.get_experiment(args.name).key
    print(f"results: {path}  (load with simulations.sweep.load_results(path, name={key!r}))")
    return 0


def _cmd_train(args) -> int:
    from simulations import training

    path = training.run_training_experiment(
        args.experiment, out=args.out, quick=args.quick, size=args.size, device=args.device,
        progress=False if args.quiet else None,
    )
    print(f"results: {path}")
    return 0


def _cmd_reproduce(args) -> int:
    import figures

    report = figures.reproduce(
        out=args.out, quick=not args.full, full=args.full, device=args.device,
        executor=args.executor, n_jobs=None if args.executor else args.n_jobs,
        progress=False if args.quiet else None,
    )
    print(f"report: {report}")
    return 0


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help=".npz file with features and labels")
    p.add_argument("--example", action="store_true", help="use a built-in synthetic feature set")
    p.add_argument("--features-key", default="features", help="array name of the features (default: features)")
    p.add_argument("--labels-key", default="labels", help="array name of the labels (default: labels)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ncbounds",
        description="Check the neural-collapse transfer bounds of Galanti, György & Hutter (ICLR 2022).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("metrics", help="CDNV and neural-collapse metrics (NC1-NC2) of a feature set")
    _add_input(p)
    p.set_defaults(func=_cmd_metrics)
    p = sub.add_parser("fewshot", help="few-shot accuracy with a 95%% confidence interval")
    _add_input(p)
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--head", choices=["ridge", "ncm"], default="ridge")
    p.set_defaults(func=_cmd_fewshot)

    p = sub.add_parser("bounds", help="list the bounds (THEORY.md T1-T4) with statements and assumptions")
    p.add_argument("name", nargs="*", help="only these bounds (default: all)")
    p.set_defaults(func=_cmd_bounds)

    p = sub.add_parser("check", help="T1b bound vs measured nearest-mean few-shot error, with a verdict")
    _add_input(p)
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--confidence", type=float, default=0.99)
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("simulate", help="run a simulation experiment (e1-e5) as a resumable sweep")
    p.add_argument("name", help="e1 nearest-mean, e2 spherical, e3 new-samples, e4 new-classes, e5 tightness")
    p.add_argument("--out", required=True, help="output folder; results go to OUT/results.sqlite")
    p.add_argument("--quick", action="store_true", help="a small size that finishes in about a minute")
    p.add_argument("--size", choices=["tiny", "quick", "default"], default=None,
                   help="explicit size (tiny: seconds, for smoke tests)")
    p.add_argument("--n-jobs", type=int, default=None, help="local worker processes (default: all cores)")
    p.add_argument("--executor", default=None, help="dask://host:port to run the cells on a Dask cluster")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("train", help="train on source classes and track neural collapse (N1-N3)")
    p.add_argument("--out", required=True, help="output folder; results go to OUT/results.sqlite")
    p.add_argument("--experiment", default="n1", choices=["n1", "n2", "n3"])
    p.add_argument("--quick", action="store_true", help="the small CPU configuration")
    p.add_argument("--size", default=None, help="explicit size (e.g. tiny: seconds, for smoke tests)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("reproduce", help="run every experiment and write the figures and report.md")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CPU scale, at most 10 minutes on 2 cores (default)")
    size.add_argument("--full", action="store_true", help="paper scale, meant for a GPU")
    p.add_argument("--out", default="ncbounds-report", help="output folder (default: ncbounds-report)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--n-jobs", type=int, default=None, help="local worker processes (default: all cores)")
    p.add_argument("--executor", default=None, help="dask://host:port to run the sweeps on a Dask cluster")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_reproduce)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ncbounds`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except NCBoundsError as exc:
        print(f"ncbounds {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
