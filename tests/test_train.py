"""fit() / evaluate() / History on tiny data, CPU only."""

import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import train as train_module
from course_utils.eval_mode import eval_mode, train_mode
from course_utils.train import FitSettings, History, evaluate, fit


def _separable(n=256, seed=0):
    """Two Gaussian blobs in 3x4x4 'images': a tiny task any small net learns in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.randn(n, 3, 4, 4, generator=g) * 0.5 + (labels * 2 - 1).view(-1, 1, 1, 1)
    return TensorDataset(images, labels)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))


def test_fit_learns_and_records_every_epoch():
    train = DataLoader(_separable(), batch_size=32, shuffle=True)
    test = DataLoader(_separable(seed=1), batch_size=64)
    history = fit(_net(), train, test, epochs=3, lr=1e-2, mode="quick", progress=False)
    assert history.epochs == 3
    assert len(history.train_acc) == len(history.test_loss) == len(history.seconds) == 3
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.test_acc[-1] > 0.9
    assert "3 epoch(s)" in str(history) and "test acc" in str(history)


def test_grade_mode_caps_steps():
    model = _net()
    before = [p.clone() for p in model.parameters()]
    train = DataLoader(_separable(), batch_size=8)
    history = fit(model, train, epochs=1, track_grad_norm="0.weight", mode="grade")
    assert len(history.grad_norms) == 2  # GRADE: two steps per epoch
    assert all(n > 0 for n in history.grad_norms)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_track_grad_norm_matches_autograd():
    model = _net()
    images, labels = _separable(n=16)[:]
    train = DataLoader(TensorDataset(images, labels), batch_size=16)
    reference = _net()
    nn.functional.cross_entropy(reference(images), labels).backward()
    expected = reference[0].weight.grad.norm().item()
    history = fit(model, train, epochs=1, track_grad_norm="0.weight", mode="quick",
                  progress=False)
    assert history.grad_norms[0] == pytest.approx(expected, rel=1e-5)


def test_unknown_parameter_name_is_a_clear_error():
    with pytest.raises(ValueError, match="not a parameter of the model"):
        fit(_net(), DataLoader(_separable(), batch_size=8), track_grad_norm="conv1.weight")


def test_scheduler_and_clipping_are_used():
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    fit(model, DataLoader(_separable(), batch_size=64), epochs=2, optimizer=opt,
        scheduler=sched, grad_clip=0.5, mode="quick", progress=False)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)


def test_evaluate_counts_exactly():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([1.0, 0.0]))  # always predicts class 0
    data = _separable(n=100)
    loss, acc = evaluate(model, DataLoader(data, batch_size=30))
    expected_acc = (data.tensors[1] == 0).float().mean().item()
    assert acc == pytest.approx(expected_acc)
    assert loss == pytest.approx(nn.functional.cross_entropy(
        model(data.tensors[0]), data.tensors[1]).item(), rel=1e-5)
    assert model.training  # evaluate restores the mode


def test_empty_loader_and_bad_batches():
    empty = DataLoader(TensorDataset(torch.zeros(0, 3, 4, 4), torch.zeros(0).long()), batch_size=4)
    with pytest.raises(ValueError, match="no batches"):
        fit(_net(), empty)
    with pytest.raises(TypeError, match="each batch must be"):
        fit(_net(), [torch.zeros(2, 3, 4, 4)], progress=False, mode="quick")


def test_history_defaults():
    assert str(History("x")) == "x: not trained yet"


def test_wrong_shapes_are_one_clear_error():
    flat = nn.Sequential(nn.Flatten(), nn.Linear(10, 2))  # expects 10 features, gets 48
    with pytest.raises(ValueError, match=r"failed on a batch of images of shape \(8, 3, 4, 4\)"):
        fit(flat, DataLoader(_separable(), batch_size=8), progress=False, mode="quick")
    with pytest.raises(ValueError, match=r"logits of shape \(batch, classes\) = \(8, C\)"):
        fit(nn.Identity(), DataLoader(_separable(), batch_size=8), optimizer=torch.optim.SGD(
            _net().parameters(), lr=0.1), progress=False, mode="quick")
    with pytest.raises(ValueError, match="failed on a batch"):
        evaluate(flat, DataLoader(_separable(), batch_size=8))


def test_an_unfinished_exercise_keeps_its_own_error():
    class Todo(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            raise NotImplementedError("write forward()")

    with pytest.raises(NotImplementedError, match="write forward"):
        fit(Todo(), DataLoader(_separable(), batch_size=8), progress=False, mode="quick")


def test_one_sync_per_epoch_and_threads_untouched(monkeypatch):
    """Losses and accuracies stay on the device until the epoch ends (no .item() per batch)."""
    calls = []
    item = torch.Tensor.item

    def counted_item(tensor):  # count fit's own reads (the optimizer's CPU step counters aside)
        if sys._getframe(1).f_globals["__name__"] == "course_utils.train":
            calls.append(1)
        return item(tensor)

    monkeypatch.setattr(torch.Tensor, "item", counted_item)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(_net(), DataLoader(_separable(), batch_size=16), epochs=2, progress=False,
            mode="quick")  # 16 steps per epoch
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert len(calls) == 2 * 2  # loss and accuracy, once per epoch


def test_progress_bar_counts_steps(capsys, monkeypatch):
    bars = []

    class Recorded(train_module.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(train_module, "tqdm", Recorded)
    history = fit(_net(), DataLoader(_separable(n=64), batch_size=16), epochs=2, progress=True,
                  mode="quick", name="tiny")
    assert [(bar.n, bar.total) for bar in bars] == [(4, 4), (4, 4)]  # one bar per epoch
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("tiny epoch 1/2: train loss")
    assert history.epochs == 2


def test_evaluate_keeps_a_frozen_layer_in_eval_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2))
    model[1].eval()
    evaluate(model, DataLoader(_separable(n=8), batch_size=8))
    assert model.training and not model[1].training


class _ViewNet(nn.Module):
    """The classic tutorial head: x.view(n, -1) after a conv, which NHWC memory can't do."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(64, 2)

    def forward(self, x):
        x = self.bn(self.conv(x)).relu()
        return self.fc(x.view(x.size(0), -1))


def _layouts(model, monkeypatch):
    """Record the memory format of every input the model's forward receives."""
    seen = []
    forward = model.forward

    def recording(x):
        seen.append(x.is_contiguous(memory_format=torch.channels_last)
                    and not x.is_contiguous())
        return forward(x)

    monkeypatch.setattr(model, "forward", recording)
    return seen


def test_conv_nets_train_channels_last_on_cpu_and_come_back_contiguous(monkeypatch):
    model = _net()
    seen = _layouts(model, monkeypatch)
    fit(model, DataLoader(_separable(n=32), batch_size=16), progress=False, mode="quick")
    assert seen and all(seen)  # the probe and both steps
    assert all(p.is_contiguous() for p in model.parameters())
    seen.clear()
    fit(model, DataLoader(_separable(n=32), batch_size=16), progress=False, mode="quick",
        channels_last=False)
    assert seen and not any(seen)


def test_a_model_that_needs_the_default_layout_falls_back_untouched(monkeypatch):
    model = _ViewNet()
    seen = _layouts(model, monkeypatch)
    data = DataLoader(_separable(n=64), batch_size=16)
    history = fit(model, data, epochs=2, lr=1e-2, progress=False, mode="quick")
    assert seen[0] and not any(seen[1:])  # only the probe saw NHWC
    assert history.train_acc[-1] > 0.9
    # The failed probe changed nothing: the same run in the default layout gives the same model.
    ref, probed = _ViewNet(), _ViewNet()
    probed.load_state_dict(ref.state_dict())
    fit(ref, data, epochs=1, progress=False, mode="quick", channels_last=False)
    fit(probed, data, epochs=1, progress=False, mode="quick")
    for a, b in zip(ref.state_dict().values(), probed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="failed on a batch"):  # asked for explicitly: an error
        fit(_ViewNet(), data, progress=False, mode="quick", channels_last=True)


def test_default_optimizer_is_fused_adam_and_compile_is_used(monkeypatch):
    created, compiled = [], []
    adam = torch.optim.Adam

    def recording_adam(*args, **kwargs):
        created.append(kwargs)
        return adam(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", recording_adam)
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(model) or model)
    model = _net()
    fit(model, DataLoader(_separable(n=32), batch_size=16), progress=False, mode="quick",
        compile=True)
    assert created == [{"lr": 1e-3, "fused": True}]
    assert compiled == [model]


@pytest.mark.parametrize(("keyword", "bad"), [
    ("epochs", -1), ("epochs", 1.5), ("epochs", True), ("lr", 0), ("lr", -1e-3), ("lr", "0.1"),
    ("grad_clip", 0), ("grad_clip", -1.0), ("max_steps_per_epoch", 0),
    ("max_steps_per_epoch", 2.0), ("track_grad_norm", 3)])
def test_settings_reject_bad_values_with_the_keyword_in_the_message(keyword, bad):
    with pytest.raises(ValueError, match=rf"^{keyword} must be .*, not {bad!r}$"):
        FitSettings(**{keyword: bad})


def test_fit_checks_its_settings_before_touching_the_model():
    model = _net()
    before = [p.clone() for p in model.parameters()]
    loader = DataLoader(_separable(n=32), batch_size=16)
    for keywords in ({"epochs": -1}, {"grad_clip": 0.0}, {"max_steps_per_epoch": 0},
                     {"track_grad_norm": "conv1.weight"}):
        with pytest.raises(ValueError, match="must be|not a parameter"):
            fit(model, loader, progress=False, mode="quick", **keywords)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.is_contiguous() for p in model.parameters())  # never switched to NHWC


def test_settings_defaults_and_the_modes_fill_ins():
    assert FitSettings() == FitSettings(epochs=1, lr=1e-3, grad_clip=None, progress=True,
                                        max_steps_per_epoch=None, channels_last=None)
    FitSettings(epochs=0, lr=1, grad_clip=1, max_steps_per_epoch=1, track_grad_norm=len)
    with pytest.raises(AttributeError):
        FitSettings().epochs = 2  # frozen: one run, one set of settings


def test_max_steps_per_epoch_asks_the_loader_for_only_those_batches():
    fetched = []

    class Counting:
        def __init__(self, data):
            self.loader = DataLoader(data, batch_size=8)

        def __iter__(self):
            for batch in self.loader:
                fetched.append(1)
                yield batch

    model = _net()
    history = fit(model, Counting(_separable(n=64)), epochs=2, max_steps_per_epoch=3,
                  track_grad_norm="0.weight", progress=False, mode="quick")
    assert len(history.grad_norms) == 6 and len(fetched) == 6  # a loader without len() too


def test_track_grad_norm_takes_a_function_of_the_model():
    loader = DataLoader(_separable(n=32), batch_size=8)
    by_name = fit(_net(), loader, track_grad_norm="0.weight", progress=False, mode="quick")
    by_function = fit(_net(), loader, track_grad_norm=lambda m: m[0].weight, progress=False,
                      mode="quick")
    assert len(by_name.grad_norms) == 4
    assert by_function.grad_norms == pytest.approx(by_name.grad_norms)


def _mixed_modes():
    """A training model with a frozen (eval) BatchNorm inside a training block, and vice versa."""
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)),
                          nn.Sequential(nn.Dropout(), nn.Flatten()), nn.Linear(16, 2))
    model.train()
    model[0][1].eval()
    model[1].eval()
    model[1][1].train()
    return model, [m.training for m in model.modules()]


def test_eval_mode_restores_each_submodules_flag():
    model, flags = _mixed_modes()
    with eval_mode(model) as inside:
        assert inside is model and not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == flags


def test_train_mode_restores_each_submodules_flag():
    model, flags = _mixed_modes()
    with train_mode(model) as inside:
        assert inside is model and all(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == flags


def test_eval_mode_restores_the_flags_when_the_block_raises():
    model, flags = _mixed_modes()
    with pytest.raises(KeyError), eval_mode(model):
        raise KeyError("boom")
    assert [m.training for m in model.modules()] == flags


def test_evaluate_restores_mixed_modes_even_when_the_model_fails():
    model, flags = _mixed_modes()
    with pytest.raises(ValueError, match="failed on a batch"):
        evaluate(model, DataLoader(TensorDataset(torch.zeros(4, 1, 4, 4), torch.zeros(4).long()),
                                   batch_size=4))  # 1 channel for a 3-channel conv
    assert [m.training for m in model.modules()] == flags
