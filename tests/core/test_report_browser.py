"""The built HTML report opened in headless Chromium: it renders, every image loads, every link
resolves, its script works (filter, opening a linked claim) and nothing reaches the console.

Needs the ``chromium`` binary (Debian package ``chromium``; ``.ci/run`` installs it). Without it
the tests are skipped with that reason.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.figure import Figure

from deepnotes.core.report import build_report

CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (Debian: apt-get install chromium); "
    "CI installs it in .ci/run",
)

# Injected at the top of a copy of the page: records script errors and resource load errors,
# then, once the page has loaded, what a reader would see, as JSON in <pre id="probe-result">.
_PROBE = """
<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  var t = e.target || {};
  window.__errors.push(e.message || ("failed to load " + (t.src || t.href || t.tagName)));
}, true);
window.addEventListener("unhandledrejection", function (e) {
  window.__errors.push("unhandled rejection: " + e.reason);
});
window.addEventListener("load", function () { setTimeout(function () {
  function visible(el) { return el.getClientRects().length > 0; }
  var claims = Array.prototype.slice.call(document.querySelectorAll("details.claim"));
  var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  var result = {
    errors: window.__errors,
    title: document.title,
    images: Array.prototype.map.call(document.images, function (img) {
      return {src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth};
    }),
    anchors_missing: Array.prototype.filter.call(
      document.querySelectorAll("a[href^='#']"),
      function (a) { return !document.getElementById(a.getAttribute("href").slice(1)); }
    ).map(function (a) { return a.getAttribute("href"); }),
    hash_target_open: !!(target && target.open),
    claims_open: claims.filter(function (d) { return d.open; }).length,
    claims: claims.length,
    visible_before: claims.filter(visible).length
  };
  document.getElementById("only-problems").click();
  result.visible_after = claims.filter(visible).map(function (d) { return d.className; });
  result.problems = claims.filter(function (d) {
    return d.classList.contains("problem");
  }).length;
  var pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
}, 0); });
</script>
"""


def _figure(path: Path, title: str) -> None:
    fig = Figure(figsize=(4, 3), dpi=60)
    ax = fig.subplots()
    x = np.linspace(0, 6, 50)
    ax.plot(x, np.sin(x))
    ax.set_title(title)
    fig.savefig(path)


def _claim(statement: str, holds: Any, **over: Any) -> dict[str, Any]:
    return {
        "statement": statement,
        "measured": 0.5,
        "threshold": 1.0,
        "comparison": ">=",
        "holds": holds,
        "detail": f"detail of {statement}: 40 runs, SE 0.01",
        "known_failure": "",
        **over,
    }


def _write(runs: Path, name: str, topic: str, claims: list[dict], figures: list[str]) -> None:
    run_dir = runs / name / "20261124-100000-s0-abcd"
    run_dir.mkdir(parents=True)
    for figure in figures:
        _figure(run_dir / figure, f"{name}: {figure}")
    outcome = {
        "name": name,
        "topic": topic,
        "description": f"What {name} shows, in one sentence.",
        "run_id": run_dir.name,
        "preset": "quick",
        "seed": 0,
        "device": "cpu",
        "world_size": 1,
        "config": {"epochs": 3, "lr": 0.01},
        "metrics": {"acc": 0.97},
        "figures": figures,
        "claims": claims,
        "all_hold": all(c["holds"] is True for c in claims),
        "started": "2026-11-24T10:00:00+00:00",
        "finished": "2026-11-24T10:00:30+00:00",
        "duration_s": 30.0,
        "versions": {"deepnotes": "0.1.0"},
    }
    (run_dir / "outcome.json").write_text(json.dumps(outcome), encoding="utf-8")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("browser") / "runs"
    _write(
        runs,
        "alpha.curves",
        "alpha",
        [
            _claim("it holds", True, key="holds"),
            _claim("it is known not to hold", False, key="known", known_failure="seed noise"),
            _claim("equals torch", True, key="torch", kind="check"),
        ],
        ["curves.png", "sub dir.png"],
    )
    _write(
        runs,
        "alpha.baseline",
        "alpha",
        [_claim("beats the baseline", True, key="b", baseline="the single nets")],
        ["bars.png"],
    )
    _write(runs, "beta.fails", "beta", [_claim("does <not> hold & fails", False)], ["a.png"])
    return build_report(runs)


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={cwd / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)


def _console_lines(stderr: str) -> list[str]:
    """What pages logged to the console (Chromium logs each message as INFO:CONSOLE)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_every_link_and_image_of_the_page_is_a_local_file(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    targets = re.findall(r'(?:href|src)="([^"#][^"]*)"', text)
    assert targets, "no figures linked"
    for target in map(html.unescape, targets):
        assert not re.match(r"^[a-z]+:|^/", target), target
        assert (report.parent / unquote(target)).is_file(), target


def test_report_renders_in_chromium_without_errors(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    first_problem = re.search(r'<li class="[a-z]+-item">.*?href="#([^"]+)"', page)
    assert first_problem is not None
    probe = report.with_name("probe.html")
    probe.write_text(
        page.replace(' loading="lazy"', "").replace("<head>", "<head>" + _PROBE, 1),
        encoding="utf-8",
    )
    done = _chromium("--dump-dom", f"{probe.as_uri()}#{first_problem.group(1)}", cwd=report.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', done.stdout, re.S)
    assert found, "the page did not finish loading:\n" + done.stdout[-2000:]
    result = json.loads(html.unescape(found.group(1)))

    assert result["errors"] == []
    assert _console_lines(done.stderr) == []
    assert result["title"] == "deepnotes report"
    assert len(result["images"]) == 4
    for image in result["images"]:
        assert image["complete"] and image["width"] > 0, image
    assert result["anchors_missing"] == []
    # a link to a claim opens it; every other claim stays folded
    assert result["hash_target_open"] is True and result["claims_open"] == 1
    # the filter leaves exactly the claims that do not hold visible
    assert result["claims"] == 5 and result["visible_before"] == 5
    assert result["problems"] == 2 and len(result["visible_after"]) == 2
    assert all("problem" in classes.split() for classes in result["visible_after"])


def test_unmodified_report_logs_nothing_and_screenshots(report: Path) -> None:
    done = _chromium("--dump-dom", report.as_uri(), cwd=report.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'id="topics"' in done.stdout and "beta.fails" in done.stdout
    assert _console_lines(done.stderr) == []

    shot = report.with_name("screenshot.png")
    done = _chromium(
        f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri(), cwd=report.parent
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console_lines(done.stderr) == []
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels[..., :3].std() > 0.05  # not a blank page
