"""Checkpoints are read with weights_only=True: a crafted file is refused before any code runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.checkpoint import (
    FORMAT,
    CheckpointError,
    from_safe,
    load_checkpoint,
    save_checkpoint,
    to_safe,
)
from deepnotes.core.errors import UsageError
from deepnotes.core.seeding import rng_state


class _Payload:
    """Unpickling this runs ``os.system``: what an attacker would put in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_of_everything_a_loop_stores(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(),
        "history": [{"epoch": 1, "loss": 0.5}],
        "array": np.arange(6.0).reshape(2, 3),
        "numbers": (1, 2.5, np.float64(3.0)),
        "generator": np.random.default_rng(1).bit_generator.state,
    }
    path = save_checkpoint(tmp_path / "ckpt.pt", payload)
    back = load_checkpoint(path)
    assert back["format"] == FORMAT
    assert torch.equal(back["model"]["weight"], model.weight)
    assert back["optimizer"]["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    np.testing.assert_array_equal(back["array"], payload["array"])
    assert isinstance(back["array"], np.ndarray)
    assert back["numbers"] == (1, 2.5, 3.0)
    assert back["history"] == payload["history"]


def test_to_safe_refuses_objects() -> None:
    with pytest.raises(TypeError, match="state_dict"):
        to_safe({"model": torch.nn.Linear(1, 1)})
    assert from_safe(to_safe([np.ones(2)]))[0].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("how", ["raw pickle", "torch.save archive"])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"format": FORMAT, "round": 1, "evil": _Payload(marker)}
    if how == "raw pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*nothing was executed"):
        load_checkpoint(path)
    assert not marker.exists()
    # the file really would have run it: an unsafe load creates the marker
    if how == "raw pickle":
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable torch checkpoint"),
        (b"garbage that is no zip and no pickle", "not a readable torch checkpoint|refused"),
    ],
)
def test_corrupt_files_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, UsageError)  # the CLI exits 2


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ckpt.pt", {"w": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(path)


def test_foreign_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    with pytest.raises(CheckpointError, match="not written by deepnotes"):
        load_checkpoint(path)
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="not written by deepnotes"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
