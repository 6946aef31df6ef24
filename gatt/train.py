"""Ghost Attention, step 2: fine-tune the latest policy on the GAtt dataset (Llama 2 paper, section 3.3).

    python gatt/train.py                               # after gatt/synthesize.py, the built-in world, minutes
    python gatt/train.py train_data=/data/gatt/train.jsonl init_from=/ckpt/rlhf-v5

An SFT step on rows with explicit labels (`<run>/gatt-data/train.jsonl`, or train_data): GAtt examples
train only their last answer, replayed base dialogs every answer. Output: `<run.root>/<run.name>/gatt/`,
which later stages (and gatt/evaluate.py) find as the run's newest policy.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig
from transformers import set_seed

import gatt.config  # noqa: F401  (registers the config schema)
from basemodel.loading import load_causal_lm
from chat.format import ChatEncoder
from gatt.dataset import read_training_rows
from gatt.policy import latest_policy, policy_model_cfg
from pipeline.processes import is_main_process
from pipeline.stage import COMPLETE_MARKER, Stage, run_dir
from pipeline.tracking import start_tracking
from sft.finetune import fine_tune, land_stage, save_model_stage

log = logging.getLogger("gatt.train")
STAGE = "gatt"


def dataset_path(cfg) -> Path:
    if cfg.train_data:
        return Path(cfg.train_data)
    data_stage = run_dir(cfg.run) / "gatt-data"
    if not (data_stage / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(
            f"no finished GAtt dataset in {data_stage}; run python gatt/synthesize.py run.name={cfg.run.name} "
            "first or set train_data"
        )
    return data_stage / "train.jsonl"


@hydra.main(version_base=None, config_path="../conf", config_name="gatt")
def main(cfg: DictConfig) -> None:
    stage = Stage(cfg.run, STAGE)
    if not stage.begin_or_skip():
        return
    set_seed(cfg.run.seed)
    policy = latest_policy(cfg)
    data = dataset_path(cfg)
    rows, data_stats = read_training_rows(data)
    too_long = [i for i, row in enumerate(rows) if len(row["input_ids"]) > cfg.model.max_length]
    if too_long:
        raise ValueError(
            f"{data}: {len(too_long)} rows are longer than model.max_length={cfg.model.max_length} "
            f"(first: line {too_long[0] + 1}); synthesize with the same max_length"
        )
    log.info("fine-tuning %s on %s (%s)", policy, data, data_stats)
    encoder = ChatEncoder.from_path(policy)
    model = load_causal_lm(policy_model_cfg(cfg, policy), cfg.peft, seed=cfg.run.seed)
    tracker = start_tracking(cfg, STAGE, stage.work)
    model, metrics = fine_tune(
        model, str(policy), rows, [], cfg.train, cfg.model, stage, tracker, cfg.run.seed
    )
    if not is_main_process():
        return
    metrics = {"policy": str(policy), "data": str(data), **data_stats, **metrics}
    save_model_stage(model, str(policy), stage, cfg.peft.merge_at_save, encoder)
    tracker.summary(metrics)
    land_stage(stage, cfg, base=str(policy), data=f"GAtt dataset {data}", metrics=metrics)
    tracker.finish()
    log.info("GAtt fine-tune done: %s (evaluate with python gatt/evaluate.py)", stage.final)


if __name__ == "__main__":
    sys.exit(main())
