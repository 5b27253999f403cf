"""Every hooklens view in a marimo notebook, on the demo model (no download, no GPU).

Run it as an app with `marimo run notebooks/marimo_views.py` or edit it with `marimo edit`.
The views are anywidgets: marimo renders them through `mo.ui.anywidget`, and their requests
(a layer switch, a click to patch) go to the notebook's kernel as in Jupyter.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full")


@app.cell
def _():
    import string

    import marimo as mo
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
    logits = logits[0]
    info = hl.demo_model_info()["induction_head"]
    layer = info["layer"]
    log_probs = logits.log_softmax(-1)
    next_log_prob = log_probs[:-1].gather(-1, tokens[0, 1:, None])[:, 0]
    neurons = torch.stack(
        [cache["post", index][:, :8] for index in range(model.cfg.n_layers)], dim=1
    )  # (tokens, layers, neurons)
    return (
        cache, cv, hl, info, layer, log_probs, mo, model, neurons, next_log_prob, span,
        str_tokens, text, tokens, torch,
    )  # fmt: skip


@app.cell
def _(mo):
    mo.md(r"""
    # hooklens in marimo

    The induction head of the demo model on a repeated random span: the second copy of each
    character attends to the character after its first copy.
    """)
    return


@app.cell
def _(hl, info, mo, model, text):
    mo.ui.anywidget(hl.AttentionView(model, text, layer=info["layer"], head=info["head"]))
    return


@app.cell
def _(hl, mo, model, span):
    mo.ui.anywidget(hl.ResidualView(model, span + span[:12]))
    return


@app.cell
def _(hl, mo, model, span):
    k = 12
    mo.ui.anywidget(
        hl.PatchingView(
            model,
            clean=span + span[:k],
            corrupted=span[:k] + "~" + span[k + 1 :] + span[:k],
            answer=span[k],
            wrong="~",
        )
    )
    return


@app.cell
def _(cache, cv, layer, mo, str_tokens):
    mo.vstack(
        [
            mo.md("## CircuitsVis' views (`import hooklens.vis as cv`)"),
            mo.ui.anywidget(
                cv.attention.attention_heads(
                    attention=cache["pattern", layer], tokens=str_tokens, max_value=1.0
                )
            ),
            mo.ui.anywidget(
                cv.attention.attention_patterns(
                    tokens=str_tokens, attention=cache["pattern", layer]
                )
            ),
        ]
    )
    return


@app.cell
def _(cv, mo, next_log_prob, str_tokens, torch):
    mo.vstack(
        [
            mo.ui.anywidget(
                cv.tokens.colored_tokens(
                    tokens=str_tokens[1:], values=next_log_prob, min_value=-5, max_value=0
                )
            ),
            mo.ui.anywidget(
                cv.tokens.colored_tokens_multi(
                    tokens=str_tokens[1:],
                    values=torch.stack([next_log_prob, next_log_prob.exp()], dim=1),
                    labels=["log prob", "prob"],
                )
            ),
        ]
    )
    return


@app.cell
def _(cv, mo, neurons, str_tokens):
    mo.vstack(
        [
            mo.ui.anywidget(
                cv.activations.text_neuron_activations(tokens=str_tokens, activations=neurons)
            ),
            mo.ui.anywidget(
                cv.topk_tokens.topk_tokens(
                    tokens=[str_tokens], activations=[neurons.permute(1, 0, 2).numpy()], max_k=5
                )
            ),
        ]
    )
    return


@app.cell
def _(cv, mo, model, text):
    samples = [text[:12], text[8:20], text[16:28]]
    sample_tokens = [model.to_str_tokens(sample) for sample in samples]
    acts = []
    for sample in samples:
        _, sample_cache = model.run_with_cache(sample, remove_batch_dim=True)
        acts.append(sample_cache["post", 0][:, :4].T.tolist())  # (neurons, tokens)
    mo.ui.anywidget(
        cv.topk_samples.topk_samples(
            tokens=[[sample_tokens] * 4],
            activations=[[[acts[s][n] for s in range(3)] for n in range(4)]],
        )
    )
    return


@app.cell
def _(cv, log_probs, mo, model, tokens):
    mo.ui.anywidget(
        cv.logits.token_log_probs(tokens, log_probs, lambda i: model.to_string([i]), top_k=5)
    )
    return


@app.cell
def _(cv, mo, model, text):
    mo.vstack(
        [
            mo.ui.anywidget(cv.HeadMap(model, text)),
            mo.ui.anywidget(cv.examples.hello("marimo")),
        ]
    )
    return


if __name__ == "__main__":
    app.run()
