"""Pretrained torchvision weights, with an honest answer to "where do they come from?".

torchvision's model builders (`resnet50(weights=ResNet50_Weights.IMAGENET1K_V2)`) load weights
with `weights.get_state_dict()`, which reads `<torch hub dir>/checkpoints/<file name in the URL>`
when that file exists and downloads it there otherwise. This module says beforehand which of
the two will happen — or that neither can (no file, no network) — so a lesson can print what it
used and switch to an offline stand-in instead of failing half-way through a cell.

    pre = load_pretrained("resnet50", "IMAGENET1K_V2")   # the real builder, the real weights
    pre.model, pre.weights.transforms(), pre.weights.meta["categories"], pre.source

The hub directory is `$TORCH_HOME/hub` (default `~/.cache/torch/hub`); see `torch.hub.get_dir()`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

__all__ = ["Pretrained", "WeightsUnavailableError", "can_download", "get_weights",
           "install_weights_file", "load_pretrained", "weights_path", "weights_source"]

OFFLINE_ENV = "COURSE_OFFLINE"  # set to 1 to behave as if there were no network


class WeightsUnavailableError(RuntimeError):
    """The weights are neither in the torch hub cache nor downloadable right now."""


@dataclass
class Pretrained:
    """A model built by torchvision with its weights, and where the weights came from."""

    model: nn.Module
    weights: WeightsEnum
    source: str  # "cache" (file was already there) or "download" (fetched just now)
    path: Path  # the weights file in the torch hub cache


def get_weights(model_name: str, weights: str | WeightsEnum = "DEFAULT") -> WeightsEnum:
    """The weights enum member for a torchvision model, e.g. ("resnet50", "IMAGENET1K_V2")."""
    if not isinstance(model_name, str):
        raise TypeError(f"model_name must be a string such as 'resnet50', not {model_name!r}")
    try:
        enum = torchvision.models.get_model_weights(model_name)
    except ValueError:
        raise ValueError(f"torchvision has no model called {model_name!r} "
                         f"(see torchvision.models.list_models())") from None
    if isinstance(weights, WeightsEnum):
        if not isinstance(weights, enum):
            raise ValueError(f"{weights} are not weights for {model_name} (those are {enum.__name__})")
        return weights
    if not isinstance(weights, str):
        raise TypeError(f"weights must be a name such as 'DEFAULT' or a {enum.__name__} member, "
                        f"not {type(weights).__name__}")
    name = weights.split(".")[-1]  # accept "ResNet50_Weights.IMAGENET1K_V2" too
    if name not in enum.__members__:
        raise ValueError(f"{model_name} has no weights {weights!r}: choose one of "
                         f"{', '.join(enum.__members__)}")
    return enum[name]


def weights_path(weights: WeightsEnum) -> Path:
    """Where torchvision looks for (and saves) this weights file: <hub dir>/checkpoints/<name>."""
    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def can_download(url: str, timeout: float = 3.0) -> bool:
    """Whether the host of `url` accepts a connection within `timeout` seconds.

    Checked before torchvision tries, because its download has no timeout: behind a firewall
    that drops packets it would hang instead of failing.
    """
    if os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes"):
        return False
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def weights_source(weights: WeightsEnum, download: bool = True, timeout: float = 3.0) -> str | None:
    """"cache" if the file is in the hub cache, else "download" if it can be fetched, else None."""
    if weights_path(weights).is_file():
        return "cache"
    if download and can_download(weights.url, timeout):
        return "download"
    return None


def _accuracy(weights: WeightsEnum) -> str:
    metrics = weights.meta.get("_metrics", {}).get("ImageNet-1K", {})
    return f", ImageNet top-1 {metrics['acc@1']}%" if "acc@1" in metrics else ""


def load_pretrained(model_name: str, weights: str | WeightsEnum = "DEFAULT", download: bool = True,
                    progress: bool = False, timeout: float = 3.0, verbose: bool = True,
                    **kwargs) -> Pretrained:
    """Build `model_name` with pretrained `weights` through torchvision's own builder.

    The call is exactly `torchvision.models.get_model(model_name, weights=weights)`: what a user
    with network access would write. Raises WeightsUnavailableError (saying how to get the file)
    when the weights are not cached and cannot be downloaded. The model is returned in eval mode.
    """
    w = get_weights(model_name, weights)
    path = weights_path(w)
    source = weights_source(w, download=download, timeout=timeout)
    if source is None:
        why = "downloads are switched off" if not download else (
            f"{urlparse(w.url).hostname} cannot be reached (no network)")
        raise WeightsUnavailableError(
            f"{w} are not in the torch hub cache ({path}) and {why}. To use them, run this once "
            f"with internet access, or download {w.url} elsewhere and copy it to that path "
            f"(course_utils.pretrained.install_weights_file does this).")
    if verbose and source == "download":
        print(f"Downloading {w} ({w.meta.get('_file_size', '?')} MB) to {path} ...")
    try:
        model = torchvision.models.get_model(model_name, weights=w, progress=progress, **kwargs)
    except OSError as exc:  # the download broke off (URLError is an OSError)
        raise WeightsUnavailableError(f"downloading {w} from {w.url} failed: {exc}") from None
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:  # unreadable or wrong keys
        if source != "cache":
            raise
        raise WeightsUnavailableError(
            f"{path} is not a valid weights file for {model_name} ({str(exc).splitlines()[0]}); "
            f"delete it and load again") from None
    if verbose:
        where = "from the torch hub cache" if source == "cache" else "(downloaded just now)"
        print(f"Loaded {model_name} with {w}{_accuracy(w)} {where}: {path}")
    return Pretrained(model.eval(), w, source, path)


def install_weights_file(file: str | os.PathLike, weights: WeightsEnum, verify: bool = True) -> Path:
    """Copy a weights file fetched elsewhere into the hub cache under the name torchvision expects.

    torchvision's file names end in the first digits of the file's SHA-256 (resnet18-f37072fd.pth);
    with verify=True the copy is refused unless the file's hash starts with them.
    """
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"no such weights file: {file}")
    target = weights_path(weights)
    expected = target.stem.rsplit("-", 1)[-1]
    if verify:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if not digest.startswith(expected):
            raise ValueError(f"{file.name} is not the file published as {weights}: its SHA-256 "
                             f"starts with {digest[:len(expected)]}, expected {expected}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file, target)
    return target
