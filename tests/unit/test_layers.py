"""The layers import one way (core <- FHIR <- pipeline <- worker <- services), checked by
import-linter with the contracts in pyproject.toml."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: a copy of the package in `root` is analysed instead of the installed one.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_the_layers_import_one_way() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def _lint_with_line_added(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """Lint a copy of the package in which `module` (a path under podlink/) ends with `line`."""
    shutil.copytree(REPO / "podlink", tmp_path / "podlink", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    changed = tmp_path / "podlink" / module
    changed.write_text(changed.read_text() + f"\n{line}\n")
    return _lint(tmp_path)


def test_a_core_module_importing_the_worker_breaks_the_check(tmp_path: Path) -> None:
    result = _lint_with_line_added(tmp_path, "streams/core/ids.py", "from podlink.streams.worker import app")
    assert result.returncode == 1
    assert "layers import one way: services, worker, pipeline, FHIR, core BROKEN" in result.stdout
    assert "podlink.streams.core.ids -> podlink.streams.worker.app" in result.stdout


def test_a_pure_module_importing_kafka_breaks_the_check(tmp_path: Path) -> None:
    result = _lint_with_line_added(tmp_path, "streams/core/deadlines.py", "import aiokafka")
    assert result.returncode == 1
    assert "the pure layers do no I/O: no Kafka, Faust, HTTP or logging clients BROKEN" in result.stdout
    assert "podlink.streams.core.deadlines -> aiokafka" in result.stdout
