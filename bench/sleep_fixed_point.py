"""The sleep rule's fixed point, measured: B*[:, k] = M_s · E[h n_k] / E[n_k²] ≈ c_k · mirror[:, k].

The rule (algorithm doc §5) per phase is ``ΔB = η_s (Σ_m h_m n_mᵀ - mean_m(n_m²) ⊙ B)``; its
expectation vanishes at ``B*[:, k] = M_s E[h n_k] / E[n_k²]`` (h has zero mean, so E[h n_k] is
Cov(h, n_k)). To first order the output counts respond linearly to the noise through the forward
path, ``Cov(h, n_k) ≈ g_k Var(h) mirror[:, k]``, hence ``B* ≈ c_k mirror[:, k]`` with a positive
scale ``c_k`` per output unit that depends on that unit's gain and firing, not on the weights'
norm. This script, with the forward weights fixed:

1. estimates B* by Monte Carlo from the same noise the sleep phase draws (no iteration);
2. iterates the real ``sleep()`` until B stops moving, from mirror init;
3. prints per output unit k: c_k = <B*[:,k], mirror[:,k]> / ‖mirror[:,k]‖², the angle of each
   column to the mirror, and the agreement of (1) and (2).

    BIOGRAD_DATA=../shared/data nice -n 19 .venv/bin/python -m bench.sleep_fixed_point [--json PATH]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from biograd.learner.config import NMNIST_STREAMING
from biograd.learner.network import BioGradLearner
from biograd.learner.sleep import draw_sleep_noise, mirror, sleep_statistics


def noise_statistics(learner, l: int, phases: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Σ over phases of (Σ_m h nᵀ, mean_m n²) for hidden layer l, with the sleep phase's noise."""
    cfg = learner.config
    hn = np.zeros((cfg.layer_sizes[l + 1], cfg.layer_sizes[-1]))
    n2 = np.zeros(cfg.layer_sizes[-1])
    for _ in range(phases):
        rate, keys = draw_sleep_noise(rng, cfg.layer_sizes, cfg.sleep_noise_samples, cfg.sleep_steps)
        h, n = sleep_statistics(learner.layers, l, rate, keys[l], cfg.sleep_noise_samples, cfg.sleep_steps)
        n = n.astype(np.float64)
        hn += h.T.astype(np.float64) @ n
        n2 += np.mean(n**2, axis=0)
    return hn, n2


def column_stats(b: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column k: (c_k = <b_k, m_k>/‖m_k‖², angle in degrees between b_k and m_k)."""
    c = np.sum(b * m, axis=0) / np.sum(m * m, axis=0)
    cos = np.sum(b * m, axis=0) / (np.linalg.norm(b, axis=0) * np.linalg.norm(m, axis=0))
    return c, np.degrees(np.arccos(np.clip(cos, -1, 1)))


def angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phases", type=int, default=400, help="Monte Carlo sleep phases for B* (default 400)")
    ap.add_argument("--iterations", type=int, default=3000, help="sleep() calls to iterate the rule")
    ap.add_argument("--sleep-lr", type=float, default=3e-4, help="η_s for the iteration (10x the default: faster)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    cfg = replace(NMNIST_STREAMING, seed=args.seed, sleep_lr=args.sleep_lr)
    learner = BioGradLearner(cfg)
    out = {}
    print(f"network {cfg.layer_sizes}, M_s = {cfg.sleep_noise_samples}, T_s = {cfg.sleep_steps}, W fixed at init")
    stats = {}
    for l in range(cfg.n_layers - 1):
        hn, n2 = noise_statistics(learner, l, args.phases, np.random.default_rng([args.seed, l, 1]))
        stats[l] = hn / n2[None, :]  # M_s E[h n_k] / E[n_k²] (hn is summed over the M_s samples)
    history = []
    for it in range(1, args.iterations + 1):
        learner.sleep()
        if it % (args.iterations // 10) == 0:
            history.append([float(np.linalg.norm(b)) for b in learner.feedback])
    for l in range(cfg.n_layers - 1):
        m = mirror(learner.layers, l)
        b_mc, b_it = stats[l], np.asarray(learner.feedback[l], dtype=np.float64)
        c_mc, ang_mc = column_stats(b_mc, m)
        c_it, ang_it = column_stats(b_it, m)
        print(f"\nhidden layer {l + 1} (B of shape {b_it.shape}):")
        print("| k | c_k (Monte Carlo B*) | c_k (iterated sleep) | angle B*_k to mirror_k (MC / iterated) |")
        print("|---|---|---|---|")
        for k in range(m.shape[1]):
            print(f"| {k} | {c_mc[k]:.1f} | {c_it[k]:.1f} | {ang_mc[k]:.1f}° / {ang_it[k]:.1f}° |")
        print(
            f"whole matrix: angle(B*_MC, mirror) {angle(b_mc, m):.1f}°, angle(B_iterated, mirror) {angle(b_it, m):.1f}°, "
            f"angle(B*_MC, B_iterated) {angle(b_mc, b_it):.1f}°; ‖B_iterated‖/‖mirror‖ {np.linalg.norm(b_it) / np.linalg.norm(m):.1f}"
        )
        print(
            f"norm of B over the iteration (every {args.iterations // 10} sleeps): {[round(h[l], 2) for h in history]}"
        )
        out.update(
            {
                f"hidden{l + 1}_c_min": float(c_mc.min()),
                f"hidden{l + 1}_c_max": float(c_mc.max()),
                f"hidden{l + 1}_angle_mc_to_mirror_deg": angle(b_mc, m),
                f"hidden{l + 1}_angle_iterated_to_mirror_deg": angle(b_it, m),
                f"hidden{l + 1}_angle_mc_to_iterated_deg": angle(b_mc, b_it),
                f"hidden{l + 1}_norm_ratio_iterated": float(np.linalg.norm(b_it) / np.linalg.norm(m)),
            }
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
