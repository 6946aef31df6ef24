"""Stage 2, reward models with the Llama 2 margin ranking loss (section 3.2.2, appendix A.3.3).

    python reward/train.py                      # the helpfulness RM -> runs/<name>/reward/helpfulness/
    python reward/train.py +experiment=safety   # the safety RM      -> runs/<name>/reward/safety/
    python reward/train.py train.margin=large data=hh_rlhf init_from=/ckpt/llama-2-7b-sft

Starts from the run's SFT checkpoint with a scalar head (AutoModelForSequenceClassification, num_labels=1)
and trains it with trl's RewardTrainer on pre-encoded pairs whose margin column holds m(rating), so its loss
is -log sigmoid(r_chosen - r_rejected - m(rating)). Evaluation (metrics.json, wandb): accuracy per rating
level on every test set, score histograms, and for the safety RM the 0.15-threshold precision / recall.
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from pathlib import Path

import hydra
import torch
from datasets import Dataset
from omegaconf import DictConfig
from transformers import set_seed
from trl import RewardConfig as TrlRewardConfig
from trl import RewardTrainer

import reward.config  # noqa: F401  (registers the config schema)
from basemodel.loading import load_sequence_classifier, save_model
from basemodel.precision import train_in_bf16
from chat.format import ChatEncoder
from chat.tokenizer import load_hf_tokenizer, save_tokenizer
from pipeline import processes
from pipeline.config import model_at
from pipeline.inputs import describe
from pipeline.model_card import write_model_card
from pipeline.processes import accumulation_steps
from pipeline.stage import (
    COMPLETE_MARKER,
    Stage,
    last_complete_checkpoint,
    run_dir,
    write_resolved_config,
)
from pipeline.tracking import start_tracking
from reward.batching import epochs_order, length_grouped_order
from reward.config import check_pair_caps, objective_of
from reward.data import curriculum_pairs, eval_sets, training_pairs
from reward.encoding import encode_pairs
from reward.evaluation import evaluate_pairs
from reward.losses import margin_table
from reward.metrics import format_accuracy_table
from reward.reporting import baseline_rows, log_evaluation
from reward.scoring import RewardScorer, reward_pad_id

log = logging.getLogger("reward")


def sft_checkpoint(cfg: DictConfig) -> str:
    """init_from if given, else the run's finished SFT stage; a clear error when there is none."""
    if cfg.init_from:
        if not Path(cfg.init_from).expanduser().is_dir():
            raise FileNotFoundError(f"init_from={cfg.init_from}: no such checkpoint directory")
        return str(Path(cfg.init_from).expanduser())
    sft = run_dir(cfg.run) / "sft"
    if not (sft / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(
            f"no finished SFT checkpoint at {sft}: run python sft/train.py first "
            f"(same run.name / run.root), or pass init_from=PATH"
        )
    return str(sft)


def warmup_steps(total_steps: int, ratio: float, minimum: int) -> int:
    """The paper's warm-up: `ratio` of the steps, at least `minimum`, never more than all of them."""
    return min(total_steps, max(minimum, math.ceil(ratio * total_steps)))


def optimizer_steps(rows: int, pairs_per_step: int, max_steps: int) -> int:
    """Steps for one pass over the scheduled rows (curriculum and every epoch, laid out in order)."""
    if max_steps > 0:
        return max_steps
    return max(1, math.ceil(rows / pairs_per_step))


def trainer_args(cfg: DictConfig, stage: Stage, n_rows: int, world_size: int, report_to: list[str]):
    accumulation = accumulation_steps(
        cfg.train.pairs_per_step, cfg.train.per_device_batch_size, "train.pairs_per_step"
    )
    pairs_per_step = accumulation * cfg.train.per_device_batch_size * world_size
    steps = optimizer_steps(n_rows, pairs_per_step, cfg.train.max_steps)
    return TrlRewardConfig(
        output_dir=str(stage.checkpoints),
        num_train_epochs=1,  # the rows already hold cfg.train.epochs passes (schedule_rows)
        max_steps=cfg.train.max_steps,
        learning_rate=cfg.train.lr,
        weight_decay=cfg.train.weight_decay,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": cfg.train.min_lr_ratio},
        warmup_steps=warmup_steps(steps, cfg.train.warmup_ratio, cfg.train.min_warmup_steps),
        per_device_train_batch_size=cfg.train.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        gradient_checkpointing=cfg.model.gradient_checkpointing,
        max_length=None,  # pairs are fitted to model.max_length beforehand, prompts shortened, never dropped
        train_sampling_strategy="sequential",  # the rows come in schedule_rows' seeded order
        eval_strategy="no",  # evaluation per rating level runs after training (reward/evaluation.py)
        save_strategy="steps",
        save_steps=cfg.train.save_steps,
        save_total_limit=2,  # the newest may be half-written when killed; the one before it is whole
        logging_steps=cfg.train.logging_steps,
        report_to=report_to,
        use_cpu=not torch.cuda.is_available(),
        bf16=train_in_bf16(cfg.model),
        seed=cfg.run.seed,
        dataloader_num_workers=0,
    )


def schedule_rows(cfg: DictConfig, first: list[dict], rows: list[dict]) -> list[dict]:
    """Every row training sees, in order: the curriculum once, then train.epochs passes over the mixture.

    Seeded and fixed, so a resumed run sees the same batches; batches of similar length pad less.
    """
    rng = random.Random(cfg.run.seed)
    batch, width = cfg.train.per_device_batch_size, cfg.train.length_bin_width

    def lengths(rs):
        return [max(len(r["chosen_ids"]), len(r["rejected_ids"])) for r in rs]

    first_order = length_grouped_order(lengths(first), batch, rng, width)
    order = epochs_order(lengths(rows), cfg.train.epochs, batch, rng, width)
    return [first[i] for i in first_order] + [rows[i] for i in order]


def evaluate_all(cfg: DictConfig, scorer: RewardScorer, objective: str) -> dict:
    threshold = cfg.eval.unsafe_threshold if objective == "safety" else None
    results = {}
    for name, pairs in eval_sets(cfg).items():
        if cfg.eval.max_pairs:
            pairs = pairs[: cfg.eval.max_pairs]
        results[name] = evaluate_pairs(
            scorer,
            pairs,
            bins=cfg.eval.histogram_bins,
            unsafe_threshold=threshold,
            builtin=cfg.data.name == "builtin",
        )
    return results


@hydra.main(version_base=None, config_path="../conf", config_name="reward")
def main(cfg: DictConfig) -> None:
    objective = objective_of(cfg.experiment)
    margins = margin_table(cfg.train.margin)  # checked before anything runs
    check_pair_caps(cfg)
    stage = Stage(cfg.run, cfg.stage or f"reward/{objective}")
    if not stage.begin_or_skip():
        return
    work = stage.work
    set_seed(cfg.run.seed)
    world_size = processes.world_size()
    is_main = processes.is_main_process()
    init = sft_checkpoint(cfg)

    encoder = ChatEncoder.from_path(init)
    hf_tokenizer = load_hf_tokenizer(init)
    pad_id = reward_pad_id(encoder, hf_tokenizer.unk_token_id)
    # trl copies the tokenizer's pad into the model's config.pad_token_id, which the head pools by.
    hf_tokenizer.pad_token = hf_tokenizer.convert_ids_to_tokens(pad_id)

    pairs, mixture = training_pairs(cfg, objective)
    if cfg.train.max_pairs:
        pairs = pairs[: cfg.train.max_pairs]  # the mix is shuffled, so a prefix keeps its proportions
    first = curriculum_pairs(cfg, objective)
    if cfg.train.max_curriculum_pairs:
        first = first[: cfg.train.max_curriculum_pairs]  # in file order: the first pairs of the lesson
    rows, encoding = encode_pairs(encoder, pairs, cfg.model.max_length, margins, "train")
    first_rows, first_encoding = encode_pairs(encoder, first, cfg.model.max_length, margins, "curriculum")
    rows = schedule_rows(cfg, first_rows, rows)
    metrics: dict = {
        "objective": objective,
        "margin": cfg.train.margin,
        "init_from": init,
        "world_size": world_size,
        "train_mixture": mixture,
        "train_pairs": len(pairs),
        "train_encoding": encoding.as_dict(),
        "curriculum_pairs": len(first),
        "curriculum_encoding": first_encoding.as_dict(),
    }

    model = load_sequence_classifier(
        model_at(cfg.model, init), cfg.peft, seed=cfg.run.seed, pad_token_id=pad_id
    )
    tracker = start_tracking(cfg, stage.name.replace("/", "-"), work)
    args = trainer_args(cfg, stage, len(rows), world_size, tracker.report_to)
    columns = ("chosen_ids", "rejected_ids", "margin")
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([{k: r[k] for k in columns} for r in rows]),
        processing_class=hf_tokenizer,
    )
    resume = last_complete_checkpoint(stage.checkpoints)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    metrics.update(
        train_loss=result.training_loss,
        global_step=trainer.state.global_step,
        warmup_steps=args.warmup_steps,
        resumed_from_step=int(resume.name.split("-")[1]) if resume else 0,
        train_seconds=time.perf_counter() - started,
    )
    if not is_main:
        return

    trained = save_model(trainer.model, work, merge_adapters=cfg.peft.merge_at_save)
    save_tokenizer(init, work)
    scorer = RewardScorer(trained, encoder, batch_size=cfg.eval.batch_size, max_length=cfg.model.max_length)
    started = time.perf_counter()
    metrics["eval"] = evaluate_all(cfg, scorer, objective)
    metrics["eval_seconds"] = time.perf_counter() - started
    if cfg.data.name == "builtin" and cfg.eval.baselines:
        metrics["baselines"] = baseline_rows(cfg)
    log_evaluation(tracker, metrics)
    for name, result in metrics["eval"].items():
        log.info(
            "%s RM on %s (accuracy %%):\n%s",
            objective,
            name,
            format_accuracy_table({name: result["accuracy"]}),
        )
        if result.get("correct_vs"):  # built-in world: does the RM check the value, or only the shape?
            log.info(
                "%s RM on %s, correct answer vs: %s",
                objective,
                name,
                ", ".join(f"{k} {v['accuracy']:.1%} ({v['pairs']})" for k, v in result["correct_vs"].items()),
            )
    write_resolved_config(cfg, work)
    write_model_card(
        work,
        stage=stage.name,
        base=init,
        data=describe(cfg.data),
        cfg=cfg,
        metrics=metrics,
        loader="AutoModelForSequenceClassification",
    )
    stage.finish(metrics)
    tracker.finish()
    log.info("reward model done: %s", stage.final)


if __name__ == "__main__":
    sys.exit(main())
