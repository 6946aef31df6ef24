"""Supervised fine-tuning on pre-encoded rows, shared by every stage that trains with the SFT loss.

SFT itself, rejection-sampling fine-tuning (on the best samples) and GAtt (on rows whose labels keep
only the last answer) all train the same way: trl's SFTTrainer on `{"input_ids", "labels"}` rows,
checkpointing into the stage's work folder so a killed run resumes.
"""

from __future__ import annotations

import logging
import time

import torch
from datasets import Dataset
from transformers import GenerationConfig
from trl import SFTConfig as TrlSFTConfig
from trl import SFTTrainer

from basemodel.loading import save_model
from basemodel.precision import train_in_bf16
from chat.tokenizer import load_hf_tokenizer, save_tokenizer
from pipeline.model_card import write_model_card
from pipeline.processes import accumulation_steps, world_size
from pipeline.stage import Stage, last_complete_checkpoint, write_resolved_config
from sft.encoding import replicas_agree
from sft.sampler import BucketedSFTTrainer

log = logging.getLogger(__name__)


def fine_tune(
    model,
    tokenizer_path,
    train_rows,
    test_rows,
    train_cfg,
    model_cfg,
    stage: Stage,
    tracker,
    seed,
    callbacks=(),
):
    """Train `model` on the rows; resume from the stage's last complete checkpoint. Returns (model, metrics)."""
    args = TrlSFTConfig(
        output_dir=str(stage.checkpoints),
        num_train_epochs=train_cfg.epochs,
        max_steps=train_cfg.max_steps,
        learning_rate=train_cfg.lr,
        weight_decay=train_cfg.weight_decay,
        lr_scheduler_type=train_cfg.lr_scheduler,
        warmup_steps=train_cfg.warmup_ratio,  # a value below 1 is a fraction of the steps
        per_device_train_batch_size=train_cfg.per_device_batch_size,
        per_device_eval_batch_size=train_cfg.per_device_batch_size,
        gradient_accumulation_steps=accumulation_steps(
            train_cfg.sequences_per_step, train_cfg.per_device_batch_size, "train.sequences_per_step"
        ),
        gradient_checkpointing=model_cfg.gradient_checkpointing,
        # rows are already within model.max_length (encode_dialogs skips longer ones); trl refuses a
        # max_length with padding-free batches, which it cannot cut
        max_length=None if train_cfg.padding_free else model_cfg.max_length,
        # length_buckets is ours (BucketedSFTTrainer); the others are transformers' own samplers
        train_sampling_strategy="random" if train_cfg.sampling == "length_buckets" else train_cfg.sampling,
        packing=train_cfg.packing,
        padding_free=train_cfg.padding_free,
        eval_strategy="steps" if test_rows else "no",
        eval_steps=train_cfg.eval_steps,
        save_strategy="steps",
        save_steps=train_cfg.save_steps,
        save_total_limit=2,  # the newest may be half-written when killed; the one before it is whole
        logging_steps=train_cfg.logging_steps,
        report_to=tracker.report_to,
        use_cpu=not torch.cuda.is_available(),
        bf16=train_in_bf16(model_cfg),
        seed=seed,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
    )
    trainer_class = BucketedSFTTrainer if train_cfg.sampling == "length_buckets" else SFTTrainer
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(test_rows) if test_rows else None,
        processing_class=load_hf_tokenizer(tokenizer_path),
        callbacks=list(callbacks),
    )
    resume = last_complete_checkpoint(stage.checkpoints)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started
    resumed_from = int(resume.name.split("-")[1]) if resume else 0
    steps_run = trainer.state.global_step - resumed_from
    tokens = trainer.state.num_input_tokens_seen * steps_run / max(trainer.state.global_step, 1)
    metrics = {
        "train_loss": result.training_loss,
        "global_step": trainer.state.global_step,
        "resumed_from_step": resumed_from,
        "train_seconds": seconds,
        "tokens_per_s": tokens / max(seconds, 1e-9),
        "world_size": world_size(),
        "train_sequences": len(train_rows),
        "test_sequences": len(test_rows),
    }
    if test_rows:
        metrics["eval_loss"] = trainer.evaluate()["eval_loss"]
    metrics["replicas_identical"] = replicas_agree(trainer.model)
    return trainer.model, metrics


def save_model_stage(model, tokenizer_path, stage: Stage, merge_adapters: bool, encoder) -> object:
    """Weights (safetensors), tokenizer with the chat template, and a generation config that stops at EOS."""
    model.generation_config = GenerationConfig(
        bos_token_id=encoder.bos_id,
        eos_token_id=encoder.eos_id,
        pad_token_id=encoder.pad_id,
        do_sample=True,
        temperature=0.6,  # what Meta ships with Llama-2-chat
        top_p=0.9,
        max_new_tokens=512,
    )
    saved = save_model(model, stage.work, merge_adapters=merge_adapters)
    save_tokenizer(tokenizer_path, stage.work)
    return saved


def land_stage(stage: Stage, cfg, *, base: str, data: str, metrics: dict) -> None:
    """Resolved config, model card, then metrics.json and the atomic rename into place."""
    write_resolved_config(cfg, stage.work)
    write_model_card(stage.work, stage=stage.name, base=base, data=data, cfg=cfg, metrics=metrics)
    stage.finish(metrics)
