"""On-chip learning: the Numba emulation against Lava fixed_pt, integer for integer."""

import numpy as np
import pytest
from deploy_helpers import random_rasters, small_learner

from biograd.core.errors import ConfigError
from biograd.deploy.emulator import OnChipEmulator
from biograd.deploy.lava_graph import LavaOnChip
from biograd.deploy.params import NetworkParams
from biograd.deploy.plan import default_delta_scale, plan_onchip

T, TE, N_IN, N_HID = 6, 1, 16, 8


def _plan(seed=0):
    learner = small_learner(sizes=(N_IN, N_HID, 10), T=T, te=TE, seed=seed)
    params = NetworkParams.from_learner(learner)
    # a large rate and coarse weights so a few samples change many weights
    return plan_onchip(params, lr=0.05, weight_frac_bits=8, delta_scale=(64.0, 64.0), rng_seed=7)


def _dense(rasters, k, phase):
    return rasters[k].to_dense()[phase].astype(np.int64) if phase < T else np.zeros(N_IN, dtype=np.int64)


def test_rule_strings_are_the_products_the_emulator_implements():
    plan = _plan()
    products = {}
    for l in range(plan.n_layers):
        rule = plan.learning_rule(l)
        for target, ps in rule.active_product_series.items():
            products.setdefault(target, []).append(
                [
                    (p.dependency, p.s_mantissa, p.s_exp, [(f.state_var, f.const) for f in p.factors])
                    for p in ps.products
                ]
            )
        m, k = plan.layers[l].dw_mant, plan.layers[l].dw_exp
        assert products["dw"][l] == [
            ("u", -m, k + 7, [("t", None), ("y2", None)]),
            ("u", m, k + 7, [("t", None), ("y3", None)]),
        ]
        assert products["dt"][l] == [
            ("u", 1, 7, [("x1", None), ("y1", None)]),
            ("x0", -1, 8, [("y1", None)]),
            ("u", -1, 6, [("t", None), ("y3", None)]),
        ]
        assert rule.x1_impulse == plan.impulse and rule.x1_tau == plan.tau and rule.t_epoch == 1
        assert rule.y1_tau == rule.y2_tau == rule.y3_tau == 65535


def test_emulation_matches_lava_step_by_step():
    """Every integer of the learner (weights, tags, traces, voltages, dendrites), every step."""
    plan = _plan()
    rasters = random_rasters(2, T, N_IN, density=0.4, seed=5)
    labels = np.array([3, 8])
    net = LavaOnChip(plan, rasters, labels)
    emu = OnChipEmulator(plan, net.total_steps)
    try:
        for k in range(2):
            for phase in range(plan.period):
                net.run(1)
                emu.step(_dense(rasters, k, phase), labels)
                lava, mine = net.state(), emu.state()
                for key in lava:
                    for l in range(plan.n_layers):
                        np.testing.assert_array_equal(
                            mine[key][l], lava[key][l], err_msg=f"{key}[{l}] at sample {k} phase {phase}"
                        )
        changed = [int((lava["weights"][l] != plan.layers[l].weights).sum()) for l in range(2)]
    finally:
        net.stop()
    assert min(changed) > 0, changed  # both layers learned


def test_emulation_matches_lava_over_a_longer_run():
    plan = _plan(seed=1)
    n = 6
    rasters = random_rasters(n, T, N_IN, density=0.4, seed=9)
    labels = np.arange(n) % 10
    lava, lava_counts = LavaOnChip(plan, rasters, labels).run_all()
    emu = OnChipEmulator(plan, n * plan.period)
    counts = np.array([emu.run_sample(r.to_dense(), labels) for r in rasters])
    np.testing.assert_array_equal(counts, lava_counts)
    for key in ("weights", "tags", "x1"):
        for l in range(plan.n_layers):
            np.testing.assert_array_equal(emu.state()[key][l], lava[key][l])
    assert sum(int((lava["weights"][l] != plan.layers[l].weights).sum()) for l in range(2)) > 0


def test_plan_checks_and_realised_learning_rate():
    learner = small_learner(sizes=(N_IN, N_HID, 10), T=T, te=TE)
    params = NetworkParams.from_learner(learner)
    plan = plan_onchip(params, lr=1e-3)
    for lay in plan.layers:
        assert 1 <= lay.dw_mant <= 7 and lay.dw_exp >= -7
        assert 0.7e-3 < lay.lr < 1.42e-3  # m 2^k within a factor sqrt 2
        assert np.all(lay.weights % 2 == 0)
    assert plan.period == T + 3
    with pytest.raises(ConfigError, match="trace_impulse = 12"):
        plan_onchip(params, lr=1e-3, impulse=12)
    with pytest.raises(ConfigError, match="runs in integers"):
        LavaOnChip(plan, random_rasters(1, T, N_IN), [0], backend="floating_pt")


def test_emulator_learns_a_separable_task():
    """Two fixed input patterns with different labels: on-chip learning separates them."""
    learner = small_learner(sizes=(N_IN, 12, 10), T=10, te=3, seed=4)
    params = NetworkParams.from_learner(learner)
    plan = plan_onchip(params, lr=0.02, weight_frac_bits=9, delta_scale=(256.0, 64.0))
    rng = np.random.default_rng(0)
    a = (rng.random((10, N_IN)) < 0.5).astype(np.uint8)
    b = (rng.random((10, N_IN)) < 0.5).astype(np.uint8)
    seq = [(a, 2), (b, 7)] * 40
    emu = OnChipEmulator(plan, len(seq) * plan.period)
    labels = np.array([lab for _, lab in seq])
    for x, _ in seq:
        emu.run_sample(x, labels)
    assert np.argmax(emu.infer_sample(a)) == 2 and np.argmax(emu.infer_sample(b)) == 7


def test_two_hidden_layers_match_too():
    learner = small_learner(sizes=(N_IN, 8, 6, 10), T=T, te=TE, seed=2)
    params = NetworkParams.from_learner(learner)
    plan = plan_onchip(params, lr=0.05, weight_frac_bits=8, delta_scale=(256.0, 256.0, 64.0), rng_seed=1)
    assert plan.period == T + 4
    n = 4
    rasters = random_rasters(n, T, N_IN, density=0.5, seed=11)
    labels = np.array([1, 4, 1, 9])
    lava, _ = LavaOnChip(plan, rasters, labels).run_all()
    emu = OnChipEmulator(plan, n * plan.period)
    for r in rasters:
        emu.run_sample(r.to_dense(), labels)
    for key in lava:
        for l in range(3):
            np.testing.assert_array_equal(emu.state()[key][l], lava[key][l], err_msg=f"{key}[{l}]")


def test_delta_scale_defaults_to_the_network_depth():
    for sizes, expected in (((N_IN, N_HID, 10), (640.0, 64.0)), ((N_IN, 8, 6, 10), (640.0, 640.0, 64.0))):
        params = NetworkParams.from_learner(small_learner(sizes=sizes, T=T, te=TE))
        assert default_delta_scale(params.n_layers) == expected
        auto, explicit = plan_onchip(params, lr=1e-3), plan_onchip(params, lr=1e-3, delta_scale=expected)
        assert [lay.delta_mult for lay in auto.layers] == [lay.delta_mult for lay in explicit.layers]
        assert [lay.lr for lay in auto.layers] == [lay.lr for lay in explicit.layers]
    with pytest.raises(ConfigError, match="give 1 value or 3"):
        plan_onchip(params, lr=1e-3, delta_scale=(1.0, 2.0))
