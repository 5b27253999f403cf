"""Tiny random models of every supported family, saved with save_pretrained and loaded by path.

Each family's folder also gets a small word-level tokenizer, so text input works offline.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers/huggingface_hub import

from pathlib import Path
from typing import Any

import pytest
import torch

import hooklens as hl

_TEXT = "the capital of france ireland is paris dublin a an and cat dog sat on mat when mary"
WORDS = [*_TEXT.split(), "john", "went", "to", "store", "gave", "drink", "hello", "world"]
VOCAB = 128


def _tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


_SPECIAL = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
_LLAMA = {
    "vocab_size": VOCAB,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
    **_SPECIAL,
}


def family_config(family: str) -> Any:
    """A tiny config of `family` (2 layers, d_model 32, 4 heads; GQA 2 KV heads where possible)."""
    import transformers as tf

    if family == "gpt2":
        return tf.GPT2Config(
            vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, **_SPECIAL
        )
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, rotary_pct=0.25, max_position_embeddings=64, **_SPECIAL,
        )  # fmt: skip
    if family == "gpt_neox_seq":
        return tf.GPTNeoXConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, rotary_pct=0.5, max_position_embeddings=64,
            use_parallel_residual=False, **_SPECIAL,
        )  # fmt: skip
    if family == "gptj":
        return tf.GPTJConfig(
            vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, rotary_dim=4,
            **_SPECIAL,
        )  # fmt: skip
    if family == "opt":
        return tf.OPTConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
            num_attention_heads=4, max_position_embeddings=64, word_embed_proj_dim=32,
            **_SPECIAL,
        )  # fmt: skip
    if family == "llama":
        return tf.LlamaConfig(**_LLAMA)
    if family == "mistral":
        return tf.MistralConfig(**_LLAMA, sliding_window=4)
    if family == "qwen2":
        return tf.Qwen2Config(**_LLAMA)
    if family == "qwen3":
        return tf.Qwen3Config(**_LLAMA, head_dim=8)
    if family == "gemma2":
        return tf.Gemma2Config(
            **_LLAMA, head_dim=8, sliding_window=4, query_pre_attn_scalar=8,
            attn_logit_softcapping=5.0, final_logit_softcapping=3.0,
        )  # fmt: skip
    if family == "gemma3":
        return tf.Gemma3TextConfig(
            **_LLAMA, head_dim=8, sliding_window=4, query_pre_attn_scalar=8,
            layer_types=["sliding_attention", "full_attention"],
        )  # fmt: skip
    if family == "phi3":
        return tf.Phi3Config(**_LLAMA)
    if family == "gpt_neo":
        return tf.GPTNeoConfig(
            vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
            max_position_embeddings=64, attention_types=[[["global", "local"], 1]], window_size=4,
            **_SPECIAL,
        )  # fmt: skip
    if family == "bloom":
        return tf.BloomConfig(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4, **_SPECIAL)
    if family == "gpt_bigcode":
        return tf.GPTBigCodeConfig(
            vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, **_SPECIAL
        )
    raise KeyError(family)


FAMILIES = [
    "gpt2", "gpt_neox", "gptj", "opt", "llama", "mistral", "qwen2", "qwen3", "gemma2",
    "gemma3", "phi3",
]  # fmt: skip


def build_hf(family: str, seed: int = 0) -> Any:
    from transformers import AutoModelForCausalLM, Gemma3ForCausalLM

    torch.manual_seed(seed)
    config = family_config(family)
    if family == "gemma3":
        model = Gemma3ForCausalLM(config)
    else:
        model = AutoModelForCausalLM.from_config(config)
    # HF's init (std 0.02) makes near-uniform attention; larger weights make tests sharper.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.normal_(0, 0.2)
            elif "norm" in name or "ln" in name:
                p.uniform_(0.5, 1.5) if p.mean() > 0.5 else p.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory):
    """family -> folder with a saved tiny model and tokenizer (built once per session)."""
    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            path = tmp_path_factory.mktemp(family)
            build_hf(family).save_pretrained(path)
            _tokenizer().save_pretrained(path)
            made[family] = path
        return made[family]

    return get


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """family -> HookedModel loaded by path (one per family per session)."""
    loaded: dict[str, hl.HookedModel] = {}

    def get(family: str) -> hl.HookedModel:
        if family not in loaded:
            loaded[family] = hl.HookedModel.from_pretrained(str(tiny_dir(family)))
        return loaded[family]

    return get


@pytest.fixture
def tokens() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(4, VOCAB, (2, 8))


@pytest.fixture
def run(tiny, tokens):
    """family -> (model, logits, full cache) of `tokens`."""

    def get(family):
        model = tiny(family)
        with torch.no_grad():
            logits, cache = model.run_with_cache(tokens)
        return model, logits, cache

    return get


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """model type -> (Outcome, HookedModel or None) of the installed transformers' registry
    (`hooklens/architectures/_registry.py`), built once per session."""
    from hooklens.architectures._registry import build, load

    done: dict[str, tuple] = {}

    def get(model_type: str):
        if model_type not in done:
            folder = tmp_path_factory.mktemp("registry") / model_type
            failed = build(model_type, folder)
            done[model_type] = (failed, None) if failed else load(model_type, folder, _tokenizer())
        return done[model_type]

    return get


def stream_entering(model: Any, layer: int) -> torch.nn.Module:
    """The module whose first input is the residual stream entering block `layer`: the block,
    or where the model runs each layer's parts itself (XLM's layer views) its attention."""
    block = model.hf_model.get_submodule(model.spec.blocks)[layer]
    return block if model.spec.layer_lists is None else block.get_submodule(model.spec.attn)


def raw_edit_logits(hf: Any, module: torch.nn.Module, edit: Any, tokens: torch.Tensor) -> Any:
    """HF's logits of `tokens` with `edit(output)` as a raw forward hook on `module`: what the
    same edit made at the point read there must give."""
    handle = module.register_forward_hook(lambda m, a, out: edit(out))
    try:
        with torch.no_grad():
            return hf(tokens, use_cache=False).logits
    finally:
        handle.remove()


def randomize_biases(hf: torch.nn.Module) -> None:
    """Every bias of `hf` random, in place (Hugging Face initializes them to zero, which would
    hide a misplaced bias); seeded, so a model gets the same biases each time."""
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if p.ndim == 1 and name.endswith("bias"):
                p.normal_(0, 0.3)


def assert_full_pass_sweep(model: hl.HookedModel, why: str) -> None:
    """Partial forwards are refused, saying `why` (words of it), and a resid_pre sweep, run
    with full passes, equals patching each cell by hand."""
    from hooklens._engine.partial import RecordedRun

    clean, corrupted = torch.tensor([[5, 9, 17, 33]]), torch.tensor([[5, 9, 18, 33]])

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, -1, 7] - logits[:, -1, 8]

    with model.owner.hold():
        run = RecordedRun(model, corrupted)
    assert not run.skips and why in run.why_not
    result = hl.patching.sweep(
        model, clean, corrupted, metric, "resid_pre", normalize=False, progress=False
    )
    assert_resid_pre_sweep_equals_each_patch(model, clean, corrupted, metric, result.values)


def assert_resid_pre_sweep_equals_each_patch(
    model: hl.HookedModel, clean: torch.Tensor, corrupted: torch.Tensor, metric: Any,
    values: torch.Tensor, point: str = "resid_pre",
) -> None:  # fmt: skip
    """`values` (n_layers, pos), a resid_pre sweep's (or `point`'s: "attn_out"), equal `metric`
    of the corrupted run with each (layer, position) patched from the clean run by hand, one
    full forward per cell."""
    _, clean_cache = model.run_with_cache(clean)
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.hook_{point}"
        for pos in range(clean.shape[1]):

            def patch(x: torch.Tensor, hook: Any, pos: int = pos, name: str = name) -> torch.Tensor:
                x = x.clone()
                x[:, pos] = clean_cache[name][:, pos]
                return x

            with torch.no_grad():
                want = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, patch)]))
            torch.testing.assert_close(values[layer, pos], want[0], atol=1e-4, rtol=1e-4)
