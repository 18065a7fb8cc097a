"""gans.ring_and_grid: claim verdicts on synthetic records, the variants' settings, bad
config, and one tiny smoke run through the real entry point."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepnotes.core.context import RunContext, run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.metrics import MetricsLogger
from deepnotes.core.registry import get_experiment
from deepnotes.gans.experiments import ring_and_grid as rg
from deepnotes.gans.models import unstack_mlp

KEYS = ("stabilised_ring", "stabilised_grid", "minimax_drops")
FULL = rg.RingGridConfig()  # decisive: claims fail there without excuse
TINY = ("seeds=2", "steps=2", "every=2", "hidden=8", "batch=16", "n_critic=1")


def make_ctx(tmp_path: Path) -> RunContext:
    return RunContext(
        name="test",
        seed=0,
        device=torch.device("cpu"),
        out_dir=tmp_path,
        resume=False,
        metrics=MetricsLogger(tmp_path / "metrics.jsonl"),
        show_progress=False,
    )


def record(
    ring_modes: float = 8,
    ring_hq: float = 0.97,
    grid_modes: float = 25,
    grid_hq: float = 0.93,
    minimax: tuple[tuple[float, ...], tuple[float, ...]] = ((6, 8), (25, 25)),
) -> rg.RingGridMeasurements:
    """Two seeds; every variant gets the given values except minimax (its modes per seed)."""

    def per(ring: float, grid: float) -> dict[str, dict[str, np.ndarray]]:
        return {
            ds: {v: np.array([value, value], dtype=float) for v in rg.VARIANTS}
            for ds, value in (("ring", ring), ("grid", grid))
        }

    modes, hq = per(ring_modes, grid_modes), per(ring_hq, grid_hq)
    modes["ring"]["minimax"], modes["grid"]["minimax"] = (np.array(x, dtype=float) for x in minimax)
    return rg.RingGridMeasurements(
        modes=modes,
        high_quality=hq,
        samples={ds: {v: np.zeros((4, 2)) for v in rg.VARIANTS} for ds in rg.DATASETS},
        diverged={ds: {v: ["", ""] for v in rg.VARIANTS} for ds in rg.DATASETS},
        total_modes={"ring": 8, "grid": 25},
    )


def verdicts(m: rg.RingGridMeasurements, cfg: rg.RingGridConfig = FULL) -> dict[str, bool]:
    return {c.key: c.holds for c in rg.claims(m, cfg)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("gans.ring_and_grid")
    assert exp.claims == KEYS and exp.checks == ()
    assert [c.key for c in rg.claims(record(), FULL)] == list(KEYS)


def test_the_phenomenon_holds_every_claim() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)


def test_every_seed_and_both_bars_count() -> None:
    assert not verdicts(record(ring_modes=7))["stabilised_ring"]  # a missed ring mode
    assert not verdicts(record(ring_hq=0.94))["stabilised_ring"]
    assert verdicts(record(grid_modes=24))["stabilised_grid"]  # 24 of 25 is enough
    assert not verdicts(record(grid_modes=23))["stabilised_grid"]
    assert not verdicts(record(grid_hq=0.89))["stabilised_grid"]
    m = record()
    m.high_quality["ring"]["spectral"][1] = 0.5  # one seed of one stabilised variant
    assert not verdicts(m)["stabilised_ring"]
    m = record()
    m.modes["ring"]["wgan_gp"][0] = math.nan  # a diverged fit holds nothing
    assert not verdicts(m)["stabilised_ring"]


def test_minimax_must_miss_a_mode_a_stabilised_variant_covers() -> None:
    assert not verdicts(record(minimax=((8, 8), (25, 25))))["minimax_drops"]
    assert verdicts(record(minimax=((8, 8), (25, 24))))["minimax_drops"]
    # an undertrained run: no stabilised fit meets the goal, so a gap in modes shows nothing
    assert not verdicts(record(ring_hq=0.01, grid_hq=0.01, minimax=((0, 3), (10, 20))))[
        "minimax_drops"
    ]
    assert not verdicts(record(grid_modes=23, minimax=((8, 8), (20, 20))))["minimax_drops"]
    assert verdicts(record(ring_hq=0.01, minimax=((8, 8), (24, 25))))["minimax_drops"]
    m = record(minimax=((8, 8), (25, 25)))
    m.modes["ring"]["minimax"][1] = math.nan  # a diverged minimax fit covers nothing
    assert verdicts(m)["minimax_drops"]


def test_a_failure_is_known_with_what_the_full_preset_measured() -> None:
    short = rg.RingGridConfig.quick()
    failing = record(ring_hq=0.5)
    quick = {c.key: c for c in rg.claims(failing, short)}
    assert "far from converged" in quick["stabilised_ring"].known_failure
    assert "0.500" in quick["stabilised_ring"].known_failure
    assert rg.FULL_PRESET_FAILS["stabilised_ring"] in quick["stabilised_ring"].known_failure
    full = {c.key: c for c in rg.claims(failing, FULL)}
    assert full["stabilised_ring"].known_failure == rg.FULL_PRESET_FAILS["stabilised_ring"]
    assert not full["stabilised_grid"].known_failure  # it holds: nothing to excuse


def test_the_variants_settings_and_spectral_norm() -> None:
    cfg = rg.RingGridConfig.quick()
    assert cfg.settings("wgan").clip == cfg.clip and cfg.settings("wgan").n_critic == cfg.n_critic
    assert cfg.settings("wgan_gp").gp_weight == cfg.gp_weight
    assert cfg.settings("instance_noise").noise_std == cfg.noise_std
    assert (
        cfg.settings("minimax").n_critic == 1 and cfg.settings("spectral").loss == "nonsaturating"
    )
    assert cfg.settings("lsgan").lr_decay and cfg.settings("wgan").betas == (0.5, 0.9)


def test_stacked_members_start_as_the_separate_fits(tmp_path: Path) -> None:
    """Member k of the stacked pair is fit k initialised alone; spectral norm normalises
    every member's every layer by its own largest singular value."""
    cfg = rg.RingGridConfig(seeds=2, hidden=16)
    ctx = make_ctx(tmp_path)
    generator, plain = rg.stacked_pair(cfg, ctx, "nonsaturating")
    _, normed = rg.stacked_pair(cfg, ctx, "spectral")
    assert rg.members(cfg) == [("ring", 0), ("ring", 1), ("grid", 0), ("grid", 1)]
    for k, (ds, seed) in enumerate(rg.members(cfg)):
        with ctx.seeded("init", ds, "nonsaturating", seed):
            g_alone, d_alone = rg.build(cfg, "nonsaturating")
        z = torch.randn(4, 5, cfg.latent_dim)
        torch.testing.assert_close(generator(z)[k], g_alone(z[k]), rtol=0, atol=1e-6)
        torch.testing.assert_close(plain(z)[k], d_alone(z[k]), rtol=0, atol=1e-6)
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in plain)
    with torch.no_grad():
        for _ in range(300):  # training-mode forwards run the members' power iterations
            normed(torch.zeros(4, 1, 2))
    for k in range(len(rg.members(cfg))):
        layers = [m for m in unstack_mlp(normed, k) if isinstance(m, nn.Linear)]
        sigmas = [torch.linalg.matrix_norm(m.weight.detach(), ord=2).item() for m in layers]
        assert all(abs(s - 1) < 1e-3 for s in sigmas), sigmas


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="seeds"):
        rg.RingGridConfig(seeds=1)
    with pytest.raises(ConfigError, match="n_critic"):
        rg.RingGridConfig(n_critic=0)
    with pytest.raises(ConfigError, match="penalty"):
        rg.RingGridConfig(gp_weight=-0.1)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "gans.ring_and_grid",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    assert [Path(f).name for f in rec["figures"]] == ["samples.png", "table.png"]
    assert len(rec["metrics"]["ring_wgan_gp_modes"]) == 2
    assert 0 <= rec["metrics"]["grid_lsgan_modes"][0] <= 25
    assert (
        len(list((result.run_dir / "cache").glob("fit-*.pt"))) == 7
    )  # one per variant, seeds and data stacked
