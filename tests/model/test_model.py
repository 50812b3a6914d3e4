"""The GSMT network: shapes, padding invariance, options, size (DESIGN.md section 3)."""

from __future__ import annotations

import pytest
import torch

from gsmt.errors import GsmtError
from gsmt.losses import LossConfig, gsmt_loss
from gsmt.model import GSMT, count_parameters

D, K, T, C = 24, 5, 16, 32


def small(**kw) -> GSMT:
    torch.manual_seed(0)
    return GSMT(D, K, T, hidden_dim=C, **kw).eval()


def inputs(B: int = 2, n_valid: int = 11):
    torch.manual_seed(1)
    features = torch.rand(B, D, T)
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[1, n_valid:] = False
    return features, valid


def test_output_shapes_and_no_mask_branch():
    features, valid = inputs()
    out = small()(features, valid)
    assert out["cls_logits"].shape == (2, K + 1, T)
    assert out["mask_logits"].shape == (2, T, T)
    assert torch.isfinite(out["cls_logits"]).all() and torch.isfinite(out["mask_logits"]).all()
    out = small(mask_branch=False)(features, valid)
    assert set(out) == {"cls_logits"}


OPTIONS = [
    dict(pos_encoding="none"),
    dict(pos_encoding="learned"),
    dict(pos_encoding="fixed"),
    dict(embedding="cnn"),
    dict(embedding="cnn", pos_encoding="fixed"),
    dict(mask_head="pairwise"),
    dict(mask_head="pairwise", pos_encoding="fixed"),
    dict(mask_head="pairwise", boundary_gate=True, conv_stem=2),
    dict(mask_head="pairwise", pos_encoding="relative"),
    dict(mask_head="pairwise", conv_stem=3, stem_dilation=2),
    dict(mask_head="pairwise", conv_stem=2, stem_norm="layer"),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(map(str, o.values())))
def test_padding_invariance(options):
    model = small(**options)
    features, valid = inputs()
    out = model(features, valid)
    changed = features.clone()
    changed[1, :, 11:] = torch.randn(D, T - 11) * 100
    changed[1, 0, 12] = float("nan")  # even NaN in padding must not leak
    out2 = model(changed, valid)
    # Every output computed from a valid snippet t is unchanged: class column t and mask column t.
    assert torch.equal(out["cls_logits"][0], out2["cls_logits"][0])
    assert torch.allclose(out["cls_logits"][1, :, :11], out2["cls_logits"][1, :, :11], atol=1e-6)
    assert torch.allclose(out["mask_logits"][1, :, :11], out2["mask_logits"][1, :, :11], atol=1e-6)


def test_valid_outputs_see_changes_at_valid_positions():
    # Guards the invariance test against a model that ignores its input; the transformer is
    # global, so snippet 0 sees a change at snippet 10 (outside any conv receptive field).
    model = small()
    features, valid = inputs()
    out = model(features, valid)
    changed = features.clone()
    changed[1, :, 10] += 1.0
    out2 = model(changed, valid)
    assert not torch.allclose(out["cls_logits"][1, :, 0], out2["cls_logits"][1, :, 0])
    assert not torch.allclose(out["mask_logits"][1, :, 0], out2["mask_logits"][1, :, 0])


def test_mask_column_is_predicted_from_its_own_snippet():
    # The last mask conv has k=1, so column t depends on snippets near t only. With the CNN
    # embedding the receptive field radius is 1+1+3+3+5+5 (embedding) + 1+1 (mask convs) = 20:
    # a change at snippet 40 of 64 leaves column 0 untouched (a rows/columns swap would not).
    torch.manual_seed(0)
    model = GSMT(D, K, 64, hidden_dim=C, embedding="cnn").eval()
    features, valid = torch.rand(1, D, 64), torch.ones(1, 64, dtype=torch.bool)
    changed = features.clone()
    changed[0, :, 40] += 1.0
    a, b = model(features, valid)["mask_logits"], model(changed, valid)["mask_logits"]
    assert torch.equal(a[0, :, :20], b[0, :, :20])
    assert not torch.allclose(a[0, :, 21], b[0, :, 21])
    assert not torch.allclose(a[0, :, 40], b[0, :, 40])


def test_pairwise_mask_orientation_by_hand():
    # With the affinity switched off the logit of position i in the mask of snippet t is the
    # offset bias of i - t. A bias that is positive for i - t in {0, 1, 2} (the action runs forward
    # from t) must light rows t..t+2 of column t; the transpose would light t-2..t instead.
    model = small(mask_head="pairwise")
    head = model.mask_head
    with torch.no_grad():
        for conv in (head.query, head.key):
            conv.weight.zero_()
            conv.bias.zero_()
        offsets = torch.arange(-(T - 1), T)
        head.offset_bias.copy_(torch.where((offsets >= 0) & (offsets <= 2), 5.0, -5.0))
    features, valid = inputs()
    logits = model(features, valid)["mask_logits"][0]
    i, t = torch.meshgrid(torch.arange(T), torch.arange(T), indexing="ij")
    expected = torch.where((i - t >= 0) & (i - t <= 2), 5.0, -5.0)
    assert torch.equal(logits, expected)
    assert not torch.equal(logits, expected.T)
    # Distance slopes: 0.5 per snippet forward (i > t), 2 per snippet backward (i < t).
    with torch.no_grad():
        head.offset_bias.zero_()
        head.slopes.copy_(torch.tensor([0.5, 2.0]))
    logits = model(features, valid)["mask_logits"][0]
    expected = torch.where(i >= t, -0.5 * (i - t), -2.0 * (t - i)).float()
    assert torch.allclose(logits, expected)
    assert logits[3, 1] == -1.0 and logits[1, 3] == -4.0


def test_pairwise_mask_depends_on_both_snippets_only():
    # CNN embedding (receptive field radius 20 with the head's convs): logit(i, t) of the pairwise
    # head sees snippets near i and near t, so a change at snippet 40 of 64 leaves the block of
    # rows and columns 0..19 untouched but changes both row 40 and column 40.
    torch.manual_seed(0)
    model = GSMT(D, K, 64, hidden_dim=C, embedding="cnn", mask_head="pairwise").eval()
    features, valid = torch.rand(1, D, 64), torch.ones(1, 64, dtype=torch.bool)
    changed = features.clone()
    changed[0, :, 40] += 1.0
    a, b = model(features, valid)["mask_logits"][0], model(changed, valid)["mask_logits"][0]
    assert torch.equal(a[:20, :20], b[:20, :20])
    assert not torch.allclose(a[40, :20], b[40, :20])
    assert not torch.allclose(a[:20, 40], b[:20, 40])


@pytest.mark.parametrize("n_heads", [1, 2, 3, 4, 5])
def test_head_counts(n_heads):
    features, valid = inputs()
    model = small(n_heads=n_heads)
    assert model.embed.layers[0].attn.head_dim == C // n_heads
    out = model(features, valid)
    assert out["cls_logits"].shape == (2, K + 1, T)
    # An explicit head_dim: q/k/v in n_heads * 12 dims, projected back to C.
    model = small(n_heads=n_heads, head_dim=12)
    assert model.embed.layers[0].attn.qkv.out_features == 3 * n_heads * 12
    assert model.embed.layers[0].attn.out.out_features == C
    assert model(features, valid)["mask_logits"].shape == (2, T, T)


def test_fully_padded_sample_stays_finite():
    features, valid = inputs()
    valid[1] = False
    out = small()(features, valid)
    assert torch.isfinite(out["cls_logits"]).all() and torch.isfinite(out["mask_logits"]).all()


def test_parameter_count_paper_size():
    model = GSMT(2048, 200, 100)
    n = count_parameters(model)
    assert 2_000_000 <= n <= 6_000_000
    # proj 2048*256+256; per layer: 2 LN (4*256) + qkv 256*768+768 + out 256*256+256
    # + MLP 256*1024+1024 + 1024*256+256; final LN 512; cls conv 256*201*3+201;
    # mask 2*(256*256*3+256) + 256*100+100
    layer = 4 * 256 + 256 * 768 + 768 + 256 * 256 + 256 + 256 * 1024 + 1024 + 1024 * 256 + 256
    expected = (2048 * 256 + 256) + 2 * layer + 512 + (256 * 201 * 3 + 201) \
        + 2 * (256 * 256 * 3 + 256) + (256 * 100 + 100)
    assert n == expected
    assert count_parameters(GSMT(2048, 200, 100, pos_encoding="learned")) == expected + 256 * 100
    assert count_parameters(GSMT(2048, 200, 100, pos_encoding="fixed")) == expected
    # pairwise head: the C->T readout replaced by query and key (C->64 each), 2T-1 offset biases
    # and two distance slopes
    pairwise = expected - (256 * 100 + 100) + 2 * (256 * 64 + 64) + 199 + 2
    assert count_parameters(GSMT(2048, 200, 100, mask_head="pairwise")) == pairwise


@pytest.mark.parametrize("mask_head", ["conv", "pairwise"])
def test_long_sequence_and_backward(mask_head):
    torch.manual_seed(0)
    model = GSMT(8, 3, 256, hidden_dim=16, n_heads=2, mask_head=mask_head)
    features = torch.rand(2, 8, 256)
    valid = torch.ones(2, 256, dtype=torch.bool)
    valid[1, 200:] = False
    out = model(features, valid)
    assert out["mask_logits"].shape == (2, 256, 256)
    cls_target = torch.randint(0, 4, (2, 256))
    mask_target = (torch.rand(2, 256, 256) > 0.5).float()
    total, _ = gsmt_loss(out, {"cls_target": cls_target, "mask_target": mask_target, "valid": valid},
                         LossConfig())
    total.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_bad_configuration_and_input():
    with pytest.raises(GsmtError, match="pos_encoding"):
        GSMT(D, K, T, pos_encoding="rotary")
    with pytest.raises(GsmtError, match="embedding"):
        GSMT(D, K, T, embedding="lstm")
    with pytest.raises(GsmtError, match="mask_head"):
        GSMT(D, K, T, mask_head="mlp")
    with pytest.raises(GsmtError, match="feature dimension 7"):
        small()(torch.rand(1, 7, T), torch.ones(1, T, dtype=torch.bool))
    with pytest.raises(GsmtError, match="T=16"):
        small()(torch.rand(1, D, 8), torch.ones(1, 8, dtype=torch.bool))


def test_conv_stem_sees_order_that_attention_without_position_cannot():
    # Without positional encoding the transformer is permutation-equivariant: reversing the
    # snippets reverses the outputs. A conv stem breaks that symmetry with local order.
    torch.manual_seed(0)
    features, _ = inputs()
    flipped = features.flip(-1)
    plain = small(num_layers=1)
    plain.cls_head.conv = torch.nn.Conv1d(plain.cls_head.conv.in_channels, plain.cls_head.conv.out_channels, 1)
    plain.eval()
    assert torch.allclose(plain(features)["cls_logits"].flip(-1), plain(flipped)["cls_logits"], atol=1e-5)
    stem = small(num_layers=1, conv_stem=1)
    stem.cls_head.conv = torch.nn.Conv1d(stem.cls_head.conv.in_channels, stem.cls_head.conv.out_channels, 1)
    stem.eval()
    assert not torch.allclose(stem(features)["cls_logits"].flip(-1), stem(flipped)["cls_logits"], atol=1e-3)


def _with_point_head(model: GSMT) -> GSMT:
    """The model with a k=1 class head, so that only the embedding can mix snippets."""
    head = model.cls_head.conv
    model.cls_head.conv = torch.nn.Conv1d(head.in_channels, head.out_channels, 1)
    return model.eval()


def test_relative_bias_starts_as_position_free_attention_and_learns_order():
    features, valid = inputs()
    plain, relative = small(num_layers=1), small(num_layers=1, pos_encoding="relative")
    # Zero-initialised bias: the same weights give the paper's position-free outputs.
    relative.load_state_dict(plain.state_dict(), strict=False)
    assert torch.allclose(plain(features, valid)["cls_logits"], relative(features, valid)["cls_logits"], atol=1e-6)
    relative = _with_point_head(relative)
    flipped = features.flip(-1)
    bias = relative.embed.layers[0].attn.relative
    assert torch.allclose(relative(features)["cls_logits"].flip(-1), relative(flipped)["cls_logits"], atol=1e-5)
    with torch.no_grad():  # head 0 looks behind only, head 1 ahead only: order becomes visible
        bias.slopes[0] = torch.tensor([5.0, 0.0])
        bias.slopes[1] = torch.tensor([0.0, 5.0])
    assert not torch.allclose(relative(features)["cls_logits"].flip(-1), relative(flipped)["cls_logits"], atol=1e-3)


def test_relative_bias_by_hand():
    from gsmt.model.embedding import RelativeBias

    bias = RelativeBias(n_heads=1, T=4)
    with torch.no_grad():
        bias.table[0] = torch.arange(7.0)  # table[0][(j - i) + 3]
        bias.slopes[0] = torch.tensor([1.0, 10.0])  # ahead (j > i), behind (j < i)
    b = bias(3)[0]
    # b[i, j] = table[j - i + 3] - (1 * (j - i) if j > i else 10 * (i - j))
    expected = torch.tensor([[3.0, 4 - 1, 5 - 2], [2 - 10, 3, 4 - 1], [1 - 20, 2 - 10, 3]])
    assert torch.equal(b, expected)


def test_relative_bias_is_translation_equivariant():
    # Shifting an action inside the window shifts the outputs: no absolute position is used.
    model = _with_point_head(small(num_layers=1, pos_encoding="relative"))
    with torch.no_grad():
        for layer in model.embed.layers:
            layer.attn.relative.slopes.uniform_(0.0, 1.0)
            layer.attn.relative.table.normal_()
    features = torch.zeros(1, D, T)
    torch.manual_seed(3)
    features[0, :, 2:8] = torch.rand(D, 6)
    valid = torch.zeros(1, T, dtype=torch.bool)
    valid[0, 2:8] = True
    shifted = features.roll(5, dims=-1)
    out = model(features, valid)["cls_logits"][0, :, 2:8]
    out_shifted = model(shifted, valid.roll(5, dims=-1))["cls_logits"][0, :, 7:13]
    assert torch.allclose(out, out_shifted, atol=1e-5)


def test_checking_a_checkpoint_on_the_meta_device_does_not_import_dynamo():
    # Arithmetic on meta tensors imports torch._dynamo (seconds per `gsmt predict`); the model's
    # index buffers are built on the CPU so that `_fit_on_meta_device` stays cheap.
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from gsmt.config import load_config\n"
            "from gsmt.engine.checkpoint import build_model\n"
            "for extra in ([], ['model.pos_encoding=relative'], ['model.pos_encoding=fixed', 'model.conv_stem=2',\n"
            "              'model.boundary_gate=true', 'model.labels=single'], ['model.mask_head=conv',\n"
            "              'model.labels=single'], ['model.embedding=cnn'], ['model.conv_stem=3', 'model.stem_dilation=2']):\n"
            "    with torch.device('meta'):\n"
            "        build_model(load_config('thumos', extra), 5, 16)\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_stem_dilation_grows_per_layer_and_rejects_absurd_values():
    model = small(conv_stem=3, stem_dilation=2)
    assert [conv.dilation[0] for conv in model.stem.convs] == [1, 2, 4]
    assert [conv.padding[0] for conv in model.stem.convs] == [1, 2, 4]
    assert [conv.dilation[0] for conv in small(conv_stem=2).stem.convs] == [1, 1]
    with pytest.raises(GsmtError, match="stem_dilation"):
        GSMT(D, K, T, conv_stem=64, stem_dilation=64)
    with pytest.raises(GsmtError, match="stem_dilation"):
        GSMT(D, K, T, conv_stem=2, stem_dilation=0)


def test_stem_norm_layer_keeps_a_snippet_to_its_receptive_field():
    # Two k=3 blocks (dilation 1): snippet 0 sees snippets 0..2. With per-snippet LayerNorm a change
    # at snippet 8 leaves its stem output alone; GroupNorm's whole-sequence statistics carry it there.
    x = torch.randn(1, C, T)
    far = x.clone()
    far[0, :, 8] += 5.0
    valid = torch.ones(1, T, dtype=torch.bool)
    layer, group = small(conv_stem=2, stem_norm="layer").stem, small(conv_stem=2).stem
    assert torch.equal(layer(x, valid)[..., :3], layer(far, valid)[..., :3])
    assert not torch.allclose(layer(x, valid)[..., 6:11], layer(far, valid)[..., 6:11])
    assert not torch.allclose(group(x, valid)[..., :3], group(far, valid)[..., :3])
    with pytest.raises(GsmtError, match="stem_norm"):
        GSMT(D, K, T, conv_stem=2, stem_norm="batch")


# ---------------------------------------------------------------- multi-label model (issue 32)


def test_multilabel_model_outputs_and_pair_masks():
    """`labels="multi"`: K sigmoid logits per snippet; the mask of a (snippet, class) pair is the
    pairwise head's column conditioned on the class, computed only for the pairs asked for."""
    model = small(mask_head="pairwise", labels="multi")
    features, valid = inputs()
    snippet = torch.tensor([[3, 3, 7], [0, 5, -1]])
    cls = torch.tensor([[0, 4, 2], [1, 1, -1]])
    out = model(features, valid, pair_snippet=snippet, pair_class=cls)
    assert out["cls_logits"].shape == (2, K, T)
    assert out["pair_mask_logits"].shape == (2, 3, T)
    assert "mask_logits" not in out
    # The same pairs afterwards from the outputs: what prediction does.
    again = model.pair_mask_logits(model(features, valid), snippet, cls)
    torch.testing.assert_close(again, out["pair_mask_logits"])
    # One snippet, two classes: two different masks; the class term is what tells them apart.
    assert not torch.allclose(out["pair_mask_logits"][0, 0], out["pair_mask_logits"][0, 1])
    with torch.no_grad():
        model.mask_head.class_keys.weight.zero_()
    same = model(features, valid, pair_snippet=snippet, pair_class=cls)["pair_mask_logits"]
    torch.testing.assert_close(same[0, 0], same[0, 1])


def test_multilabel_pair_mask_equals_the_pairwise_column_without_a_class_term():
    """With the class keys at zero, the pair (t, c) mask is column t of the pairwise head's [T, T]
    mask computed with the same weights: the multi-label head only adds the class term."""
    multi = small(mask_head="pairwise", labels="multi")
    single = small(mask_head="pairwise")
    state = {k: v for k, v in multi.state_dict().items() if k in single.state_dict()}
    state["cls_head.conv.weight"] = single.state_dict()["cls_head.conv.weight"]
    state["cls_head.conv.bias"] = single.state_dict()["cls_head.conv.bias"]
    single.load_state_dict(state)
    with torch.no_grad():
        multi.mask_head.class_keys.weight.zero_()
    features, valid = inputs()
    dense = single(features, valid)["mask_logits"]  # [B, i, t]
    snippet = torch.arange(T).repeat(2, 1)
    pairs = multi(features, valid, pair_snippet=snippet, pair_class=torch.zeros_like(snippet))["pair_mask_logits"]
    torch.testing.assert_close(pairs, dense.transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_multilabel_without_class_masks_shares_one_mask_per_snippet():
    """`class_masks=False`: no class keys; the pairs of one snippet get one mask, the pairs of two
    snippets two; the option goes through the config (only with labels: multi) and a checkpoint."""
    from gsmt.config import load_config
    from gsmt.engine.checkpoint import build_model

    model = small(mask_head="pairwise", labels="multi", class_masks=False)
    assert model.mask_head.class_keys is None
    assert not any("class_keys" in k for k in model.state_dict())
    features, valid = inputs()
    out = model(features, valid, pair_snippet=torch.tensor([[3, 3, 7]]).repeat(2, 1),
                pair_class=torch.tensor([[0, 4, 0]]).repeat(2, 1))["pair_mask_logits"]
    torch.testing.assert_close(out[:, 0], out[:, 1])
    assert not torch.allclose(out[:, 0], out[:, 2])
    cfg = load_config("thumos", ["model.class_masks=false"])
    assert cfg.model.class_masks is False
    assert build_model(cfg, K, D).mask_head.class_keys is None
    assert build_model(load_config("thumos"), K, D).mask_head.class_keys is not None
    with pytest.raises(GsmtError, match="model.class_masks"):
        load_config("thumos", ["model.labels=single", "model.class_masks=false"])


@pytest.mark.parametrize("options", [dict(mask_head="conv"), dict(mask_head="pairwise", boundary_gate=True),
                                     dict(mask_head="pairwise", mask_branch=False)])
def test_multilabel_needs_the_pairwise_mask_head(options):
    with pytest.raises(GsmtError, match="model.labels"):
        small(labels="multi", **options)


def test_multilabel_softmax_label_scores():
    """`label_scores="softmax"`: K + 1 logits (background last) and `class_probs` the softmax's K
    class rows; the default sigmoid gives K logits and their sigmoids. Through the config (multi
    only) and a checkpoint's model."""
    from gsmt.config import load_config
    from gsmt.engine.checkpoint import build_model

    features, valid = inputs()
    softmax = small(mask_head="pairwise", labels="multi", label_scores="softmax")
    out = softmax(features, valid)
    logits = out["cls_logits"]
    assert logits.shape == (2, K + 1, T) and "action_logits" not in out
    torch.testing.assert_close(softmax.class_probs(out), torch.softmax(logits, 1)[:, :K])
    sigmoid = small(mask_head="pairwise", labels="multi")
    out = sigmoid(features, valid)
    torch.testing.assert_close(sigmoid.class_probs(out), torch.sigmoid(out["cls_logits"]))
    single = small(mask_head="pairwise")
    out = single(features, valid)
    torch.testing.assert_close(single.class_probs(out), torch.softmax(out["cls_logits"], 1)[:, :K])
    # actionness: P(action) (row 0 of a 2-way softmax) times each class's sigmoid
    actionness = small(mask_head="pairwise", labels="multi", label_scores="actionness")
    out = actionness(features, valid)
    assert out["cls_logits"].shape == (2, K, T) and out["action_logits"].shape == (2, 2, T)
    torch.testing.assert_close(actionness.class_probs(out), torch.softmax(out["action_logits"], 1)[:, :1]
                               * torch.sigmoid(out["cls_logits"]))
    assert build_model(load_config("thumos", ["model.label_scores=actionness"]), K, D).label_scores == "actionness"
    assert build_model(load_config("thumos", ["model.label_scores=softmax"]), K, D).label_scores == "softmax"
    with pytest.raises(GsmtError, match="model.label_scores"):
        load_config("thumos", ["model.labels=single", "model.label_scores=softmax"])
    with pytest.raises(GsmtError, match="model.label"):
        small(label_scores="softmax")
    with pytest.raises(GsmtError, match="model.labels"):
        small(mask_head="pairwise", class_masks=False)
