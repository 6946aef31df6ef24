"""Runs of finished stages made from small random models, for tests of the stages that read them."""

from __future__ import annotations

from pathlib import Path

SMALL_MODEL = {
    "hidden_size": 64,
    "num_layers": 2,
    "num_heads": 2,
    "num_kv_heads": 1,
    "intermediate_size": 128,
}


def write_fake_run(run: Path, policies: dict[str, int], reward_models: dict[str, int]) -> Path:
    """Save a random small policy per `policies` stage and a reward model per `reward_models` stage (stage
    folder -> seed), each with the tiny tokenizer and a metrics.json, so the stage counts as finished."""
    from basemodel import TINY_TOKENIZER_DIR
    from basemodel.loading import load_causal_lm, load_sequence_classifier
    from chat.format import ChatEncoder
    from chat.tokenizer import load_hf_tokenizer, save_tokenizer
    from pipeline.config import ModelConfig
    from reward.scoring import reward_pad_id

    cfg = ModelConfig(**SMALL_MODEL)
    pad = reward_pad_id(
        ChatEncoder.from_path(TINY_TOKENIZER_DIR), load_hf_tokenizer(TINY_TOKENIZER_DIR).unk_token_id
    )
    models = {stage: load_causal_lm(cfg, None, seed=seed) for stage, seed in policies.items()}
    models |= {
        stage: load_sequence_classifier(cfg, None, seed=seed, pad_token_id=pad)
        for stage, seed in reward_models.items()
    }
    for stage, model in models.items():
        model.save_pretrained(run / stage)
        save_tokenizer(TINY_TOKENIZER_DIR, run / stage)
        (run / stage / "metrics.json").write_text("{}")
    return run
