"""The metric of batches of patched runs: which logits to compute, and each cell's value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..metrics import TokenMetric
from ._inputs import check_metric_value
from ._reads import learn_reads
from ._run import Patcher

_ONE_NUMBER = (
    "a TransformerLens patching metric returns one number for the whole batch of prompts, but it "
    "gave shape {shape} for logits of shape {logits}: reduce it, e.g. "
    "`lambda logits: my_metric(logits).mean()`."
)


class CellMetric:
    """Evaluates ``metric`` on the logits of patched runs, computing as few logits as it can.

    ``per_batch=False`` (hooklens's sweeps): ``metric(logits (batch, pos, d_vocab)) -> (batch,)``
    on one prompt. ``per_batch=True`` (TransformerLens's functions): ``metric`` returns one
    number for a cell's batch of prompts. ``token_ids`` and ``last_only`` say which logits a
    patched run must produce (see ``Patcher.run``); ``width`` is how many columns that is.
    """

    def __init__(self, patcher: Patcher, metric: Callable[[torch.Tensor], Any], *,
                 per_batch: bool) -> None:  # fmt: skip
        base = patcher.base
        self.metric = metric
        self.per_batch = per_batch
        self.prompts = base.batch
        self.token_ids: list[int] | None = None
        self.last_only = isinstance(metric, TokenMetric) and metric.pos == -1
        self._buffer: torch.Tensor | None = None
        self._positions: list[int] = []
        narrow = metric.narrowed() if isinstance(metric, TokenMetric) and self.last_only else None
        if narrow is not None and not per_batch:
            # A logit difference reads two logits: unembed only those, evaluate in one call.
            self.token_ids, self.metric = narrow
            return
        reads = learn_reads(metric, base.logits)
        if reads is not None:
            self.token_ids = reads.columns
            self.last_only = reads.only_last(base.seq_len)
            self._positions = reads.positions
            # The metric is called on the base logits with the read entries overwritten.
            self._buffer = base.logits.detach().float().clone()

    @property
    def width(self) -> int | None:
        return None if self.token_ids is None else len(self.token_ids)

    def __call__(self, logits: torch.Tensor, n_cells: int) -> torch.Tensor:
        """Values (n_cells,) from the logits of ``n_cells`` patched copies of the prompts, as
        ``Patcher.run`` returned them for ``token_ids`` and ``last_only``."""
        if self._buffer is None:
            if not self.per_batch:
                return check_metric_value(self.metric, logits)
            return torch.tensor([self._one(logits[self._rows(i)]) for i in range(n_cells)])
        values = []
        buffer, columns = self._buffer, torch.tensor(self.token_ids)
        for i in range(n_cells):
            rows = logits[self._rows(i)].float().to(buffer.device)  # also after model.to()
            if self.last_only:
                buffer[:, -1, columns] = rows[:, -1]
            else:
                for p in self._positions:
                    buffer[:, p, columns] = rows[:, p]
            one = self._one(buffer) if self.per_batch else check_metric_value(self.metric, buffer)
            values.append(float(one if isinstance(one, float) else one[0]))
        return torch.tensor(values)

    def _rows(self, cell: int) -> slice:
        return slice(cell * self.prompts, (cell + 1) * self.prompts)

    def _one(self, logits: torch.Tensor) -> float:
        value = torch.as_tensor(self.metric(logits)).detach()
        if value.numel() != 1:
            shapes = {"shape": tuple(value.shape), "logits": tuple(logits.shape)}
            raise ValueError(_ONE_NUMBER.format(**shapes))
        return float(value)
