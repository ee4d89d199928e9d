"""The VML criterion against the paper's equations, computed by hand in each test."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vml import (NonFiniteLossError, StableLossController, VarianceMinimizerLoss, VMLConfig, huber,
                 huber_slope, within_class_logit_variance)

EPS = 1e-8


def feed(ctrl, values, dtype=torch.float64):
    """Run the controller on a sequence of scalar losses; return totals and the `last` dicts."""
    totals, lasts = [], []
    for v in values:
        totals.append(float(ctrl(torch.tensor(v, dtype=dtype))))
        lasts.append({k: float(x) for k, x in ctrl.last.items()})
    return totals, lasts


def test_hand_computed_sequence_eqs_2_to_8():
    ctrl = StableLossController(alpha=0.5, beta=0.5, warmup_steps=2, lambda_base=0.1, delta=0.2)
    totals, lasts = feed(ctrl, [1.0, 2.0, 1.0, 3.0])
    # t=0: baseline is the first loss itself, delta 0, sigma 0, no penalty
    assert lasts[0]["ema"] == 1.0 and lasts[0]["delta"] == 0.0 and lasts[0]["sigma"] == 0.0
    assert totals[0] == 1.0
    # t=1: δ = 2 - 1 = 1 > Δ: ρ = 1 - 0.1 = 0.9; before the latch λ = λ_base = 0.1
    assert lasts[1]["delta"] == 1.0 and lasts[1]["ema"] == 1.5 and lasts[1]["sigma"] == 0.5
    assert lasts[1]["lambda"] == pytest.approx(0.1, abs=1e-15)
    assert totals[1] == pytest.approx(2.0 + 0.1 * 0.9, rel=1e-12)
    # t=2 = W: δ = 1 - 1.5 = -0.5, σ = 0.25 + 0.25 = 0.5 latched as σ_ref; gain = 0.5 / (0.5 + eps)
    gain2 = 0.5 / (0.5 + EPS)
    assert lasts[2]["sigma_ref"] == 0.5 and lasts[2]["ema"] == 1.25
    assert lasts[2]["lambda"] == pytest.approx(0.1 * gain2, rel=1e-12)
    assert totals[2] == pytest.approx(1.0 + 0.1 * gain2 * (0.5 - 0.1), rel=1e-12)
    # t=3: δ = 3 - 1.25 = 1.75, σ = 0.25 + 0.875 = 1.125, gain = 1.125 / 0.5 (eps aside)
    gain3 = 1.125 / (0.5 + EPS)
    assert lasts[3]["delta"] == 1.75 and lasts[3]["sigma"] == 1.125
    assert totals[3] == pytest.approx(3.0 + 0.1 * gain3 * (1.75 - 0.1), rel=1e-12)


def test_quadratic_branch_and_sigma_threshold_mode():
    ctrl = StableLossController(alpha=0.5, beta=0.5, warmup_steps=100, delta=0.5, delta_mode="sigma")
    totals, lasts = feed(ctrl, [1.0, 1.1])
    # t=1: δ = 0.1, σ = 0.05, Δ = 0.5·σ = 0.025 < |δ|: linear branch, ρ = 0.1 - 0.0125
    assert lasts[1]["threshold"] == pytest.approx(0.025, rel=1e-12)
    assert totals[1] == pytest.approx(1.1 + 0.1 * (0.1 - 0.0125), rel=1e-12)
    ctrl = StableLossController(alpha=0.5, beta=0.5, warmup_steps=100, delta=0.2)
    totals, _ = feed(ctrl, [1.0, 1.1])
    # |δ| = 0.1 <= Δ = 0.2: quadratic branch, ρ = 0.5·0.01/0.2 = 0.025
    assert totals[1] == pytest.approx(1.1 + 0.1 * 0.025, rel=1e-12)


def test_latch_happens_once_at_warmup_step():
    ctrl = StableLossController(warmup_steps=3, beta=0.5)
    losses = [1.0, 2.0, 1.0, 2.0, 5.0, 0.0]
    _, lasts = feed(ctrl, losses)
    assert [l["sigma_ref"] for l in lasts[:3]] == [0.0, 0.0, 0.0]
    assert lasts[3]["sigma_ref"] == lasts[3]["sigma"] > 0
    assert lasts[4]["sigma_ref"] == lasts[5]["sigma_ref"] == lasts[3]["sigma_ref"]
    assert [l["gain"] for l in lasts[:3]] == [1.0, 1.0, 1.0]
    assert lasts[4]["gain"] == pytest.approx(lasts[4]["sigma"] / (lasts[3]["sigma"] + EPS), rel=1e-12)
    assert bool(ctrl.latched) and int(ctrl.step) == 6


def test_latch_at_step_zero_uses_eps_floor():
    ctrl = StableLossController(warmup_steps=0)
    _, lasts = feed(ctrl, [1.0, 1.5])
    assert lasts[0]["sigma_ref"] == EPS  # σ_0 = 0, so σ_ref = max(0, eps)
    assert lasts[1]["lambda"] == 2.0     # huge gain, clipped at lambda_max


def test_gamma_gate_is_exactly_zero_in_calm_regime():
    ctrl = StableLossController(gamma=2.0, warmup_steps=2, beta=0.5, alpha=0.5)
    totals, lasts = feed(ctrl, [1.0, 2.0, 1.0, 1.2, 1.1])
    # after the latch σ_t stays below 2·σ_ref: λ and SL are exactly zero, the total is the loss
    for t in (2, 3, 4):
        assert lasts[t]["sigma"] <= 2.0 * lasts[t]["sigma_ref"]
        assert lasts[t]["lambda"] == 0.0 and lasts[t]["gain"] == 0.0
    assert totals[3] == 1.2 and totals[4] == 1.1
    # a volatile burst opens the gate: gain = (σ - 2σ_ref)/(σ_ref + eps)
    totals, lasts = feed(ctrl, [9.0])
    s, r = lasts[0]["sigma"], lasts[0]["sigma_ref"]
    assert s > 2 * r and lasts[0]["gain"] == pytest.approx((s - 2 * r) / (r + EPS), rel=1e-12)


def test_lambda_clipped_at_both_bounds():
    hi = StableLossController(warmup_steps=1, beta=0.5, lambda_max=0.15)
    _, lasts = feed(hi, [1.0, 1.1, 5.0])
    assert lasts[2]["gain"] > 1.5 and lasts[2]["lambda"] == 0.15
    lo = StableLossController(warmup_steps=1, beta=0.5, gamma=3.0, lambda_min=0.05)
    _, lasts = feed(lo, [1.0, 1.1, 1.1])
    assert lasts[2]["gain"] == 0.0 and lasts[2]["lambda"] == 0.05


def test_huber_continuity_and_slope_at_threshold():
    d = 0.2
    for sign in (1.0, -1.0):
        inside = torch.tensor(sign * d, dtype=torch.float64, requires_grad=True)
        assert float(huber(inside.detach(), d)) == pytest.approx(0.1)                    # ½Δ at |u| = Δ
        assert float(huber(torch.tensor(sign * 0.1, dtype=torch.float64), d)) == pytest.approx(0.025)  # ½·0.01/0.2
        assert float(huber(torch.tensor(sign * 0.5, dtype=torch.float64), d)) == pytest.approx(0.4)    # 0.5 − 0.1
        huber(inside, d).backward()
        assert float(inside.grad) == pytest.approx(sign)                           # slope ±1 at |u| = Δ
        for offset in (1e-7, -1e-7):  # both sides: values and slopes meet at the joint
            u = torch.tensor(sign * (d + offset), dtype=torch.float64, requires_grad=True)
            huber(u, d).backward()
            assert float(huber(u.detach(), d)) == pytest.approx(0.5 * d, abs=2e-7)
            assert float(u.grad) == pytest.approx(sign, abs=1e-6)
    u = torch.linspace(-1, 1, 41, dtype=torch.float64)
    assert torch.all(huber_slope(u, d).abs() <= 1.0)


@pytest.mark.parametrize("second_loss_offset", [0.05, 0.9, -0.9])  # δ inside, above and below Δ
def test_gradient_identity_eq_10(second_loss_offset):
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    shift = {"value": 0.0}  # a constant added to the base loss puts δ where we want it

    def shifted_ce(logits, target):
        return F.cross_entropy(logits, target) + shift["value"]

    crit = VarianceMinimizerLoss(warmup_steps=1, beta=0.5, alpha=0.3, w_vml=1.5, base=shifted_ce)
    crit(model(x), y)  # t = 0 sets the baseline
    base_loss = F.cross_entropy(model(x), y)
    shift["value"] = second_loss_offset
    total = crit(model(x), y)
    lam, dev, thr = (float(crit.last[k]) for k in ("lambda", "delta", "threshold"))
    psi = dev / thr if abs(dev) <= thr else math.copysign(1.0, dev)
    assert abs(dev - second_loss_offset) < 1e-12  # the model is unchanged, so δ is the offset
    g_total = torch.autograd.grad(total, list(model.parameters()))
    g_base = torch.autograd.grad(base_loss, list(model.parameters()))
    factor = 1.0 + 1.5 * lam * psi
    for gt, gb in zip(g_total, g_base):
        torch.testing.assert_close(gt, factor * gb, rtol=1e-12, atol=1e-14)


def test_state_dict_round_trip_mid_run_continues_identically():
    losses = [2.3, 2.1, 2.2, 1.9, 1.7, 1.8, 1.5, 1.6, 1.2, 1.4, 1.0, 1.3]
    a = StableLossController(warmup_steps=4)
    feed(a, losses[:6])
    b = StableLossController(warmup_steps=4)
    b.load_state_dict(a.state_dict())
    ta, la = feed(a, losses[6:])
    tb, lb = feed(b, losses[6:])
    assert ta == tb and la == lb
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_eval_mode_returns_base_loss_and_keeps_state():
    crit = VarianceMinimizerLoss(warmup_steps=1)
    logits, y = torch.randn(16, 5), torch.randint(0, 5, (16,))
    crit(logits, y)
    crit(logits * 2, y)
    before = {k: v.clone() for k, v in crit.state_dict().items()}
    crit.eval()
    out = crit(logits * 3, y)
    assert torch.equal(out, F.cross_entropy(logits * 3, y))
    assert all(torch.equal(before[k], v) for k, v in crit.state_dict().items())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_loss_raises_and_leaves_state(bad):
    ctrl = StableLossController(warmup_steps=2)
    feed(ctrl, [1.0, 1.2, 0.9])
    before = {k: v.clone() for k, v in ctrl.state_dict().items()}
    with pytest.raises(FloatingPointError, match="step 3"):
        ctrl(torch.tensor(bad, dtype=torch.float64))
    assert all(torch.equal(before[k], v) for k, v in ctrl.state_dict().items())


def test_deferred_non_finite_check_masks_state_and_raises_at_check():
    ctrl = StableLossController(warmup_steps=2, defer_nonfinite=True)
    feed(ctrl, [1.0, 1.2])
    before = {k: v.clone() for k, v in ctrl.state_dict().items() if k != "bad_step"}
    ctrl(torch.tensor(float("nan"), dtype=torch.float64))  # no host sync, no raise here
    assert all(torch.equal(before[k], v) for k, v in ctrl.state_dict().items() if k != "bad_step")
    with pytest.raises(NonFiniteLossError, match="step 2"):
        ctrl.check()
    with pytest.raises(NonFiniteLossError):
        ctrl.check()


def test_non_scalar_loss_rejected():
    with pytest.raises(ValueError, match="0-d"):
        StableLossController()(torch.ones(3))


@pytest.mark.parametrize("field,value", [
    ("alpha", 0.0), ("alpha", 1.0), ("beta", -0.1), ("beta", 1.5), ("delta", 0.0), ("delta", -1.0),
    ("warmup_steps", -1), ("warmup_steps", 2.5), ("warmup_steps", True), ("lambda_min", -0.1),
    ("lambda_max", -1.0), ("gamma", 0.5), ("w_vml", -1.0), ("eps", 0.0), ("delta_mode", "rel"),
    ("lambda_base", -0.5), ("vpl_weight", -1.0), ("alpha", float("nan")),
])
def test_invalid_config_names_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"VMLConfig\.{field}={value!r}".replace("(", r"\(").replace(")", r"\)")):
        VMLConfig(**{field: value})


def test_lambda_min_above_lambda_max_rejected():
    with pytest.raises(ValueError, match="lambda_max=0.5.*lambda_min=1.0"):
        VMLConfig(lambda_min=1.0, lambda_max=0.5)


def test_table5_defaults():
    c = VMLConfig()
    assert (c.lambda_base, c.alpha, c.beta, c.delta, c.warmup_steps, c.lambda_min, c.lambda_max, c.eps) == (
        0.10, 0.05, 0.20, 0.20, 200, 0.0, 2.0, 1e-8)
    assert (c.gamma, c.w_vml, c.delta_mode, c.vpl_weight) == (1.0, 1.0, "abs", 0.0)


def test_tiny_model_trained_with_vml_lowers_its_loss():
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    crit = VarianceMinimizerLoss(warmup_steps=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first = float(F.cross_entropy(model(x), y).detach())
    for i in range(40):
        xb, yb = x[i % 8 * 32:(i % 8 + 1) * 32], y[i % 8 * 32:(i % 8 + 1) * 32]
        opt.zero_grad()
        crit(model(xb), yb).backward()
        opt.step()
    assert float(F.cross_entropy(model(x), y).detach()) < 0.5 * first
    assert int(crit.controller.step) == 40 and bool(crit.controller.latched)


def test_any_zero_d_criterion_can_be_the_base():
    def mse_on_probs(logits, target):
        return ((logits.softmax(1) - F.one_hot(target, logits.shape[1]).float()) ** 2).mean()

    crit = VarianceMinimizerLoss(base=mse_on_probs, alpha=0.5, warmup_steps=10)
    logits, y = torch.randn(12, 4, requires_grad=True), torch.randint(0, 4, (12,))
    l0 = mse_on_probs(logits, y)
    assert torch.equal(crit(logits, y), l0)  # t = 0: no penalty yet
    l1 = mse_on_probs(logits * 3, y)
    dev = float((l1 - l0).detach())
    rho = 0.5 * dev * dev / 0.2 if abs(dev) <= 0.2 else abs(dev) - 0.1
    assert float(crit(logits * 3, y).detach()) == pytest.approx(float(l1.detach()) + 0.1 * rho, rel=1e-6)


def test_within_class_logit_variance_by_hand():
    logits = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0], [0.0, 2.0], [0.0, 2.0], [7.0, 7.0]])
    target = torch.tensor([0, 0, 1, 1, 1, 0])
    # class 0 true logits 1, 3, 7: mean 11/3, unbiased var = ((8/3)²+(2/3)²+(10/3)²)/2 = 28/3
    # class 1 true logits 5, 2, 2: mean 3, var = (4+1+1)/2 = 3 → mean over classes (28/3 + 3)/2
    assert float(within_class_logit_variance(logits, target)) == pytest.approx((28 / 3 + 3) / 2, rel=1e-6)
    # a class with one sample is not eligible; none eligible gives 0
    assert float(within_class_logit_variance(logits[:3], target[:3])) == pytest.approx(2.0)
    assert float(within_class_logit_variance(logits[1:3], target[1:3])) == 0.0


def test_vpl_term_added_only_when_weighted_and_training():
    logits, y = torch.randn(32, 4), torch.randint(0, 4, (32,))
    plain = VarianceMinimizerLoss()(logits, y)
    weighted = VarianceMinimizerLoss(vpl_weight=0.5)(logits, y)
    assert float(weighted - plain) == pytest.approx(0.5 * float(within_class_logit_variance(logits, y)), rel=1e-5)


def test_float32_and_bf16_autocast_keep_statistics_in_float64():
    model = nn.Linear(6, 3)
    crit = VarianceMinimizerLoss(warmup_steps=1)
    x, y = torch.randn(10, 6), torch.randint(0, 3, (10,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(3):
            total = crit(model(x), y)
    assert total.dtype == torch.float32
    assert crit.controller.ema.dtype == torch.float64 and crit.last["lambda"].dtype == torch.float64
    total.backward()
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()
