"""Tests for deepnotes.core.io (atomic writes) and deepnotes.core.metrics (the JSONL log)."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import IO

import numpy as np
import pytest
import torch

from deepnotes.core import metrics as metrics_module
from deepnotes.core.errors import UsageError
from deepnotes.core.io import (
    atomic_copy,
    atomic_open,
    atomic_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_folder,
    make_folder,
    remove_temp_files,
)
from deepnotes.core.metrics import MetricsLogger, read_metrics
from deepnotes.core.text import shorten


class Boom(RuntimeError):
    """Raised by tests in the middle of a write."""


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_text_creates_parents_and_returns_path(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "note.txt"
    text = "line one\nünïcödé ✓\n"
    assert atomic_write_text(target, text) == target
    assert target.read_bytes() == text.encode("utf-8")
    assert _names(target.parent) == ["note.txt"]


def test_atomic_write_text_replaces_previous_content(tmp_path: Path) -> None:
    target = tmp_path / "note.txt"
    atomic_write_text(str(target), "a much longer first version\n")
    atomic_write_text(target, "short")
    assert target.read_text(encoding="utf-8") == "short"
    assert _names(tmp_path) == ["note.txt"]


def test_atomic_write_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 3
    target = tmp_path / "blob.bin"
    assert atomic_write_bytes(target, data) == target
    assert target.read_bytes() == data


def test_atomic_write_json_round_trip(tmp_path: Path) -> None:
    obj = {"a": 1, "b": [1.5, None, True], "c": {"d": "e"}, "t": (1, 2)}
    target = atomic_write_json(tmp_path / "x.json", obj)
    assert json.loads(target.read_text(encoding="utf-8")) == {**obj, "t": [1, 2]}
    assert target.read_text(encoding="utf-8") == json.dumps(obj, indent=2)


def test_atomic_write_json_numpy_torch_scalars_and_paths(tmp_path: Path) -> None:
    obj = {
        "np_f32": np.float32(0.5),
        "np_f64": np.float64(1.25),
        "np_i64": np.int64(7),
        "np_bool": np.bool_(True),
        "t_float": torch.tensor(2.5),
        "t_int": torch.tensor(3),
        "t_one_elem": torch.tensor([4.0]),
        "path": tmp_path / "file.txt",
        "nested": [np.int32(9), {"x": torch.tensor(0.25, dtype=torch.float64)}],
    }
    loaded = json.loads(atomic_write_json(tmp_path / "s.json", obj).read_text(encoding="utf-8"))
    assert loaded == {
        "np_f32": 0.5,
        "np_f64": 1.25,
        "np_i64": 7,
        "np_bool": True,
        "t_float": 2.5,
        "t_int": 3,
        "t_one_elem": [4.0],  # arrays keep their shape
        "path": str(tmp_path / "file.txt"),
        "nested": [9, {"x": 0.25}],
    }
    assert type(loaded["np_i64"]) is int and type(loaded["t_int"]) is int
    assert type(loaded["np_bool"]) is bool


def test_atomic_write_json_unserialisable_raises_and_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "bad.json"
    with pytest.raises(TypeError, match="object of type object is not JSON serialisable"):
        atomic_write_json(target, {"x": object()})
    assert _names(tmp_path) == []


def test_atomic_write_json_arrays(tmp_path: Path) -> None:
    obj = {"np": np.array([1, 2, 3]), "torch": torch.tensor([[0.5, 1.5]])}
    loaded = json.loads(atomic_write_json(tmp_path / "a.json", obj).read_text(encoding="utf-8"))
    assert loaded == {"np": [1, 2, 3], "torch": [[0.5, 1.5]]}


def test_atomic_open_failure_keeps_previous_content_and_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.txt"
    target.write_text("previous\n", encoding="utf-8")
    with pytest.raises(Boom), atomic_open(target, "w") as handle:
        handle.write("half of the new ")
        handle.flush()
        # the temporary file is a sibling of the target while writing
        assert len(_names(tmp_path)) == 2
        raise Boom
    assert target.read_text(encoding="utf-8") == "previous\n"
    assert _names(tmp_path) == ["state.txt"]


def test_atomic_open_failure_on_new_file_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_open(tmp_path / "new.bin", "wb") as handle:
        handle.write(b"abc")
        raise KeyboardInterrupt  # BaseException subclasses are handled too
    assert _names(tmp_path) == []


def test_atomic_save_writer_failure_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    original = {"w": torch.arange(5.0)}
    assert atomic_save(target, lambda f: torch.save(original, f)) == target
    before = target.read_bytes()

    def failing_writer(handle: IO[bytes]) -> None:
        handle.write(b"\x00" * 1000)
        raise Boom("disk full")

    with pytest.raises(Boom, match="disk full"):
        atomic_save(target, failing_writer)
    assert target.read_bytes() == before
    assert _names(tmp_path) == ["model.pt"]
    loaded = torch.load(target, weights_only=True)
    assert torch.equal(loaded["w"], original["w"])


def test_atomic_open_rejects_other_modes(tmp_path: Path) -> None:
    for mode in ("a", "r", "w+", "ab"):
        with pytest.raises(ValueError) as info, atomic_open(tmp_path / "x", mode):
            pass
        assert "supports modes 'w' and 'wb'" in str(info.value)
        assert repr(mode) in str(info.value)
    assert _names(tmp_path) == []


def test_atomic_copy(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    rng = np.random.default_rng(0)
    payload = rng.integers(0, 256, size=200_000, dtype=np.uint8).tobytes()
    src.write_bytes(payload)
    dst = tmp_path / "out" / "dst.bin"
    dst.parent.mkdir()
    dst.write_bytes(b"old")
    assert atomic_copy(src, dst) == dst
    assert dst.read_bytes() == payload
    assert src.read_bytes() == payload
    assert _names(dst.parent) == ["dst.bin"]


def test_atomic_copy_missing_source_leaves_destination(tmp_path: Path) -> None:
    dst = tmp_path / "dst.txt"
    dst.write_text("keep", encoding="utf-8")
    with pytest.raises(FileNotFoundError):
        atomic_copy(tmp_path / "missing.txt", dst)
    assert dst.read_text(encoding="utf-8") == "keep"
    assert _names(tmp_path) == ["dst.txt"]


# ----------------------------------------------------------------------------- metrics


def test_metrics_logger_writes_jsonl_read_back(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    logger = MetricsLogger(path, flush_interval=0.0)
    records = [{"epoch": e, "loss": 1.0 / (e + 1), "split": "train"} for e in range(4)]
    for record in records:
        logger.log(record)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    assert [json.loads(line) for line in lines] == records
    assert read_metrics(path) == records
    assert read_metrics(str(path)) == records
    assert logger.records == records


def test_metrics_non_finite_become_strings_and_tensors_numbers(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    logger = MetricsLogger(path, flush_interval=0.0)
    logger.log(
        {
            "nan": math.nan,
            "inf": math.inf,
            "ninf": -math.inf,
            "np_nan": np.float64("nan"),
            "t_inf": torch.tensor(float("inf")),
            "t_loss": torch.tensor(0.5),
            "t_step": torch.tensor(12),
            "np_acc": np.float32(0.75),
            "np_n": np.int64(100),
            "flag": True,
            "none": None,
        }
    )
    text = path.read_text(encoding="utf-8")
    # strict JSON: no bare NaN/Infinity tokens
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    (record,) = read_metrics(path)
    assert record == {
        "nan": "nan",
        "inf": "inf",
        "ninf": "-inf",
        "np_nan": "nan",
        "t_inf": "inf",
        "t_loss": 0.5,
        "t_step": 12,
        "np_acc": 0.75,
        "np_n": 100,
        "flag": True,
        "none": None,
    }
    assert type(record["t_step"]) is int and type(record["np_n"]) is int


def test_metrics_buffered_until_flush(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    logger = MetricsLogger(path, flush_interval=1e9)
    logger.log({"epoch": 0})
    logger.log({"epoch": 1})
    assert not path.exists()
    logger.flush()
    assert read_metrics(path) == [{"epoch": 0}, {"epoch": 1}]
    logger.log({"epoch": 2})
    assert read_metrics(path) == [{"epoch": 0}, {"epoch": 1}]  # still the old prefix
    logger.flush()
    assert read_metrics(path) == [{"epoch": 0}, {"epoch": 1}, {"epoch": 2}]


def test_metrics_flush_after_interval_elapsed(tmp_path: Path, monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(metrics_module.time, "monotonic", lambda: clock[0])
    path = tmp_path / "m.jsonl"
    logger = MetricsLogger(path, flush_interval=5.0)
    logger.log({"i": 0})
    clock[0] = 104.9
    logger.log({"i": 1})
    assert not path.exists()
    clock[0] = 105.0
    logger.log({"i": 2})
    assert read_metrics(path) == [{"i": 0}, {"i": 1}, {"i": 2}]
    clock[0] = 107.0
    logger.log({"i": 3})  # within 5 s of the last flush
    assert len(read_metrics(path)) == 3


def test_metrics_flush_without_new_records_does_not_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    logger = MetricsLogger(path, flush_interval=1e9)
    logger.log({"a": 1})
    logger.flush()
    path.write_text("sentinel\n", encoding="utf-8")
    logger.flush()  # nothing new: the file is not touched
    assert path.read_text(encoding="utf-8") == "sentinel\n"


def test_metrics_path_none_is_noop(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    logger = MetricsLogger(None, flush_interval=0.0)
    logger.log({"loss": torch.tensor(1.5)})
    logger.flush()
    assert logger.records == [{"loss": 1.5}]
    assert _names(tmp_path) == []


def test_read_metrics_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"a": 2}\n', encoding="utf-8")
    assert read_metrics(path) == [{"a": 1}, {"a": 2}]


# ----------------------------------------------------------------------- permissions, leftovers


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        paths = [
            atomic_write_text(tmp_path / "a.txt", "x"),
            atomic_write_bytes(tmp_path / "b.bin", b"x"),
            atomic_save(tmp_path / "c.pt", lambda f: torch.save({"x": 1}, f)),
            atomic_copy(tmp_path / "a.txt", tmp_path / "d.txt"),
        ]
    finally:
        os.umask(previous)
    assert [stat.S_IMODE(p.stat().st_mode) for p in paths] == [mode] * 4


def test_remove_temp_files_removes_only_atomic_leftovers(tmp_path: Path) -> None:
    ours = [tmp_path / ".config.json.k2j3h4l5.tmp", tmp_path / "cache" / ".fit-1.pt.abcdefgh.tmp"]
    others = [tmp_path / "notes.tmp", tmp_path / ".hidden", tmp_path / "config.json"]
    for path in ours + others:
        path.parent.mkdir(exist_ok=True)
        path.write_text("x")
    assert sorted(remove_temp_files(tmp_path)) == sorted(ours)
    assert not any(p.exists() for p in ours) and all(p.exists() for p in others)


def test_check_folder_refuses_what_cannot_hold_a_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    for path, message in (
        (tmp_path / "f", "expected a folder, got a file"),
        (tmp_path / "f" / "x" / "y", "a file, in the path"),
        (Path("/dev/null"), "expected a folder, got a device"),
        (tmp_path / ("n" * 256) / "x", "folder names of at most"),
    ):
        with pytest.raises(UsageError, match=message):
            check_folder(path, "--out")
    assert check_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # checking wrote nothing


def test_make_folder_is_exclusive_and_reports_what_it_created(tmp_path: Path) -> None:
    created = make_folder(tmp_path / "a" / "b" / "run", exclusive=True)
    assert created == [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "run"]
    with pytest.raises(FileExistsError):
        make_folder(tmp_path / "a" / "b" / "run", exclusive=True)
    assert make_folder(tmp_path / "a" / "b" / "run") == []  # not exclusive: there already


def test_shorten_keeps_short_text_and_cuts_long_text() -> None:
    assert shorten("short") == "short"
    assert shorten("x" * 80) == "x" * 80
    assert shorten("x" * 100_000) == "x" * 80 + "... (100000 characters)"
    assert shorten(12345, limit=2) == "12... (5 characters)"
    with pytest.raises(ValueError):
        shorten("x", limit=0)
