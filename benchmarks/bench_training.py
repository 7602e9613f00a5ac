"""Training performance (issue 5 §4): the quick N1 run, and epoch times of the networks.

1. ``ncbounds train --quick`` (N1: the CNN on glyphs) end to end through
   :func:`simulations.training.run_training_experiment`, in a fresh output folder and a fresh
   glyph cache (so the rendering is included): its wall time against the 300 s target, and
   the neural-collapse tracking time against 20% of the training time (both as the run
   itself measures and stores them).
2. Epoch time of :class:`~simulations.networks.SmallCNN` (widths 16 and 32) and of
   WRN-28-4 on the quick glyph data (4000 training images of 28 × 28), measured over
   ``--steps`` optimisation steps of batch 64 after two warm-up steps and scaled to an
   epoch, and the time of one tracking evaluation of each, on the device in use (CUDA with
   bfloat16/float16 autocast when available, else CPU). On CPU a full WRN epoch takes far
   too long to run here; the scaled figure is what is reported.

Everything is measured in the same run; the script prints a table and exits 0 either way.
On a machine shared with other jobs the CPU wall times are noisy: the table also shows the
process CPU time and the load average.

    python benchmarks/bench_training.py [--device auto|cpu|cuda] [--steps 20] [--skip-quick]
                                        [--threads N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from simulations import training
from simulations.networks import build_model
from simulations.sweep import load_results

WALL_TARGET = 300.0
TRACKING_TARGET = 0.20


def quick_n1(device: str) -> dict:
    previous = os.environ.get("NCBOUNDS_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NCBOUNDS_CACHE"] = str(Path(tmp) / "cache")  # render the glyphs again
        try:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            store = training.run_training_experiment("n1", out=Path(tmp) / "out", quick=True,
                                                     device=device, progress=False)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            s = training.summarize(load_results(store, name="n1")).iloc[0]
        finally:
            if previous is None:
                os.environ.pop("NCBOUNDS_CACHE")
            else:
                os.environ["NCBOUNDS_CACHE"] = previous
    return {"wall": wall, "cpu": cpu, "train": s["train_seconds"], "eval": s["eval_seconds"],
            "data": s["data_seconds"], "setup": s["setup_seconds"],
            "fraction": s["tracking_fraction"], "target_cdnv": s["target_cdnv"],
            "fewshot": s["fewshot_ridge_5shot"]}


def epoch_probe(model_name: str, width: int, depth: int | None, device: torch.device,
                steps: int, data: "training._Data", cfg: training.TrainConfig) -> dict:
    amp = device.type == "cuda"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(model_name, input_shape=data.input_shape,
                            num_classes=int(data.source_classes.size), width=width, depth=depth)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    n = data.x_train.shape[0]
    bs = 64
    order = torch.from_numpy(np.random.default_rng(0).permutation(n)).to(device)

    def step(i: int) -> None:
        idx = order[(i * bs) % (n - bs) : (i * bs) % (n - bs) + bs]
        xb, yb = data.x_train[idx], data.y_train[idx]
        if device.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        with training._autocast(device, amp):
            loss = torch.nn.functional.cross_entropy(model(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for i in range(2):
        step(i)
    training._sync(device)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(i + 2)
    training._sync(device)
    per_step, cpu_step = (time.perf_counter() - wall0) / steps, (time.process_time() - cpu0) / steps
    training._evaluate(model, data, cfg, amp, device)  # warm-up
    training._sync(device)
    t0 = time.perf_counter()
    training._evaluate(model, data, cfg, amp, device)
    training._sync(device)
    eval_s = time.perf_counter() - t0
    epoch = per_step * (n // bs)
    return {"params": sum(p.numel() for p in model.parameters()), "img_s": bs / per_step,
            "epoch": epoch, "epoch_cpu": cpu_step * (n // bs), "eval": eval_s,
            "ratio": eval_s / epoch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the epoch probes (default: as the quick "
                             "run, 1 on CPU)")
    args = parser.parse_args()
    device = training._resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# device: {device} ({name}); torch threads {torch.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    if not args.skip_quick:
        q = quick_n1(args.device)
        print("\n## quick N1 (CNN on glyphs), end to end, fresh glyph cache")
        print(f"{'quantity':<38}{'measured':>12}{'target':>10}{'ratio':>8}")
        print(f"{'wall time of the run [s]':<38}{q['wall']:>12.1f}{WALL_TARGET:>10.0f}"
              f"{q['wall'] / WALL_TARGET:>8.2f}")
        print(f"{'tracking / training time':<38}{q['fraction']:>12.3f}{TRACKING_TARGET:>10.2f}"
              f"{q['fraction'] / TRACKING_TARGET:>8.2f}")
        print(f"  process CPU {q['cpu']:.1f} s; training {q['train']:.1f} s, tracking "
              f"{q['eval']:.1f} s, data {q['data']:.1f} s, one-off setup {q['setup']:.1f} s; "
              f"final target CDNV {q['target_cdnv']:.3f}, 5-way 5-shot ridge {q['fewshot']:.3f}")

    (cfg,) = training.experiment_configs("n1", "quick", device=args.device)
    threads = args.threads if args.threads is not None else (
        cfg.num_threads if device.type == "cpu" else None)
    cfg = cfg.replace(num_threads=threads)
    print(f"\n## epoch time on the quick glyph data ({args.steps} steps of batch 64 scaled "
          "to an epoch), one tracking evaluation")
    print(f"{'network':<16}{'params':>10}{'img/s':>9}{'epoch [s]':>11}{'epoch CPU [s]':>15}"
          f"{'tracking [s]':>14}{'tracking/epoch':>16}")
    with training._runtime(cfg, device):
        data = training._prepare_data(training._load_splits(cfg, False), cfg, device)
        training._warm_up(device)
        for label, model_name, width, depth in (("SmallCNN-16", "cnn", 16, None),
                                                ("SmallCNN-32", "cnn", 32, None),
                                                ("WRN-28-4", "wrn", 4, 28)):
            slow = model_name == "wrn" and device.type == "cpu"
            steps = max(2, args.steps // 5) if slow else args.steps
            r = epoch_probe(model_name, width, depth, device, steps, data, cfg)
            print(f"{label:<16}{r['params']:>10}{r['img_s']:>9.0f}{r['epoch']:>11.2f}"
                  f"{r['epoch_cpu']:>15.2f}{r['eval']:>14.2f}{r['ratio']:>16.3f}")


if __name__ == "__main__":
    main()
