"""Attention views: one canvas heatmap per head, a layer picker, hover for exact values.

The patterns stay in the kernel (float16, one array per layer); the front end asks for the layer
it shows with the ``attention`` request (see :mod:`._widget`), so switching layers sends one
layer's ``(n_heads, q, k)`` patterns and nothing else.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import traitlets

from .._engine.kwargs import checked
from .._engine.model import HookedModel
from .._engine.tokens import one_prompt, token_strings
from ._port import PortedView
from ._tokens import as_token_strings
from ._widget import index_param, rpc_method
from ._wire import as_numpy, decode_tensor, encode_tensor

_EXPORT_BUDGET = (
    "Exporting every layer's attention patterns would write {total:.0f} MB (over the "
    "{budget:.0f} MB budget): the export holds layers {layers} only. Pass layers=[...] to choose "
    'them, or layers="all" for every layer.'
)


def _as_patterns(attention: Any, n_tokens: int) -> np.ndarray:
    """CircuitsVis' ``attention`` as float16 ``(n_heads, q, k)``.

    Accepts ``(n_heads, q, k)``, ``(1, n_heads, q, k)`` (a batch of one) or ``(q, k)`` (one head).
    """
    array = as_numpy(attention).astype(np.float32)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(
            f"`attention` must have shape (n_heads, dest, src), got {tuple(array.shape)}."
        )
    if array.shape[1] != n_tokens or array.shape[2] != n_tokens:
        raise ValueError(
            f"`attention` has shape {tuple(array.shape)} but there are {n_tokens} tokens; "
            "expected (n_heads, n_tokens, n_tokens)."
        )
    return np.ascontiguousarray(array.astype(np.float16))


class AttentionPatterns(PortedView):
    """Attention patterns of one or more layers; the front end fetches one layer at a time.

    Synced state only: token strings, sizes, the selected layer/head and the pinned query/key.
    Patterns live in ``self._patterns``: one float16 array ``(n_heads, q, k)`` per layer.
    """

    tokens = traitlets.List(traitlets.Unicode(), help="The token strings (q = k = n).").tag(
        sync=True
    )
    n_layers = traitlets.Int(1, help="How many layers the view holds patterns of.").tag(sync=True)
    n_heads = traitlets.Int(1, help="Heads per layer.").tag(sync=True)
    layer = traitlets.Int(0, help="The layer shown, in [0, n_layers).").tag(sync=True)
    head = traitlets.Int(0, help="The head shown enlarged, in [0, n_heads).").tag(sync=True)
    query = traitlets.Int(-1, help="Pinned (clicked) query position; -1 when none.").tag(sync=True)
    key = traitlets.Int(-1, help="Pinned (clicked) key position; -1 when none.").tag(sync=True)
    mode = traitlets.Enum(
        ("heads", "patterns"),
        "heads",
        help='"heads": head grid and the enlarged head first; "patterns": token strip first.',
    ).tag(sync=True)
    head_names = traitlets.List(traitlets.Unicode(), help="One label per head.").tag(sync=True)
    max_value = traitlets.Float(
        1.0,
        help='Value drawn at full positive colour when color_scale is "fixed" (higher clip).',
    ).tag(sync=True)
    min_value = traitlets.Float(
        -1.0,
        help='Value drawn at full negative colour when color_scale is "fixed" (CircuitsVis).',
    ).tag(sync=True)
    color_scale = traitlets.Enum(
        ("skip_first", "fixed", "per_row"),
        "skip_first",
        help='"skip_first": 0 to the head\'s largest value outside key 0 (the first token, '
        'often an attention sink, may clip); "fixed": min_value to max_value; "per_row": each '
        "query row divided by its own largest value outside key 0.",
    ).tag(sync=True)
    gamma = traitlets.Float(
        1.0, help="Exponent on the normalised value (< 1 lifts small values); 1 is linear."
    ).tag(sync=True)
    positive_color = traitlets.Unicode(
        "", help="CSS colour of full positive values; the theme's when empty."
    ).tag(sync=True)
    negative_color = traitlets.Unicode(
        "", help="CSS colour of full negative values; the theme's when empty."
    ).tag(sync=True)
    mask_upper_tri = traitlets.Bool(
        True, help="Draw keys after the query (causal attention's masked cells) as masked."
    ).tag(sync=True)
    held_layers = traitlets.List(
        traitlets.Int(),
        help="Layers an exported page holds (its picker offers only these); [] when live.",
    ).tag(sync=True)
    layer_labels = traitlets.List(
        traitlets.Unicode(),
        help="Label of each layer index (e.g. L3); empty when the patterns have no layer.",
    ).tag(sync=True)
    title = traitlets.Unicode("", help="Heading above the view; none when empty.").tag(sync=True)

    export_options = ("layers",)
    #: Pattern bytes a default export writes at most; beyond it, it keeps the layers nearest the
    #: shown one and warns (pass ``layers="all"`` or a list to choose).
    EXPORT_BYTES: ClassVar[int] = 50_000_000

    def __init__(self, tokens: list[str], patterns: Sequence[np.ndarray], **kwargs: Any) -> None:
        if not patterns:
            raise ValueError("there are no attention patterns to show")
        self._patterns = [np.ascontiguousarray(p, dtype=np.float16) for p in patterns]
        n_heads = self._patterns[0].shape[0]
        kwargs.setdefault("head_names", [f"H{h}" for h in range(n_heads)])
        kwargs.setdefault("layer_labels", [f"L{layer}" for layer in range(len(self._patterns))])
        super().__init__(
            view="attention",
            tokens=tokens,
            n_layers=len(self._patterns),
            n_heads=n_heads,
            **kwargs,
        )
        self.refresh_first_screen()
        self.observe(lambda _change: self.refresh_first_screen(), names="layer")

    @traitlets.validate("layer")
    def _valid_layer(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 0 <= value < self.n_layers:
            raise traitlets.TraitError(f"layer must be in [0, {self.n_layers}), got {value}")
        return value

    @traitlets.validate("head")
    def _valid_head(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 0 <= value < self.n_heads:
            raise traitlets.TraitError(f"head must be in [0, {self.n_heads}), got {value}")
        return value

    def pattern(self, layer: int) -> np.ndarray:
        """The patterns of ``layer`` as sent to the browser: float16 ``(n_heads, q, k)``."""
        return self._patterns[layer]

    @rpc_method("attention")
    def _rpc_attention(self, layer: int) -> dict[str, Any]:
        """``{"layer": l, "pattern": (n_heads, q, k) float16}``."""
        index_param("layer", layer, len(self._patterns))
        return {"layer": layer, "pattern": encode_tensor(self._patterns[layer], "float16")}

    def first_screen_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return [("attention", {"layer": self.layer})]

    def export_layers(self, layers: Iterable[int] | str | None = None) -> list[int]:
        """The layers an export holds: ``layers=[...]``, ``"all"``, or by default every layer
        when they fit ``EXPORT_BYTES``, else the shown layer and its nearest (with a warning)."""
        every = list(range(len(self._patterns)))
        if isinstance(layers, str):
            if layers != "all":
                raise ValueError(f'`layers` must be layer indices or "all", got {layers!r}')
            return every
        if layers is not None:
            chosen = sorted({int(x) for x in layers})
            for layer in chosen:
                index_param("layers", layer, len(every))
            if not chosen:
                raise ValueError("`layers` is empty: name at least one layer to export")
            return chosen
        per_layer = self._patterns[0].nbytes
        if per_layer * len(every) <= self.EXPORT_BYTES:
            return every
        fit = max(1, self.EXPORT_BYTES // per_layer)
        chosen = sorted(sorted(every, key=lambda x: (abs(x - self.layer), x))[:fit])
        warnings.warn(
            _EXPORT_BUDGET.format(
                total=per_layer * len(every) / 1e6,
                budget=self.EXPORT_BYTES / 1e6,
                layers=chosen,
            ),
            stacklevel=4,
        )
        return chosen

    def exported_requests(
        self, layers: Iterable[int] | str | None = None
    ) -> Iterable[tuple[str, dict[str, Any]]]:
        """The layers of :meth:`export_layers` (big models: 2 bytes per value per layer)."""
        return [("attention", {"layer": layer}) for layer in self.export_layers(layers)]

    def export_state(self, layers: Iterable[int] | str | None = None) -> dict[str, Any]:
        """The exported page offers only the layers it holds, starting on one of them."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exported_requests already warned
            held = self.export_layers(layers)
        state: dict[str, Any] = {"held_layers": held}
        if self.layer not in held:
            state["layer"] = held[0]
        return state


class AttentionView(AttentionPatterns):
    """Every layer's attention patterns of ``model`` on one prompt.

    ``text_or_tokens``: a string, or token ids of shape ``(pos,)`` / ``(1, pos)``. Runs the model
    once and keeps ``blocks.{l}.attn.hook_pattern`` (``(n_heads, q, k)`` per layer, float16) in
    the kernel; the view shows a layer picker, a thumbnail of every head of the layer, and the
    selected head enlarged. A hybrid's view holds the layers that attend, labelled with their
    own numbers; ``layer`` (the model's layer number) defaults to the first of them.
    """

    def __init__(
        self,
        model: HookedModel,
        text_or_tokens: Any,
        *,
        layer: int | None = None,
        head: int = 0,
        **kwargs: Any,
    ) -> None:
        ids = one_prompt(model, text_or_tokens)
        attending = attending_layers(model)
        if layer is not None and layer not in attending:
            model._point(f"blocks.{layer}.attn.hook_pattern")  # says why there is none
        shown = attending.index(layer) if layer is not None else 0
        patterns = _model_patterns(model, ids, attending)
        kwargs.setdefault("layer_labels", [f"L{i}" for i in attending])
        super().__init__(token_strings(model, ids), patterns, layer=shown, head=head, **kwargs)


def attending_layers(model: HookedModel) -> list[int]:
    """The layers of ``model`` with attention points (all of them, unless it is a hybrid;
    with Zamba's shared block, the layers that call it); HookNameError saying why when it has
    none."""
    attending = model.spec.internals_layers(model.cfg.n_layers)
    if not attending:  # the missing point's message says why (its layers' mixers)
        model._point("blocks.0.attn.hook_pattern")
    return attending


def _model_patterns(model: HookedModel, ids: torch.Tensor, layers: list[int]) -> list[np.ndarray]:
    """``blocks.{l}.attn.hook_pattern`` of each of `layers` as float16 ``(n_heads, q, k)``
    arrays.

    Each layer's pattern ``(1, n_heads, q, k)`` is copied to float16 as it is computed, so at
    most one layer is held in float32.
    """
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in layers]
    found: dict[str, np.ndarray] = {}

    def keep(pattern: torch.Tensor, hook: Any) -> None:
        found[hook.name] = pattern[0].detach().to("cpu", torch.float16).numpy()

    with torch.no_grad():
        model.run_with_hooks(ids, fwd_hooks=[(name, keep) for name in names], return_type=None)
    return [found[name] for name in names]


def _head_names(names: Any, n_heads: int) -> list[str]:
    if names is None:
        return [f"Head {h}" for h in range(n_heads)]
    names = [str(n) for n in names]
    if len(names) != n_heads:
        raise ValueError(f"{len(names)} head names for {n_heads} heads")
    return names


@checked()
def attention_heads(
    attention: Any,
    tokens: Any,
    attention_head_names: list[str] | None = None,
    max_value: float | None = None,
    min_value: float | None = None,
    negative_color: str | None = None,
    positive_color: str | None = None,
    mask_upper_tri: bool | None = None,
    *,
    model: HookedModel | None = None,
    tokenizer: Any = None,
) -> AttentionPatterns:
    """CircuitsVis-compatible ``attention_heads``: every head's heatmap, click one to enlarge.

    ``attention``: ``(n_heads, dest, src)`` (torch or numpy; a batch of one is accepted).
    ``tokens``: the ``n`` token strings, or ids together with ``model=`` / ``tokenizer=``.
    As in CircuitsVis, a positive value ``v`` is drawn ``v / max_value`` of the way from the
    background to ``positive_color``, a negative one ``v / min_value`` of the way to
    ``negative_color`` (any CSS colour; the theme's blue and red by default), and
    ``mask_upper_tri`` (default True) masks keys after the query. Giving ``max_value`` or
    ``min_value`` fixes the scale (defaults 1 and -1); otherwise the view starts on the
    ``"skip_first"`` scale (0 to the largest value outside the first token), which the view's
    scale menu can change.
    """
    strings = as_token_strings(tokens, model=model, tokenizer=tokenizer)
    patterns = _as_patterns(attention, len(strings))
    fixed = max_value is not None or min_value is not None
    return AttentionPatterns(
        strings,
        [patterns],
        head_names=_head_names(attention_head_names, patterns.shape[0]),
        layer_labels=[],
        max_value=float(max_value) if max_value is not None else 1.0,
        min_value=float(min_value) if min_value is not None else -1.0,
        color_scale="fixed" if fixed else "skip_first",
        positive_color=_css_color("positive_color", positive_color),
        negative_color=_css_color("negative_color", negative_color),
        mask_upper_tri=True if mask_upper_tri is None else bool(mask_upper_tri),
        mode="heads",
    )


def _css_color(name: str, value: str | None) -> str:
    """A CSS colour argument as text ("" for the theme's); anything else is an error."""
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"`{name}` must be a CSS colour string such as 'red' or '#ff0000'.")
    return value.strip()


def decode_pattern_reply(reply: dict[str, Any]) -> np.ndarray:
    """The float32 ``(n_heads, q, k)`` array of an ``attention`` reply (tests, exports)."""
    return decode_tensor(reply["pattern"]).astype(np.float32)
