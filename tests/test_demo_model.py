"""The embedded demo model: loads offline with plain Hugging Face, and has real circuits.

The circuits are re-measured here, independently of the training script's own measurement, on
repeated random characters ``[BOS, r_0 .. r_{n-1}, r_0 .. r_{n-1}]``:

- induction score of a head: mean attention from a token in the repeated half to the token
  *after* its earlier occurrence (key ``q - n + 1`` for query ``q``); best head must be > 0.5;
- previous-token score: mean attention from each token to the one before it (BOS excluded as a
  target); best layer-0 head must be > 0.5;
- loss on the repeated half (tokens ``r_1 .. r_{n-1}``) must be low, since the model can copy
  them, while the first half is unpredictable (about ln 96 = 4.56 nats).
"""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from hooklens._demo import demo_model_info, demo_model_path

FOLDER = demo_model_path()
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_demo_model.py"

INDUCTION_MIN = 0.5
PREVIOUS_TOKEN_MIN = 0.4
REPEATED_LOSS_MAX = 1.0  # nats per token; chance is ln(96) ≈ 4.56
MAX_FOLDER_BYTES = 2_500_000
HALF = 50
BATCH = 16


@pytest.fixture(scope="module")
def model() -> PreTrainedModel:
    m = AutoModelForCausalLM.from_pretrained(FOLDER, attn_implementation="eager")
    m.eval()
    return m


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return AutoTokenizer.from_pretrained(FOLDER)


@pytest.fixture(scope="module")
def measured(model: PreTrainedModel, tokenizer: Any) -> dict[str, Any]:
    """Attention patterns and losses on ``[BATCH, 1 + 2 * HALF]`` repeated random characters."""
    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
    char_ids = torch.tensor(tokenizer.convert_tokens_to_ids(chars))
    assert tokenizer.unk_token_id not in char_ids.tolist()
    gen = torch.Generator().manual_seed(12345)  # not the script's evaluation seed
    r = char_ids[torch.randint(len(chars), (BATCH, HALF), generator=gen)]
    bos = torch.full((BATCH, 1), tokenizer.bos_token_id)
    tokens = torch.cat([bos, r, r], dim=1)  # [batch, 1 + 2 * half]
    with torch.no_grad():
        out = model(input_ids=tokens, output_attentions=True)
    n_layers = model.config.num_hidden_layers
    assert len(out.attentions) == n_layers

    induction = torch.zeros(n_layers, model.config.num_attention_heads)
    previous = torch.zeros_like(induction)
    for layer, pattern in enumerate(out.attentions):  # [batch, head, query, key]
        for q in range(1 + HALF, 1 + 2 * HALF):
            induction[layer] += pattern[:, :, q, q - HALF + 1].mean(0) / HALF
        n_prev = tokens.shape[1] - 2
        for q in range(2, tokens.shape[1]):
            previous[layer] += pattern[:, :, q, q - 1].mean(0) / n_prev

    logp = out.logits.log_softmax(-1)  # [batch, pos, vocab]
    # Loss of predicting token t+1 at position t: first half r_1..r_{n-1}, repeated r_1..r_{n-1}.
    nll = -logp[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]  # [batch, pos - 1]
    return {
        "induction": induction,
        "previous": previous,
        "first_loss": nll[:, 1:HALF].mean().item(),
        "repeated_loss": nll[:, 1 + HALF :].mean().item(),
    }


def test_folder_is_small_and_complete() -> None:
    names = {p.name for p in FOLDER.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "hooklens.json",
    } <= names
    size = sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file())
    assert size < MAX_FOLDER_BYTES, f"demo model folder is {size / 1e6:.2f} MB"


def test_config_is_a_small_llama(model: PreTrainedModel) -> None:
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 2
    assert model.config.bos_token_id is not None


def test_tokenizer_is_character_level_with_bos(tokenizer: Any) -> None:
    text = "Alice saw the cat.\nBob: 42!"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert len(ids) == len(text) + 1
    assert tokenizer.convert_ids_to_tokens(ids)[1:] == list(text)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_induction_head(measured: dict[str, Any]) -> None:
    scores = measured["induction"]
    best = scores.max().item()
    assert best > INDUCTION_MIN, f"induction scores per [layer, head]:\n{scores}"
    # Induction needs a previous-token head before it: the induction head is in layer 1.
    layer = int(scores.argmax()) // scores.shape[1]
    assert layer == 1


def test_previous_token_head_in_layer_0(measured: dict[str, Any]) -> None:
    scores = measured["previous"]
    assert scores[0].max().item() > PREVIOUS_TOKEN_MIN, f"previous-token scores:\n{scores}"


def test_repeated_half_is_predicted(measured: dict[str, Any]) -> None:
    assert measured["first_loss"] > 3.0  # random characters really are unpredictable
    assert measured["repeated_loss"] < REPEATED_LOSS_MAX


def test_recorded_heads_match_measurement(measured: dict[str, Any]) -> None:
    info = demo_model_info()
    assert info == json.loads((FOLDER / "hooklens.json").read_text())
    for key, table in (("induction_head", "induction"), ("previous_token_head", "previous")):
        rec = info[key]
        scores = measured[table]
        if key == "previous_token_head":
            scores = scores[:1]  # the recorded previous-token head is the best one in layer 0
        layer, head = divmod(int(scores.argmax()), scores.shape[1])
        assert (rec["layer"], rec["head"]) == (layer, head)
        # Different random characters than the script used, so only roughly the same score.
        assert abs(rec["score"] - scores[layer, head].item()) < 0.05
    assert info["repeated_half_loss"] < REPEATED_LOSS_MAX


def test_training_script_is_deterministic(tmp_path: Path) -> None:
    """Two short runs of the training script write byte-identical weights."""
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        subprocess.run(
            [sys.executable, str(SCRIPT), "--steps", "4", "--eval-every", "0", "--out", str(out)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        digests.append(json.loads((out / "hooklens.json").read_text())["weights_sha256"])
    assert digests[0] == digests[1]
