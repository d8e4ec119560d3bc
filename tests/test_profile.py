"""Parameter and MAC counts: exact against torchvision's documented figures."""

import copy

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from course_utils.profile import compare_counters, count_parameters, profile_model, thop_profile

# Every model torchvision documents; _ops in its weights metadata is GMACs.
MODELS = ["alexnet", "vgg16", "googlenet", "resnet18", "resnet50", "resnet152", "densenet121",
          "mobilenet_v2", "efficientnet_b0", "efficientnet_b7", "convnext_tiny", "vit_b_16"]


def _build(name):
    """The model on the meta device: shapes only, so counting costs no compute."""
    with torch.device("meta"):
        if name == "googlenet":  # the documented figures exclude the auxiliary classifiers
            return tvm.googlenet(weights=None, aux_logits=False, init_weights=False)
        return tvm.get_model(name, weights=None)


@pytest.mark.parametrize("name", MODELS)
def test_profile_matches_torchvision_within_one_percent(name):
    meta = tvm.get_model_weights(name).DEFAULT.meta
    size = tvm.get_model_weights(name).DEFAULT.transforms().crop_size[0]
    profile = profile_model(_build(name), (1, 3, size, size))
    assert profile.params == meta["num_params"]
    assert profile.macs / 1e9 == pytest.approx(meta["_ops"], rel=0.01)
    assert profile.flops == 2 * profile.macs


def test_thop_misses_attention_and_leaves_the_model_clean():
    model = _build("vit_b_16")
    keys = set(model.state_dict())
    counts = compare_counters(model, (1, 3, 224, 224))
    assert counts["macs"] / 1e9 == pytest.approx(17.564, rel=0.001)
    assert counts["thop_macs"] / 1e9 == pytest.approx(11.29, rel=0.01)
    assert counts["thop_params"] == 58_067_176 and counts["params"] == 86_567_656
    assert set(model.state_dict()) == keys  # thop ran on a copy


def test_count_parameters_trainable_only():
    model = nn.Sequential(nn.Linear(10, 5), nn.Linear(5, 2))
    for p in model[0].parameters():
        p.requires_grad = False
    assert count_parameters(model) == 12
    assert count_parameters(model, trainable_only=False) == 67
    with pytest.raises(TypeError, match="expects an nn.Module"):
        count_parameters([1, 2])


def test_real_and_meta_models_count_the_same():
    real = profile_model(tvm.resnet18(weights=None), 64)
    assert real == profile_model(_build("resnet18"), 64)


def test_profile_restores_state_and_breaks_down_by_child():
    model = tvm.resnet18(weights=None).train()
    before = copy.deepcopy(model.state_dict())
    fast = torch.backends.mha.get_fastpath_enabled()
    profile = profile_model(model, 64)
    assert model.training and torch.backends.mha.get_fastpath_enabled() == fast
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert sum(profile.macs_by_module.values()) == pytest.approx(profile.macs, rel=0.01)
    assert "GMACs" in str(profile)


def test_profile_reports_a_bad_input_size():
    with pytest.raises(RuntimeError, match="forward pass at input size"):
        profile_model(nn.Linear(3, 2), (1, 3, 8, 8))


def test_thop_conv_count_by_hand():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False))
    macs, params = thop_profile(conv, (1, 3, 10, 10))
    assert params == 8 * 3 * 9
    assert macs == 8 * 10 * 10 * 3 * 9
    assert profile_model(conv, (1, 3, 10, 10)).macs == macs


def test_profile_keeps_a_frozen_batchnorm_in_eval_mode():
    model = tvm.resnet18(weights=None).train()
    model.bn1.eval()  # transfer learning: a frozen BatchNorm inside a training model
    profile_model(model, 32)
    assert model.training and not model.bn1.training and model.layer1.training


@pytest.mark.parametrize("bad", ["224", (3, 224), (1, 3, 0, 8), (1, 3, 8.0, 8), True])
def test_bad_input_size_is_one_clear_error(bad):
    with pytest.raises(ValueError, match="input_size must be"):
        profile_model(nn.Conv2d(3, 4, 3), bad)


def test_profile_restores_mixed_modes_when_the_forward_fails():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout()).train()
    model[1].eval()
    with pytest.raises(RuntimeError, match="forward pass at input size"):
        profile_model(model, (1, 2, 8, 8))  # 2 channels for a 3-channel conv
    assert [m.training for m in model.modules()] == [True, True, False, True]
