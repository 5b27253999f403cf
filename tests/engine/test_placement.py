"""`model.to(device_or_dtype)`, `.cuda()`, `.cpu()`: the model moves under its lock, returns
itself, and every point, cache and recorded run works on the moved model."""

from __future__ import annotations

import threading

import pytest
import torch

import hooklens as hl
from hooklens import patching


def _fresh(tiny_dir, family: str) -> hl.HookedModel:
    """A model of its own (the session's `tiny` models must stay float32 on the CPU)."""
    return hl.HookedModel.from_pretrained(str(tiny_dir(family)))


def _hf(tiny_dir, family: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_dir(family)).eval()


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_to_dtype_equals_the_hf_model_cast(tiny_dir, tokens, family, capsys):
    model = _fresh(tiny_dir, family)
    corrupted = tokens[:1].flip(-1)
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(tokens[:1])
    patcher = patching.Patcher(model, corrupted, clean_cache)  # recorded in float32
    cell = [("blocks.1.hook_resid_pre", {"pos": 3})]

    assert model.to(torch.float64) is model
    assert "Changing model dtype to torch.float64" in capsys.readouterr().out  # as TL prints
    assert model.cfg.dtype == torch.float64
    reference = _hf(tiny_dir, family).double()
    with torch.no_grad():
        want = reference(tokens).logits
        logits, cache = model.run_with_cache(tokens)
    assert logits.dtype == torch.float64
    torch.testing.assert_close(logits, want)
    torch.testing.assert_close(model(tokens), want)
    assert cache["blocks.0.attn.hook_z"].dtype == torch.float64
    # a point recomputed from the weights (read when it fires) works on the cast weights
    name = "blocks.0.attn.hook_result"
    with torch.no_grad():
        _, heads = model.run_with_cache(tokens, names_filter=[name, "blocks.0.hook_attn_out"])
    bias = model.b_O[0] if model.b_O is not None else 0
    torch.testing.assert_close(heads[name].sum(-2) + bias, heads["blocks.0.hook_attn_out"])

    # the Patcher recorded before the move records again: same as a fresh one and as a full
    # patched forward, in float64 (the float32 source cache is cast as it is written)
    with torch.no_grad():
        moved = patcher(cell)
        fresh = patching.Patcher(model, corrupted, clean_cache)(cell)
        full = patching.patch(model, corrupted, clean_cache, cell)
    assert moved.dtype == torch.float64
    torch.testing.assert_close(moved, fresh)
    torch.testing.assert_close(moved, full)

    model.to(torch.float32, print_details=False)
    assert capsys.readouterr().out == ""
    assert model.cfg.dtype == torch.float32 and model(tokens).dtype == torch.float32
    torch.testing.assert_close(model(tokens), _hf(tiny_dir, family)(tokens).logits)


def test_cpu_and_errors(tiny_dir, tokens):
    model = _fresh(tiny_dir, "llama")
    assert model.cpu() is model and model.cfg.device == torch.device("cpu")
    model.move_model_modules_to_device()
    assert model(tokens).device.type == "cpu"
    moves = model.moves
    with pytest.raises(hl.InputError, match="one device"):
        model.to([torch.float64])  # type: ignore[arg-type]
    with pytest.raises(hl.ArgumentError, match="'print_details'"):
        model.to(torch.float64, print_detail=False)
    assert model.cfg.dtype == torch.float32 and model.moves == moves  # nothing was half-applied


def test_cfg_device_then_move_model_modules_to_device(tiny_dir, tokens):
    """TransformerLens's idiom: `model.cfg.device = ...` records the target (nothing moves
    yet), `move_model_modules_to_device()` moves there; every other cfg field is read-only and
    its error names the hooklens call."""
    model = _fresh(tiny_dir, "llama")
    want = model(tokens)
    moves = model.moves
    model.cfg.device = "cpu"
    assert model.cfg.device == torch.device("cpu") and model.moves == moves  # not moved yet
    model.move_model_modules_to_device()
    assert model.moves == moves + 1 and model.cfg.device == torch.device("cpu")
    torch.testing.assert_close(model(tokens), want)
    with pytest.raises(AttributeError, match=r"model\.to\(torch\.float16\)"):
        model.cfg.dtype = torch.float64
    with pytest.raises(AttributeError, match=r"model\.set_use_attn_result\(True\)"):
        model.cfg.use_attn_result = True
    with pytest.raises(AttributeError, match=r"cfg\.n_layers = \.\.\.: .* read-only"):
        model.cfg.n_layers = 3
    with pytest.raises(ValueError, match="move_model_modules_to_device"):
        model.cfg.device = 3.5
    assert model.cfg.n_layers == 2 and model.cfg.dtype == torch.float32
    assert model.cfg.device == torch.device("cpu")


def test_to_waits_for_the_model(tiny_dir, tokens):
    """A move from another thread waits while a job holds the model (no forward runs on half-
    cast weights)."""
    model = _fresh(tiny_dir, "llama")
    started = threading.Event()

    def move():
        started.set()
        model.to(torch.float64, print_details=False)

    with model.owner.hold():
        mover = threading.Thread(target=move)
        mover.start()
        started.wait()
        mover.join(timeout=0.5)
        assert mover.is_alive()  # waiting for the lock
        assert next(model.hf_model.parameters()).dtype == torch.float32
    mover.join()
    assert model.cfg.dtype == torch.float64 and model(tokens).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_and_back(tiny_dir, tokens):
    model = _fresh(tiny_dir, "llama")
    with torch.no_grad():
        want = model(tokens)
        _, clean_cache = model.run_with_cache(tokens[:1])
    patcher = patching.Patcher(model, tokens[:1].flip(-1), clean_cache)
    cell = [("blocks.1.attn.hook_z", {"head": 1})]
    with torch.no_grad():
        on_cpu = patcher(cell)
    model.cfg.device = "cuda"  # TransformerLens's spelling of model.cuda()
    assert next(model.hf_model.parameters()).device.type == "cpu"
    model.move_model_modules_to_device()
    assert model.cfg.device.type == "cuda"
    assert next(model.hf_model.parameters()).device.type == "cuda"
    assert model.cuda() is model and model.cfg.device.type == "cuda"
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        on_gpu = patcher(cell)  # recorded on the CPU, source cache on the CPU
    assert logits.device.type == "cuda" and cache["blocks.0.hook_resid_pre"].device.type == "cuda"
    torch.testing.assert_close(logits.cpu(), want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=1e-4)
    result = patching.sweep(model, tokens[:1], tokens[:1].flip(-1),
                            hl.metrics.logit_diff(model, 5, 9), progress=False)  # fmt: skip
    assert torch.isfinite(result.values).all()
    assert model.cpu() is model and model(tokens).device.type == "cpu"
    torch.testing.assert_close(model(tokens), want, atol=1e-4, rtol=1e-4)
