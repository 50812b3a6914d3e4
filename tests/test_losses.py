"""Hand-computed checks of the GSMT losses (DESIGN.md section 5)."""

from __future__ import annotations

import math

import pytest
import torch

from gsmt.engine.loop import LossSums
from gsmt.errors import GsmtError
from gsmt.losses import LossConfig, boundary_band, classification_loss, erode, gsmt_loss, mask_iou, mask_loss

LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25
LN9 = math.log(9.0)  # sigmoid(ln 9) = 0.9


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


# ---------------------------------------------------------------- erosion and band


def test_erode_hard_mask_with_edge_rule():
    x = t([[1, 1, 1, 0, 0, 0, 1, 1, 0]])
    # k=3 minimum over {i-1, i, i+1}, outside = +inf:
    # 0: {inf,1,1}=1  1: {1,1,1}=1  2: {1,1,0}=0  3..5: 0  6: {0,1,1}=0  7: {1,1,0}=0  8: 0
    assert erode(x, 3).tolist() == [[1, 1, 0, 0, 0, 0, 0, 0, 0]]
    # band = x - erode: the action touching the left edge has no band at position 0.
    assert boundary_band(x, 3).tolist() == [[0, 0, 1, 0, 0, 0, 1, 1, 0]]


def test_erode_soft_values_and_kernel_5():
    x = t([0.2, 0.9, 0.5, 0.7])
    # k=3: 0: min(.2,.9)=.2  1: min(.2,.9,.5)=.2  2: min(.9,.5,.7)=.5  3: min(.5,.7)=.5
    assert torch.allclose(erode(x, 3), t([0.2, 0.2, 0.5, 0.5]))
    assert torch.allclose(boundary_band(x, 3), t([0.0, 0.7, 0.0, 0.2]))
    # k=5: 0: min(.2,.9,.5)=.2  1: min(all)=.2  2: .2  3: min(.9,.5,.7)=.5
    assert torch.allclose(erode(x, 5), t([0.2, 0.2, 0.2, 0.5]))


def test_erode_padding_acts_like_the_edge():
    x = t([[0, 1, 1, 1, 0, 0]])
    valid = torch.tensor([[True, True, True, True, False, False]])
    # Position 3 sees {1, 1, pad=+inf} -> 1, so no band there; padded positions give 0.
    assert erode(x, 3, valid).tolist() == [[0, 0, 1, 1, 0, 0]]
    assert boundary_band(x, 3, valid).tolist() == [[0, 1, 0, 0, 0, 0]]
    # Without the padding mask, position 3 sees the 0 at position 4 and has a band.
    assert boundary_band(x, 3).tolist() == [[0, 1, 0, 1, 0, 0]]


def test_erode_is_differentiable():
    x = t([0.2, 0.9, 0.5, 0.7]).requires_grad_()
    boundary_band(x, 3).sum().backward()
    assert torch.isfinite(x.grad).all()
    # band sum = sum x - sum erode; erode picks x0 twice and x2 twice: grads 1-2, 1, 1-2, 1
    assert x.grad.tolist() == [-1.0, 1.0, -1.0, 1.0]


# ---------------------------------------------------------------- mask loss


def _column_case(m_logits: list[float], g: list[float]):
    """A [1, T, T] problem whose only foreground column is t=0."""
    T = len(g)
    logits = torch.full((1, T, T), -LN3, dtype=torch.float64)
    logits[0, :, 0] = t(m_logits)
    target = torch.zeros(1, T, T, dtype=torch.float64)
    target[0, :, 0] = t(g)
    fg = torch.zeros(1, T, dtype=torch.bool)
    fg[0, 0] = True
    valid = torch.ones(1, T, dtype=torch.bool)
    return logits, target, fg, valid


G = [0, 1, 1, 1, 0, 0]  # k=3: erode g = [0,0,1,0,0,0], B(g) = [0,1,0,1,0,0]


def test_mask_loss_soft_iou_branch_and_dice():
    # m = [.25,.75,.75,.75,.25,.25]; erode m = [.25,.25,.75,.25,.25,.25]; B(m) = [0,.5,0,.5,0,0]
    # hard: m>.5 = g so hard bands overlap (2 > 0): IoU branch.
    # I = .5 + .5 = 1; U = sum B(m) + sum B(g) - I = 1 + 2 - 1 = 2; boundary = 1 - 1/2 = 0.5
    # dice: sum m*g = 3*.75 = 2.25; sum m^2 = 3*.0625 + 3*.5625 = 1.875; sum g^2 = 3
    #       dice = 1 - 2.25 / 4.875 = 7/13; loss = 0.5 + 0.4 * 7/13
    cfg = LossConfig(erosion_kernel=3)
    loss, parts = mask_loss(*_column_case([-LN3, LN3, LN3, LN3, -LN3, -LN3], G), cfg)
    assert float(parts["boundary"]) == pytest.approx(0.5, abs=1e-7)
    assert float(parts["dice"]) == pytest.approx(7 / 13, abs=1e-7)
    assert float(parts["fallback_fraction"]) == 0.0
    assert float(loss) == pytest.approx(0.5 + 0.4 * 7 / 13, abs=1e-7)


def test_mask_loss_l2_fallback_when_bands_do_not_meet():
    # m = [.75,.25,.25,.25,.25,.75]: hard m = [1,0,0,0,0,1], its band [1,0,0,0,0,1] (edges: erode
    # sees {inf,1,0}=0) meets B(g) = [0,1,0,1,0,0] nowhere -> fallback.
    # m - g = [.75,-.75,-.75,-.75,.25,.75]; ||.||^2 = 5*.5625 + .0625 = 2.875; / c=6 = 0.4791667
    # (the soft IoU would give 1 - 0/U = 1, so the branch is visible in the value)
    cfg = LossConfig(erosion_kernel=3, dice=False)
    loss, parts = mask_loss(*_column_case([LN3, -LN3, -LN3, -LN3, -LN3, LN3], G), cfg)
    assert float(parts["fallback_fraction"]) == 1.0
    assert float(loss) == pytest.approx(2.875 / 6, abs=1e-7)


def test_mask_loss_l2_fallback_normalised_by_foreground():
    # Same case as above, c = number of foreground positions of g = 3: 2.875 / 3
    cfg = LossConfig(erosion_kernel=3, dice=False, l2_norm="foreground")
    loss, _ = mask_loss(*_column_case([LN3, -LN3, -LN3, -LN3, -LN3, LN3], G), cfg)
    assert float(loss) == pytest.approx(2.875 / 3, abs=1e-7)
    with pytest.raises(GsmtError, match="loss.l2_norm"):
        LossConfig(l2_norm="T")


def test_mask_loss_fallback_is_chosen_on_hard_bands():
    # m = [.25,.4,.4,.4,.25,.25]: soft band B(m) = [0,.15,0,.15,0,0] meets B(g) (soft I = 0.3 > 0),
    # but m > .5 is all zero so the hard band is empty -> fallback.
    # m - g = [.25,-.6,-.6,-.6,.25,.25]; ||.||^2 = 3*.0625 + 3*.36 = 1.2675; / 6 = 0.21125
    lo = math.log(0.4 / 0.6)  # sigmoid = 0.4
    cfg = LossConfig(erosion_kernel=3, dice=False)
    loss, parts = mask_loss(*_column_case([-LN3, lo, lo, lo, -LN3, -LN3], G), cfg)
    assert float(parts["fallback_fraction"]) == 1.0
    assert float(loss) == pytest.approx(0.21125, abs=1e-7)


def test_mask_loss_averages_columns_and_logs_fallback_fraction():
    # Two foreground columns: t=0 takes the IoU branch (0.5), t=1 the fallback (2.875/6).
    cfg = LossConfig(erosion_kernel=3, dice=False)
    logits, target, fg, valid = _column_case([-LN3, LN3, LN3, LN3, -LN3, -LN3], G)
    logits[0, :, 1] = t([LN3, -LN3, -LN3, -LN3, -LN3, LN3])
    target[0, :, 1] = t(G)
    fg[0, 1] = True
    loss, parts = mask_loss(logits, target, fg, valid, cfg)
    assert float(parts["fallback_fraction"]) == 0.5
    assert float(loss) == pytest.approx((0.5 + 2.875 / 6) / 2, abs=1e-7)


def test_mask_loss_uses_columns_not_rows():
    # Column 0 of the logits: [.75,.75,.25,.25] vs target column [1,1,0,0]:
    #   dice = 1 - 1.5 / (2*.5625 + 2*.0625 + 2) = 1 - 1.5/3.25 = 7/13.
    # Row 0 of the same matrices: m = [.75,.25,.25,.25], g = [1,0,0,0]:
    #   dice = 1 - .75 / (.5625 + 3*.0625 + 1) = 1 - .75/1.75 = 4/7  (a row/column mix-up)
    cfg = LossConfig(boundary=False, lambda2=1.0)
    logits, target, fg, valid = _column_case([LN3, LN3, -LN3, -LN3], [1, 1, 0, 0])
    loss, _ = mask_loss(logits, target, fg, valid, cfg)
    assert float(loss) == pytest.approx(7 / 13, abs=1e-7)
    swapped, _ = mask_loss(logits.transpose(1, 2), target.transpose(1, 2), fg, valid, cfg)
    assert float(swapped) == pytest.approx(4 / 7, abs=1e-7)


def test_mask_iou_by_hand():
    # T = 4, columns are masks. Column 1 (foreground): predicted rows {2, 3}, target rows {1, 2}
    # -> IoU 1/3; with row 3 padded the prediction there is ignored -> 1/2. Column 2 (foreground):
    # predicted {0}, target {1, 2} -> 0. Column 0 is background and column 3 is padding: not scored.
    logits = torch.full((1, 4, 4), -5.0)
    logits[0, 2, 1] = logits[0, 3, 1] = 5.0
    logits[0, 0, 2] = 5.0
    target = torch.zeros(1, 4, 4)
    target[0, 1:3, 1] = target[0, 1:3, 2] = 1.0
    fg = torch.tensor([[False, True, True, True]])
    valid = torch.ones(1, 4, dtype=torch.bool)
    assert mask_iou(logits, target, fg & torch.tensor([[True, True, True, False]]), valid).tolist() == \
        pytest.approx([1 / 3, 0.0])
    valid[0, 3] = False
    assert mask_iou(logits, target, fg, valid).tolist() == pytest.approx([1 / 2, 0.0])
    # Rows and columns swapped: column 1 of the transpose is row 1 (predicted {}, target {1, 2}) -> 0,
    # column 2 is row 2 (predicted {1}, target {1, 2}) -> 1/2.
    assert mask_iou(logits.transpose(1, 2), target.transpose(1, 2), fg, valid).tolist() == pytest.approx([0.0, 0.5])


def test_mask_loss_ignores_padded_positions():
    # The 6-snippet IoU case, padded to 8 with garbage: same value (c counts valid positions only).
    cfg = LossConfig(erosion_kernel=3)
    small = mask_loss(*_column_case([-LN3, LN3, LN3, LN3, -LN3, -LN3], G), cfg)[0]
    logits, target, fg, valid = _column_case([-LN3, LN3, LN3, LN3, -LN3, -LN3, 7.0, -3.0], G + [1, 1])
    valid[0, 6:] = False
    fg[0, 6] = True  # a padded column is never supervised
    target[0, :, 6] = 1.0
    big = mask_loss(logits, target, fg, valid, cfg)[0]
    assert float(big) == pytest.approx(float(small), abs=1e-9)
    # The fallback's c is the valid length: the L2 case padded likewise keeps 2.875 / 6.
    cfg = LossConfig(erosion_kernel=3, dice=False)
    logits, target, fg, valid = _column_case([LN3, -LN3, -LN3, -LN3, -LN3, LN3, 5.0, 5.0], G + [0, 0])
    valid[0, 6:] = False
    assert float(mask_loss(logits, target, fg, valid, cfg)[0]) == pytest.approx(2.875 / 6, abs=1e-7)


def test_mask_loss_terms_switch_off():
    case = _column_case([-LN3, LN3, LN3, LN3, -LN3, -LN3], G)
    only_boundary = mask_loss(*case, LossConfig(erosion_kernel=3, dice=False))[0]
    only_dice = mask_loss(*case, LossConfig(erosion_kernel=3, boundary=False))[0]
    neither = mask_loss(*case, LossConfig(boundary=False, dice=False))[0]
    assert float(only_boundary) == pytest.approx(0.5, abs=1e-7)
    assert float(only_dice) == pytest.approx(0.4 * 7 / 13, abs=1e-7)  # lambda2 kept
    assert float(neither) == 0.0


def test_background_mask_option():
    # Column 1 is background with logits 0 everywhere: BCE towards 0 = ln 2 per position.
    logits, target, fg, valid = _column_case([-LN3, LN3, LN3, LN3, -LN3, -LN3], G)
    logits[0, :, 1] = 0.0
    bg = torch.zeros_like(fg)
    bg[0, 1] = True
    base = LossConfig(erosion_kernel=3)
    off = mask_loss(logits, target, fg, valid, base, bg=bg)[0]
    on, parts = mask_loss(logits, target, fg, valid, LossConfig(erosion_kernel=3, background_mask=True), bg=bg)
    assert float(off) == pytest.approx(0.5 + 0.4 * 7 / 13, abs=1e-7)
    assert float(parts["background"]) == pytest.approx(math.log(2), abs=1e-7)
    assert float(on) == pytest.approx(float(off) + math.log(2), abs=1e-7)


def test_mask_loss_without_foreground_is_a_connected_zero():
    logits = torch.randn(2, 5, 5, requires_grad=True)
    loss, parts = mask_loss(logits, torch.zeros(2, 5, 5), torch.zeros(2, 5, dtype=torch.bool),
                            torch.ones(2, 5, dtype=torch.bool), LossConfig())
    assert float(loss.detach()) == 0.0 and float(parts["fallback_fraction"]) == 0.0
    loss.backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) == 0.0


# ---------------------------------------------------------------- classification loss


def _cls(columns: list[list[float]], targets: list[int]):
    """cls_logits [1, K+1, T] with column t = per-snippet logits."""
    return t(columns).T[None].clone(), torch.tensor([targets])


FOCAL = 0.25 * math.log(2)  # z = [ln2, 0, 0], y=0: p_y = 2/4 = .5; FL = -(1-.5)^2 ln .5
# r = sigmoid(z) = [2/3, .5, .5]; K=2 -> ceil(2/10) = 1 hard negative (r=.5):
LOGISTIC = -math.log(2 / 3) - 10.0 * math.log(0.5)  # = 0.405465 + 6.931472


def test_focal_and_logistic_values():
    logits, target = _cls([[math.log(2), 0, 0]], [0])
    loss, parts = classification_loss(logits, target, LossConfig())
    assert float(parts["focal"]) == pytest.approx(FOCAL, abs=1e-9)
    assert float(parts["logistic"]) == pytest.approx(LOGISTIC, abs=1e-9)
    assert float(loss) == pytest.approx(0.4 * FOCAL + 0.6 * LOGISTIC, abs=1e-9)


def test_classification_terms_switch_off():
    logits, target = _cls([[math.log(2), 0, 0]], [0])
    focal_only = classification_loss(logits, target, LossConfig(logistic=False))[0]
    logistic_only = classification_loss(logits, target, LossConfig(focal=False))[0]
    neither = classification_loss(logits, target, LossConfig(focal=False, logistic=False))[0]
    assert float(focal_only) == pytest.approx(FOCAL, abs=1e-9)  # weight 1 when alone
    assert float(logistic_only) == pytest.approx(LOGISTIC, abs=1e-9)
    assert float(neither) == 0.0


def test_hard_negative_selection_k12():
    # K=12 -> 13 outputs, ceil(12/10) = 2 hard negatives. y=0 has the largest logit (r=.9) and must
    # not count as a negative; the two largest negatives: r=.5 (k=9) and r=.25 (k=5)... the rest .1.
    z = [-LN9] * 13
    z[0], z[5], z[9] = LN9, -LN3, 0.0
    logits, target = _cls([z], [0])
    loss = classification_loss(logits, target, LossConfig(focal=False))[0]
    # LR = -ln .9 - 10/2 * (ln(1-.5) + ln(1-.25)) = 0.1053605 + 5 * (0.6931472 + 0.2876821) = 5.0095068
    # (one negative would give 0.105 + 10*0.693 = 7.04; three: 0.105 + 10/3*(0.693+0.288+0.105) = 3.72)
    assert float(loss) == pytest.approx(5.0095068, abs=1e-6)


def test_ignore_index_and_average_over_snippets():
    good = [math.log(2), 0, 0]
    garbage = [50.0, -50.0, 20.0]
    logits, target = _cls([good, garbage, good], [0, -1, 0])
    loss = classification_loss(logits, target, LossConfig())[0]
    assert float(loss) == pytest.approx(0.4 * FOCAL + 0.6 * LOGISTIC, abs=1e-9)
    # Second snippet with target 1 instead: z=[ln2,0,0], y=1: p_y = 1/4, FL = -(3/4)^2 ln(1/4);
    # r_y = .5, hardest negative is k=0 (r=2/3): LR = -ln .5 - 10 ln(1/3)
    logits, target = _cls([good, good], [0, 1])
    second = 0.4 * (-(0.75**2) * math.log(0.25)) + 0.6 * (-math.log(0.5) - 10 * math.log(1 / 3))
    mean = (0.4 * FOCAL + 0.6 * LOGISTIC + second) / 2
    assert float(classification_loss(logits, target, LossConfig())[0]) == pytest.approx(mean, abs=1e-9)


def test_all_ignored_gives_connected_zero():
    logits = torch.randn(1, 4, 3, requires_grad=True)
    loss, _ = classification_loss(logits, torch.full((1, 3), -1), LossConfig())
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert float(logits.grad.abs().sum()) == 0.0


@pytest.mark.parametrize("scale", [30.0, 1e4])
def test_extreme_logits_stay_finite(scale):
    torch.manual_seed(0)
    cls_logits = (torch.randn(2, 6, 8) * scale).requires_grad_()
    cls_target = torch.randint(0, 6, (2, 8))
    mask_logits = (torch.randn(2, 8, 8) * scale).requires_grad_()
    mask_target = (torch.rand(2, 8, 8) > 0.5).float()
    valid = torch.ones(2, 8, dtype=torch.bool)
    valid[1, 5:] = False
    total, logs = gsmt_loss({"cls_logits": cls_logits, "mask_logits": mask_logits},
                            {"cls_target": cls_target, "mask_target": mask_target, "valid": valid},
                            LossConfig())
    total.backward()
    assert math.isfinite(float(total.detach())) and all(math.isfinite(v) for v in logs.values())
    assert torch.isfinite(cls_logits.grad).all() and torch.isfinite(mask_logits.grad).all()
    assert float(cls_logits.grad.abs().sum()) > 0
    if scale < 100:  # at 1e4 the float32 sigmoid saturates and its gradient is exactly 0
        assert float(mask_logits.grad.abs().sum()) > 0


# ---------------------------------------------------------------- total


def test_gsmt_loss_combines_terms():
    # Snippet 0: class 0 with the hand case of the mask; snippet 1: background (K=2); rest ignored.
    T = 6
    cls_logits = torch.zeros(1, 3, T, dtype=torch.float64)
    cls_logits[0, :, 0] = t([math.log(2), 0, 0])
    cls_logits[0, :, 1] = t([0, 0, math.log(2)])  # background target 2: same numbers as the y=0 case
    cls_target = torch.tensor([[0, 2, -1, -1, -1, -1]])
    mask_logits, mask_target, _, valid = _column_case([-LN3, LN3, LN3, LN3, -LN3, -LN3], G)
    outputs = {"cls_logits": cls_logits, "mask_logits": mask_logits}
    batch = {"cls_target": cls_target, "mask_target": mask_target, "valid": valid}
    cfg = LossConfig(erosion_kernel=3, mask_weight=2.0)
    total, logs = gsmt_loss(outputs, batch, cfg)
    cls = 0.4 * FOCAL + 0.6 * LOGISTIC
    mask = 0.5 + 0.4 * 7 / 13
    assert logs["cls"] == pytest.approx(cls, abs=1e-9)
    assert logs["mask"] == pytest.approx(mask, abs=1e-7)
    assert logs["total"] == pytest.approx(cls + 2.0 * mask, abs=1e-7)
    assert {"focal", "logistic", "boundary", "dice", "fallback_fraction"} <= set(logs)
    # Detached 0-d tensors on the loss's device, read by the trainer once per epoch (LossSums).
    assert all(torch.is_tensor(v) and v.shape == () and not v.requires_grad and v.device == cls_logits.device
               for v in logs.values())
    # Padding overrides a stored target: marking snippet 0 padded leaves only the background one.
    batch["valid"] = valid.clone()
    batch["valid"][0, 0] = False
    total, logs = gsmt_loss(outputs, batch, cfg)
    assert logs["cls"] == pytest.approx(cls, abs=1e-9) and logs["mask"] == 0.0
    # Without the mask branch only the classification loss remains.
    total, logs = gsmt_loss({"cls_logits": cls_logits}, batch, cfg)
    assert "mask" not in logs and logs["total"] == pytest.approx(cls, abs=1e-9)


def test_loss_sums_read_once_equal_the_float_sums_bit_for_bit():
    """The trainer keeps each step's terms on the device and reads them once per epoch: the totals
    are the very float64 sums of adding each step's terms as Python floats, in step order, with a
    term that only some steps have (`background`) summed over those steps, in first-seen order."""
    torch.manual_seed(0)
    sums, expected = LossSums(), {}
    assert sums.totals() == {}
    for i in range(200):
        logs = {"cls": torch.rand(()) * 10}
        if i % 3 == 1:
            logs["background"] = torch.rand((), dtype=torch.float64)  # mixed dtypes promote exactly
        logs["total"] = torch.rand(()) * 3
        sums.add(logs)
        for key, value in logs.items():
            expected[key] = expected.get(key, 0.0) + float(value)
    totals = sums.totals()
    assert totals == expected and list(totals) == ["cls", "total", "background"]
    assert all(type(v) is float for v in totals.values())


def test_bad_erosion_kernel_is_a_user_error():
    with pytest.raises(GsmtError):
        LossConfig(erosion_kernel=4)


# ---------------------------------------------------------------- multi-label loss (issue 32)


def test_multilabel_focal_loss_by_hand():
    """Logits 0 (p = 0.5 for every class): each positive costs alpha * 0.5^2 * ln 2, each negative
    (1 - alpha) * 0.5^2 * ln 2; the sum is divided by the foreground snippets (here 2 of 3 kept)."""
    from gsmt.losses import multilabel_classification_loss

    logits = torch.zeros(1, 3, 4)  # K = 3, T = 4
    labels = torch.tensor([[[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]]], dtype=torch.float32)
    keep = torch.tensor([[True, True, True, False]])  # snippet 3 ignored: its label does not count
    loss, parts = multilabel_classification_loss(logits, labels, keep, LossConfig(focal_alpha=0.25, gamma=2.0))
    unit = 0.25 * math.log(2)
    expected = (3 * 0.25 * unit + 6 * 0.75 * unit) / 2  # 3 positives, 6 negatives, 2 foreground snippets
    assert float(loss) == pytest.approx(expected, abs=1e-7)
    assert float(parts["cls"]) == pytest.approx(expected, abs=1e-7)


def test_multilabel_gsmt_loss_trains_pair_masks_and_ignores_padding_pairs():
    from gsmt.losses import mask_columns_loss

    torch.manual_seed(0)
    B, K, T, P = 1, 2, 6, 3
    logits = torch.randn(B, P, T)
    target = torch.zeros(B, P, T)
    target[0, 0, 1:4] = 1
    target[0, 1, 2:3] = 1
    batch = {"cls_target": torch.tensor([[2, 1, 0, 1, 2, 2]]), "valid": torch.ones(B, T, dtype=torch.bool),
             "label_target": torch.zeros(B, K, T), "pair_snippet": torch.tensor([[1, 2, -1]]),
             "pair_class": torch.tensor([[1, 0, -1]]), "pair_mask": target}
    outputs = {"cls_logits": torch.zeros(B, K, T), "pair_mask_logits": logits.clone().requires_grad_()}
    cfg = LossConfig()
    total, logs = gsmt_loss(outputs, batch, cfg)
    expected, _ = mask_columns_loss(logits[0, :2], target[0, :2], torch.ones(2, T, dtype=torch.bool), cfg)
    assert float(logs["mask"]) == pytest.approx(float(expected), abs=1e-6)
    total.backward()
    grad = outputs["pair_mask_logits"].grad
    assert grad[0, :2].abs().sum() > 0 and float(grad[0, 2].abs().sum()) == 0.0  # the padding pair: no gradient


def test_label_set_loss_is_the_paper_loss_with_one_label_per_snippet():
    """`label_set_classification_loss` (softmax over K + background, target split over the labels)
    equals `classification_loss` (Eq. 5) when every snippet has at most one label, for every
    combination of its terms."""
    from gsmt.losses import label_set_classification_loss

    torch.manual_seed(2)
    B, K, T = 2, 12, 9  # K > 10: two hard negatives
    logits = torch.randn(B, K + 1, T)
    target = torch.randint(0, K + 1, (B, T))
    target[0, 4] = -1  # ignored
    labels = torch.zeros(B, K, T)
    fg = (target >= 0) & (target < K)
    b, t = torch.nonzero(fg, as_tuple=True)
    labels[b, target[b, t], t] = 1
    for focal, logistic in ((True, True), (True, False), (False, True)):
        cfg = LossConfig(focal=focal, logistic=logistic)
        paper, paper_parts = classification_loss(logits, target, cfg)
        ours, parts = label_set_classification_loss(logits, labels, target >= 0, cfg)
        assert float(ours) == pytest.approx(float(paper), rel=1e-6)
        for name in ("focal", "logistic"):
            assert float(parts[name]) == pytest.approx(float(paper_parts[name]), rel=1e-6)


def test_label_set_loss_splits_a_twin_evenly():
    """A snippet with two labels (a twin): the loss is lowest with the two labels equally probable,
    and by hand at logits 0 (K = 2, p = 1/3 each): focal 2 * 0.5 * (2/3)^2 * ln 3, logistic ln 2
    (both labels' mean) + alpha * ln 2 (the background, the one non-label)."""
    from gsmt.losses import label_set_classification_loss

    labels = torch.ones(1, 2, 1)
    keep = torch.ones(1, 1, dtype=torch.bool)
    cfg = LossConfig(lambda1=0.4, gamma=2.0, alpha=10.0)
    loss, parts = label_set_classification_loss(torch.zeros(1, 3, 1), labels, keep, cfg)
    focal = (2 / 3) ** 2 * math.log(3)
    logistic = math.log(2) + 10.0 * math.log(2)
    assert float(parts["focal"]) == pytest.approx(focal, rel=1e-6)
    assert float(parts["logistic"]) == pytest.approx(logistic, rel=1e-6)
    assert float(loss) == pytest.approx(0.4 * focal + 0.6 * logistic, rel=1e-6)

    def at(gap: float) -> float:
        return float(label_set_classification_loss(torch.tensor([[[3.0 + gap], [3.0 - gap], [-3.0]]]), labels,
                                                   keep, cfg)[0])

    assert at(0.0) < at(0.5) and at(0.0) < at(-0.5)  # symmetric: one label is not preferred


def test_softmax_label_scores_through_gsmt_loss_count_every_kept_snippet():
    """A multi-label model with a background row: `gsmt_loss` scores classes with the label-set loss,
    averaged over every kept snippet (background ones too), not over the foreground ones."""
    from gsmt.losses import label_set_classification_loss

    B, K, T = 1, 2, 4
    batch = {"cls_target": torch.tensor([[2, 0, 1, -1]]), "valid": torch.ones(B, T, dtype=torch.bool),
             "label_target": torch.tensor([[[0, 1, 1, 0], [0, 0, 1, 0]]], dtype=torch.float32),
             "pair_snippet": torch.tensor([[1, 2, 2]]), "pair_class": torch.tensor([[0, 0, 1]]),
             "pair_mask": torch.zeros(B, 3, T)}
    logits = torch.randn(B, K + 1, T)
    cfg = LossConfig(boundary=False, dice=False)
    _, logs = gsmt_loss({"cls_logits": logits, "pair_mask_logits": torch.zeros(B, 3, T)}, batch, cfg)
    expected, _ = label_set_classification_loss(logits, batch["label_target"], batch["cls_target"] >= 0, cfg)
    assert float(logs["cls"]) == pytest.approx(float(expected), rel=1e-6)
    one = label_set_classification_loss(logits[..., :3], batch["label_target"][..., :3],
                                        torch.ones(1, 3, dtype=torch.bool), cfg)[0]
    assert float(expected) == pytest.approx(float(one), rel=1e-6)  # mean over the 3 kept snippets


def test_actionness_loss_by_hand():
    """`label_scores: actionness` at logits 0 (K = 2): Eq. 5 of action vs background over the 3 kept
    snippets, 0.4 * 0.25 ln 2 + 0.6 * (1 + alpha) ln 2 each, plus the sigmoid focal loss of the
    labels over the 2 foreground snippets only, (0.25 + 0.75 + 2 * 0.25) * 0.25 ln 2 / 2. A
    background snippet trains no class sigmoid, an ignored one nothing, and a twin's two labels
    are both pushed up."""
    B, K, T = 1, 2, 4
    batch = {"cls_target": torch.tensor([[2, 0, 0, -1]]), "valid": torch.ones(B, T, dtype=torch.bool),
             "label_target": torch.tensor([[[0, 1, 1, 1], [0, 0, 1, 0]]], dtype=torch.float32),
             "pair_snippet": torch.tensor([[1, 2, 2]]), "pair_class": torch.tensor([[0, 0, 1]]),
             "pair_mask": torch.zeros(B, 3, T)}
    outputs = {"action_logits": torch.zeros(B, 2, T, requires_grad=True),
               "cls_logits": torch.zeros(B, K, T, requires_grad=True), "pair_mask_logits": torch.zeros(B, 3, T)}
    cfg = LossConfig(boundary=False, dice=False, lambda1=0.4, gamma=2.0, alpha=10.0, focal_alpha=0.25)
    total, logs = gsmt_loss(outputs, batch, cfg)
    ln2 = math.log(2)
    action = 0.4 * 0.25 * ln2 + 0.6 * 11 * ln2
    labels = (0.25 + 0.75 + 2 * 0.25) * 0.25 * ln2 / 2
    assert float(logs["action"]) == pytest.approx(action, rel=1e-6)
    assert float(logs["label_focal"]) == pytest.approx(labels, rel=1e-6)
    assert float(logs["cls"]) == pytest.approx(action + labels, rel=1e-6)
    total.backward()
    cls_grad, action_grad = outputs["cls_logits"].grad[0], outputs["action_logits"].grad[0]
    assert float(cls_grad[:, 0].abs().sum()) == 0.0 and float(cls_grad[:, 3].abs().sum()) == 0.0
    assert float(action_grad[:, 3].abs().sum()) == 0.0 and float(action_grad[:, 0].abs().sum()) > 0
    assert bool((cls_grad[:, 2] < 0).all())  # the twin: both labels up
    assert float(action_grad[0, 0]) > 0 and float(action_grad[0, 1]) < 0  # background: action down
