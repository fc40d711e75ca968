"""The heart-sound models: the spec's shapes, clean vs quirks, and the classifier factory."""

from __future__ import annotations

import pytest
import torch

from spectnet.models import (GammatoneClassifier, Heartnet1D, Heartnet2D, SpectNetClassifier,
                             SpectNetResNet, build_model)


def spec(architecture, n_filters, **cnn):
    return {"architecture": architecture, "n_samples": 2500, "sample_rate": 1000,
            "frontend": {"n_filters": n_filters}, "cnn": cnn}


def test_resnet_follows_the_spec_block_by_block():
    net = SpectNetResNet(240, 16).eval()
    x = torch.randn(3, 1, 240, 16)
    stem = torch.relu(net.stem(x))
    assert stem.shape == (3, 16, 244, 17)
    assert net.n_features == 7680 == 128 * 30 * 2  # REPRODUCTION.md §3.1
    assert net.fc1.in_features == 7680 and net.fc2.out_features == 2


@pytest.mark.parametrize("n_filters, features", [(4, 3840), (8, 3840), (16, 7680)])
def test_resnet_runs_for_every_filter_count_of_table_ii(n_filters, features):
    model = build_model(spec("spectnet-resnet", n_filters))
    assert isinstance(model, SpectNetClassifier) and model.cnn.n_features == features
    assert model(torch.randn(2, 2500)).shape == (2, 2)


def test_clean_head_returns_logits_and_is_deterministic_in_eval():
    net = SpectNetResNet(240, 8).eval()
    x = torch.randn(4, 1, 240, 8)
    out = net(x)
    assert not torch.allclose(out.sum(1), torch.ones(4))  # logits, not probabilities
    assert torch.equal(out, net(x))  # no dropout at evaluation


def test_quirks_head_is_the_authors_double_softmax_with_evaluation_dropout():
    torch.manual_seed(0)
    net = SpectNetResNet(240, 8, quirks=True).eval()
    x = torch.randn(4, 1, 240, 8)
    out = net(x)
    assert torch.allclose(out.sum(1), torch.ones(4))  # softmax before the loss's softmax
    assert not torch.equal(out, net(x))  # F.dropout without a training flag


@pytest.mark.parametrize("cls, n_features", [(Heartnet1D, 9952), (Heartnet2D, 4976)])
def test_gammatone_baselines_have_the_spec_sizes(cls, n_features):
    model = build_model(spec(f"gammatone-heartnet{cls.__name__[-2:].lower()}", 4))
    assert isinstance(model, GammatoneClassifier) and isinstance(model.cnn, cls)
    assert model.cnn.n_features == n_features
    # 'same' padding: the CNN sees every one of the 2,500 samples once per filter
    filtered = model.frontend(torch.nn.functional.pad(torch.randn(2, 2500), (40, 40)))
    assert filtered.shape == (2, 4, 2500)
    assert model(torch.randn(2, 2500)).shape == (2, 2)


@pytest.mark.parametrize("architecture, n_filters", [
    ("spectnet-resnet", 16), ("gammatone-heartnet1d", 4), ("gammatone-heartnet2d", 4)])
def test_building_a_model_leaves_batch_norm_statistics_untouched(architecture, n_filters):
    # the size probe runs in evaluation mode: no running statistics from a zero input
    model = build_model(spec(architecture, n_filters))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(int(m.num_batches_tracked) == 0 for m in norms)
    assert all(torch.equal(m.running_var, torch.ones_like(m.running_var)) for m in norms)
    assert model.training


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="unknown architecture 'resnet50'"):
        build_model({"architecture": "resnet50"})


@pytest.mark.parametrize("shape", [(3, 16, 244, 17), (3, 32, 60, 4), (3, 64, 15, 1)])
def test_residual_equals_the_authors_pad_pool_add_in_values_and_gradients(shape):
    from spectnet.models.resnet import _residual, _shortcut_pool

    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    main = torch.randn(_shortcut_pool(torch.cat((x, x), 1)).shape, requires_grad=True)
    ours = _residual(x, main)
    grads = torch.autograd.grad(ours.square().sum(), (x, main))
    theirs = _shortcut_pool(torch.cat((x, torch.zeros_like(x)), 1)) + main
    expected = torch.autograd.grad(theirs.square().sum(), (x, main))
    assert torch.equal(ours, theirs)
    assert all(torch.equal(a, b) for a, b in zip(grads, expected))
