"""Stage 1, supervised fine-tuning (Llama 2 paper, section 3.1).

    python sft/train.py                                   # tiny Llama on the built-in world, CPU, minutes
    python sft/train.py model=llama2-7b model.path=/ckpt/Llama-2-7b-hf data=hh_rlhf peft=lora
    python sft/train.py +experiment=safety                # safety context distillation -> sft-safety/

Dialogs are encoded token-exactly in the Llama 2 chat format with the loss on every assistant answer
(and the EOS closing it) only, then trained with trl's SFTTrainer. Output: `<run.root>/<run.name>/sft/`.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf
from transformers import set_seed

import sft.config  # noqa: F401  (registers the config schema)
from basemodel.loading import load_causal_lm, load_tokenizer_path
from chat.format import ChatEncoder
from pipeline.config import model_at
from pipeline.inputs import data_sources, describe, read_sft_dialogs, world_dir
from pipeline.oracle_eval import oracle_metrics
from pipeline.processes import is_main_process
from pipeline.stage import Stage, find_policy
from pipeline.tracking import start_tracking
from sft.callbacks import SampleTableCallback
from sft.context_distillation import safety_distillation_data
from sft.encoding import encode_dialogs
from sft.finetune import fine_tune, land_stage, save_model_stage

log = logging.getLogger("sft")
SFT_FILES = "sft/{split}.jsonl"  # within the built-in world


STAGE_OF = {"none": "sft", "safety": "sft-safety"}  # experiment -> output folder


def starting_checkpoint(cfg: DictConfig, stage_name: str) -> str | None:
    """init_from, else for safety distillation the run's newest policy, else None (the base model)."""
    if cfg.init_from:
        return cfg.init_from
    if cfg.experiment != "safety":
        return None
    policy = find_policy(cfg.run, before=stage_name)
    if policy is None:
        raise FileNotFoundError(
            f"safety context distillation starts from a policy of run {cfg.run.name!r}: none under "
            f"{cfg.run.root}; run python sft/train.py first, or pass init_from=PATH"
        )
    return str(policy)


def sft_dialogs(cfg: DictConfig) -> tuple[list, list]:
    """(train, test) dialogs of the configured data."""
    train = read_sft_dialogs(data_sources(cfg.run, cfg.data, "train", SFT_FILES), cfg.data.format, "train")
    test_sources = data_sources(cfg.run, cfg.data, "test", SFT_FILES)
    test = read_sft_dialogs(test_sources, cfg.data.format, "test") if test_sources else []
    if cfg.data.max_train_samples:
        train = train[: cfg.data.max_train_samples]
    return train, test


@hydra.main(version_base=None, config_path="../conf", config_name="sft")
def main(cfg: DictConfig) -> None:
    if cfg.experiment not in STAGE_OF:
        raise SystemExit(f"experiment={cfg.experiment!r}: SFT knows {', '.join(STAGE_OF)}")
    stage = Stage(cfg.run, cfg.stage or STAGE_OF[cfg.experiment])
    if not stage.begin_or_skip():
        return
    set_seed(cfg.run.seed)

    # Model: the base (random-init tiny Llama or a real checkpoint), or a checkpoint to continue from.
    start = starting_checkpoint(cfg, stage.name)
    tokenizer_path = start or load_tokenizer_path(cfg.model)
    encoder = ChatEncoder.from_path(tokenizer_path)
    model_cfg = cfg.model if start is None else model_at(cfg.model, start)
    model = load_causal_lm(model_cfg, cfg.peft, seed=cfg.run.seed)
    tracker = start_tracking(cfg, stage.name, stage.work)  # a no-op on every rank but the first
    use_oracle = cfg.data.name == "builtin" and cfg.eval.oracle and is_main_process()
    metrics: dict = {}
    if use_oracle:
        metrics["oracle.before"], samples = oracle_metrics(
            model, encoder, world_dir(cfg.run, cfg.data), cfg.eval
        )
        tracker.log_table("samples/before", ["prompt", "answer"], samples)

    # Data: dialogs -> token-exact Llama 2 segments with labels on the answers only. Safety distillation
    # makes its dialogs with the model itself (preprompted answers the safety RM prefers).
    train_cfg = cfg.train
    if cfg.experiment == "safety":
        train_dialogs, metrics["distillation"] = safety_distillation_data(cfg, model, encoder)
        test_dialogs = []
        train_cfg = OmegaConf.merge(cfg.train, {"lr": cfg.distill.lr, "epochs": cfg.distill.epochs})
    else:
        train_dialogs, test_dialogs = sft_dialogs(cfg)
    train_rows = encode_dialogs(encoder, train_dialogs, cfg.model.max_length, "train")
    test_rows = encode_dialogs(encoder, test_dialogs, cfg.model.max_length, "test")

    samples = SampleTableCallback(
        tracker, encoder, test_dialogs[: cfg.eval.samples_in_table], cfg.eval.max_new_tokens
    )
    if train_rows:
        model, train_metrics = fine_tune(
            model,
            tokenizer_path,
            train_rows,
            test_rows,
            train_cfg,
            cfg.model,
            stage,
            tracker,
            cfg.run.seed,
            [samples],
        )
        metrics.update(train_metrics)
    elif cfg.experiment == "safety":
        # The safety RM preferred no preprompted answer: nothing to distil, so the stage's policy is the one
        # it started from (every rank sees the same empty set and skips alike).
        log.warning("context distillation kept no answer: %s is the starting policy, untrained", stage.name)
        metrics["train_skipped"] = "context distillation kept no answer"
    else:
        raise ValueError(
            f"SFT: no training dialog of {describe(cfg.data)} fits model.max_length={cfg.model.max_length} "
            "(longer ones are skipped, not truncated)"
        )
    if not is_main_process():
        return
    model = save_model_stage(model, tokenizer_path, stage, cfg.peft.merge_at_save, encoder)
    if use_oracle:
        metrics["oracle.after"], samples = oracle_metrics(
            model, encoder, world_dir(cfg.run, cfg.data), cfg.eval
        )
        tracker.log_table("samples/after", ["prompt", "answer"], samples)
    tracker.summary(metrics)
    base = start or cfg.model.path or f"tiny Llama (random init, seed {cfg.run.seed})"
    land_stage(stage, cfg, base=base, data=describe(cfg.data), metrics=metrics)
    tracker.finish()
    log.info("SFT done: %s", stage.final)


if __name__ == "__main__":
    sys.exit(main())
