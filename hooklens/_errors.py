"""Exceptions, and the long error messages the engine raises (each says what to do instead)."""

from __future__ import annotations


class HookNameError(KeyError):
    """A hook name that this model does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class HookError(RuntimeError):
    """A user hook raised, or returned something that cannot replace the activation."""

    def __init__(self, message: str, hook_name: str) -> None:
        super().__init__(message)
        self.hook_name = hook_name


class UnsupportedModelError(ValueError):
    """No adapter describes this model (or this configuration of it)."""


class SeveralAttentionCallsError(UnsupportedModelError):
    """A derived adapter's attention module calls the attention function several times and
    combines the results (differential attention): no per-head point describes it. `why` says
    so; the engine wraps the model again with the module kept whole, as its layer's mixer."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


class InputError(ValueError):
    """A prompt hooklens cannot run (empty, too long, text without a tokenizer)."""


class ArgumentError(TypeError):
    """An argument hooklens does not implement (it is never silently ignored)."""


class NoTokenizerWarning(UserWarning):
    """The model was wrapped without a tokenizer: token ids work, text does not."""


MSG_UNKNOWN_HOOK = """{name!r} is not a hook point of this {family} model.
Did you mean: {suggestions}?
`model.hook_names()` lists all {count} hook points in execution order."""

MSG_MISSING_HOOK = """{name!r} does not exist on {family} models: {why}"""

MSG_UNSUPPORTED = """hooklens cannot wrap {cls!r}: {why}.
Classes with an explicit adapter: {supported}; other models are wrapped when their structure
follows the pre-norm decoder template. An adapter is a small declarative ArchSpec (module paths
and features); see hooklens/architectures/README.md for how to write one and register it."""

MSG_UNSUPPORTED_WHOLE = """hooklens cannot wrap {cls!r}: {cls} does not follow the pre-norm
decoder template hooklens derives adapters from: {why}. Nor can hooklens keep its blocks whole,
with only the residual stream's points: that did not reproduce the model's own forward either
({problems})."""

MSG_DERIVED_MISMATCH = """hooklens derived an adapter for {cls!r} from its structure, but it does
not reproduce the model's own forward pass, so the model is not wrapped:
- {problems}
Write an explicit adapter for it (see hooklens/architectures/README.md)."""

MSG_SEVERAL_CALLS = (
    "its attention {cls} calls the attention function {calls} times in one forward and "
    "combines the results itself before {o_proj} (as differential attention does), so no one "
    "call's hook_pattern and hook_z are what the layer computes (hooklens's attention points "
    "serve one call per layer)"
)

MSG_UNSUPPORTED_CONFIG = (
    """This {family} configuration is not supported: {why} ({attr}={value!r})."""
)

MSG_NO_TOKENIZER = """This HookedModel has no tokenizer, so it cannot turn text into tokens.
Pass token ids instead, e.g. model(torch.tensor([[464, 3139, 286]])), or give a tokenizer:
    HookedModel.from_pretrained(name, hf_model=m, tokenizer=AutoTokenizer.from_pretrained(path))
or set it later: model.tokenizer = tokenizer"""

MSG_TOKENIZER_WARNING = """No tokenizer could be loaded for {name!r} ({error}). Token ids work;
text input will raise. Pass `tokenizer=` to HookedModel.from_pretrained to use text."""

MSG_EMPTY_PROMPT = """The prompt is empty (0 tokens). Pass at least one token, e.g. model("Hello")
or model(torch.tensor([[1, 2, 3]]))."""

MSG_TOO_LONG = """The prompt has {n} tokens, longer than this model's context of {n_ctx} tokens
(model.cfg.n_ctx). Shorten it, e.g. tokens[:, -{n_ctx}:]."""

MSG_EMPTY_FILTER = """names_filter={filter!r} matches no hook point of this model.
Examples of valid names: {examples}. `model.hook_names()` lists them all."""

MSG_SHARED_ROPE_K = """{name!r}: this edit changes the rotated part of the keys (the features
after the first qk_nope_head_dim). In multi-head latent attention that part is one vector per
position shared by every head, and it is rotated before the per-head keys exist, so it cannot be
edited here. Edit the first qk_nope_head_dim features here, or the rotated keys at hook_rot_k of
the same layer."""

MSG_READ_ONLY = """{name!r} is read-only: the router has already chosen the experts from these
logits when the hook sees them. Edit the routing at hook_expert_indices / hook_expert_weights
of the same layer instead."""

MSG_SINK_READ_ONLY = """{name!r} is read-only: it is the share of each query's attention that
the head's learned sink takes, and the sink adds nothing to z. Edit blocks.{layer}.attn.hook_pattern
(the keys' shares; z is pattern @ v) or hook_attn_scores (before the softmax) instead."""

MSG_HOOK_RAISED = """The hook function {fn} on {name!r} raised {exc_type}: {exc}
All hooks were removed; the model is unchanged and can be used again."""

MSG_HOOK_BAD_RETURN = """The hook function {fn} on {name!r} returned {what}, which cannot replace
the activation of shape {shape} and dtype {dtype}. Return a tensor of the same shape, dtype and
device (or None to keep the activation; in-place edits are fine)."""

MSG_BAD_TOKENS = """Token ids must be integers in [0, {vocab}); got {what}."""
