"""course_utils.pretrained: weights lookup, the torch hub cache, and the offline answer.

No test downloads anything: the "real weights" path is exercised by writing a locally created
state_dict into a temporary torch hub cache (TORCH_HOME) under the exact file name torchvision
expects, then loading it through torchvision's own builder.
"""

from __future__ import annotations

import socket

import pytest
import torch
import torchvision
from torchvision.models import ResNet18_Weights, ResNet50_Weights

from course_utils.pretrained import (
    Pretrained,
    WeightsUnavailableError,
    can_download,
    get_weights,
    install_weights_file,
    load_pretrained,
    weights_path,
    weights_source,
)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache in a temporary TORCH_HOME, and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    return tmp_path / "torch" / "hub" / "checkpoints"


def _fake_checkpoint(weights, seed=0):
    """A state_dict with torchvision's key names and random values, saved where torchvision looks."""
    torch.manual_seed(seed)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = weights_path(weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_get_weights_resolves_names():
    assert get_weights("resnet50", "IMAGENET1K_V2") is ResNet50_Weights.IMAGENET1K_V2
    assert get_weights("resnet50", "ResNet50_Weights.IMAGENET1K_V1") is ResNet50_Weights.IMAGENET1K_V1
    assert get_weights("resnet50") is ResNet50_Weights.IMAGENET1K_V2  # DEFAULT is V2
    assert get_weights("resnet18", ResNet18_Weights.DEFAULT) is ResNet18_Weights.IMAGENET1K_V1


@pytest.mark.parametrize("args, error, words", [
    (("resnet5",), ValueError, "no model called 'resnet5'"),
    (("resnet50", "IMAGENET1K_V3"), ValueError, "IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT"),
    (("resnet18", ResNet50_Weights.IMAGENET1K_V2), ValueError, "ResNet18_Weights"),
    (("resnet18", 1), TypeError, "weights must be"),
    ((50,), TypeError, "model_name must be a string"),
])
def test_get_weights_rejects_bad_input(args, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        get_weights(*args)


def test_weights_path_follows_torch_home(hub):
    assert weights_path(ResNet18_Weights.IMAGENET1K_V1) == hub / "resnet18-f37072fd.pth"
    assert weights_path(ResNet50_Weights.IMAGENET1K_V2).name == "resnet50-11ad3fa6.pth"


def test_offline_without_file_says_where_to_put_it(hub):
    weights = ResNet18_Weights.IMAGENET1K_V1
    assert weights_source(weights) is None
    with pytest.raises(WeightsUnavailableError) as info:
        load_pretrained("resnet18", "IMAGENET1K_V1")
    message = str(info.value)
    assert str(hub / "resnet18-f37072fd.pth") in message
    assert weights.url in message and "cannot be reached" in message
    assert not hub.exists() or not any(hub.iterdir()), "nothing half-downloaded is left behind"


def test_download_false_is_reported_as_such(hub):
    with pytest.raises(WeightsUnavailableError, match="downloads are switched off"):
        load_pretrained("resnet18", download=False)


def test_cached_file_is_loaded_by_torchvisions_own_builder(hub, capsys):
    state = _fake_checkpoint(ResNet18_Weights.IMAGENET1K_V1)
    assert weights_source(ResNet18_Weights.IMAGENET1K_V1) == "cache"

    pre = load_pretrained("resnet18", "IMAGENET1K_V1")

    assert isinstance(pre, Pretrained) and pre.source == "cache"
    assert pre.path == hub / "resnet18-f37072fd.pth"
    assert "from the torch hub cache" in capsys.readouterr().out
    assert not pre.model.training, "returned in eval mode"
    for name, tensor in pre.model.state_dict().items():
        torch.testing.assert_close(tensor, state[name])
    # The same file through the plain torchvision call a user with network would write.
    direct = torchvision.models.resnet18(weights=ResNet18_Weights.IMAGENET1K_V1).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(pre.model(x), direct(x))
    assert pre.model.fc.out_features == len(pre.weights.meta["categories"]) == 1000


def test_broken_cache_file_gives_one_clear_error(hub):
    path = weights_path(ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="not a valid weights file"):
        load_pretrained("resnet18")


def test_wrong_architecture_in_cache_file_is_not_hidden(hub):
    path = weights_path(ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsUnavailableError, match="not a valid weights file"):
        load_pretrained("resnet18")


def test_install_weights_file_checks_the_hash(hub, tmp_path):
    source = tmp_path / "downloaded.pth"
    torch.save({"w": torch.zeros(3)}, source)
    with pytest.raises(ValueError, match="expected f37072fd"):
        install_weights_file(source, ResNet18_Weights.IMAGENET1K_V1)
    target = install_weights_file(source, ResNet18_Weights.IMAGENET1K_V1, verify=False)
    assert target == hub / "resnet18-f37072fd.pth" and target.read_bytes() == source.read_bytes()
    with pytest.raises(FileNotFoundError):
        install_weights_file(tmp_path / "missing.pth", ResNet18_Weights.IMAGENET1K_V1)


def test_can_download_probes_the_host(monkeypatch):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert can_download(f"http://127.0.0.1:{port}/resnet18-f37072fd.pth", timeout=2)
    assert not can_download(f"http://127.0.0.1:{port}/x.pth", timeout=2)  # closed now
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    assert not can_download("https://download.pytorch.org/models/x.pth")
