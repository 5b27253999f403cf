"""TransformerLens's `utils` helpers: `get_act_name`, `to_numpy`, `test_prompt`, `get_device`,
`get_corner`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from ._engine.names import get_act_name

if TYPE_CHECKING:
    from ._engine.model import HookedModel

__all__ = ["get_act_name", "get_corner", "get_device", "test_prompt", "to_numpy"]


def to_numpy(tensor: Any) -> np.ndarray:
    """A numpy array of a tensor (detached, on CPU), an array, a list/tuple or a number."""
    if isinstance(tensor, np.ndarray):
        return tensor
    if isinstance(tensor, list | tuple):
        return np.array(tensor)
    if isinstance(tensor, torch.Tensor | torch.nn.Parameter):
        return tensor.detach().cpu().numpy()
    if isinstance(tensor, int | float | bool | str):
        return np.array(tensor)
    raise TypeError(f"to_numpy takes a tensor, array, list or number, got {type(tensor).__name__}")


def get_corner(tensor: Any, n: int = 3) -> Any:
    """The top-left `n` x ... x `n` corner of a tensor (every axis cut to its first `n`), as
    TransformerLens's `utils.get_corner`; a `FactoredMatrix` gives its own `get_corner(n)`."""
    if hasattr(tensor, "get_corner"):
        return tensor.get_corner(n)
    if not isinstance(tensor, torch.Tensor | np.ndarray):
        raise TypeError(f"get_corner takes a tensor or FactoredMatrix, got {type(tensor).__name__}")
    return tensor[tuple(slice(n) for _ in range(tensor.ndim))]


def get_device() -> torch.device:
    """The best available device: CUDA, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available() and torch.backends.mps.is_built():
        return torch.device("mps")
    return torch.device("cpu")


def test_prompt(
    prompt: str,
    answer: str | list[str],
    model: HookedModel,
    prepend_space_to_answer: bool = True,
    print_details: bool = True,
    prepend_bos: bool | None = None,
    top_k: int = 10,
) -> None:
    """Print how the model does on `answer` after `prompt`, as TransformerLens does: the prompt's
    tokens, the answer's tokens, then for each answer token its rank, logit and probability and
    the `top_k` tokens; last, the ranks. Several answers compare their first tokens. Prints only.
    """
    answers = [answer] if isinstance(answer, str) else list(answer)
    if prepend_space_to_answer:
        answers = [a if a.startswith(" ") else " " + a for a in answers]
    multi = len(answers) > 1
    prompt_tokens = model.to_tokens(prompt, prepend_bos=prepend_bos)
    answer_rows = [model.to_tokens(a, prepend_bos=False)[0] for a in answers]
    length = 1 if multi else len(answer_rows[0])
    answer_tokens = torch.stack([row[:length] for row in answer_rows])
    tokens = torch.cat([prompt_tokens.repeat(len(answers), 1), answer_tokens], dim=1)
    prompt_str = model.to_str_tokens(prompt, prepend_bos=prepend_bos)
    answer_str = [cast(list[str], model.to_str_tokens(a, prepend_bos=False)) for a in answers]
    if print_details:
        print("Tokenized prompt:", prompt_str)
        print(
            "Tokenized answers:" if multi else "Tokenized answer:",
            answer_str if multi else answer_str[0],
        )
    with torch.no_grad():
        logits = model(tokens)
    probs = logits.softmax(dim=-1)
    n_prompt = prompt_tokens.shape[1]
    ranks = []
    for index in range(n_prompt, n_prompt + length):
        targets = tokens[:, index]
        token_probs = probs[:, index - 1]
        order = token_probs.argsort(dim=-1, descending=True)
        rank_of = order.argsort(-1)[torch.arange(len(answers)), targets].tolist()
        strs = [a[index - n_prompt] for a in answer_str]
        ranks.append(list(zip(strs, rank_of, strict=True)))
        if print_details:
            print(f"Performance on answer token{'s' if multi else ''}:")
            for i in range(len(answers)):
                t = int(targets[i])
                print(
                    f"Rank: {rank_of[i]: <8} Logit: {logits[i, index - 1, t].item():5.2f} "
                    f"Prob: {token_probs[i, t].item():6.2%} Token: |{strs[i]}|"
                )
            for k in range(top_k):
                t = int(order[0, k])
                print(
                    f"Top {k}th token. Logit: {logits[0, index - 1, t].item():5.2f} "
                    f"Prob: {token_probs[0, t].item():6.2%} Token: |{model.to_string([t])}|"
                )
    print(f"{'Ranks of the answer tokens:':<27}", ranks if multi else _flat(ranks))


def _flat(ranks: list[list[tuple[str, int]]]) -> list[tuple[str, int]]:
    """One answer: [(token, rank), ...] over its tokens."""
    return [pair for step in ranks for pair in step]
