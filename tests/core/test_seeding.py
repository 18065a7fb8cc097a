"""Tests for deepnotes.core.seeding: global seeding, RNG state round trips, device choice."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.core.seeding import (
    DEVICES,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)

CUDA = torch.cuda.is_available()
MPS = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


@pytest.fixture(autouse=True)
def restore_global_state() -> Iterator[None]:
    """Leave the generators, torch's determinism settings and the environment as found."""
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    saved = rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    yield
    set_rng_state(saved)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.benchmark = benchmark
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


def _draws() -> tuple[list[float], list[float], list[float], list[int]]:
    return (
        [random.random() for _ in range(3)],
        np.random.rand(3).tolist(),
        torch.rand(3).tolist(),
        torch.randint(0, 1000, (4,)).tolist(),
    )


def test_seed_everything_makes_draws_repeatable() -> None:
    seed_everything(1234)
    first = _draws()
    seed_everything(1234)
    second = _draws()
    assert first == second
    seed_everything(1235)
    assert _draws() != first


def test_seed_everything_matches_each_library_seeded_directly() -> None:
    seed_everything(7, deterministic=False)
    got = _draws()
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    assert got == _draws()


def test_seed_everything_requests_deterministic_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    seed_everything(0)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_seed_everything_keeps_existing_cublas_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    seed_everything(0)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_seed_everything_without_determinism_leaves_settings() -> None:
    torch.use_deterministic_algorithms(False)
    seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_seed_bounds_accepted(seed: int) -> None:
    seed_everything(seed, deterministic=False)
    a = torch.rand(2)
    seed_everything(seed, deterministic=False)
    assert torch.equal(a, torch.rand(2))


@pytest.mark.parametrize("seed", [-1, 2**32, 2**40])
def test_seed_out_of_range_raises(seed: int) -> None:
    with pytest.raises(ConfigError) as info:
        seed_everything(seed)
    assert str(info.value) == f"seed must be in [0, 2**32), got {seed}"


def test_rng_state_round_trip_reproduces_next_draws() -> None:
    seed_everything(99, deterministic=False)
    _draws()  # move away from the freshly seeded state
    state = rng_state()
    assert {"python", "numpy", "torch"} <= set(state)
    expected = _draws()
    assert _draws() != expected  # the generators really move on
    set_rng_state(state)
    assert _draws() == expected


def test_rng_state_is_a_snapshot() -> None:
    state = rng_state()
    torch_bytes = state["torch"].clone()
    _draws()
    assert torch.equal(state["torch"], torch_bytes)
    assert state["torch"].dtype == torch.uint8


def test_resolve_device_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device("cpu", local_rank=3) == torch.device("cpu")


@pytest.mark.skipif(CUDA or MPS, reason="an accelerator is available")
def test_resolve_device_auto_is_cpu_without_accelerator() -> None:
    assert resolve_device() == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_resolve_device_auto_prefers_cuda() -> None:
    assert resolve_device("auto") == torch.device("cuda", 0)
    count = torch.cuda.device_count()
    assert resolve_device("cuda", local_rank=count + 1) == torch.device("cuda", 1 % count)


@pytest.mark.parametrize("name", ["gpu", "tpu", "", "cuda:0"])
def test_resolve_device_unknown_name_raises(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_device(name)
    assert f"unknown device {name!r}" in str(info.value)
    assert ", ".join(DEVICES) in str(info.value)
    assert DEVICES == ("auto", "cpu", "cuda", "mps")


@pytest.mark.skipif(CUDA, reason="CUDA is available")
def test_resolve_device_unavailable_cuda_raises() -> None:
    with pytest.raises(ConfigError, match=r"device 'cuda' requested but .*is False"):
        resolve_device("cuda")


@pytest.mark.skipif(MPS, reason="MPS is available")
def test_resolve_device_unavailable_mps_raises() -> None:
    with pytest.raises(ConfigError, match=r"device 'mps' requested but .*is False"):
        resolve_device("mps")
