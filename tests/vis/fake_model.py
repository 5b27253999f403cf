"""A small duck-typed stand-in for ``hooklens.HookedModel`` (the issue-3 API the views use).

A real computation, so the views' numbers can be checked: ``resid_pre`` of each layer plus that
layer's attention and MLP outputs gives its ``resid_post``; logits are ``lm_head(ln_f(final))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

VOCAB = [f"t{i}" for i in range(30)] + [" ", "\n", "<img src=x onerror=alert(1)>", "</script>"]


@dataclass
class FakeConfig:
    n_layers: int = 2
    n_heads: int = 3
    d_model: int = 8
    d_vocab: int = len(VOCAB)


class FakeCache(dict):  # type: ignore[type-arg]
    def __init__(self, data: dict[str, torch.Tensor], n_layers: int) -> None:
        super().__init__(data)
        self.n_layers = n_layers

    def accumulated_resid(self, layer: Any = None, incl_mid: bool = False) -> torch.Tensor:
        rows = [self[f"blocks.{i}.hook_resid_pre"] for i in range(self.n_layers)]
        rows.append(self[f"blocks.{self.n_layers - 1}.hook_resid_post"])
        return torch.stack(rows)  # (n_layers + 1, batch, pos, d_model)

    def decompose_resid(
        self, layer: Any = None, return_labels: bool = False
    ) -> tuple[torch.Tensor, list[str]]:
        parts, labels = [self["hook_embed"]], ["embed"]
        for i in range(self.n_layers):
            parts += [self[f"blocks.{i}.hook_attn_out"], self[f"blocks.{i}.hook_mlp_out"]]
            labels += [f"{i}_attn_out", f"{i}_mlp_out"]
        return torch.stack(parts), labels


class FakeHF(torch.nn.Module):
    def __init__(self, cfg: FakeConfig) -> None:
        super().__init__()
        self.base = torch.nn.Module()
        self.base.ln_f = torch.nn.LayerNorm(cfg.d_model)
        self.lm_head = torch.nn.Linear(cfg.d_model, cfg.d_vocab, bias=False)

    @property
    def base_model(self) -> torch.nn.Module:
        return self.base

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.lm_head


class FakeModel:
    def __init__(self, n_layers: int = 2, n_heads: int = 3, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.cfg = FakeConfig(n_layers=n_layers, n_heads=n_heads)
        d = self.cfg.d_model
        self.hf_model = FakeHF(self.cfg)
        with torch.no_grad():
            self.hf_model.base.ln_f.weight.uniform_(0.5, 1.5)
            self.hf_model.base.ln_f.bias.normal_()
        self.embed = torch.randn(self.cfg.d_vocab, d)
        self.w_attn = torch.randn(n_layers, d, d) * 0.5
        self.w_mlp = torch.randn(n_layers, d, d) * 0.5
        self.scores = torch.randn(n_layers, n_heads, 64, 64)
        self.calls: list[Any] = []

    def to_tokens(self, text: str) -> torch.Tensor:
        return torch.tensor([[VOCAB.index(word) for word in text.split("|")]])

    def to_str_tokens(self, tokens: Any) -> list[str]:
        ids = torch.as_tensor(tokens).reshape(-1).tolist()
        return [VOCAB[i] for i in ids]

    def run_with_cache(self, tokens: torch.Tensor, names_filter: Any = None) -> Any:
        self.calls.append(names_filter)
        ids = torch.as_tensor(tokens)
        pos = ids.shape[1]
        data: dict[str, torch.Tensor] = {}
        resid = self.embed[ids]  # (1, pos, d)
        data["hook_embed"] = resid
        mask = torch.ones(pos, pos).tril().bool()
        for layer in range(self.cfg.n_layers):
            data[f"blocks.{layer}.hook_resid_pre"] = resid
            scores = self.scores[layer, :, :pos, :pos].masked_fill(~mask, float("-inf"))
            data[f"blocks.{layer}.attn.hook_pattern"] = scores.softmax(-1)[None]
            attn_out = torch.tanh(resid @ self.w_attn[layer])
            mlp_out = torch.relu((resid + attn_out) @ self.w_mlp[layer])
            data[f"blocks.{layer}.hook_attn_out"] = attn_out
            data[f"blocks.{layer}.hook_mlp_out"] = mlp_out
            resid = resid + attn_out + mlp_out
            data[f"blocks.{layer}.hook_resid_post"] = resid
        logits = self.hf_model.lm_head(self.hf_model.base.ln_f(resid))
        if callable(names_filter):
            data = {k: v for k, v in data.items() if names_filter(k)}
        return logits, FakeCache(data, self.cfg.n_layers)

    def full_cache(self, text: str) -> Any:
        return self.run_with_cache(self.to_tokens(text))
