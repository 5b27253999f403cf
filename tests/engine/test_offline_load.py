"""Loading by Hub name with no Hub: fail at once with what works instead, or use the cache."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import transformers

import hooklens as hl

from .conftest import _tokenizer, build_hf

_COMMIT = "0123456789abcdef0123456789abcdef01234567"
_WHAT_WORKS = ("hl.demo_model()", "path/to/folder", "gguf_file=", "hf_model=")


@pytest.fixture
def no_transformers_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the load reaches transformers' own (retrying) loaders."""

    def reached(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the load reached transformers instead of failing first")

    for cls in (transformers.AutoModelForCausalLM, transformers.AutoConfig):
        monkeypatch.setattr(cls, "from_pretrained", reached)


@pytest.fixture
def unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> str:
    """Online mode, with the Hub endpoint on a loopback port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
    return endpoint


def test_offline_name_not_in_cache_fails_before_transformers(
    tmp_path: Path, no_transformers_download: None
) -> None:
    with pytest.raises(OSError, match="HF_HUB_OFFLINE") as info:
        hl.HookedModel.from_pretrained("some-org/not-cached", cache_dir=str(tmp_path))
    assert "'some-org/not-cached'" in str(info.value)
    assert all(way in str(info.value) for way in _WHAT_WORKS)


def test_unreachable_hub_fails_before_transformers(
    tmp_path: Path, unreachable_hub: str, no_transformers_download: None
) -> None:
    with pytest.raises(OSError, match="cannot be reached") as info:
        hl.HookedModel.from_pretrained("some-org/not-cached", cache_dir=str(tmp_path))
    assert unreachable_hub in str(info.value)
    assert all(way in str(info.value) for way in _WHAT_WORKS)


def _cache_with_tiny_model(cache: Path, repo: str) -> None:
    """The layout huggingface_hub's cache has after a download of `repo` at `main`."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(_COMMIT)
    snapshot = folder / "snapshots" / _COMMIT
    build_hf("llama").save_pretrained(snapshot)
    _tokenizer().save_pretrained(snapshot)


@pytest.mark.parametrize("hub", ["offline", "unreachable"])
def test_name_in_cache_loads_without_the_hub(
    tmp_path: Path, hub: str, request: pytest.FixtureRequest
) -> None:
    if hub == "unreachable":
        request.getfixturevalue("unreachable_hub")
    _cache_with_tiny_model(tmp_path, "some-org/tiny")
    model = hl.HookedModel.from_pretrained("some-org/tiny", cache_dir=str(tmp_path))
    assert model.tokenizer is not None
    assert model("mary went to the store").shape[-1] == model.cfg.d_vocab


def test_wrapping_a_model_offline_warns_about_the_tokenizer_at_once(
    no_transformers_download: None,
) -> None:
    with pytest.warns(hl.NoTokenizerWarning, match="HF_HUB_OFFLINE"):
        model = hl.HookedModel.from_pretrained("some-org/not-cached", hf_model=build_hf("llama"))
    assert model.tokenizer is None
