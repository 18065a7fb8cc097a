"""The Trainer: selection on validation, test once, early stopping, clipping, schedules,
divergence guard and bitwise-identical resume (in process; the CLI kill test is in test_cli)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from deepnotes.core.checkpoint import load_checkpoint
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import DivergenceError
from deepnotes.core.metrics import MetricsLogger, read_metrics
from deepnotes.core.schedules import schedule_factor
from deepnotes.core.trainer import INNER_FIT, Trainer, accuracy, make_optimizer


def make_ctx(tmp_path: Path, resume: bool = False, seed: int = 0) -> RunContext:
    return RunContext(
        name="test",
        seed=seed,
        device=torch.device("cpu"),
        out_dir=tmp_path,
        resume=resume,
        metrics=MetricsLogger(tmp_path / "metrics.jsonl"),
        show_progress=False,
    )


def blobs(n: int, seed: int, flip: bool = False) -> TensorDataset:
    """Two Gaussian blobs in 5-D; ``flip`` swaps the labels (a validation set the model
    gets worse on as it learns the training set)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 5, generator=g) + 1.5 * (2 * y[:, None] - 1)
    return TensorDataset(x, 1 - y if flip else y)


def mlp(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 2))


def test_accuracy_metric() -> None:
    output = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(output, torch.tensor([0, 1, 1])).tolist() == [1.0, 1.0, 0.0]


def test_selects_best_validation_epoch_and_restores_its_weights(tmp_path: Path) -> None:
    train, val, test = blobs(200, 1), blobs(100, 2), blobs(100, 3)
    model = mlp()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05),
        make_ctx(tmp_path),
        epochs=8,
        batch_size=16,
        progress=False,
    )
    result = trainer.fit(train, val, test)
    val_losses = [r["val_loss"] for r in result.history]
    assert len(val_losses) == 8 == result.epochs_run
    assert result.best_epoch == 1 + min(range(8), key=val_losses.__getitem__)
    # the model now holds the selected epoch's weights: its validation loss is that epoch's
    assert trainer.evaluate(val)["loss"] == pytest.approx(val_losses[result.best_epoch - 1], 1e-6)
    assert result.best["loss"] == val_losses[result.best_epoch - 1]
    # test metrics were computed with the selected model, and outputs are in dataset order
    x_test, y_test = test.tensors
    with torch.no_grad():
        logits = model(x_test)
    assert torch.allclose(result.test_outputs, logits)
    assert result.test["acc"] == pytest.approx(accuracy(logits, y_test).mean().item())
    assert result.test["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y_test).item())


def test_an_inner_fit_leaves_no_trace_on_disk(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ctx.show_progress = True  # INNER_FIT must silence the bar even where the run shows one
    model = mlp()
    trainer = Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.05), ctx, epochs=2, **INNER_FIT
    )
    assert (trainer.checkpoint, trainer.show_progress, trainer.log_records) == (False,) * 3
    result = trainer.fit(blobs(64, 1), blobs(32, 2))
    ctx.metrics.flush()
    assert len(result.history) == 2  # the fit still reports everything to its caller
    assert ctx.metrics.records == [] and list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError):
        INNER_FIT["log"] = True  # type: ignore[index]  # shared by every experiment: read-only


def test_test_set_is_evaluated_once(tmp_path: Path) -> None:
    model = mlp()
    ctx = make_ctx(tmp_path)
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05),
        ctx,
        epochs=1,
        progress=False,
    )
    trainer.fit(blobs(64, 1), blobs(32, 2), blobs(32, 3))
    with pytest.raises(RuntimeError, match="already evaluated"):
        trainer.evaluate_test(blobs(32, 3))
    ctx.metrics.flush()
    tests = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r.get("split") == "test"]
    assert len(tests) == 1


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path: Path) -> None:
    # validation labels are flipped: validation loss rises while the model learns
    model = mlp()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        make_ctx(tmp_path),
        epochs=30,
        batch_size=16,
        patience=3,
        progress=False,
        checkpoint=False,
    )
    result = trainer.fit(blobs(200, 1), blobs(100, 2, flip=True))
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 3 < 30


def test_select_on_accuracy_maximises(tmp_path: Path) -> None:
    model = mlp()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.02),
        make_ctx(tmp_path),
        epochs=6,
        batch_size=32,
        select="acc",
        progress=False,
        checkpoint=False,
    )
    result = trainer.fit(blobs(200, 1), blobs(100, 2))
    accs = [r["val_acc"] for r in result.history]
    assert result.best_epoch == 1 + accs.index(max(accs))  # first of ties


def test_gradient_clipping_bounds_the_step(tmp_path: Path) -> None:
    data = blobs(64, 1)
    model = mlp()
    before = [p.detach().clone() for p in model.parameters()]
    # the full-batch gradient, computed independently
    reference = mlp()
    loss = nn.functional.cross_entropy(reference(data.tensors[0]), data.tensors[1])
    grad_norm = torch.sqrt(
        sum((g**2).sum() for g in torch.autograd.grad(loss, list(reference.parameters())))
    )
    clip = 0.1 * grad_norm.item()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        make_ctx(tmp_path),
        epochs=1,
        batch_size=64,
        grad_clip=clip,
        progress=False,
        checkpoint=False,
    )
    trainer.fit(data, blobs(16, 2))
    step = torch.sqrt(
        sum(((p - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=True))
    )
    assert step.item() == pytest.approx(clip, rel=1e-5)


def test_schedule_sets_the_learning_rate_per_step(tmp_path: Path) -> None:
    model = mlp()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        make_ctx(tmp_path),
        epochs=4,
        batch_size=50,
        schedule="cosine",
        progress=False,
        checkpoint=False,
    )
    result = trainer.fit(blobs(100, 1), blobs(20, 2))  # 2 steps per epoch, 8 in all
    factor = schedule_factor("cosine", total_steps=8)
    for record in result.history:
        assert record["lr"] == pytest.approx(0.1 * factor(2 * record["epoch"]))


def test_nan_loss_stops_with_step_and_checkpoint(tmp_path: Path) -> None:
    class PoisonAfter(nn.Module):
        """Outputs NaN from the 6th training call on."""

        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training:
                self.calls += 1
            out = self.net(x)
            return out * math.nan if self.training and self.calls >= 6 else out

    model = PoisonAfter()
    ctx = make_ctx(tmp_path)
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        ctx,
        epochs=5,
        batch_size=25,
        progress=False,
    )
    with pytest.raises(DivergenceError) as info:
        trainer.fit(blobs(100, 1), blobs(20, 2))  # 4 steps per epoch: NaN at epoch 2, step 2
    message = str(info.value)
    assert "loss is nan at epoch 2, step 2 (global step 6)" in message
    assert str(tmp_path / "checkpoints" / "model.pt") in message and "after epoch 1" in message
    # the checkpoint named is intact and loadable
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "model.pt")
    assert ckpt["round"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["track"]["model"].values())


def test_exploding_loss_is_divergence(tmp_path: Path) -> None:
    model = mlp()
    trainer = Trainer(
        model,
        make_optimizer("adam", model.parameters(), lr=1e6),
        make_ctx(tmp_path),
        epochs=3,
        batch_size=16,
        progress=False,
    )
    with pytest.raises(DivergenceError, match=r"exploded.*epoch 1.*no checkpoint"):
        trainer.fit(blobs(200, 1), blobs(20, 2))


def test_bad_arguments_raise() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctx = make_ctx(Path("/nonexistent"))
    with pytest.raises(ValueError, match="select must be 'loss' or one of"):
        Trainer(model, opt, ctx, epochs=1, select="f1")
    with pytest.raises(ValueError, match="epochs and batch_size"):
        Trainer(model, opt, ctx, epochs=0)
    with pytest.raises(ValueError, match="grad_clip"):
        Trainer(model, opt, ctx, epochs=1, grad_clip=0.0)
    with pytest.raises(ValueError, match="optimizer must be"):
        make_optimizer("lbfgs", model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="keep must be 'best' or 'last'"):
        Trainer(model, opt, ctx, epochs=1, keep="middle")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grad_clip": math.nan}, "grad_clip must be a finite number > 0 or None, got nan"),
        ({"grad_clip": math.inf}, "grad_clip must be a finite number > 0 or None, got inf"),
        ({"grad_clip": -1.0}, "grad_clip must be a finite number > 0 or None, got -1.0"),
        ({"patience": 0}, "patience must be >= 1 or None, got 0"),
        ({"explode_factor": math.nan}, "explode_factor must be a finite number > 1"),
        ({"explode_factor": 0.5}, "explode_factor must be a finite number > 1"),
        ({"eval_batch_size": 0}, "eval_batch_size must be >= 1, got 0"),
        ({"warmup_epochs": -1}, "warmup_epochs must be >= 0, got -1"),
    ],
)
def test_trainer_refuses_arguments_outside_their_domain(kwargs: dict, message: str) -> None:
    """Issue 11: a NaN clipping norm passed ``grad_clip <= 0`` (every comparison with NaN is
    false) and clipped every gradient to NaN; the checks are written so that NaN fails."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError) as info:
        Trainer(model, opt, make_ctx(Path("/nonexistent")), epochs=1, **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": math.nan}, "lr must be a finite number > 0, got nan"),
        ({"lr": math.inf}, "lr must be a finite number > 0, got inf"),
        ({"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
        ({"lr": 0.1, "momentum": -0.5}, "momentum must be in [0, 1), got -0.5"),
        ({"lr": 0.1, "momentum": 1.0}, "momentum must be in [0, 1), got 1.0"),
        ({"lr": 0.1, "momentum": math.nan}, "momentum must be in [0, 1), got nan"),
        ({"lr": 0.1, "weight_decay": math.inf}, "weight_decay must be a finite number >= 0"),
        ({"lr": 0.1, "weight_decay": -1e-4}, "weight_decay must be a finite number >= 0"),
    ],
)
@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_make_optimizer_refuses_values_outside_their_domain(
    name: str, kwargs: dict, message: str
) -> None:
    """Issue 11: lr=nan passed ``lr <= 0``, momentum >= 1 and an infinite weight decay reached
    torch, and training then "diverged"."""
    with pytest.raises(ValueError) as info:
        make_optimizer(name, mlp().parameters(), **kwargs)
    assert message in str(info.value)


def test_make_optimizer_accepts_the_edges_of_the_domains() -> None:
    opt = make_optimizer("sgd", mlp().parameters(), lr=1e-8, momentum=0.0, weight_decay=0.0)
    assert opt.param_groups[0]["momentum"] == 0.0
    opt = make_optimizer("sgd", mlp().parameters(), lr=10.0, momentum=0.999, weight_decay=1.0)
    assert opt.param_groups[0]["momentum"] == 0.999


def test_keep_last_leaves_the_final_weights_and_tests_them(tmp_path: Path) -> None:
    train, val, test = blobs(200, 1), blobs(100, 2, flip=True), blobs(100, 3)
    model = mlp()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05),
        make_ctx(tmp_path),
        epochs=5,
        batch_size=16,
        progress=False,
        keep="last",
    )
    result = trainer.fit(train, val, test)
    # the flipped validation set gets worse as the model learns: the best epoch is the first
    assert result.best_epoch == 1 and result.kept_epoch == 5
    last = result.history[-1]
    assert trainer.evaluate(val)["loss"] == pytest.approx(last["val_loss"], 1e-6)
    with torch.no_grad():
        assert torch.allclose(result.test_outputs, model(test.tensors[0]))


def test_epoch_hook_sees_each_epochs_weights_and_extends_the_record(tmp_path: Path) -> None:
    train, val = blobs(200, 1), blobs(100, 2)
    model = mlp(dropout=0.5)
    seen: list[int] = []

    def score_train_in_eval_mode(trainer: Trainer, epoch: int) -> dict[str, float]:
        seen.append(epoch)
        stats = trainer.evaluate(train)  # eval mode: no dropout masks
        return {"train_eval_loss": stats["loss"], "train_eval_acc": stats["acc"]}

    ctx = make_ctx(tmp_path)
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=0.01),
        ctx,
        epochs=3,
        batch_size=16,
        progress=False,
        keep="last",
        on_epoch_end=score_train_in_eval_mode,
    )
    result = trainer.fit(train, val)
    ctx.metrics.flush()
    assert seen == [1, 2, 3]
    assert trainer.evaluate(train)["loss"] == pytest.approx(result.history[-1]["train_eval_loss"])
    # the running, masked training loss differs from the eval-mode one on the same epoch
    assert result.history[-1]["train_loss"] != result.history[-1]["train_eval_loss"]
    logged = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "train_eval_acc" in r]
    assert len(logged) == 3

    clashing = Trainer(
        mlp(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        make_ctx(tmp_path / "b"),
        epochs=1,
        progress=False,
        on_epoch_end=lambda trainer, epoch: {"val_loss": 0.0},
    )
    with pytest.raises(ValueError, match=r"reserved keys \['val_loss'\]"):
        clashing.fit(train, val)


def test_perturb_replaces_training_inputs_only(tmp_path: Path) -> None:
    """Training on negated inputs learns the mirrored rule: the (perturbed) training accuracy
    is high while validation, never perturbed, is scored on the clean inputs and is low."""
    train, val = blobs(200, 1), blobs(100, 2)
    model = mlp()
    calls: list[tuple[nn.Module, int]] = []

    def negate(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append((net, x.shape[0]))
        return -x

    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=0.01),
        make_ctx(tmp_path),
        epochs=3,
        batch_size=50,
        progress=False,
        keep="last",
        perturb=negate,
    )
    result = trainer.fit(train, val)
    assert len(calls) == 3 * 4 and all(net is model and n == 50 for net, n in calls)
    assert result.history[-1]["train_acc"] > 0.9
    assert result.history[-1]["val_acc"] < 0.1


def _fit(tmp_path: Path, resume: bool, crash_after: int | None = None, noisy: bool = False):
    """Fit with dropout, Adam and a cosine schedule (every piece of state matters); ``noisy``
    adds input noise drawn from a generator the checkpoint carries as ``state``."""
    torch.manual_seed(0)
    model = mlp(dropout=0.3)
    ctx = make_ctx(tmp_path, resume=resume)
    noise = torch.Generator().manual_seed(5)

    def add_noise(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + torch.randn(x.shape, generator=noise)

    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=0.01),
        ctx,
        epochs=6,
        batch_size=16,
        schedule="cosine",
        progress=False,
        perturb=add_noise if noisy else None,
        state={"noise": noise} if noisy else None,
    )
    original = Loop._save
    saves = []

    def save_then_crash(self, *args, **kwargs):
        original(self, *args, **kwargs)
        saves.append(1)
        if len(saves) == crash_after:
            raise KeyboardInterrupt  # killed right after a checkpoint

    with mock.patch.object(Loop, "_save", save_then_crash):
        result = trainer.fit(blobs(200, 1), blobs(60, 2), blobs(60, 3))
    ctx.metrics.flush()
    return result, model


@pytest.mark.parametrize("noisy", [False, True])
def test_resume_after_interruption_is_bitwise_identical(tmp_path: Path, noisy: bool) -> None:
    full, full_model = _fit(tmp_path / "a", resume=False, noisy=noisy)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "b", resume=False, crash_after=3, noisy=noisy)
    resumed, resumed_model = _fit(tmp_path / "b", resume=True, noisy=noisy)
    assert resumed.test == full.test
    assert resumed.best_epoch == full.best_epoch
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    for (name, a), (_, b) in zip(
        full_model.state_dict().items(), resumed_model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    log_a = read_metrics(tmp_path / "a" / "metrics.jsonl")
    log_b = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert strip(log_a) == strip(log_b)


def test_state_names_of_the_trainer_are_refused() -> None:
    model = mlp()
    with pytest.raises(ValueError, match=r"state names \['model'\]"):
        Trainer(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            make_ctx(Path("unused")),
            epochs=1,
            state={"model": torch.Generator()},
        )


def test_resume_of_a_finished_fit_skips_training(tmp_path: Path) -> None:
    first, _ = _fit(tmp_path, resume=False)
    ckpt = json.dumps(load_checkpoint(tmp_path / "checkpoints" / "model.pt")["round"])
    again, _ = _fit(tmp_path, resume=True)
    assert ckpt == "6"
    assert again.test == first.test and again.history == first.history
