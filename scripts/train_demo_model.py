"""Train the tiny demo model that ships inside hooklens (``hooklens/_demo_model/``).

The model is a 2-layer ``LlamaForCausalLM`` over a character-level tokenizer, trained on
generated English-like text in which spans repeat. Two layers and repeated spans are the
classic recipe for an induction circuit: a previous-token head in layer 0 writes "the token
before me was X" into each position, and an induction head in layer 1 attends from the current
token to the token *after* its earlier occurrence and copies it. After training the script
measures both heads on repeated random characters and records them in ``hooklens.json``.

Everything is generated here (no download) and seeded, so running the script twice on the same
machine gives the same weights::

    .venv/bin/python scripts/train_demo_model.py             # default: hooklens/_demo_model
    .venv/bin/python scripts/train_demo_model.py --steps 50 --out /tmp/demo   # quick smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import string
import time
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "hooklens" / "_demo_model"

SEED = 1234
CONTEXT = 128  # tokens per training sequence, BOS included; also max_position_embeddings
BATCH_SIZE = 16
DEFAULT_STEPS = 2000
LEARNING_RATE = 5e-3
WARMUP_STEPS = 100
THREADS = 2
# Share of training sequences that are nothing but a random span repeated (R R R ...): the
# cleanest induction signal; the rest is English-like text with repeated spans in it, which also
# rewards a previous-token head directly (the two previous characters predict the next one).
PURE_REPEAT_FRACTION = 0.4

# Architecture: 2 layers because induction needs a composition of two attention layers.
HIDDEN = 128
HEADS = 4
LAYERS = 2
MLP = 256

# Special tokens come first so that their ids are small and stable.
BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
SPECIALS = [BOS, EOS, PAD, UNK]
# Printable ASCII without the exotic whitespace (tab, CR, vertical tab, form feed): 96 characters.
CHARS = [c for c in string.printable if c not in "\t\r\x0b\x0c"]

# Evaluation of the circuits: BOS + R + R with R a run of random characters.
EVAL_SEED = 0
EVAL_BATCH = 32
EVAL_HALF = 50
# Thresholds the script reports against (tests/test_demo_model.py asserts the same ones).
INDUCTION_MIN = 0.5
PREVIOUS_TOKEN_MIN = 0.4

# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer: one token per printable ASCII character, BOS prepended.

    Token strings are the characters themselves (a space is ``" "``, not ``"Ġ"``), so they read
    naturally in hooklens's views. Characters outside the vocabulary map to ``<unk>``.
    """
    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Split into single characters ("." without DOTALL would skip "\n", hence the class).
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    # The model was trained with BOS at position 0, as Llama-family tokenizers do it.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {BOS} $B",
        special_tokens=[(BOS, vocab[BOS])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=CONTEXT,
    )


# ---------------------------------------------------------------------------------------------
# Training text
# ---------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    """Whitespace-separated words (keeps the word lists compact)."""
    return text.split()


NAMES = _words(
    "Alice Bob Carol Dave Eve Frank Grace Heidi Ivan Judy Mallory Oscar Peggy Rupert Sybil "
    "Trent Victor Walter Mary John Anna Tom Lucy Mark Sarah James Emma Henry Clara Paul"
)
NOUNS = _words(
    "cat dog bird fish horse cow mouse fox owl bear apple bread cake cup book pen lamp chair "
    "table door window house garden river hill tree flower stone road boat train letter key "
    "coin box bag hat coat shoe song story game ball map clock bell ship star moon sun cloud"
)
PLACES = _words(
    "park market school library station beach forest village city kitchen office museum "
    "harbor castle farm bakery bridge island valley garden"
)
ADJECTIVES = _words(
    "small big red blue green old new quiet loud happy sad bright dark warm cold soft hard "
    "tall short quick slow little yellow brown heavy light strange lovely empty"
)
VERBS = _words(
    "saw found took gave made liked painted carried opened closed moved held lost kept sold "
    "bought wanted watched followed cleaned dropped built fixed"
)
INTRANSITIVE = _words(
    "slept laughed waited sang ran walked smiled danced jumped rested worked stayed"
)
PREPOSITIONS = _words("near under behind beside above inside across")
ADVERBS = _words("slowly quickly quietly happily again today later softly")
CONNECTIVES = ["Then", "Later", "After that", "Meanwhile", "Suddenly", "Soon"]


class TextGenerator:
    """Seeded generator of English-like documents with repeated spans.

    Args:
        seed: seed of the private ``random.Random``; the text depends on nothing else.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # --- plain text ---------------------------------------------------------------------------

    def _np(self) -> str:
        """A noun phrase, e.g. ``the small dog``."""
        r = self.rng
        det = r.choice(["the", "the", "a", "my", "her", "his", "their"])
        if r.random() < 0.5:
            return f"{det} {r.choice(ADJECTIVES)} {r.choice(NOUNS)}"
        return f"{det} {r.choice(NOUNS)}"

    def sentence(self) -> str:
        """One grammatical sentence ending with punctuation."""
        r = self.rng
        name, other = r.sample(NAMES, 2)
        kind = r.randrange(7)
        if kind == 0:
            s = f"{name} {r.choice(VERBS)} {self._np()}."
        elif kind == 1:
            verb, prep = r.choice(INTRANSITIVE), r.choice(PREPOSITIONS)
            s = f"{self._np().capitalize()} {verb} {prep} {self._np()}."
        elif kind == 2:
            s = f"{name} and {other} went to the {r.choice(PLACES)}."
        elif kind == 3:
            s = f"{name} gave {self._np()} to {other}."
        elif kind == 4:
            s = f"{r.choice(CONNECTIVES)}, {name} {r.choice(INTRANSITIVE)} {r.choice(ADVERBS)}."
        elif kind == 5:
            s = f"Did {name} see {self._np()} at the {r.choice(PLACES)}?"
        else:
            s = f'"{self._np().capitalize()} is {r.choice(ADJECTIVES)}," said {name}.'
        return s

    def paragraph(self, n: int) -> str:
        """``n`` sentences joined by spaces."""
        return " ".join(self.sentence() for _ in range(n))

    # --- repeated spans (what teaches induction) ------------------------------------------------

    def random_chars(self, length: int) -> str:
        """Uniform random printable characters: the model can only predict them by copying."""
        return "".join(self.rng.choice(CHARS) for _ in range(length))

    def random_word(self) -> str:
        """A pronounceable made-up word, e.g. ``Vorelin``: a new name the model must copy."""
        r = self.rng
        consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
        word = "".join(r.choice(consonants) + r.choice(vowels) for _ in range(r.randint(2, 4)))
        if r.random() < 0.5:
            word += r.choice(consonants)
        return word.capitalize() if r.random() < 0.6 else word

    def repeated_segment(self) -> str:
        """Text in which some span occurs two or more times."""
        r = self.rng
        kind = r.randrange(5)
        if kind == 0:  # random characters, repeated right away or after some text
            span = self.random_chars(r.randint(6, 40))
            gap = " " if r.random() < 0.5 else f" {self.paragraph(r.randint(0, 2))} "
            return span + gap + span
        if kind == 1:  # a run of random (ungrammatical) words, then the same run again
            words = " ".join(r.choice(NOUNS + ADJECTIVES + VERBS) for _ in range(r.randint(3, 9)))
            return f"{words}. {self.paragraph(r.randint(0, 2))} {words}."
        if kind == 2:  # a made-up name introduced and reused
            name = self.random_word()
            s1 = f"{name} {r.choice(VERBS)} {self._np()}."
            s2 = f"Then {name} {r.choice(INTRANSITIVE)} {r.choice(ADVERBS)}."
            return f"{s1} {self.sentence()} {s2} {name} {r.choice(INTRANSITIVE)}."
        if kind == 3:  # a sentence quoted again later
            s = self.sentence()
            return f"{s} {self.paragraph(r.randint(1, 2))} {s}"
        # made-up words in a list, listed again in the same order
        items = ", ".join(self.random_word().lower() for _ in range(r.randint(3, 6)))
        return f"The list was {items}. Again: {items}."

    def document(self, length: int, pure_repeat: float = PURE_REPEAT_FRACTION) -> str:
        """``length`` characters of mixed plain and repeated text.

        Args:
            length: number of characters.
            pure_repeat: probability that the document is a random span repeated throughout.
        """
        r = self.rng
        if r.random() < pure_repeat:
            # The cleanest induction signal, same form as the evaluation: R + R (+ R ...).
            span = self.random_chars(r.randint(8, 60))
            return (span * (length // len(span) + 1))[:length]
        text = ""
        while len(text) < length:
            roll = r.random()
            if roll < 0.45:
                part = self.repeated_segment()
            elif roll < 0.9:
                part = self.paragraph(r.randint(1, 3))
            else:
                text += "\n"  # paragraph break, no space around it
                continue
            text += part if not text or text.endswith("\n") else " " + part
        return text[:length]


def make_batch(
    gen: TextGenerator, tokenizer: PreTrainedTokenizerFast, batch_size: int, pure_repeat: float
) -> torch.Tensor:
    """Tokenize ``batch_size`` fresh documents (see :meth:`TextGenerator.document`).

    Returns:
        ``input_ids`` of shape ``[batch_size, CONTEXT]``: BOS then ``CONTEXT - 1`` characters.
    """
    texts = [gen.document(CONTEXT - 1, pure_repeat) for _ in range(batch_size)]
    ids = tokenizer(texts)["input_ids"]
    assert all(len(row) == CONTEXT for row in ids), "one token per character plus BOS"
    return torch.tensor(ids, dtype=torch.long)


# ---------------------------------------------------------------------------------------------
# Model, training, measurement
# ---------------------------------------------------------------------------------------------


def build_model(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A freshly initialised 2-layer Llama sized for the character vocabulary."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=MLP,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=CONTEXT,
        rms_norm_eps=1e-5,
        # Biases on q/k/v/o: with rotary embeddings and no bias, a purely positional pattern
        # (attend to the previous token) needs a content-independent query and key, which the
        # model must first carve out of the token embeddings; a bias gives it for free, and the
        # previous-token head (and the induction head that builds on it) forms much sooner.
        attention_bias=True,
        # Tied embeddings halve the embedding cost; they are small anyway at 100 tokens.
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa")


def lr_at(step: int, steps: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < WARMUP_STEPS:
        return LEARNING_RATE * (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, steps - WARMUP_STEPS)
    return LEARNING_RATE * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def repeated_random_tokens(
    tokenizer: PreTrainedTokenizerFast, batch: int, half: int, seed: int
) -> torch.Tensor:
    """``[BOS, r_0 .. r_{half-1}, r_0 .. r_{half-1}]`` with ``r`` uniform over the characters.

    Returns:
        ``input_ids`` of shape ``[batch, 1 + 2 * half]``.
    """
    gen = torch.Generator().manual_seed(seed)
    char_ids = torch.tensor(tokenizer.convert_tokens_to_ids(CHARS))
    r = char_ids[torch.randint(len(CHARS), (batch, half), generator=gen)]
    bos = torch.full((batch, 1), tokenizer.bos_token_id)
    return torch.cat([bos, r, r], dim=1)


@torch.no_grad()
def measure_circuits(model: LlamaForCausalLM, tokens: torch.Tensor, half: int) -> dict[str, Any]:
    """Per-head induction and previous-token scores, and the loss on the repeated half.

    Args:
        model: a model loaded with ``attn_implementation="eager"`` (sdpa returns no patterns).
        tokens: ``[batch, 1 + 2 * half]`` from :func:`repeated_random_tokens`.
        half: length of the random span.
    """
    out = model(input_ids=tokens, output_attentions=True)
    induction, previous = [], []
    q_rep = torch.arange(1 + half, 1 + 2 * half)  # queries in the repeated half
    q_all = torch.arange(2, tokens.shape[1])  # every query with a non-BOS previous token
    for pattern in out.attentions:  # [batch, head, query, key]
        # Token at q repeats the one at q - half; the token after that one is at q - half + 1.
        induction.append(pattern[:, :, q_rep, q_rep - half + 1].mean(dim=(0, 2)).tolist())
        previous.append(pattern[:, :, q_all, q_all - 1].mean(dim=(0, 2)).tolist())
    # Loss on predicting r_1 .. r_{half-1} in the second half (r_0 cannot be known there).
    logits = out.logits[:, 1 + half : 2 * half]  # [batch, half - 1, vocab]
    targets = tokens[:, 2 + half :]  # [batch, half - 1]
    loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets).item()
    first_logits = out.logits[:, 1:half]
    first_loss = torch.nn.functional.cross_entropy(
        first_logits.transpose(1, 2), tokens[:, 2 : 1 + half]
    ).item()

    def best(scores: list[list[float]], layers: range) -> dict[str, Any]:
        layer, head = max(
            ((la, h) for la in layers for h in range(len(scores[la]))),
            key=lambda lh: scores[lh[0]][lh[1]],
        )
        return {"layer": layer, "head": head, "score": round(scores[layer][head], 4)}

    n_layers = len(induction)
    return {
        "induction_head": best(induction, range(n_layers)),
        # The previous-token head that feeds induction must sit in an earlier layer: layer 0.
        "previous_token_head": best(previous, range(1)),
        "induction_scores": [[round(s, 4) for s in row] for row in induction],
        "previous_token_scores": [[round(s, 4) for s in row] for row in previous],
        "repeated_half_loss": round(loss, 4),
        "first_half_loss": round(first_loss, 4),
    }


def train(
    steps: int, log_every: int, eval_every: int
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Train from scratch; deterministic given the seed, the thread count and the machine.

    Args:
        steps: optimizer steps.
        log_every: print the mean training loss every this many steps.
        eval_every: also print the circuit scores every this many steps (0: never).
    """
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters, vocab {len(tokenizer)}, context {CONTEXT}")
    gen = TextGenerator(SEED)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, betas=(0.9, 0.98), weight_decay=0.01
    )
    model.train()
    start = time.perf_counter()
    running = 0.0
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps)
        batch = make_batch(gen, tokenizer, BATCH_SIZE, PURE_REPEAT_FRACTION)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running += loss.item()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            n = (step % log_every) + 1
            elapsed = time.perf_counter() - start
            line = f"step {step + 1:5d}/{steps}  loss {running / n:.3f}  {elapsed:6.1f}s"
            running = 0.0
            if eval_every and ((step + 1) % eval_every == 0 or step + 1 == steps):
                # Progress on the circuits themselves (eager attention returns the patterns).
                model.eval()
                model.set_attn_implementation("eager")
                tokens = repeated_random_tokens(tokenizer, 8, EVAL_HALF, EVAL_SEED + 1)
                sc = measure_circuits(model, tokens, EVAL_HALF)
                model.set_attn_implementation("sdpa")
                model.train()
                line += (
                    f"  induction {sc['induction_head']['score']:.2f}"
                    f"  prev-token {sc['previous_token_head']['score']:.2f}"
                    f"  repeat loss {sc['repeated_half_loss']:.2f}"
                )
            print(line, flush=True)
    model.eval()
    print(f"trained in {time.perf_counter() - start:.1f}s")
    return model, tokenizer


MODEL_CARD = """\
# hooklens demo model

A tiny character-level `LlamaForCausalLM` ({params:,} parameters: {layers} layers, d_model
{hidden}, {heads} heads, MLP {mlp}, context {context}) trained by `scripts/train_demo_model.py`
in the hooklens repository on generated English-like text with repeated spans. It exists to be
explored with hooklens without a download: it has a previous-token head and an induction head.

- Previous-token head: layer {pl}, head {ph} (score {ps:.3f}, mean attention to the previous
  token on repeated random characters).
- Induction head: layer {il}, head {ih} (score {is_:.3f}, mean attention from a repeated token
  to the token after its earlier occurrence).

The tokenizer has one token per printable ASCII character and prepends `<bos>` (id {bos}).
`hooklens.json` holds all per-head scores. Not a useful language model beyond that.
"""


def save(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    out: Path,
    steps: int,
    scores: dict[str, Any],
) -> None:
    """Write the Hugging Face folder plus ``hooklens.json`` and a short model card."""
    if out.exists():
        shutil.rmtree(out)  # no stale files from an earlier run (the folder ships as package data)
    out.mkdir(parents=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta = {
        "description": "Circuits of the hooklens demo model, measured by the training script.",
        **scores,
        "evaluation": {
            "input": "BOS + R + R, R uniform random printable characters",
            "half_length": EVAL_HALF,
            "batch": EVAL_BATCH,
            "seed": EVAL_SEED,
            "attn_implementation": "eager",
        },
        "training": {"script": "scripts/train_demo_model.py", "steps": steps, "seed": SEED},
        "weights_sha256": hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest(),
    }
    (out / "hooklens.json").write_text(json.dumps(meta, indent=2) + "\n")
    ind, prev = scores["induction_head"], scores["previous_token_head"]
    (out / "README.md").write_text(
        MODEL_CARD.format(
            params=sum(p.numel() for p in model.parameters()),
            layers=LAYERS,
            hidden=HIDDEN,
            heads=HEADS,
            mlp=MLP,
            context=CONTEXT,
            pl=prev["layer"],
            ph=prev["head"],
            ps=prev["score"],
            il=ind["layer"],
            ih=ind["head"],
            is_=ind["score"],
            bos=tokenizer.bos_token_id,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps")
    parser.add_argument("--log-every", type=int, default=50, help="print loss every N steps")
    parser.add_argument(
        "--eval-every", type=int, default=200, help="print circuit scores every N steps (0: off)"
    )
    args = parser.parse_args()

    model, tokenizer = train(args.steps, args.log_every, args.eval_every)
    # Measure with eager attention, the implementation that returns attention patterns.
    model.set_attn_implementation("eager")
    tokens = repeated_random_tokens(tokenizer, EVAL_BATCH, EVAL_HALF, EVAL_SEED)
    scores = measure_circuits(model, tokens, EVAL_HALF)
    model.set_attn_implementation("sdpa")
    save(model, tokenizer, args.out, args.steps, scores)

    ind, prev = scores["induction_head"], scores["previous_token_head"]
    size = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"induction head L{ind['layer']}H{ind['head']}: {ind['score']:.3f}")
    print(f"previous-token head L{prev['layer']}H{prev['head']}: {prev['score']:.3f}")
    print(
        f"loss on repeated half {scores['repeated_half_loss']:.3f} "
        f"(first half {scores['first_half_loss']:.3f})"
    )
    print(f"saved {args.out} ({size / 1e6:.2f} MB)")
    if ind["score"] <= INDUCTION_MIN or prev["score"] <= PREVIOUS_TOKEN_MIN:
        print("WARNING: circuits below the thresholds the tests require; train longer")


if __name__ == "__main__":
    main()
