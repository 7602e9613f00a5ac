"""Few-shot evaluation speed (issue 2 §8): 1000 episodes of 5-way 5-shot, 15 queries per class,
p = 640 features (float32), per head, against a plain per-episode numpy loop in the same run.

Target: at most 0.15 s per head on CPU (numpy input). A CPU torch tensor (same kernel,
zero-copy) is timed beside it for information. Times are the best of ``--repeat`` runs after one warm-up (which also
compiles the kernel). Run it on a quiet machine:

    python benchmarks/bench_fewshot.py [--episodes 1000] [--repeat 5] [--no-torch]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ncbounds.fewshot import evaluate, sample_episodes

TARGET_S = 0.15


def make_features(seed=0, n_classes=20, per_class=600, p=640):
    """Gaussian classes, shaped like mini-ImageNet's 20 test classes × 600 images, ResNet-12."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    means = 0.12 * rng.standard_normal((n_classes, p))
    x = means[labels] + rng.standard_normal((labels.size, p))
    return x.astype(np.float32), labels


def plain_loop(features, ep, head, lam=1.0):
    """Per-episode accuracies by a plain Python loop over episodes (numpy, float64, centred)."""
    n_ep, ways, shots = ep.support.shape
    queries = ep.queries
    truth = np.repeat(np.arange(ways), queries)
    onehot = np.repeat(np.eye(ways), shots, axis=0)
    acc = np.empty(n_ep)
    for e in range(n_ep):
        xs = features[ep.support[e].ravel()].astype(np.float64)
        xq = features[ep.query[e].ravel()].astype(np.float64)
        m = xs.mean(axis=0)
        xs -= m
        xq -= m
        if head == "ncm":
            mu = xs.reshape(ways, shots, -1).mean(axis=1)
            scores = -((xq[:, None, :] - mu[None]) ** 2).sum(axis=2)
        else:
            alpha = np.linalg.solve(xs @ xs.T + lam * np.eye(len(xs)), onehot)
            scores = xq @ (xs.T @ alpha)
        own = scores[np.arange(len(truth)), truth]
        scores[np.arange(len(truth)), truth] = -np.inf
        acc[e] = np.mean(own > scores.max(axis=1))
    return acc


def best_time(fn, repeat):
    """(best wall-clock seconds, best process CPU seconds, result) over ``repeat`` runs.

    CPU time sums all threads; on a shared, busy machine it is the steadier of the two.
    """
    out = fn()  # warm-up (and numba compile / cache load)
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-torch", action="store_true", help="skip the CPU-tensor column")
    args = ap.parse_args()

    x, labels = make_features()
    t_sample, _, ep = best_time(
        lambda: sample_episodes(labels, ways=5, shots=5, queries=15, episodes=args.episodes, rng=0),
        args.repeat,
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {args.episodes} episodes, 5-way 5-shot, 15 queries/class, p = 640 float32, "
          f"N = {len(labels)} rows; {os.cpu_count()} CPUs, load average {load:.2f}")
    print(f"# sample_episodes: {1e3 * t_sample:.1f} ms")
    header = (f"{'head':<6} {'batched s':>10} {'(cpu s)':>8} {'plain loop s':>13} {'(cpu s)':>8} "
              f"{'ratio':>7} {'<= 0.15 s':>10}")
    torch_x = None
    if not args.no_torch:
        import torch

        torch_x = torch.from_numpy(x)
        header += f" {'CPU tensor s':>13}"
    print(header)
    for head in ("ridge", "ncm"):
        t_fast, c_fast, res = best_time(
            lambda: evaluate(x, labels, head=head, episode_set=ep), args.repeat
        )
        t_plain, c_plain, acc = best_time(lambda: plain_loop(x, ep, head), max(1, args.repeat // 2))
        if not np.array_equal(acc, res.accuracies):
            raise SystemExit(f"{head}: the plain loop and evaluate() disagree")
        line = (f"{head:<6} {t_fast:>10.4f} {c_fast:>8.4f} {t_plain:>13.4f} {c_plain:>8.4f} "
                f"{t_plain / t_fast:>6.1f}x {'yes' if t_fast <= TARGET_S else 'NO':>10}")
        if torch_x is not None:
            t_torch, _, res_t = best_time(
                lambda: evaluate(torch_x, labels, head=head, episode_set=ep), args.repeat
            )
            if not np.array_equal(res_t.accuracies, res.accuracies):
                raise SystemExit(f"{head}: the tensor and array inputs disagree")
            line += f" {t_torch:>13.4f}"
        print(line + f"   (accuracy {res})")


if __name__ == "__main__":
    main()
