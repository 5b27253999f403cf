"""The seed transcript, as an acceptance test: Pythia-410m's shapes through run_with_cache."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl

SEED_LAYER0 = [
    ("hook_embed", (6, 1024)),
    ("blocks.0.hook_resid_pre", (6, 1024)),
    ("blocks.0.ln1.hook_scale", (6, 1)),
    ("blocks.0.ln1.hook_normalized", (6, 1024)),
    ("blocks.0.attn.hook_q", (6, 16, 64)),
    ("blocks.0.attn.hook_k", (6, 16, 64)),
    ("blocks.0.attn.hook_v", (6, 16, 64)),
    ("blocks.0.attn.hook_rot_q", (6, 16, 64)),
    ("blocks.0.attn.hook_rot_k", (6, 16, 64)),
    ("blocks.0.attn.hook_attn_scores", (16, 6, 6)),
    ("blocks.0.attn.hook_pattern", (16, 6, 6)),
    ("blocks.0.attn.hook_z", (6, 16, 64)),
    ("blocks.0.hook_attn_out", (6, 1024)),
    ("blocks.0.ln2.hook_scale", (6, 1)),
    ("blocks.0.ln2.hook_normalized", (6, 1024)),
    ("blocks.0.mlp.hook_pre", (6, 4096)),
    ("blocks.0.mlp.hook_post", (6, 4096)),
    ("blocks.0.hook_mlp_out", (6, 1024)),
    ("blocks.0.hook_resid_post", (6, 1024)),
]


def test_seed_transcript():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    # Pythia-410m's config, with 2 of its 24 layers (layer shapes are per layer; 24 random
    # 1024-wide layers would only make the test slower).
    config = GPTNeoXConfig(
        vocab_size=50304, hidden_size=1024, num_hidden_layers=2, num_attention_heads=16,
        intermediate_size=4096, rotary_pct=0.25, use_parallel_residual=True,
        max_position_embeddings=2048, rotary_emb_base=10000,
    )  # fmt: skip
    torch.manual_seed(0)
    huggingface_model = GPTNeoXForCausalLM(config).eval()
    with pytest.warns(hl.NoTokenizerWarning, match="tokenizer="):
        model = hl.HookedModel.from_pretrained("EleutherAI/pythia-410m", hf_model=huggingface_model)
    # "<|endoftext|>The capital of Ireland is" in Pythia's tokenizer
    tokens = torch.tensor([[0, 510, 5347, 273, 14698, 310]])
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, remove_batch_dim=True)
        ref = huggingface_model(tokens).logits
    assert logits.shape == (1, 6, 50304)
    assert (logits - ref).abs().max() <= 1e-4
    layer0 = [(k, tuple(v.shape)) for k, v in cache.items() if not k.startswith("blocks.1.")]
    assert layer0[: len(SEED_LAYER0)] == SEED_LAYER0
    assert model.hf_model is huggingface_model  # wrapped as is
    # no weight copies: every parameter of the wrapper is the HF model's own tensor
    assert model.cfg.n_heads == 16 and model.cfg.d_vocab == 50304 and model.cfg.rotary_dim == 16
