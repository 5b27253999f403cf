"""The wheel ships the built widget bundle, and Python and JS share one version."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import hooklens

ROOT = Path(__file__).resolve().parents[2]
NETWORK_LOAD = re.compile(r"""(import|from|src=|href=|fetch\(|url\()\s*["'(]?\s*https?://""")


def test_python_version_is_the_package_json_version() -> None:
    package_json = json.loads((ROOT / "package.json").read_text())
    assert hooklens.__version__ == package_json["version"]


@pytest.mark.slow
def test_fresh_wheel_contains_the_bundle(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("hooklens-*.whl")
    package_json = json.loads((ROOT / "package.json").read_text())
    assert wheel.name.startswith(f"hooklens-{package_json['version']}-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        bundles = [n for n in names if re.fullmatch(r"hooklens/static/[^/]+\.js", n)]
        assert "hooklens/static/widget.js" in bundles
        assert "hooklens/py.typed" in names
        # What `hl.demo_model()` and `hooklens demo` need from an installed wheel.
        assert "hooklens/_demo_model/model.safetensors" in names
        assert "hooklens/_demo_model/tokenizer.json" in names
        assert "hooklens/_notebooks/quickstart.ipynb" in names
        bundle = archive.read("hooklens/static/widget.js").decode()
    # The wheel's bundle is the one built from js/ now, not an empty placeholder.
    assert "colored_tokens" in bundle
    assert not NETWORK_LOAD.search(bundle)


def test_bundle_loads_nothing_from_the_network() -> None:
    bundle = (ROOT / "hooklens" / "static" / "widget.js").read_text()
    assert not NETWORK_LOAD.search(bundle), NETWORK_LOAD.search(bundle)
