"""The Python <-> TypeScript contract: js/traits.gen.ts is what the Python classes say."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import traitlets

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "write_traits_ts", ROOT / "scripts" / "write_traits_ts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_typescript_is_current() -> None:
    generator = _generator()
    on_disk = (ROOT / "js" / "traits.gen.ts").read_text(encoding="utf-8")
    assert on_disk == generator.traits_ts(), "regenerate with: python scripts/write_traits_ts.py"


def test_every_synced_trait_is_documented_and_typed() -> None:
    generator = _generator()
    for _, view in generator.VIEWS:
        for name, trait in generator._synced(view).items():
            assert trait.help.strip(), f"{view.__name__}.{name} has no help="
            assert generator._ts_type(trait)  # raises for a type the generator cannot map


def test_a_new_trait_or_request_changes_the_contract() -> None:
    generator = _generator()
    before = generator.traits_ts()
    from hooklens.vis._residual import ResidualView
    from hooklens.vis._widget import rpc_method

    class Wider(ResidualView):
        depth = traitlets.Int(3, help="How deep.").tag(sync=True)

        @rpc_method("deeper")
        def _deeper(self) -> int:
            return 1

    generator.VIEWS[2] = ("Residual", Wider)
    after = generator.traits_ts()
    assert after != before
    assert "  /** How deep. Python: Int, default 3. */\n  depth: number;" in after
    assert 'export type ResidualRequest = "deeper" | "grid" | "topk" | "track";' in after
