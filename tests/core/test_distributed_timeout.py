"""No silent hangs under torchrun: the collective timeout, its environment variable, and the
one-line CollectiveTimeoutError, down to a real two-process job in which one rank stops."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from deepnotes.core import distributed
from deepnotes.core.errors import CollectiveTimeoutError, ConfigError

HERE = Path(__file__).parent
GLOO_TIMEOUT = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] "
    "Timed out waiting 7000ms for recv operation to complete"
)
GLOO_PEER_GONE = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
    "[127.0.0.1]:4484: Connection reset by peer. This is typically caused by a remote worker "
    "hanging or bugs in the application.\nCheck the logs of the remote worker."
)


@pytest.fixture
def rank_1_of_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment torchrun gives the second of two ranks, with a 7-second timeout."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "7")


# --- the environment variable ---------------------------------------------------------------


def test_timeout_defaults_to_five_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    assert distributed.collective_timeout() == timedelta(minutes=5)


@pytest.mark.parametrize(("text", "seconds"), [("7", 7.0), ("2.5", 2.5), (" 90 ", 90.0)])
def test_timeout_reads_seconds_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, seconds: float
) -> None:
    monkeypatch.setenv(distributed.TIMEOUT_ENV, text)
    assert distributed.collective_timeout() == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["abc", "", "0", "-3", "nan", "inf", "1e309", "86401", "5s", "9" * 100_000]
)
def test_a_bad_timeout_is_a_config_error_naming_variable_range_and_value(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv(distributed.TIMEOUT_ENV, text)
    with pytest.raises(ConfigError) as caught:
        distributed.collective_timeout()
    message = str(caught.value)
    assert message.startswith("DEEPNOTES_DIST_TIMEOUT must be a number of seconds in (0, 86400]")
    assert "got " + repr(text)[:20] in message
    assert "\n" not in message and len(message) < 200  # the 100,000 characters are shortened


def test_init_refuses_a_bad_timeout_even_in_a_single_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "-1")
    with pytest.raises(ConfigError, match="DEEPNOTES_DIST_TIMEOUT"):
        distributed.init(torch.device("cpu"))


def test_init_passes_the_timeout_to_the_process_group(
    monkeypatch: pytest.MonkeyPatch, rank_1_of_2: None
) -> None:
    calls: list[dict] = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: calls.append(kwargs))
    info = distributed.init(torch.device("cpu"))
    assert calls == [{"backend": "gloo", "timeout": timedelta(seconds=7)}]
    assert (info.rank, info.world_size, info.backend) == (1, 2, "gloo")


# --- the expiry becomes one line --------------------------------------------------------------


def test_a_backend_timeout_becomes_one_line_naming_rank_operation_and_timeout(
    rank_1_of_2: None,
) -> None:
    with pytest.raises(CollectiveTimeoutError) as caught, distributed.collective("barrier"):
        raise RuntimeError(GLOO_TIMEOUT)
    message = str(caught.value)
    assert message.startswith(
        "rank 1 of 2: barrier did not complete within the collective timeout of 7 s "
        "(DEEPNOTES_DIST_TIMEOUT)"
    )
    assert "backend said: Timed out waiting 7000ms" in message and "unbound_buffer" not in message
    assert "\n" not in message


def test_a_peer_that_died_is_reported_the_same_way(rank_1_of_2: None) -> None:
    with (
        pytest.raises(CollectiveTimeoutError) as caught,
        distributed.collective("all_gather_object"),
    ):
        raise RuntimeError(GLOO_PEER_GONE)
    message = str(caught.value)
    assert message.startswith(
        "rank 1 of 2: all_gather_object lost its connection to another rank before the "
        "collective timeout of 7 s (DEEPNOTES_DIST_TIMEOUT)"
    )
    assert "\n" not in message and len(message) < 400  # the backend's detail is shortened


def test_a_backend_error_of_another_kind_is_still_named(rank_1_of_2: None) -> None:
    with (
        pytest.raises(
            CollectiveTimeoutError, match=r"^rank 1 of 2: broadcast_object failed in the backend"
        ),
        distributed.collective("broadcast_object"),
    ):
        raise dist.DistBackendError("NCCL communicator was aborted")


def test_other_errors_pass_through_unchanged(rank_1_of_2: None) -> None:
    bug = RuntimeError("Tensors must be contiguous")
    with pytest.raises(RuntimeError) as caught, distributed.collective("all_reduce_sum"):
        raise bug
    assert caught.value is bug


@pytest.mark.parametrize(
    ("helper", "backend_call", "args"),
    [
        (distributed.all_reduce_sum, "all_reduce", (torch.ones(1),)),
        (distributed.broadcast_object, "broadcast_object_list", ({"a": 1},)),
        (distributed.barrier, "barrier", ()),
        (distributed.all_gather_object, "all_gather_object", (3,)),
    ],
)
def test_every_collective_helper_raises_the_one_line_error(
    monkeypatch: pytest.MonkeyPatch, rank_1_of_2: None, helper, backend_call: str, args: tuple
) -> None:
    def expire(*_args, **_kwargs):
        raise RuntimeError(GLOO_TIMEOUT)

    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda *_args: 2)
    monkeypatch.setattr(dist, backend_call, expire)
    with pytest.raises(CollectiveTimeoutError, match=rf"^rank 1 of 2: {helper.__name__} did not"):
        helper(*args)


# --- a real torchrun job with a rank that stops -----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(out: Path, *sets: str, timeout_s: str) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ)
    env["DEEPNOTES_EXPERIMENTS"] = "probe_distributed"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH", "")]))
    env["OMP_NUM_THREADS"] = "1"
    env[distributed.TIMEOUT_ENV] = timeout_s
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun), "--nproc_per_node=2", f"--master_port={_free_port()}",
        "-m", "deepnotes", "run", "probe.stalled_rank", "--device", "cpu", "--threads", "1",
        "--out", str(out), *(arg for s in sets for arg in ("--set", s)),
    ]  # fmt: skip
    start = time.monotonic()
    # a hang fails here (TimeoutExpired) instead of after the backend's 30 minutes
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    return proc, time.monotonic() - start


def _rank0_text(stderr: str) -> str:
    """Rank 0's stderr as one line: torchrun's ``[rank0]:`` prefixes gone, wrapping undone."""
    lines = [line.removeprefix("[rank0]:") for line in stderr.splitlines()]
    return " ".join(" ".join(lines).split())


def _check_cli_report(stderr: str) -> None:
    """The CLI reports the expiry as one error line and exits 4 (no traceback from rank 0)."""
    text = _rank0_text(stderr)
    assert "error: rank 0 of 2:" in text, stderr[-3000:]
    assert "Traceback" not in text.split("error: rank 0 of 2:")[0][-2000:], stderr[-3000:]
    assert re.search(r"exitcode\s*:\s*4", stderr), stderr[-3000:]  # torchrun's summary


@pytest.mark.slow
def test_a_stuck_rank_ends_the_job_within_the_timeout_with_one_line(tmp_path: Path) -> None:
    # 10 s: every rank must also join the group and pass the run's first broadcast and barrier
    # within it, with margin on a busy two-core machine; the stuck rank sleeps 600 s
    proc, seconds = _torchrun(tmp_path, "how=sleep", "stall=600", timeout_s="10")
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (
        "rank 0 of 2: all_reduce_sum did not complete within the collective timeout of 10 s "
        "(DEEPNOTES_DIST_TIMEOUT); another rank stopped or is stuck before this point"
    ) in _rank0_text(proc.stderr), proc.stderr[-3000:]
    _check_cli_report(proc.stderr)
    assert seconds < 120  # the timeout, not the default 5 minutes nor the backend's 30


@pytest.mark.slow
def test_a_rank_that_exits_ends_the_job_at_once_with_one_line(tmp_path: Path) -> None:
    proc, seconds = _torchrun(tmp_path, "how=exit", timeout_s="60")
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (
        "rank 0 of 2: all_reduce_sum lost its connection to another rank before the collective "
        "timeout of 60 s (DEEPNOTES_DIST_TIMEOUT); another rank stopped or is stuck before this"
    ) in _rank0_text(proc.stderr), proc.stderr[-3000:]
    _check_cli_report(proc.stderr)
    assert seconds < 120
