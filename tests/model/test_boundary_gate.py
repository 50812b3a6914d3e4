"""The boundary-gated mask head: hand-computed gates, boundary targets, and a model that trains."""

import math

import numpy as np
import torch

from gsmt.losses import LossConfig, boundary_head_loss, boundary_targets, gsmt_loss
from gsmt.model.gsmt import GSMT
from gsmt.model.heads import gate_masks


def test_gate_is_the_product_of_no_boundary_probabilities_between_t_and_i():
    mask = torch.zeros(1, 4, 4)  # sigmoid 0.5 everywhere
    p = torch.tensor([[0.5, 0.2, 0.0]])  # P(boundary after snippet j)
    logits = torch.log(p / (1 - p)).clamp(-30, 30)
    gated = torch.sigmoid(gate_masks(mask, logits))[0]
    keep = 1 - p[0]
    for i in range(4):
        for t in range(4):
            lo, hi = min(i, t), max(i, t)
            expected = 0.5 * float(torch.prod(keep[lo:hi]))
            assert math.isclose(float(gated[i, t]), expected, rel_tol=1e-4), (i, t)
    # symmetric in i and t for a symmetric mask; the diagonal is never gated
    torch.testing.assert_close(gated, gated.T)
    torch.testing.assert_close(torch.diagonal(gated), torch.full((4,), 0.5))


def test_gate_cuts_a_column_at_a_sure_boundary_and_keeps_gradients_finite():
    mask = torch.full((1, 5, 5), 6.0, requires_grad=True)
    b = torch.tensor([[-20.0, 20.0, -20.0, -20.0]], requires_grad=True)  # boundary between 1 and 2
    gated = gate_masks(mask, b)
    hard = (gated[0] > 0).int().tolist()
    assert hard == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 1, 1, 1]]
    gated.sum().backward()
    assert torch.isfinite(mask.grad).all() and torch.isfinite(b.grad).all()


def test_boundary_targets_hand_computed():
    # snippets: A A | A' (another instance of the same class) | bg bg | ignored | B ; K = 3
    cls = torch.tensor([[0, 0, 0, 3, 3, -1, 1]])
    T = 7
    mask = torch.zeros(1, T, T)
    mask[0, 0:2, 0:2] = 1  # instance A = snippets 0, 1
    mask[0, 2, 2] = 1  # instance A' = snippet 2
    mask[0, 6, 6] = 1
    valid = torch.ones(1, T, dtype=torch.bool)
    breaks, usable = boundary_targets(cls, mask, valid, 3)
    assert usable.tolist() == [[True, True, True, True, False, False]]
    assert breaks.tolist() == [[False, True, True, False, False, False]]
    # padding is not usable
    valid[0, 4:] = False
    _, usable = boundary_targets(cls, mask, valid, 3)
    assert usable.tolist() == [[True, True, True, False, False, False]]


def test_boundary_head_loss_is_class_balanced():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    breaks = torch.tensor([[True, False, False, False]])
    usable = torch.ones(1, 4, dtype=torch.bool)
    # 0.5 * log 2 (the one boundary) + 0.5 * log 2 (mean of the three others)
    assert math.isclose(float(boundary_head_loss(logits, breaks, usable)), math.log(2), rel_tol=1e-6)


def test_gated_model_outputs_and_loss_train():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops on a shared 2-core machine run faster on one thread
    try:
        _train_two_adjacent_instances()
    finally:
        torch.set_num_threads(threads)


def _train_two_adjacent_instances():
    torch.manual_seed(0)
    T, K, D = 16, 2, 8
    model = GSMT(D, K, T, hidden_dim=16, num_layers=1, n_heads=2, mask_head="pairwise", boundary_gate=True)
    x = torch.randn(2, D, T)
    valid = torch.ones(2, T, dtype=torch.bool)
    valid[1, 12:] = False
    out = model(x, valid)
    assert out["boundary_logits"].shape == (2, T - 1) and out["mask_logits"].shape == (2, T, T)
    # two back-to-back instances of class 0 (snippets 2..5 and 6..9): the gate must learn to split them
    cls = torch.full((2, T), K)
    cls[:, 2:10] = 0
    cls[1, 12:] = -1
    mask = torch.zeros(2, T, T)
    for a, b in ((2, 6), (6, 10)):
        mask[:, a:b, a:b] = 1
    batch = {"cls_target": cls, "mask_target": mask, "valid": valid}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(80):
        loss, logs = gsmt_loss(model(x, valid), batch, LossConfig())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert "boundary_head" in logs
    model.eval()
    with torch.no_grad():
        out = model(x, valid)
    assert torch.sigmoid(out["boundary_logits"][0, 5]) > 0.5  # between the two instances
    col = (out["mask_logits"][0, :, 3] > 0).numpy()
    np.testing.assert_array_equal(col[2:10], [1, 1, 1, 1, 0, 0, 0, 0])
