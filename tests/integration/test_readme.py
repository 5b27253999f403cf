"""Every Python code block of README.md runs as written.

Blocks run top to bottom in one namespace, on the demo model, in a scratch folder (one writes
an HTML file). A block whose first line names SmolLM2 stands alone and runs on SmolLM2 (slow).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks() -> list[str]:
    return _BLOCK.findall(README.read_text())


def _for_smollm2(block: str) -> bool:
    return "SmolLM2" in block.splitlines()[0]


def _run(blocks: list[str], where: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.chdir(where)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"README.md python block {number}", "exec"), namespace)
    return namespace


def test_readme_has_blocks_of_both_kinds() -> None:
    kinds = [_for_smollm2(block) for block in python_blocks()]
    assert False in kinds and True in kinds


def test_readme_blocks_run_on_the_demo_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = [block for block in python_blocks() if not _for_smollm2(block)]
    namespace = _run(blocks, tmp_path, monkeypatch)
    assert (tmp_path / "attention.html").stat().st_size > 0
    # The snippet's comment says where the patching effect sits: the "9" at position 9.
    result: Any = namespace["result"]
    _, position, _ = result.top(1)[0]
    assert position == 9


@pytest.mark.slow
def test_readme_blocks_for_smollm2_run_on_smollm2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for block in (block for block in python_blocks() if _for_smollm2(block)):
        namespace = _run([block], tmp_path, monkeypatch)
        model: Any = namespace["model"]
        assert model.cfg.n_layers == 30
