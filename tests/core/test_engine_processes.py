"""The engine through real processes: SIGKILL mid-run, --resume, bitwise equal ends; exit 3 on a
diverging second loss; a multi-fit experiment that resumes only the missing fits; a crafted
checkpoint refused with exit 2 and nothing executed."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deepnotes.core.checkpoint import FORMAT, load_checkpoint

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["DEEPNOTES_EXPERIMENTS"] = "probe_experiments"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH", "")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


def _cmd(name: str, out: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "deepnotes", "run", name, "--out", str(out),
        "--device", "cpu", "--threads", "1", *args,
    ]  # fmt: skip


def _run(name: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cmd(name, out, *args), env=_env(), capture_output=True, text=True, timeout=120
    )


def _kill_when(name: str, out: Path, args: tuple[str, ...], ready) -> None:
    """Start a run, SIGKILL it as soon as ``ready()`` is true, and check it had not finished."""
    proc = subprocess.Popen(
        _cmd(name, out, *args), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 90
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run never reached the point to kill it")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _outcome(run_dir: Path) -> dict:
    return json.loads((run_dir / "outcome.json").read_text())


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines if line]


def _round(path: Path) -> int:
    try:
        return load_checkpoint(path)["round"]
    except Exception:  # not written yet, or being replaced right now
        return 0


@pytest.mark.parametrize("name, tag", [("probe.gan", "gan"), ("probe.replay", "replay")])
def test_sigkill_and_resume_is_bitwise_equal(tmp_path: Path, name: str, tag: str) -> None:
    args = ("--set", "pause=0.03")
    whole = _run(name, tmp_path, *args, "--run-id", "whole")
    assert whole.returncode == 0, whole.stderr
    checkpoint = tmp_path / name / "killed" / "checkpoints" / f"{tag}.pt"
    _kill_when(name, tmp_path, (*args, "--run-id", "killed"), lambda: _round(checkpoint) >= 3)
    killed_at = load_checkpoint(checkpoint)["round"]
    assert 3 <= killed_at < 12, killed_at
    assert not (checkpoint.parent.parent / "outcome.json").exists()
    resumed = _run(name, tmp_path, "--resume", "--run-id", "killed")
    assert resumed.returncode == 0, resumed.stderr
    a, b = _outcome(tmp_path / name / "whole"), _outcome(tmp_path / name / "killed")
    assert a["metrics"] == b["metrics"]  # final samples / weights, bit for bit (JSON floats)
    assert _records(tmp_path / name / "whole") == _records(tmp_path / name / "killed")
    final_a = load_checkpoint(tmp_path / name / "whole" / "checkpoints" / f"{tag}.pt")
    final_b = load_checkpoint(checkpoint)
    for key, state in final_a["track"].items():
        other = final_b["track"][key]
        if isinstance(state, torch.Tensor):
            assert torch.equal(state, other), key
        elif isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
            for k in state:
                assert torch.equal(state[k], other[k]), (key, k)


def test_a_diverging_second_loss_exits_3(tmp_path: Path) -> None:
    result = _run("probe.diverge", tmp_path, "--run-id", "d")
    assert result.returncode == 3, result.stderr
    message = " ".join(result.stderr.split())
    assert "[two_losses] loss_critic is nan at step 23" in message
    assert "checkpoints/two_losses.pt (after step 20)" in message.replace(os.sep, "/")
    assert not (tmp_path / "probe.diverge" / "d" / "outcome.json").exists()


def test_a_killed_multi_fit_experiment_resumes_only_the_missing_fits(tmp_path: Path) -> None:
    args = ("--set", "pause=0.05", "--set", "fits=8")
    whole = _run("probe.fits", tmp_path, *args, "--run-id", "whole")
    assert whole.returncode == 0, whole.stderr
    cache = tmp_path / "probe.fits" / "killed" / "cache"
    _kill_when(
        "probe.fits",
        tmp_path,
        (*args, "--run-id", "killed"),
        lambda: cache.is_dir() and len(list(cache.glob("fit-*.pt"))) >= 3,
    )
    done = len(list(cache.glob("fit-*.pt")))
    assert 3 <= done < 8
    resumed = _run("probe.fits", tmp_path, "--resume", "--run-id", "killed")
    assert resumed.returncode == 0, resumed.stderr
    a = _outcome(tmp_path / "probe.fits" / "whole")
    b = _outcome(tmp_path / "probe.fits" / "killed")
    assert a["metrics"] == b["metrics"] and a["claims"] == b["claims"]
    computed = [r["computed_fit"] for r in _records(tmp_path / "probe.fits" / "killed")]
    assert len(computed) == 8 - done  # only the missing fits were trained again
    assert computed == list(range(done, 8))


def test_a_crafted_checkpoint_is_refused_with_exit_2(tmp_path: Path) -> None:
    result = _run("probe.gan", tmp_path, "--set", "steps=10", "--run-id", "evil")
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "probe.gan" / "evil"
    (run_dir / "outcome.json").unlink()  # make the run resumable again
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for how in ("torch.save archive", "raw pickle"):
        payload = {"format": FORMAT, "round": 1, "x": Payload()}
        path = run_dir / "checkpoints" / "gan.pt"
        if how == "raw pickle":
            path.write_bytes(pickle.dumps(payload))
        else:
            torch.save(payload, path)
        resumed = _run("probe.gan", tmp_path, "--resume", "--run-id", "evil")
        assert resumed.returncode == 2, (how, resumed.stderr)
        assert "gan.pt" in resumed.stderr and "nothing was executed" in resumed.stderr
        assert "Traceback" not in resumed.stderr
        assert not marker.exists(), how
