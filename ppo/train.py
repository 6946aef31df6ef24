"""Stage 3b, PPO against the Llama 2 reward (section 3.2.3).

    python ppo/train.py                         # helpfulness RM            -> runs/<name>/ppo/
    python ppo/train.py +experiment=safety      # both RMs, Llama 2 rule    -> runs/<name>/ppo-safety/
    accelerate launch --config_file conf/accelerate/ddp.yaml ppo/train.py model=llama2-7b peft=lora ...

Each iteration: sample answers to a batch of prompts with the policy, score them with the reward models
(R_c: the safety RM on safety prompts or where sigmoid(R_s) < 0.15, else the helpfulness RM), whiten,
subtract beta * KL(policy || reference) per token, GAE, then clipped PPO updates with one optimizer step per
mini-batch. The policy starts from the run's newest policy (rejection sampling, else SFT), the reference is
that policy frozen (LoRA: adapters disabled), the value model starts from the helpfulness RM. A checkpoint
is written every train.save_every iterations; a killed run resumes from the newest one.
"""

from __future__ import annotations

import logging
import sys
import time
from functools import partial
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from transformers import set_seed

import ppo.config  # noqa: F401  (registers the config schema)
from basemodel.loading import load_causal_lm, load_sequence_classifier
from basemodel.precision import cpu_autocast
from chat.format import ChatEncoder
from chat.readers import read_prompts
from generation import SamplingParams, generate_answers, make_generator
from pipeline.config import model_at
from pipeline.inputs import data_sources, describe, world_dir
from pipeline.oracle_eval import oracle_metrics
from pipeline.stage import Stage, find_policy, write_json
from pipeline.tracking import start_tracking
from ppo.checkpoint import last_checkpoint, load_checkpoint, save_checkpoint
from ppo.config import check_attention_for_layout, check_train_config, stage_of
from ppo.ppo_models import ValueModel, freeze, no_dropout, uses_lora
from ppo.ppo_prompts import iteration_prompts, prompt_pools, split_heldout
from ppo.ppo_scoring import EarlyStopping, RewardModels, load_reward_models
from ppo.rewards import RunningMoments, combine_rewards
from ppo.rollout import (
    collect_rollout,
    out_of_inference_mode,
    pack_sequences,
    rollout_stats,
    sequence_scores,
)
from ppo.trainer import Learner, make_optimizer, ppo_update
from sft.finetune import land_stage, save_model_stage

log = logging.getLogger("ppo")
PROMPT_FILES = "prompts/{split}.jsonl"  # within the built-in world


class KLBoundExceeded(RuntimeError):
    """The policy drifted past train.kl_max from the reference."""


def starting_policy(cfg: DictConfig, stage_name: str) -> Path:
    if cfg.init_from:
        path = Path(cfg.init_from).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"init_from={cfg.init_from}: no checkpoint (config.json) there")
        return path
    found = find_policy(cfg.run, before=stage_name)
    if found is None:
        raise FileNotFoundError(
            f"no finished policy stage before {stage_name} in run {cfg.run.name!r} under {cfg.run.root}: "
            "run python sft/train.py first (same run.name / run.root), or pass init_from=PATH"
        )
    return found


def load_models(cfg: DictConfig, start: Path, rms: RewardModels, rm_folders: dict):
    """(policy, frozen reference copy or None with LoRA, value model)."""
    policy = no_dropout(load_causal_lm(model_at(cfg.model, start), cfg.peft, seed=cfg.run.seed))
    reference = None
    if not uses_lora(policy):
        reference = freeze(load_causal_lm(model_at(cfg.model, start), None, seed=cfg.run.seed))
    value_from = rm_folders["helpfulness"] if cfg.train.value_init == "reward" else start
    classifier = load_sequence_classifier(
        model_at(cfg.model, value_from), cfg.peft, seed=cfg.run.seed, pad_token_id=rms.helpful.pad_id
    )
    return policy, reference, ValueModel(no_dropout(classifier))


def heldout_reward(policy, encoder, rms: RewardModels, heldout, cfg: DictConfig) -> float:
    """Mean R_c of greedy answers to the held-out prompts: what early stopping watches."""
    dialogs = [r.prompt for r in heldout]
    params = SamplingParams(max_new_tokens=cfg.early_stop.max_new_tokens, temperature=0.0)
    answers = generate_answers(policy, encoder, dialogs, params, batch_size=cfg.train.generation_batch_size)
    helpful, safety = rms.score(dialogs, answers)
    if safety is None:
        return helpful.mean().item()
    is_safety = torch.tensor([r.is_safety for r in heldout])
    return combine_rewards(helpful, safety, is_safety, cfg.train.safety_threshold)[0].mean().item()


def curve_eval(eval_cfg: DictConfig) -> DictConfig:
    """The oracle evaluation of the curve's points during training: eval's settings with
    curve_samples_per_prompt answers to every prompt, harmful requests too."""
    every = eval_cfg.curve_samples_per_prompt
    return OmegaConf.merge(eval_cfg, {"samples_per_prompt": every, "harmful_samples_per_prompt": every})


def oracle_row(oracle: dict) -> dict:
    """An oracle evaluation as the `oracle/*` entries of an iteration's row."""
    return {f"oracle/{k}": v for k, v in oracle.items() if isinstance(v, float)}


def check_kl(kl: float, iteration: int, cfg: DictConfig, stage: Stage) -> None:
    """Stop at a KL spike; the newest checkpoint holds the policy that spiked, so it is set aside."""
    if kl <= cfg.train.kl_max:
        return
    from ppo.checkpoint import checkpoints

    saved = checkpoints(stage.checkpoints)
    if saved and saved[-1].name == f"iter-{iteration - 1}":
        saved[-1].rename(saved[-1].with_name(f"kl-spike-{saved[-1].name}"))
        saved = saved[:-1]
    good = saved[-1] if saved else "none (the spike came before the first checkpoint)"
    raise KLBoundExceeded(
        f"KL(policy || reference) = {kl:.3f} nats per answer at iteration {iteration}, past train.kl_max="
        f"{cfg.train.kl_max}: stopping. Last good checkpoint: {good}. Lower train.lr or raise train.kl_beta, "
        "then rerun to resume from it."
    )


@hydra.main(version_base=None, config_path="../conf", config_name="ppo")
def main(cfg: DictConfig) -> None:
    from accelerate import Accelerator

    stage_name = cfg.stage or stage_of(cfg.experiment)
    check_train_config(cfg.train)
    check_attention_for_layout(cfg.train, cfg.model)
    stage = Stage(cfg.run, stage_name)
    if not stage.begin_or_skip():
        return
    work = stage.work
    set_seed(cfg.run.seed)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    device = accelerator.device
    train = cfg.train
    if train.mini_batch_size % (accelerator.num_processes * train.micro_batch_size):
        raise ValueError(
            f"train.mini_batch_size={train.mini_batch_size} must split into {accelerator.num_processes} processes "
            f"x train.micro_batch_size={train.micro_batch_size}"
        )

    # Prompts: the training set minus a held-out slice for early stopping; safety prompts per experiment.
    start = starting_policy(cfg, stage_name)
    encoder = ChatEncoder.from_path(start)
    records, _ = read_prompts(data_sources(cfg.run, cfg.data, "train", PROMPT_FILES))
    records = records[: cfg.prompts.max_prompts] if cfg.prompts.max_prompts else records
    train_records, heldout = split_heldout(records, cfg.prompts.heldout, cfg.run.seed)
    safety_share = cfg.prompts.safety_share if cfg.experiment == "safety" else None
    regular, safety_pool, share = prompt_pools(train_records, safety_share)

    # Models: reward models (frozen), policy, reference (frozen, or the LoRA policy's disabled adapters), value.
    rms, rm_folders = load_reward_models(cfg, encoder, device)
    policy, reference, value_model = load_models(cfg, start, rms, rm_folders)
    if reference is not None:
        reference.to(device)
    policy_opt = make_optimizer(policy, train.lr, train)
    value_opt = make_optimizer(value_model, train.value_lr or train.lr, train)
    policy, value_model, policy_opt, value_opt = accelerator.prepare(
        policy, value_model, policy_opt, value_opt
    )
    learner = Learner(policy, value_model, policy_opt, value_opt, accelerator)
    # Each process updates on its share of a mini-batch; DDP averages the gradients across them.
    local_train = OmegaConf.merge(
        train, {"mini_batch_size": train.mini_batch_size // accelerator.num_processes}
    )
    raw_policy, raw_value = accelerator.unwrap_model(policy), accelerator.unwrap_model(value_model)
    optimizers = {"policy": policy_opt, "value": value_opt}
    shuffle = torch.Generator().manual_seed(cfg.run.seed)

    # Resume: weights, optimizers, RNG, iteration, whitening statistics, early stopping, history.
    state = {
        "moments": RunningMoments().state_dict(),
        "early_stop": EarlyStopping().state_dict(),
        "history": [],
    }
    first_iteration = 0
    resume = last_checkpoint(stage.checkpoints)
    if resume is not None:
        state = load_checkpoint(resume, raw_policy, raw_value, optimizers, shuffle)
        first_iteration = state["iteration"] + 1
        log.info("resumed from %s: continuing at iteration %d", resume, first_iteration)
    moments = RunningMoments.from_state_dict(state["moments"])
    stopping = EarlyStopping(**state["early_stop"])
    history: list[dict] = state["history"]

    tracker = start_tracking(cfg, stage_name, work)
    use_oracle = cfg.data.name == "builtin" and cfg.eval.oracle and accelerator.is_main_process
    world = world_dir(cfg.run, cfg.data) if use_oracle else None
    if use_oracle and "oracle.before" not in state:
        state["oracle.before"], samples = oracle_metrics(raw_policy, encoder, world, cfg.eval)
        # At the first iteration's step: a table logged without one would move wandb past step 0, and wandb
        # drops rows logged to an earlier step (iteration 0's metrics were lost that way).
        tracker.log_table("samples/before", ["prompt", "answer"], samples, step=first_iteration)

    generator = make_generator(
        train.generation_backend, encoder=encoder, model=raw_policy, batch_size=train.generation_batch_size
    )
    pad_id = encoder.pad_id if encoder.pad_id is not None else encoder.eos_id
    # Rollouts and updates compute as the other stages train; the oracle evaluations stay in float32 so
    # that `oracle.before` / `oracle.after` compare with every other stage's.
    compute = partial(cpu_autocast, cfg.model)
    stop_reason = "iterations"
    for iteration in range(first_iteration, train.iterations):
        started = time.perf_counter()
        # The same draw on every process; each takes its share (the paper's batch is across processes).
        chosen = iteration_prompts(
            regular, safety_pool, share, train.prompts_per_iteration, cfg.run.seed, iteration
        )[accelerator.process_index :: accelerator.num_processes]
        params = SamplingParams(
            max_new_tokens=train.max_new_tokens,
            temperature=train.temperature,
            top_p=train.top_p,
            num_samples=train.samples_per_prompt,
            seed=cfg.run.seed * 1_000_003 + iteration,
            logprobs=True,  # old log-probs from the decoding itself where the backend records them (HF)
        )
        with compute():  # bf16 autocast on a CPU with native bf16 (model.cpu_bf16_autocast)
            sampled = generator.generate([r.prompt for r in chosen], params)
            generated = time.perf_counter()
            # One row per answer; a prompt's samples sit next to each other (what minus_prompt_mean expects).
            completions = [c for samples in sampled for c in samples]
            chosen = [r for r in chosen for _ in range(train.samples_per_prompt)]
            dialogs = [r.prompt for r in chosen]

            helpful, safety = rms.score(dialogs, [c.text for c in completions])
            prompt_ids = [encoder.encode_for_generation(d) for d in dialogs]
            batch = pack_sequences(prompt_ids, [c.token_ids for c in completions], pad_id, encoder.eos_id).to(
                device
            )
            is_safety = torch.tensor([r.is_safety for r in chosen], device=device)
            score, used_safety = sequence_scores(
                helpful.to(device), None if safety is None else safety.to(device), is_safety, batch, train
            )
            every_score = accelerator.gather(score) if accelerator.num_processes > 1 else None
            rollout, moments = collect_rollout(
                raw_policy,
                reference,
                raw_value,
                batch,
                completions,
                score,
                moments,
                train,
                every_score,
                calibrate=iteration == 0 and train.value_init == "reward",
            )
        scored = time.perf_counter()

        row = {"iteration": iteration}
        if rollout is None:
            log.warning(
                "iteration %d: NaN or inf in the rewards, log-probs or values: update skipped", iteration
            )
            row["skipped_nonfinite_rollout"] = 1
        else:
            row.update(rollout_stats(rollout, helpful, safety, used_safety))
            try:
                check_kl(row["kl/sequence"], iteration, cfg, stage)
            except KLBoundExceeded as spike:
                tracker.finish()
                log.error("%s", spike)
                raise SystemExit(f"ppo: {spike}") from None
            with compute():
                row.update(ppo_update(learner, out_of_inference_mode(rollout), local_train, shuffle))
        trained = time.perf_counter()
        row.update(
            {
                "time/generate": generated - started,
                "time/score": scored - generated,
                "time/train": trained - scored,
                "time/iteration": trained - started,
            }
        )

        if cfg.early_stop.every and (iteration + 1) % cfg.early_stop.every == 0:
            with compute():
                row["heldout/reward"] = heldout_reward(raw_policy, encoder, rms, heldout, cfg)
            stopping = stopping.update(row["heldout/reward"], cfg.early_stop.min_delta)
            # The last iteration's point of the curve is oracle.after (the same policy): measured once.
            if use_oracle and iteration < train.iterations - 1:
                oracle_now, _ = oracle_metrics(raw_policy, encoder, world, curve_eval(cfg.eval))
                row.update(oracle_row(oracle_now))
        history.append(row)
        tracker.log(row, step=iteration)
        if iteration % 10 == 0 or iteration == train.iterations - 1:
            table = [[d[-1]["content"], c.text, s] for d, c, s in zip(dialogs, completions, score.tolist())]
            tracker.log_table(
                "samples", ["prompt", "answer", "score"], table[: train.samples_in_table], iteration
            )
        log.info(
            "iteration %d: %s", iteration, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)}
        )
        write_json(work / "metrics.json", {"status": "running", "iterations": history})

        state.update(moments=moments.state_dict(), early_stop=stopping.state_dict(), history=history)
        last = iteration == train.iterations - 1 or stopping.exhausted(cfg.early_stop.patience)
        if accelerator.is_main_process and ((iteration + 1) % train.save_every == 0 or last):
            save_checkpoint(
                stage.checkpoints,
                iteration,
                raw_policy,
                raw_value,
                optimizers,
                state,
                shuffle,
                train.keep_checkpoints,
            )
        if stopping.exhausted(cfg.early_stop.patience):
            stop_reason = "early_stopping"
            log.info(
                "early stopping at iteration %d: held-out reward has not improved for %d evaluations",
                iteration,
                cfg.early_stop.patience,
            )
            break
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return

    metrics = {
        "experiment": cfg.experiment,
        "init_from": str(start),
        "reward_models": rm_folders,
        "stopped_by": stop_reason,
        "iterations_run": len(history),
        "resumed_from_iteration": first_iteration,
        "whitening": moments.state_dict(),
        "iterations": history,
    }
    model = save_model_stage(raw_policy, str(start), stage, cfg.peft.merge_at_save, encoder)
    if use_oracle:
        metrics["oracle.before"] = state["oracle.before"]
        metrics["oracle.after"], samples = oracle_metrics(model, encoder, world, cfg.eval)
        if history and "heldout/reward" in history[-1] and "oracle/helpfulness" not in history[-1]:
            last_point = oracle_row(metrics["oracle.after"])  # the curve's last point (see the loop)
            history[-1].update(last_point)
            tracker.log(last_point, step=history[-1]["iteration"])  # before the table: wandb steps only rise
        tracker.log_table("samples/after", ["prompt", "answer"], samples)
    tracker.summary({k: v for k, v in metrics.items() if k != "iterations"})
    land_stage(stage, cfg, base=str(start), data=describe(cfg.data), metrics=metrics)
    tracker.finish()
    log.info("PPO done: %s", stage.final)


if __name__ == "__main__":
    sys.exit(main())
