"""``ResidualView``: the residual stream layer by layer (logit lens, norms, contributions)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import traitlets

from .._engine.model import HookedModel
from .._engine.tokens import one_prompt, token_strings
from ._lens import Lens, compute_lens, track_token
from ._widget import HookLensWidget, RpcError, index_param, rpc_method
from ._wire import encode_tensor


class ResidualView(HookLensWidget):
    """The residual stream of ``model`` on one prompt, layer by layer.

    ``text_or_tokens``: a string, or ids of shape ``(pos,)`` / ``(1, pos)``. Rows are
    ``resid_pre`` of each layer then the final ``resid_post`` (``n_layers + 1`` rows). The view
    shows a rows x positions grid of the logit lens (top token and its probability), the norm of
    each residual, and each component of ``decompose_resid`` projected on the final residual
    direction; clicking a cell shows its top-``k`` tokens.
    """

    tokens = traitlets.List(traitlets.Unicode(), help="The prompt's token strings (pos).").tag(
        sync=True
    )
    row_labels = traitlets.List(
        traitlets.Unicode(), help='One label per row: "{layer}_pre" of each layer, "final_post".'
    ).tag(sync=True)
    contrib_labels = traitlets.List(
        traitlets.Unicode(), help="One label per decompose_resid component (embed, attn, mlp)."
    ).tag(sync=True)
    k = traitlets.Int(10, help="How many top tokens a clicked cell lists.").tag(sync=True)
    row = traitlets.Int(-1, help="Row of the selected (clicked) cell; -1 when none.").tag(sync=True)
    position = traitlets.Int(-1, help="Position of the selected cell; -1 when none.").tag(sync=True)
    tracked = traitlets.Int(
        -1, help="Token id whose probability and rank per layer are shown; -1 when none."
    ).tag(sync=True)

    def __init__(
        self, model: HookedModel, text_or_tokens: Any, *, k: int = 10, **kwargs: Any
    ) -> None:
        ids = one_prompt(model, text_or_tokens)
        self._lens: Lens = compute_lens(model, ids, k=k)
        self._decode = _token_decoder(model)
        self._model = model
        super().__init__(
            view="residual",
            tokens=token_strings(model, ids),
            row_labels=self._lens.row_labels,
            contrib_labels=self._lens.contrib_labels,
            k=int(self._lens.topk_ids.shape[-1]),
            **kwargs,
        )
        self.refresh_first_screen()
        self.observe(
            lambda _change: self.refresh_first_screen(), names=["row", "position", "tracked"]
        )

    @property
    def lens(self) -> Lens:
        """The computed arrays (shapes in :class:`hooklens.vis._lens.Lens`)."""
        return self._lens

    @rpc_method("grid")
    def _rpc_grid(self) -> dict[str, Any]:
        """Top-1 of every cell, norms and contributions.

        ``top_index`` (rows, pos) int32 indexes ``strings``; ``top_prob``/``norms`` (rows, pos)
        float32; ``contrib`` (components, pos) float32.
        """
        top = self._lens.topk_ids[..., 0]
        unique, index = np.unique(top, return_inverse=True)
        return {
            "strings": [self._decode(int(i)) for i in unique],
            "top_index": encode_tensor(index.reshape(top.shape), "int32"),
            "top_prob": encode_tensor(self._lens.topk_probs[..., 0]),
            "norms": encode_tensor(self._lens.norms),
            "contrib": encode_tensor(self._lens.contrib),
        }

    @rpc_method("topk")
    def _rpc_topk(self, row: int, position: int) -> dict[str, Any]:
        """The top-k tokens of one cell: ``ids`` (k,) int32, ``probs`` (k,) float32, strings."""
        rows, positions = self._lens.norms.shape
        index_param("row", row, rows)
        index_param("position", position, positions)
        ids = self._lens.topk_ids[row, position]
        return {
            "row": row,
            "position": position,
            "ids": encode_tensor(ids, "int32"),
            "probs": encode_tensor(self._lens.topk_probs[row, position]),
            "strings": [self._decode(int(i)) for i in ids],
        }

    @rpc_method("track")
    def _rpc_track(self, token: Any) -> dict[str, Any]:
        """Probability and rank of one token at every cell: ``probs`` float32 and ``ranks`` int32,
        both (rows, pos). ``token``: an id, or a string that is exactly one token."""
        token_id = self._token_id(token)
        probs, ranks = track_token(self._model, self._lens, token_id)
        return {
            "token": token_id,
            "string": self._decode(token_id),
            "probs": encode_tensor(probs),
            "ranks": encode_tensor(ranks, "int32"),
        }

    def _token_id(self, token: Any) -> int:
        vocab = int(self._model.cfg.d_vocab)
        if isinstance(token, bool) or not isinstance(token, (int, str)):
            raise RpcError("`token` must be a token id or a string that is one token.")
        if isinstance(token, str):
            try:
                return int(self._model.to_single_token(token))
            except Exception as error:  # the tokenizer's message says why
                raise RpcError(
                    f"{token!r} is not exactly one token ({error}); type one token, or its id."
                ) from error
        if not 0 <= token < vocab:
            raise RpcError(f"token id {token} is outside the vocabulary [0, {vocab}).")
        return int(token)

    def first_screen_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        yield ("grid", {})
        if self.row >= 0 and self.position >= 0:
            yield ("topk", {"row": self.row, "position": self.position})
        if self.tracked >= 0:
            yield ("track", {"token": self.tracked})

    def exported_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        rows, positions = self._lens.norms.shape
        yield ("grid", {})
        if self.tracked >= 0:
            yield ("track", {"token": self.tracked})
        for row in range(rows):
            for position in range(positions):
                yield ("topk", {"row": row, "position": position})


def _token_decoder(model: HookedModel) -> Any:
    """id -> the string the model's ``to_str_tokens`` gives for it (cached)."""
    memo: dict[int, str] = {}

    def decode(token_id: int) -> str:
        if token_id not in memo:
            memo[token_id] = token_strings(model, [token_id])[0]
        return memo[token_id]

    return decode
