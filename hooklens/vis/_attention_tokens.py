"""CircuitsVis' ``attention_patterns`` (tokens tinted by every head at once) and
``attention_pattern`` (one head's heatmap)."""

from __future__ import annotations

from typing import Any

import traitlets

from .._engine.kwargs import checked
from .._engine.model import HookedModel
from ._attention import AttentionPatterns, _as_patterns, _head_names, attention_heads
from ._port import reject_unimplemented
from ._tokens import as_token_strings


class AttentionTokens(AttentionPatterns):
    """Tokens tinted by the attention of all shown heads at once, a colour per head.

    Each head's colour is blended from the background towards the head's hue by its attention;
    a token takes the darkest of the shown heads per channel (so heads mix). With no token in
    focus a token shows the mean over the keys it attends to; with a focused (hovered or
    clicked, i.e. locked) token, each token shows the attention between it and the focus. Head
    toggles hide heads; the patterns of the head grid are fetched like ``AttentionPatterns``.
    """

    heads_shown = traitlets.List(
        traitlets.Bool(), help="Per head: whether it tints the tokens (head toggles)."
    ).tag(sync=True)
    locked = traitlets.Int(-1, help="Clicked (locked) token; -1 when none.").tag(sync=True)
    direction = traitlets.Enum(
        ("dest_to_src", "src_to_dest"),
        "dest_to_src",
        help='"dest_to_src": the focused token is the query (destination); "src_to_dest": the '
        "key (source).",
    ).tag(sync=True)

    def __init__(self, tokens: list[str], patterns: Any, **kwargs: Any) -> None:
        super().__init__(tokens, [patterns], **kwargs)
        self.view = "attention_patterns"
        self.heads_shown = [True] * self.n_heads

    @traitlets.validate("locked")
    def _valid_locked(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not -1 <= value < len(self.tokens):
            raise traitlets.TraitError(f"locked must be -1 or in [0, {len(self.tokens)})")
        return value


@checked()
def attention_patterns(
    tokens: Any,
    attention: Any,
    *,
    model: HookedModel | None = None,
    tokenizer: Any = None,
) -> AttentionTokens:
    """CircuitsVis' ``attention_patterns(tokens, attention)``: the tokens tinted by the
    attention of every head at once (a colour per head, head toggles, click a token to lock it).

    ``attention``: ``(n_heads, dest, src)``; ``tokens``: ``n`` strings (or ids with a model).
    """
    strings = as_token_strings(tokens, model=model, tokenizer=tokenizer)
    patterns = _as_patterns(attention, len(strings))
    return AttentionTokens(
        strings,
        patterns,
        head_names=_head_names(None, patterns.shape[0]),
        layer_labels=[],
        mode="patterns",
    )


@checked()
def attention_pattern(
    tokens: Any,
    attention: Any,
    max_value: float | None = None,
    min_value: float | None = None,
    negative_color: str | None = None,
    show_axis_labels: bool | None = None,
    positive_color: str | None = None,
    mask_upper_tri: bool | None = None,
    *,
    model: HookedModel | None = None,
    tokenizer: Any = None,
) -> AttentionPatterns:
    """CircuitsVis' ``attention_pattern``: one head's ``(dest, src)`` heatmap, hover for values.

    ``attention``: ``(dest, src)`` (a ``(1, dest, src)`` head is accepted). The range, colours
    and mask mean what they mean for :func:`attention_heads`; the axes always carry the tokens,
    so ``show_axis_labels=False`` is not implemented.
    """
    if show_axis_labels is not None and not show_axis_labels:
        reject_unimplemented(
            "attention_pattern",
            "The heatmap always labels its axes with the tokens.",
            show_axis_labels=show_axis_labels,
        )
    strings = as_token_strings(tokens, model=model, tokenizer=tokenizer)
    patterns = _as_patterns(attention, len(strings))
    if patterns.shape[0] != 1:
        raise ValueError(
            f"attention_pattern shows one head: pass (dest, src), got {patterns.shape[0]} heads; "
            "use attention_heads for several."
        )
    return attention_heads(
        patterns,
        strings,
        ["Attention"],
        max_value=max_value,
        min_value=min_value,
        negative_color=negative_color,
        positive_color=positive_color,
        mask_upper_tri=mask_upper_tri,
    )
