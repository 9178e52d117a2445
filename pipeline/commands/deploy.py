"""``biograd deploy export|run|learn``: the network on Loihi through Lava."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from biograd.core.errors import BioGradError
from biograd.pipeline.commands.options import add_config_options, run_config_from_args

BACKEND_CHOICES = ("floating_pt", "fixed_pt", "loihi2-hw")
LAVA_LEARN_MAX = 2000


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "deploy",
        help="Lava / Loihi 2: fixed-point export, on-chip inference and learning",
        description="Put a learner checkpoint on Loihi 2 through Lava: CPU simulation "
        "(floating_pt, fixed_pt) here, a chip with lava-loihi (loihi2-hw).",
    )
    sub = p.add_subparsers(dest="deploy_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    e = sub.add_parser("export", help="quantise a checkpoint to Loihi integers and report the error per layer")
    e.add_argument("checkpoint", help="learner checkpoint: run folder, checkpoint folder or .npz")
    e.add_argument(
        "--out",
        metavar="FILE",
        help="write the integer network (.npz: W{l}, weight_exp{l}, "
        "bias_mant{l}, bias_exp{l}, vth{l}, du{l}, dv{l}, w_lsb{l})",
    )
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.add_argument(
        "--format",
        choices=("loihi", "nir"),
        default="loihi",
        help="loihi: Loihi integers (.npz) and the quantisation report; nir: the float network as a "
        "NIR graph (HDF5, needs --out), readable by NIR simulators",
    )
    e.add_argument("--dt", type=float, help="NIR: seconds per time step (default: 1e-3 MNIST, 5e-3 N-MNIST)")
    add_config_options(e)
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("run", help="on-chip inference of a checkpoint on a dataset split")
    r.add_argument("checkpoint", help="learner checkpoint: run folder, checkpoint folder or .npz")
    r.add_argument("--dataset", choices=("nmnist", "mnist"), default="nmnist")
    r.add_argument("--split", default="test")
    r.add_argument("--limit", type=int, default=100, help="samples (0 = whole split)")
    r.add_argument("--backend", choices=BACKEND_CHOICES, help="overrides deploy.backend")
    r.add_argument("--compare", action="store_true", help="also run the Numba learner on the same input")
    add_config_options(r)
    r.set_defaults(func=cmd_run)

    lr = sub.add_parser("learn", help="on-chip continual learning (Lava graph or its integer-exact emulation)")
    lr.add_argument("checkpoint", nargs="?", help="start from this checkpoint (default: fresh 1-hidden-layer net)")
    lr.add_argument("--dataset", choices=("nmnist", "mnist"), default="mnist")
    lr.add_argument("--hidden", type=int, default=200, help="hidden size of a fresh network")
    lr.add_argument("--train", type=int, default=1000, help="training samples (one pass)")
    lr.add_argument("--test", type=int, default=1000, help="test samples evaluated after learning")
    lr.add_argument(
        "--engine",
        choices=("emulate", "lava"),
        default="emulate",
        help="emulate: Numba, integer-identical to Lava fixed_pt; lava: the Lava process graph",
    )
    lr.add_argument("--backend", choices=BACKEND_CHOICES, help="for --engine lava (overrides deploy.backend)")
    lr.add_argument("--out", metavar="FILE", help="save the learned network as a learner checkpoint (.npz)")
    lr.add_argument("--seed", type=int, default=0)
    lr.add_argument("--quiet", action="store_true", help="no progress lines while learning")
    add_config_options(lr)
    lr.set_defaults(func=cmd_learn)


def _resolve_checkpoint(args) -> None:
    """Every checkpoint form (run folder, checkpoint folder, .npz; ``~``) as the learner .npz."""
    from biograd.pipeline.load import checkpoint_npz

    if getattr(args, "checkpoint", None):
        args.checkpoint = str(checkpoint_npz(args.checkpoint))
    if getattr(args, "out", None):
        args.out = str(Path(args.out).expanduser())


def _config(args):
    cfg = run_config_from_args(args).deploy
    if getattr(args, "backend", None):
        cfg = replace(cfg, backend=args.backend)
    return cfg


def _data_root(args):
    from biograd.core.data import data_root

    return data_root(args.data)


def cmd_export(args) -> int:
    from biograd.deploy.params import NetworkParams
    from biograd.deploy.quantize import format_report, quantization_report, quantize_network

    cfg = _config(args)
    _resolve_checkpoint(args)
    params = NetworkParams.from_checkpoint(args.checkpoint)
    if args.format == "nir":
        return _export_nir(params, args)
    layers = quantize_network(params, None if cfg.weight_exp < 0 else cfg.weight_exp)
    report = quantization_report(params, layers)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    if args.out:
        arrays = {}
        for l, q in enumerate(layers):
            arrays.update(
                {
                    f"W{l}": q.weights,
                    f"weight_exp{l}": np.array(q.weight_exp),
                    f"bias_mant{l}": q.bias_mant,
                    f"bias_exp{l}": np.array(q.bias_exp),
                    f"vth{l}": np.array(q.vth),
                    f"du{l}": np.array(q.du),
                    f"dv{l}": np.array(q.dv),
                    f"w_lsb{l}": np.array(q.w_lsb),
                }
            )
        arrays["timesteps"] = np.array(params.timesteps)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, **arrays)
        print(f"wrote {out}")
    return 0


def _export_nir(params, args) -> int:
    from biograd.deploy.nir_export import write_nir

    if not args.out:
        raise BioGradError("--format nir needs --out FILE (e.g. net.nir)")
    # one time bin: 1 ms for rate-coded MNIST (784 inputs), 5 ms for N-MNIST (2312 inputs)
    dt = args.dt or (5e-3 if params.layer_sizes[0] == 2312 else 1e-3)
    path = write_nir(params, args.out, dt=dt)
    sizes = "-".join(map(str, params.layer_sizes))
    print(f"wrote {path}: NIR graph {sizes} (Affine + LIF per layer, dt = {dt:g} s, {params.timesteps} steps)")
    return 0


def cmd_run(args) -> int:
    from biograd.deploy.backend import run_config
    from biograd.deploy.inference import run_inference
    from biograd.deploy.params import NetworkParams
    from biograd.deploy.quantize import quantize_network
    from biograd.pipeline.datasets import load_rasters

    cfg = _config(args)
    _resolve_checkpoint(args)
    run_config(cfg.backend)  # a missing chip is reported before any data is read
    params = NetworkParams.from_checkpoint(args.checkpoint)
    _check_dataset(params, args.dataset, args.checkpoint)
    rasters, labels = load_rasters(
        args.dataset, args.split, _data_root(args), limit=args.limit, timesteps=params.timesteps
    )
    fixed = quantize_network(params, None if cfg.weight_exp < 0 else cfg.weight_exp)
    res = run_inference(params, rasters, cfg.backend, fixed=fixed)
    acc = float(np.mean(res.predictions == labels))
    print(
        f"{args.dataset} {args.split}: {len(labels)} samples, Lava {cfg.backend} accuracy {acc:.4f} "
        f"({res.steps} steps in {res.seconds:.1f} s, {res.steps / res.seconds:.0f} steps/s)"
    )
    if args.compare:
        from biograd.learner.network import BioGradLearner

        learner = BioGradLearner.load(args.checkpoint)
        pred = np.array([learner.predict(r)[0] for r in rasters])
        print(
            f"Numba learner accuracy {np.mean(pred == labels):.4f}; same prediction as Lava on "
            f"{np.mean(pred == res.predictions):.4f} of the samples"
        )
    return 0


def _check_dataset(params, dataset: str, source) -> None:
    n_in = {"nmnist": 2312, "mnist": 784}[dataset]
    if params.layer_sizes[0] != n_in:
        raise BioGradError(f"{source}: the network has {params.layer_sizes[0]} inputs but {dataset} gives {n_in}")


def cmd_learn(args) -> int:
    from biograd.deploy.emulator import OnChipEmulator
    from biograd.deploy.lava_graph import LavaOnChip
    from biograd.deploy.params import NetworkParams
    from biograd.deploy.plan import default_delta_scale, plan_onchip
    from biograd.learner.config import LearnerConfig
    from biograd.learner.network import BioGradLearner
    from biograd.pipeline.datasets import load_rasters

    cfg = _config(args)
    _resolve_checkpoint(args)
    if args.engine == "lava":
        from biograd.deploy.backend import run_config

        if args.train > LAVA_LEARN_MAX:
            raise BioGradError(
                f"--engine lava holds every training sample in one input buffer: use at most "
                f"{LAVA_LEARN_MAX} samples, or --engine emulate (the same integers, ~100x faster)"
            )
        if cfg.backend == "floating_pt":
            raise BioGradError("on-chip learning runs in integers: use --backend fixed_pt or loihi2-hw")
        run_config(cfg.backend)
    if args.checkpoint:
        learner = BioGradLearner.load(args.checkpoint)
    else:
        n_in, T, te = (784, 20, 5) if args.dataset == "mnist" else (2312, 60, 19)
        learner = BioGradLearner(
            LearnerConfig(
                layer_sizes=(n_in, args.hidden, 10),
                timesteps=T,
                error_start=te,
                dtype="float64",
                sleep=False,
                batch_size=1,
                seed=args.seed,
            )
        )
    params = NetworkParams.from_learner(learner)
    _check_dataset(params, args.dataset, args.checkpoint or "fresh network")
    root = _data_root(args)
    print(f"loading {args.train} {args.dataset} training and {args.test} test samples...", flush=True)
    train, train_lab = load_rasters(
        args.dataset, "train", root, limit=args.train, seed=args.seed, timesteps=params.timesteps
    )
    test, test_lab = load_rasters(
        args.dataset, "test", root, limit=args.test, seed=args.seed, timesteps=params.timesteps
    )
    order = np.random.default_rng(args.seed).permutation(len(train))
    train = [train[k] for k in order]
    train_lab = np.asarray(train_lab)[order]
    plan = plan_onchip(
        params,
        lr=cfg.onchip_lr,
        weight_frac_bits=cfg.weight_frac_bits,
        impulse=cfg.trace_impulse,
        tau=cfg.trace_tau,
        delta_scale=cfg.delta_scale,
        rng_seed=cfg.rng_seed,
    )
    for l, lay in enumerate(plan.layers):
        print(f"layer {l}: dw = {lay.dw}  (learning rate {lay.lr:.3g}), dt = {plan.dt}")
    ds = cfg.delta_scale or default_delta_scale(params.n_layers)
    source = "deploy.delta_scale" if cfg.delta_scale else f"default for {params.n_layers} weight layers"
    print(f"delta_scale = {list(ds)} ({source})")
    start = time.perf_counter()
    progress = _Progress(len(train), start, quiet=args.quiet)
    if args.engine == "lava":
        print(f"building the Lava graph ({len(train)} samples x {plan.period} steps)...", flush=True)
        net = LavaOnChip(plan, train, train_lab, backend=cfg.backend)
        state, counts = net.run_all(progress=progress, every=max(1, min(100, len(train) // 10)))
        weights = state["weights"]
        learned = replace(
            plan, layers=tuple(replace(lay, weights=w.astype(np.int32)) for lay, w in zip(plan.layers, weights))
        )
        emu = OnChipEmulator(learned, 1)
    else:
        emu = OnChipEmulator(plan, len(train) * plan.period + 1)
        rows = []
        for k, r in enumerate(train):
            rows.append(emu.run_sample(r.to_dense(), train_lab))
            progress(k + 1, len(train), correct=int(np.argmax(rows[-1]) == train_lab[k]))
        counts = np.array(rows)
    secs = time.perf_counter() - start
    train_acc = float(np.mean(np.argmax(counts, axis=1) == train_lab))
    test_acc = float(np.mean([np.argmax(emu.infer_sample(r.to_dense())) == l for r, l in zip(test, test_lab)]))
    print(
        f"on-chip learning ({args.engine}): {len(train)} samples in {secs:.1f} s, running train accuracy "
        f"{train_acc:.4f}; test accuracy {test_acc:.4f} on {len(test)} samples"
    )
    if args.out:
        for l in range(params.n_layers):
            learner.weights[l][...] = emu.w[l] * plan.w_lsb
        path = learner.save(args.out)
        print(f"wrote {path} (learned weights; biases and feedback as exported)")
    return 0


class _Progress:
    """One line every ~10 % (or 5 s) of on-chip learning: samples, rate, running accuracy, ETA."""

    def __init__(self, total: int, start: float, quiet: bool = False):
        self.total, self.start, self.quiet = total, start, quiet
        self.correct = self.seen = 0
        self.last_print = start
        self.next_mark = max(1, total // 10)

    def __call__(self, done: int, total: int, correct: int | None = None) -> None:
        if correct is not None:
            self.correct += correct
            self.seen += 1
        now = time.perf_counter()
        if self.quiet or (done < self.next_mark and now - self.last_print < 5.0 and done < total):
            return
        while self.next_mark <= done:
            self.next_mark += max(1, total // 10)
        self.last_print = now
        rate = done / max(now - self.start, 1e-9)
        acc = f", running accuracy {self.correct / self.seen:.3f}" if self.seen else ""
        eta = (total - done) / rate if rate > 0 else 0.0
        print(f"  {done}/{total} samples ({rate:.1f}/s{acc}), about {eta:.0f} s left", flush=True)
