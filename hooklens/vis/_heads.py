"""The map of all heads and the direct logit attribution view.

``HeadMap``: every layer x head of a model on one prompt, coloured by a head score (attention
to the first token, previous-token, induction; with an answer pair, direct logit attribution);
click a cell for that head's pattern. ``LogitAttributionView``: the same map opened on DLA, with
the embeddings' and each layer's attention/MLP contribution beside it. One forward in the
constructor; the front end fetches the score it shows (``scores {kind}``), the per-layer bars
(``layers``) and a clicked head's pattern (``pattern {layer, head}``), nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import traitlets

from .._engine.model import HookedModel
from .._engine.tokens import one_prompt, token_strings
from ._attention import attending_layers
from ._head_scores import (
    PATTERN_SCORES,
    head_logit_attribution,
    layer_logit_attribution,
    pattern_scores,
)
from ._port import PortedView
from ._widget import RpcError, index_param, rpc_method
from ._wire import encode_tensor

SCORE_LABELS = {
    "first_token": "attention to the first token",
    "previous_token": "previous-token attention",
    "induction": "induction attention",
    "dla": "direct logit attribution",
}


def _token_label(model: HookedModel, token: Any) -> str:
    if isinstance(token, str):
        return token
    return token_strings(model, [int(token)])[0]


class HeadMap(PortedView):
    """All layers x heads of ``model`` on one prompt, coloured by a head score.

    ``text_or_tokens``: a string or ids ``(pos,)`` / ``(1, pos)``. ``answer`` / ``wrong``: a
    one-token string or a token id each (both or neither); with them the map also offers direct
    logit attribution to ``logit[answer] - logit[wrong]`` at the last position. Kernel data:
    patterns float16 ``(n_layers, n_heads, pos, pos)``, scores float32 ``(n_layers, n_heads)``.
    """

    tokens = traitlets.List(traitlets.Unicode(), help="The prompt's token strings.").tag(sync=True)
    n_layers = traitlets.Int(1, help="Rows of the map: the layers that attend.").tag(sync=True)
    layer_labels = traitlets.List(
        traitlets.Unicode(),
        help="Label of each row (L3): a hybrid's rows are the layers that attend.",
    ).tag(sync=True)
    n_heads = traitlets.Int(1, help="Columns of the map.").tag(sync=True)
    score_kinds = traitlets.List(
        traitlets.Unicode(), help="The scores the map can show (dla only with an answer pair)."
    ).tag(sync=True)
    score = traitlets.Unicode("induction", help="The score shown, one of score_kinds.").tag(
        sync=True
    )
    layer = traitlets.Int(
        -1, help="Row of the clicked head (its layer is layer_labels[row]); -1 when none."
    ).tag(sync=True)
    head = traitlets.Int(-1, help="Clicked head; -1 when none.").tag(sync=True)
    answer = traitlets.Unicode("", help="The answer token's string; empty without a pair.").tag(
        sync=True
    )
    wrong = traitlets.Unicode("", help="The wrong token's string; empty without a pair.").tag(
        sync=True
    )
    show_layers = traitlets.Bool(
        False, help="Show the embeddings' and each layer's attention/MLP attribution beside."
    ).tag(sync=True)

    first_screen_traits = ("score", "layer", "head")

    def first_screen_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = [("scores", {"kind": self.score})]
        if self.layer >= 0 and self.head >= 0:
            out.append(("pattern", {"layer": self.layer, "head": self.head}))
        if self.show_layers:
            out.append(("layers", {}))
        return out

    def __init__(
        self,
        model: HookedModel,
        text_or_tokens: Any,
        answer: Any = None,
        wrong: Any = None,
        *,
        score: str | None = None,
        **kwargs: Any,
    ) -> None:
        if (answer is None) != (wrong is None):
            raise ValueError(
                "give both `answer` and `wrong` (a one-token string or id each) for direct "
                "logit attribution, or neither."
            )
        ids = one_prompt(model, text_or_tokens)
        attending, n_heads = attending_layers(model), model.cfg.n_heads
        with torch.no_grad():
            _, cache = model.run_with_cache(ids)
        self._patterns = np.stack(
            [
                cache[f"blocks.{layer}.attn.hook_pattern"][0].to("cpu", torch.float16).numpy()
                for layer in attending
            ]
        )
        self._scores = pattern_scores(self._patterns, [int(i) for i in ids[0].tolist()])
        kinds = list(PATTERN_SCORES)
        self._layer_attrs: tuple[list[str], np.ndarray] | None = None
        labels = ("", "")
        if answer is not None:
            with torch.no_grad():
                self._scores["dla"] = head_logit_attribution(cache, answer, wrong)
                self._layer_attrs = layer_logit_attribution(cache, answer, wrong)
            kinds.append("dla")
            labels = (_token_label(model, answer), _token_label(model, wrong))
        chosen = score or ("dla" if answer is not None else "induction")
        if chosen not in kinds:
            raise ValueError(f"score must be one of {kinds}, got {chosen!r}")
        super().__init__(
            view="heads",
            tokens=token_strings(model, ids),
            n_layers=len(attending),
            layer_labels=[f"L{layer}" for layer in attending],
            n_heads=n_heads,
            score_kinds=kinds,
            score=chosen,
            answer=labels[0],
            wrong=labels[1],
            **kwargs,
        )

    def scores(self, kind: str) -> np.ndarray:
        """The score ``kind`` of every head: float32 ``(n_layers, n_heads)``."""
        if kind not in self._scores:
            raise RpcError(f"score must be one of {sorted(self._scores)}, got {kind!r}")
        return self._scores[kind]

    @rpc_method("scores")
    def _rpc_scores(self, kind: str) -> dict[str, Any]:
        """``{"kind", "label", "values": float32 (n_layers, n_heads)}``."""
        values = self.scores(kind)
        return {"kind": kind, "label": SCORE_LABELS[kind], "values": encode_tensor(values)}

    @rpc_method("pattern")
    def _rpc_pattern(self, layer: int, head: int) -> dict[str, Any]:
        """``{"layer", "head", "pattern": float16 (pos, pos)}`` of one head."""
        index_param("layer", layer, self.n_layers)
        index_param("head", head, self.n_heads)
        pattern = encode_tensor(self._patterns[layer, head], "float16")
        return {"layer": layer, "head": head, "pattern": pattern}

    @rpc_method("layers")
    def _rpc_layers(self) -> dict[str, Any]:
        """``{"labels": [...], "values": float32 (components,)}``: embeddings' and each layer's
        attention / MLP direct logit attribution."""
        if self._layer_attrs is None:
            raise RpcError("this map has no answer pair: pass answer= and wrong= for DLA")
        labels, values = self._layer_attrs
        return {"labels": labels, "values": encode_tensor(values)}

    def exported_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        """Every score, every head's pattern (2 bytes a value) and, with a pair, the layers."""
        out: list[tuple[str, dict[str, Any]]] = [("scores", {"kind": k}) for k in self._scores]
        out += [
            ("pattern", {"layer": layer, "head": head})
            for layer in range(self.n_layers)
            for head in range(self.n_heads)
        ]
        if self._layer_attrs is not None:
            out.append(("layers", {}))
        return out


class LogitAttributionView(HeadMap):
    """Direct logit attribution of ``model`` on one prompt for ``answer`` vs ``wrong`` (a
    one-token string or id each): per layer (embeddings, attention, MLP) and per head, with a
    head's pattern one click away."""

    def __init__(
        self, model: HookedModel, text_or_tokens: Any, answer: Any, wrong: Any, **kwargs: Any
    ) -> None:
        kwargs.setdefault("score", "dla")
        super().__init__(model, text_or_tokens, answer, wrong, show_layers=True, **kwargs)
