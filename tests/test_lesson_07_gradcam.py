"""Lesson 07, section 9: Grad-CAM written with hooks (practice 1), and what it shows on `shapes`.

The function is taken from the notebook itself (its `cam-code` cell, the practice item's
solution) and tested against CAM, the closed form for a network ending in global average
pooling + a linear layer. The check `practice_grad_cam` names known mistakes, the same in the
notebook and through the grader's judge (the student's function in a kernel). The QUICK-mode
effect the lesson draws its conclusion from — the trained network's heat lies on the shape, more
than the mask's area and than an untrained network — runs the notebook's own cells (its opening
sections, the source-model pretraining and section 9) and checks the numbers with a margin.
"""

from __future__ import annotations

import json

import nbformat
import pytest
import torch
import torch.nn.functional as F
import torchvision
from notebook_tools import cell_error, execute, solution_path
from torch import nn

from course_utils.checks import judge
from course_utils.checks._registry import GRADING
from course_utils.checks.practice07 import reference_cam
from course_utils.grading.judge import KernelChannel, judge_cell

LESSON = "07_transfer_learning"


def _cells():
    return nbformat.read(solution_path(LESSON), as_version=4).cells


def _source(cell_id: str) -> str:
    return next(c.source for c in _cells() if c.get("id") == cell_id)


@pytest.fixture(scope="module")
def lesson():
    """The notebook's grad_cam/cam and SmallResNet, defined as the notebook defines them."""
    namespace = {"torch": torch, "nn": nn, "F": F}
    exec("from course_utils.profile import count_parameters", namespace)
    exec("from course_utils.models import basic_block", namespace)
    exec(_source("e822c991"), namespace)  # SmallResNet (prints its size)
    exec(_source("cam-code"), namespace)  # grad_cam, the practice item's solution
    return namespace


def cam(model, images, classes):
    """CAM, the closed form: Σ_k w_ck A_k on the last feature map."""
    with torch.no_grad():
        features = model.forward_features(images)
        return torch.einsum("nkhw,nk->nhw", features, model.fc.weight[classes])


def _trained_like(model):
    """Non-trivial batch-norm statistics, so that eval mode is not an identity."""
    torch.manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


def test_grad_cam_of_the_last_stage_is_relu_cam(lesson):
    torch.manual_seed(0)
    model = _trained_like(lesson["SmallResNet"](num_classes=5))
    images, classes = torch.rand(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 0])
    maps = lesson["grad_cam"](model, "layer3", images, classes)
    assert maps.shape == (6, 4, 4)
    torch.testing.assert_close(maps, F.relu(cam(model, images, classes)) / 16)
    assert (maps >= 0).all() and maps.sum() > 0
    other = lesson["grad_cam"](model, "layer3", images, (classes + 1) % 5)
    assert not torch.allclose(other, maps), "the map must depend on the class explained"


def test_grad_cam_defaults_to_the_predicted_class_and_leaves_no_trace(lesson):
    torch.manual_seed(0)
    model = _trained_like(lesson["SmallResNet"](num_classes=5))
    images = torch.rand(4, 3, 32, 32)
    maps = lesson["grad_cam"](model, "layer2", images)
    with torch.no_grad():
        predicted = model.eval()(images).argmax(dim=1)
    explicit = lesson["grad_cam"](model, "layer2", images, predicted)
    torch.testing.assert_close(maps, explicit)
    assert maps.shape == (4, 8, 8)  # the hooked layer's resolution
    assert not model.layer2._forward_hooks and not model.layer2._backward_hooks
    assert all(p.grad is None for p in model.parameters())
    assert not images.requires_grad  # the caller's tensor is untouched


def test_grad_cam_works_on_a_frozen_backbone(lesson):
    torch.manual_seed(0)
    model = _trained_like(lesson["SmallResNet"](num_classes=5))
    images, classes = torch.rand(3, 3, 32, 32), torch.tensor([1, 2, 3])
    trainable = lesson["grad_cam"](model, "layer3", images, classes)
    model.requires_grad_(False)
    frozen = lesson["grad_cam"](model, "layer3", images, classes)
    torch.testing.assert_close(frozen, trainable)


def test_hooking_an_output_changed_in_place_is_refused(lesson):
    model = torchvision.models.resnet18(weights=None)
    with pytest.raises(RuntimeError, match="modified inplace"):
        lesson["grad_cam"](model, "layer1.0.bn2", torch.randn(1, 3, 64, 64))
    maps = lesson["grad_cam"](model, "layer4", torch.randn(2, 3, 64, 64))
    assert maps.shape == (2, 2, 2)


def test_the_checkers_reference_is_the_notebooks_grad_cam(lesson):
    torch.manual_seed(0)
    model = _trained_like(lesson["SmallResNet"](num_classes=5))
    images, classes = torch.rand(3, 3, 32, 32), torch.tensor([4, 0, 2])
    for layer in ("layer1", "layer2", "layer3"):
        torch.testing.assert_close(reference_cam(model, layer, images, classes),
                                   lesson["grad_cam"](model, layer, images, classes))


# --- the practice item's check: named mistakes, in the notebook and through the judge ---------


def _hooked(model, layer_name, images, classes, *, train=False, spatial_mean=True, relu=True):
    """A hand-written Grad-CAM with one switch: forget model.eval(), the mean or the ReLU."""
    layer, saved = model.get_submodule(layer_name), {}
    handles = [layer.register_forward_hook(lambda m, i, o: saved.update(a=o.detach())),
               layer.register_full_backward_hook(lambda m, gi, go: saved.update(g=go[0].detach()))]
    try:
        if not train:
            model.eval()
        logits = model(images.detach().requires_grad_(True))
        classes = logits.argmax(dim=1) if classes is None else classes
        logits.gather(1, classes[:, None]).sum().backward()
    finally:
        for h in handles:
            h.remove()
    weights = saved["g"].mean(dim=(2, 3), keepdim=True) if spatial_mean else saved["g"]
    maps = (weights * saved["a"]).sum(dim=1)
    return F.relu(maps) if relu else maps


def cam_no_relu(model, layer_name, images, classes=None):
    return _hooked(model, layer_name, images, classes, relu=False)


def cam_no_eval(model, layer_name, images, classes=None):
    return _hooked(model, layer_name, images, classes, train=True)


def cam_per_pixel(model, layer_name, images, classes=None):
    return _hooked(model, layer_name, images, classes, spatial_mean=False)


def cam_softmax(model, layer_name, images, classes=None):
    return reference_cam(model, layer_name, images, classes, score="softmax")


def cam_all_classes(model, layer_name, images, classes=None):
    return reference_cam(model, layer_name, images, classes, target="all")


def cam_normalised(model, layer_name, images, classes=None):
    maps = _hooked(model, layer_name, images, classes)
    return maps / maps.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]


def cam_upsampled(model, layer_name, images, classes=None):
    maps = _hooked(model, layer_name, images, classes)
    return F.interpolate(maps[:, None], size=images.shape[-2:], mode="bilinear")[:, 0]


def cam_no_input_grad(model, layer_name, images, classes=None):
    """Relies on the parameters to make the activations require a gradient."""
    layer, saved = model.get_submodule(layer_name), {}
    handles = [layer.register_forward_hook(lambda m, i, o: saved.update(a=o.detach())),
               layer.register_full_backward_hook(lambda m, gi, go: saved.update(g=go[0].detach()))]
    try:
        model.eval()
        logits = model(images)
        classes = logits.argmax(dim=1) if classes is None else classes
        logits.gather(1, classes[:, None]).sum().backward()
    finally:
        for h in handles:
            h.remove()
    return F.relu((saved["g"].mean(dim=(2, 3), keepdim=True) * saved["a"]).sum(dim=1))


# (answer, caught in the notebook already, mistake id, words of the message)
MISTAKES = {
    "cam_no_relu": (cam_no_relu, True, "no_relu", "keeps negative values"),
    "cam_per_pixel": (cam_per_pixel, True, "no_spatial_mean", "mean of the gradient"),
    "cam_softmax": (cam_softmax, True, "softmax_score", "the logit before softmax"),
    "cam_all_classes": (cam_all_classes, True, "all_classes", "sum of all the logits"),
    "cam_normalised": (cam_normalised, True, "normalised", "scaled to [0, 1]"),
    "cam_upsampled": (cam_upsampled, True, "wrong_shape", "that is the image's size"),
    "cam_no_eval": (cam_no_eval, False, "train_mode", "call model.eval()"),
    "cam_no_input_grad": (cam_no_input_grad, False, None, "images.requires_grad_(True)"),
}


def _verdict(obj, hidden):
    token = GRADING.set(hidden)
    try:
        return judge("practice_grad_cam", obj)
    finally:
        GRADING.reset(token)


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_grad_cam_mistakes_are_named(name):
    answer, visible, mistake, words = MISTAKES[name]
    assert _verdict(answer, hidden=False)[0] is not visible, "caught in the notebook or not"
    passed, text, got_mistake = _verdict(answer, hidden=True)
    assert not passed and got_mistake == mistake and words in text, text


def test_the_solution_passes_every_case(lesson):
    for hidden in (False, True):
        passed, text, mistake = _verdict(lesson["grad_cam"], hidden)
        assert passed and mistake is None, text


@pytest.fixture(scope="module")
def gradcam_kernel(kernel):
    kernel.run("import test_lesson_07_gradcam")
    return kernel.client


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_the_judge_names_the_same_mistakes(gradcam_kernel, name):
    """The student's function in a kernel, judged over the oracle protocol, as when grading."""
    reply = gradcam_kernel.execute_interactive(
        f"SUBJECT = test_lesson_07_gradcam.{name}", timeout=60)
    assert reply["content"]["status"] == "ok"
    cells = [nbformat.v4.new_code_cell("SUBJECT = ..."),
             nbformat.v4.new_code_cell('check("practice_grad_cam", SUBJECT)')]
    (verdict,) = judge_cell(cells, 1, KernelChannel(gradcam_kernel, timeout=60))
    assert (verdict.passed, verdict.text, verdict.mistake) == _verdict(MISTAKES[name][0], True)


# --- the notebook's own numbers --------------------------------------------------------------


def _section_9_notebook(tmp_path):
    """Sections 1-6 up to the source model, then section 9 (the shapes part) and a results cell."""
    nb = nbformat.read(solution_path(LESSON), as_version=4)
    ids = [c.get("id") for c in nb.cells]
    keep = nb.cells[:ids.index("d214867b") + 1]  # ... step 1: the source model
    keep += [nb.cells[ids.index(i)] for i in ("cam-code", "cam-check", "cam-shapes")]
    keep.append(nbformat.v4.new_code_cell("import json\nprint('RESULTS', json.dumps(CAM_RESULTS))"))
    nb.cells = keep
    path = tmp_path / "section9.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_heat_lies_on_the_shape_in_quick_mode(tmp_path):
    nb = execute(_section_9_notebook(tmp_path), tmp_path, mode="quick", timeout=600)
    assert not [cell_error(c) for c in nb.cells if cell_error(c)]
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    results = json.loads(text.split("RESULTS", 1)[1])
    area = results["mask area (baseline)"][0]
    trained3, peak3, accuracy = results["trained, layer3 (4×4)"]
    trained2, peak2, _ = results["trained, layer2 (8×8)"]
    random3, random_peak, _ = results["random weights, layer3"]
    assert 0.1 < area < 0.35
    assert accuracy > 0.9  # the network explained is a good one
    assert trained3 > area + 0.08 and trained2 > area + 0.15, results
    assert peak3 > 2 * area and peak2 > 2 * area, results
    assert trained3 > random3 + 0.08 and peak3 > random_peak + 0.2, results
    photo3, _, photo_accuracy = results["trained, layer3, photo backgrounds"]
    assert photo_accuracy < accuracy - 0.1, "photo backgrounds should cost accuracy"
    assert photo3 > area, results


@pytest.mark.slow
def test_photos_are_explained_when_the_imagenet_weights_are_cached(tmp_path, monkeypatch):
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(),
               checkpoints / "resnet50-11ad3fa6.pth")  # the IMAGENET1K_V2 file name
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")

    nb = nbformat.read(solution_path(LESSON), as_version=4)
    ids = [c.get("id") for c in nb.cells]
    figure = nb.cells[ids.index("cam-figure")].source
    overlay_only = figure[:figure.index("\n\n\nshow = ")]
    nb.cells = (nb.cells[:ids.index("fb824a91") + 1]  # weights, photos, top-5
                + [nb.cells[ids.index("cam-code")], nbformat.v4.new_code_cell(overlay_only),
                   nb.cells[ids.index("cam-photos")]])
    path = tmp_path / "photos.ipynb"
    nbformat.write(nb, path)
    out = execute(path, tmp_path, mode="quick", timeout=600)

    last = out.cells[-1]
    assert cell_error(last) is None
    text = "".join(o.get("text", "") for o in last.outputs)
    assert "Grad-CAM of layer4 on 6 photos: maps (6, 7, 7)" in text
    assert any("image/png" in o.get("data", {}) for o in last.outputs)
