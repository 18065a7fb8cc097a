"""One run per folder, and ``--resume`` picks the right one (issue 11, section 3).

The runner claims a new run folder atomically and locks the folder it runs in; ``--resume``
continues only a folder holding a checkpoint or a cached sub-result, with the settings the run
recorded (``--threads``), keeps the history of overrides, and removes the temporary files of
writes that were killed; artefacts get the umask's permissions. Small probe experiments are
registered in-process for the tests (and removed after them); the race of two runs started
together is tested with two real processes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from deepnotes.core import registry
from deepnotes.core.checkpoint import save_checkpoint
from deepnotes.core.context import RunContext, RunLock, run_experiment
from deepnotes.core.engine import Loop
from deepnotes.core.errors import ConfigError, DataFormatError
from deepnotes.core.registry import Claim, Outcome, experiment

HERE = Path(__file__).parent
NAME = "probefolders.steps"
STOP = {"at": None}
"""Step at which the probe raises KeyboardInterrupt (a stand-in for a kill), None for never."""


@dataclass(frozen=True)
class StepsConfig:
    steps: int = 6
    """Steps of the loop (a checkpoint every 2)."""
    refuse: bool = False
    """Raise DataFormatError before the first step, as a loader refusing a file would."""
    offset: float = 0.0
    """Added to the loss; lets a test give --set values."""


def _steps(cfg: StepsConfig, ctx: RunContext) -> Outcome:
    if cfg.refuse:
        raise DataFormatError("probe: the data file is refused")
    net = torch.nn.Linear(3, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    weight = net.weight
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loop = Loop(ctx, tag="steps", track={"net": net, "opt": optimizer}, progress=False)

    def step(i: int) -> dict[str, float]:
        if STOP["at"] == i:
            raise KeyboardInterrupt
        loss = ((weight - 1.0) ** 2).sum() + cfg.offset
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "threads": torch.get_num_threads()}

    loop.run(step, steps=cfg.steps, every=2)
    return Outcome(
        metrics={"threads": torch.get_num_threads(), "w": weight.detach().tolist()},
        claims=[
            Claim.at_most(
                "finite", float((~torch.isfinite(weight)).sum()), 0, key="ok", kind="check"
            )
        ],
    )


@pytest.fixture
def probe() -> Iterator[str]:
    """Register the probe experiment for one test, and remove it afterwards."""
    registry.discover()
    before = dict(registry._REGISTRY)
    experiment(NAME, topic="probefolders", config=StepsConfig, checks=("ok",))(_steps)
    STOP["at"] = None
    yield NAME
    STOP["at"] = None
    for name in set(registry._REGISTRY) - set(before):
        del registry._REGISTRY[name]


def _run(out: Path, **kwargs):
    notes: list[str] = []
    kwargs.setdefault("device", "cpu")
    result = run_experiment(NAME, out=out, show_progress=False, notify=notes.append, **kwargs)
    return result, notes


def _interrupted(out: Path, run_id: str, at: int = 4, **kwargs) -> Path:
    """A run stopped at step ``at`` (after the checkpoint of step 2 when ``at`` > 2)."""
    STOP["at"] = at
    with pytest.raises(KeyboardInterrupt):
        _run(out, run_id=run_id, **kwargs)
    STOP["at"] = None
    return out / NAME / run_id


def _config(run_dir: Path) -> dict:
    return json.loads((run_dir / "config.json").read_text())


# ------------------------------------------------------------------ one run per folder


def test_a_run_folder_that_another_run_just_claimed_is_refused(tmp_path: Path, probe) -> None:
    # the moment between another run's mkdir and its first write: the folder is there, empty
    (tmp_path / NAME / "same").mkdir(parents=True)
    with pytest.raises(ConfigError, match="exists; use --resume or another --run-id"):
        _run(tmp_path, run_id="same")
    assert list((tmp_path / NAME / "same").iterdir()) == []


def test_a_run_being_resumed_elsewhere_is_refused(tmp_path: Path, probe) -> None:
    run_dir = _interrupted(tmp_path, "r")
    lock = RunLock(run_dir).acquire()  # another process runs it right now
    try:
        with pytest.raises(ConfigError, match="in use by another process"):
            _run(tmp_path, resume=True, run_id="r")
    finally:
        lock.release()
    result, _ = _run(tmp_path, resume=True, run_id="r")
    assert (result.run_dir / "outcome.json").is_file()
    assert not (run_dir / ".lock").exists()


def _probe_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DEEPNOTES_EXPERIMENTS"] = "probe_experiments"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH", "")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.slow
def test_two_processes_started_together_with_one_run_id(tmp_path: Path) -> None:
    def start(seed: int) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable, "-m", "deepnotes", "run", "probe.gan", "--out", str(tmp_path),
                "--device", "cpu", "--threads", "1", "--run-id", "same", "--seed", str(seed),
                "--set", "steps=20", "--set", "pause=0.05",
            ],
            env=_probe_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    procs = [start(1), start(2)]
    ends = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in ends)
    assert codes == [0, 2], ends
    refused = next(err for code, err in ends if code == 2)
    assert "exists; use --resume or another --run-id" in " ".join(refused.split())
    assert "Traceback" not in refused
    run_dir = tmp_path / "probe.gan" / "same"
    config = json.loads((run_dir / "config.json").read_text())
    outcome = json.loads((run_dir / "outcome.json").read_text())
    assert config["seed"] == outcome["seed"]  # one run's artefacts, not a mix of two


# ------------------------------------------------------------------ --resume picks the right one


def test_a_start_refused_for_its_input_leaves_nothing(tmp_path: Path, probe) -> None:
    with pytest.raises(DataFormatError):
        _run(tmp_path / "runs", overrides=["refuse=true"])
    assert not (tmp_path / "runs").exists()


def test_resume_skips_and_names_folders_without_a_checkpoint(tmp_path: Path, probe) -> None:
    good = _interrupted(tmp_path, "a-good", at=4)
    early = _interrupted(tmp_path, "b-early", at=1)  # killed before its first checkpoint
    assert not (early / "checkpoints").exists() and (early / "config.json").is_file()
    os.utime(good / "config.json", (1, 1))  # the early one is newer
    result, notes = _run(tmp_path, resume=True)
    assert result.run_dir == good
    assert any("b-early" in note and "no checkpoint" in note for note in notes), notes
    # once the good one finished, only the early one is left: nothing to resume, say so
    with pytest.raises(ConfigError) as err:
        _run(tmp_path, resume=True)
    assert "no unfinished run with a checkpoint" in str(err.value)
    assert "b-early (no checkpoint or cached result yet)" in str(err.value)
    with pytest.raises(ConfigError, match="has nothing to resume"):
        _run(tmp_path, resume=True, run_id="b-early")


def test_resume_counts_a_cached_sub_result_as_progress(tmp_path: Path, probe) -> None:
    run_dir = _interrupted(tmp_path, "c", at=1)
    with pytest.raises(ConfigError, match="nothing to resume"):
        _run(tmp_path, resume=True, run_id="c")
    save_checkpoint(run_dir / "cache" / "fit-0123.pt", {"key": "{}", "value": 1})
    result, _ = _run(tmp_path, resume=True, run_id="c")
    assert result.run_dir == run_dir


# ------------------------------------------------------------------ recorded settings, history


def test_resume_uses_the_recorded_threads_and_refuses_others(tmp_path: Path, probe) -> None:
    before = torch.get_num_threads()
    run_dir = _interrupted(tmp_path, "t", threads=3)
    assert _config(run_dir)["threads"] == 3
    with pytest.raises(ConfigError, match=r"recorded --threads \(3\).*got --threads 1"):
        _run(tmp_path, resume=True, run_id="t", threads=1)
    result, _ = _run(tmp_path, resume=True, run_id="t")  # no --threads: the recorded 3
    assert result.record["metrics"]["threads"] == 3
    assert torch.get_num_threads() == before


def test_resume_keeps_the_history_of_overrides(tmp_path: Path, probe) -> None:
    run_dir = _interrupted(tmp_path, "h", overrides=["offset=0.5"])
    _interrupted(tmp_path, "h", resume=True, at=5)
    first = _config(run_dir)
    assert first["overrides"] == ["offset=0.5"]
    _run(tmp_path, resume=True, run_id="h", overrides=["offset=0.5"])
    record = _config(run_dir)
    assert record["overrides"] == ["offset=0.5"]  # what the run was started with, kept
    assert [r["overrides"] for r in record["resumes"]] == [[], ["offset=0.5"]]
    assert record["config"]["offset"] == 0.5


def _without_a_config_field(text: str) -> str:
    stored = json.loads(text)
    stored["config"].pop(next(iter(stored["config"])))
    return json.dumps(stored)


def test_a_corrupt_or_incomplete_config_is_refused_naming_the_file(tmp_path: Path, probe) -> None:
    run_dir = _interrupted(tmp_path, "k")
    path = run_dir / "config.json"
    good = path.read_text()
    for text, reason in (
        ('{"name": "probefolders.steps", "seed":', "not a readable run config"),
        ("[]", "incomplete"),
        ('{"name": "probefolders.steps", "preset": "quick", "seed": 0}', "missing keys config"),
        (good.replace('"seed": 0', '"seed": "zero"'), "wrong types: seed (str)"),
        (_without_a_config_field(good), "its config lacks"),  # no silent default filled in
    ):
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            _run(tmp_path, resume=True, run_id="k")
        message = str(err.value)
        assert str(path) in message and reason in message and "\n" not in message, message


# ------------------------------------------------------------------ temp files, permissions


def test_resume_removes_the_temp_files_of_killed_writes(tmp_path: Path, probe) -> None:
    run_dir = _interrupted(tmp_path, "tmp")
    stale = [
        run_dir / ".metrics.jsonl.abcd1234.tmp",
        run_dir / "checkpoints" / ".steps.pt.efgh5678.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half a write")
    keep = run_dir / "notes.tmp"  # not one of ours: no leading dot
    keep.write_text("mine")
    _run(tmp_path, resume=True, run_id="tmp")
    assert not any(path.exists() for path in stale)
    assert keep.exists()


def test_artefacts_follow_the_umask(tmp_path: Path, probe) -> None:
    previous = os.umask(0o022)
    try:
        result, _ = _run(tmp_path, run_id="u")
    finally:
        os.umask(previous)
    files = [p for p in result.run_dir.rglob("*") if p.is_file()]
    assert {"config.json", "outcome.json", "metrics.jsonl", "steps.pt"} <= {p.name for p in files}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
