"""`model.to(device_or_dtype)`, `.cuda()`, `.cpu()`: TransformerLens's moves of a model.

The move is the Hugging Face model's own `nn.Module.to`, made while holding the model's lock
(`ownership.py`), so no forward or sweep batch of another thread runs half on the old weights.
Hook points read the weights when they fire and keep no tensors, so they work at once on the
moved model; `model.cfg` gets the new device and dtype; and `model.moves` counts the moves, so
that what was recorded from an earlier forward (a `Patcher`'s base run: block arguments, keys
and values) knows to record again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from .._errors import InputError
from .kwargs import checked

MSG_DISPATCHED = """model.to({what!r}): this model is spread over several devices by
device_map ({devices}); moving it whole would undo that. Load it again with device_map= (or
device=) naming where it should be."""

MSG_BAD_TARGET = """model.to({what!r}): pass one device ("cuda", "cuda:1", "cpu",
torch.device(...)) or one dtype (torch.float64, ...), as in TransformerLens."""


class PlacementMixin:
    """`to`, `cuda`, `cpu`, `mps`, `move_model_modules_to_device` on a `HookedModel`."""

    hf_model: nn.Module
    cfg: Any
    owner: Any
    _builder: Any
    #: How many times the model was moved: state recorded from a forward pass compares it.
    moves: int = 0

    @checked()
    def to(
        self, device_or_dtype: str | torch.device | torch.dtype, print_details: bool = True
    ) -> Any:
        """Move the wrapped model to a device or cast it to a dtype (the HF model's `.to`, in
        place) and return this `HookedModel`, as TransformerLens's `HookedTransformer.to`.
        `print_details` prints what changed, as TransformerLens does. Every hook point, cache
        and sweep works on the moved model; `model.cfg.device` / `.dtype` follow it."""
        if isinstance(device_or_dtype, torch.dtype):
            what = "Changing model dtype to"
        elif isinstance(device_or_dtype, str | torch.device | int) and not isinstance(
            device_or_dtype, bool
        ):
            device_or_dtype = torch.device(device_or_dtype)
            what = "Moving model to device: "
            devices = set(getattr(self.hf_model, "hf_device_map", {}).values())
            if len(devices) > 1:
                raise InputError(
                    MSG_DISPATCHED.format(
                        what=str(device_or_dtype), devices=sorted(map(str, devices))
                    )
                )
        else:
            raise InputError(MSG_BAD_TARGET.format(what=device_or_dtype))
        with self.owner.hold():
            self.hf_model.to(device_or_dtype)
            self._update_placement()
        if print_details:
            print(what, device_or_dtype)
        return self

    def cuda(self, device: int | str | torch.device | None = None) -> Any:
        """`to("cuda")`, or `to("cuda:{device}")` for an index; returns the model."""
        if device is None:
            return self.to("cuda")
        return self.to(f"cuda:{device}" if isinstance(device, int) else device)

    def cpu(self) -> Any:
        """`to("cpu")`; returns the model."""
        return self.to("cpu")

    def mps(self) -> Any:
        """`to("mps")`; returns the model."""
        return self.to("mps")

    def move_model_modules_to_device(self) -> None:
        """Move every module to `model.cfg.device`: TransformerLens's
        `model.cfg.device = "cuda"; model.move_model_modules_to_device()` (setting `cfg.device`
        alone moves nothing). One device: hooklens spreads a model only through `device_map`."""
        self.to(self.cfg.device, print_details=False)

    def _update_placement(self) -> None:
        parameter = next(self.hf_model.parameters(), None)
        dtype = parameter.dtype if parameter is not None else self.cfg.dtype
        self.cfg = dataclasses.replace(self.cfg, device=self._input_device(), dtype=dtype)
        self._builder.cfg = self.cfg
        self.moves += 1

    def _input_device(self) -> torch.device:  # pragma: no cover - provided by the host
        raise NotImplementedError
