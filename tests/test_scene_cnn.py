"""The scene CNN (our reconstruction of the paper's DCASE classifier) and its model spec."""

from __future__ import annotations

import pytest
import torch

from spectnet.models import SceneCNN, SpectNetClassifier, build_model


def scene_spec(n_filters=16, n_samples=22050, **frontend):
    return {"architecture": "spectnet-scene-cnn", "n_samples": n_samples, "sample_rate": 22050,
            "n_classes": 15, "frontend": {"n_filters": n_filters, "kernel_size": 551,
                                          "win_length": 551, "hop_length": 220, **frontend}}


def n_parameters(module):
    return sum(p.numel() for p in module.parameters())


def test_shapes_for_a_ten_second_unit():
    model = build_model(scene_spec(46, n_samples=220_500, learnable=False))
    assert isinstance(model, SpectNetClassifier) and isinstance(model.cnn, SceneCNN)
    x = torch.randn(2, 220_500)
    image = model.frontend.image(x)
    assert image.shape == (2, 1, 998, 46)  # (220500 - 551 + 1 - 551) // 220 + 1 frames
    hidden = model.cnn.features(image)
    assert hidden.shape == (2, 256, 998 // 5, 46 // 5)
    logits = model(x)
    assert logits.shape == (2, 15) and torch.isfinite(logits).all()
    assert model(x.unsqueeze(1)).shape == (2, 15)  # (B, 1, T) works too


def test_logits_not_probabilities():
    torch.manual_seed(0)
    logits = SceneCNN(16, 15).eval()(torch.randn(4, 1, 50, 16) * 10)
    assert (logits < 0).any() and not torch.allclose(logits.sum(-1), torch.ones(4))


@pytest.mark.parametrize("grid", [(16, 32, 46, 64, 128, 149)])
def test_parameter_count_grows_with_the_filters(grid):
    counts = [n_parameters(SceneCNN(n, 15)) for n in grid]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    # only the dense layer depends on F: 256 features per 5 frequency bins, times 15 classes
    assert counts[-1] - counts[0] == 256 * (149 // 5 - 16 // 5) * 15


def test_learnable_frontend_gets_gradients_frozen_one_does_not():
    torch.manual_seed(0)
    x, y = torch.randn(3, 22050), torch.tensor([0, 4, 9])
    learnable = build_model(scene_spec())
    torch.nn.functional.cross_entropy(learnable(x), y).backward()
    grads = {n: p.grad for n, p in learnable.frontend.named_parameters()}
    assert set(grads) == {"filterbank.offset_center_frequency", "filterbank.offset_bandwidth",
                          "filterbank.offset_amplitude"}
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
               for g in grads.values())

    frozen = build_model(scene_spec())
    frozen.frontend.requires_grad_(False)
    torch.nn.functional.cross_entropy(frozen(x), y).backward()
    assert all(p.grad is None for p in frozen.frontend.parameters())
    assert all(p.grad is not None for p in frozen.cnn.parameters())

    static = build_model(scene_spec(learnable=False))
    assert list(static.frontend.parameters()) == []
    static.load_state_dict(learnable.state_dict())  # stage 1 -> stage 2 share one state_dict


def test_invalid_inputs_are_named():
    with pytest.raises(ValueError, match="n_filters \\(4\\) must be >= the pool size"):
        SceneCNN(4, 15)
    with pytest.raises(ValueError, match=r"expected a \(B, 1, frames, 16\) image"):
        SceneCNN(16, 15)(torch.randn(2, 1, 50, 20))
    with pytest.raises(ValueError, match="needs >= 5"):
        build_model(scene_spec(n_samples=1200))
    with pytest.raises(ValueError, match="exact filtering path"):
        build_model(scene_spec(method="stft"))
