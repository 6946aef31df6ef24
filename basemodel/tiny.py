"""The architecture of the built-in tiny Llama: Llama 2's design at a size that trains on a CPU."""

from __future__ import annotations

from transformers import LlamaConfig

from pipeline.config import ModelConfig

# Llama 2's values (params.json of the released checkpoints).
LLAMA2_RMS_NORM_EPS = 1e-5
LLAMA2_ROPE_THETA = 10000.0
LLAMA_BOS_ID, LLAMA_EOS_ID = 1, 2


def check_tiny_sizes(model_cfg: ModelConfig) -> None:
    """Raise ValueError naming the model.* key whose value cannot build a Llama."""
    sizes = {
        "hidden_size": model_cfg.hidden_size,
        "num_layers": model_cfg.num_layers,
        "num_heads": model_cfg.num_heads,
        "num_kv_heads": model_cfg.num_kv_heads,
        "intermediate_size": model_cfg.intermediate_size,
        "max_position_embeddings": model_cfg.max_position_embeddings,
    }
    for key, value in sizes.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"model.{key} must be a positive integer, got {value!r}")
    if model_cfg.hidden_size % model_cfg.num_heads:
        raise ValueError(
            f"model.hidden_size ({model_cfg.hidden_size}) must be divisible by model.num_heads ({model_cfg.num_heads})"
        )
    if model_cfg.num_heads % model_cfg.num_kv_heads:
        raise ValueError(
            f"model.num_heads ({model_cfg.num_heads}) must be a multiple of model.num_kv_heads "
            f"({model_cfg.num_kv_heads}): each key/value head serves a whole group of query heads"
        )
    if (model_cfg.hidden_size // model_cfg.num_heads) % 2:
        raise ValueError(
            f"model.hidden_size / model.num_heads = {model_cfg.hidden_size // model_cfg.num_heads} must be even "
            "(rotary embeddings rotate pairs of dimensions)"
        )


def tiny_llama_config(model_cfg: ModelConfig, vocab_size: int) -> LlamaConfig:
    """A LlamaConfig with the sizes of `model_cfg` and Llama 2's other choices.

    Grouped-query attention when num_kv_heads < num_heads (the default config), RoPE, RMSNorm, SwiGLU, untied
    input and output embeddings, bos=1 / eos=2 and no pad token, as in the released checkpoints.
    """
    check_tiny_sizes(model_cfg)
    if vocab_size <= LLAMA_EOS_ID:
        raise ValueError(
            f"vocab_size must be > {LLAMA_EOS_ID} (ids 0-2 are <unk>, <s>, </s>), got {vocab_size}"
        )
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=model_cfg.hidden_size,
        intermediate_size=model_cfg.intermediate_size,
        num_hidden_layers=model_cfg.num_layers,
        num_attention_heads=model_cfg.num_heads,
        num_key_value_heads=model_cfg.num_kv_heads,
        max_position_embeddings=model_cfg.max_position_embeddings,
        hidden_act="silu",
        rms_norm_eps=LLAMA2_RMS_NORM_EPS,
        rope_parameters={"rope_type": "default", "rope_theta": LLAMA2_ROPE_THETA},
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=LLAMA_BOS_ID,
        eos_token_id=LLAMA_EOS_ID,
        pad_token_id=None,
    )
