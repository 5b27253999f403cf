"""An encoder-decoder's flat config, read as its decoder's: the causal LM is the decoder.

BART's, Whisper's, Marian's, Pegasus's (...) configs hold both stacks' counts in one config, and
their `attribute_map` makes `num_hidden_layers` and `num_attention_heads` the *encoder's*
(`encoder_layers`, `encoder_attention_heads`). Their `*ForCausalLM` is the decoder
(`decoder_layers`, `decoder_attention_heads`), and distilled checkpoints differ there
(distilbart-cnn-12-6: 12 encoder layers, 6 decoder layers; distil-whisper: 32 and 2).
"""

from __future__ import annotations

from typing import Any

from ._names import DECODER_COUNTS

__all__ = ["DecoderConfig", "decoder_view"]


class DecoderConfig:
    """`config` with the counts of `_names.DECODER_COUNTS` read from its decoder's attributes;
    every other attribute read from (and written to) `config` itself. The counts are not
    written through it: `num_key_value_heads` is read from the decoder's query heads (these
    decoders have no grouped heads), and writing it there would change the query heads."""

    __slots__ = ("config",)

    def __init__(self, config: Any) -> None:
        object.__setattr__(self, "config", config)

    def __getattr__(self, name: str) -> Any:
        config = object.__getattribute__(self, "config")
        return getattr(config, DECODER_COUNTS.get(name, name))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in DECODER_COUNTS:
            raise AttributeError(
                f"{name} of an encoder-decoder's config is read as its decoder's "
                f"({DECODER_COUNTS[name]}); set that attribute on the config itself"
            )
        setattr(self.config, name, value)

    def __repr__(self) -> str:
        return f"DecoderConfig({self.config!r})"


def decoder_view(config: Any) -> Any:
    """`config` read as its decoder's where it is an encoder-decoder's flat config whose counts
    name the encoder's (a `DecoderConfig`), else `config` itself."""
    aliases = getattr(config, "attribute_map", None) or {}
    if any(
        hasattr(config, decoder) and aliases.get(count, count) != decoder
        for count, decoder in DECODER_COUNTS.items()
    ):
        return DecoderConfig(config)
    return config
