"""Stage 3a, rejection-sampling fine-tuning (Llama 2 paper, section 3.2.3).

    python ppo/rejection_sampling.py                        # iteration 1 on the built-in world, CPU, minutes
    python ppo/rejection_sampling.py iteration=2            # samples from iter-1, pools iter-1's best samples
    python ppo/rejection_sampling.py +experiment=safety     # ranks by Llama 2's rule over both reward models
    python ppo/rejection_sampling.py sweep.enabled=true     # temperature sweep (figure 8), no fine-tuning

K answers per prompt from the latest policy, scored by the reward, the best kept; the best samples of all
earlier iterations are pooled in (for a prompt seen twice, the better-scored one), and the policy is
fine-tuned on the pool with the SFT loss on the selected answer only. Output:
`<run.root>/<run.name>/rejection_sampling/iter-<k>/` with `samples/all.jsonl` (every sample and score) and
`samples/best.jsonl` (this iteration's selection, what later iterations pool).
"""

from __future__ import annotations

import logging
import random
import sys
from functools import partial

import hydra
import torch
from omegaconf import DictConfig
from transformers import set_seed

import ppo.sampling_config  # noqa: F401  (registers the config schema)
from basemodel.loading import load_causal_lm
from basemodel.precision import cpu_autocast
from chat.dialog import PromptRecord
from chat.format import ChatEncoder
from chat.readers import read_prompts
from generation import SamplingParams, make_generator
from pipeline.config import model_at
from pipeline.inputs import data_sources, describe, world_dir
from pipeline.oracle_eval import oracle_metrics
from pipeline.processes import is_main_process, world_size
from pipeline.stage import COMPLETE_MARKER, Stage, find_policy, run_dir, write_json
from pipeline.tracking import start_tracking
from ppo.rs_reward import load_reward_rule
from ppo.rs_samples import read_samples, write_samples
from ppo.rs_sampling import sample_and_score
from ppo.rs_sweep import sweep_table, temperature_sweep
from ppo.selection import best_index, first_n_curve, pool_best, prompt_key, prompt_window, selection_quality
from sft.finetune import fine_tune, land_stage, save_model_stage

log = logging.getLogger("rejection_sampling")
PROMPT_FILES = "prompts/{split}.jsonl"  # within the built-in world
STAGE = "rejection_sampling"


def iteration_dir(run_cfg, iteration: int):
    return run_dir(run_cfg) / STAGE / f"iter-{iteration}"


def policy_dir(cfg):
    """init_from, else iter-(k-1) for k > 1, else the newest model stage before rejection sampling (SFT)."""
    if cfg.init_from:
        return cfg.init_from
    if cfg.iteration > 1:
        previous = iteration_dir(cfg.run, cfg.iteration - 1)
        if not (previous / COMPLETE_MARKER).is_file():
            raise FileNotFoundError(
                f"iteration={cfg.iteration} samples from iteration {cfg.iteration - 1}, which has not finished "
                f"({previous}); run it first or set init_from"
            )
        return previous
    policy = find_policy(cfg.run, before=STAGE)
    if policy is None:
        raise FileNotFoundError(
            f"no finished SFT model in {run_dir(cfg.run)}; run sft/train.py first or set init_from"
        )
    return policy


def iteration_prompts(cfg) -> list[PromptRecord]:
    """This iteration's window of the (deduplicated, seed-shuffled) training prompts."""
    records, report = read_prompts(data_sources(cfg.run, cfg.data, "train", PROMPT_FILES), split="train")
    unique = list({prompt_key(r.prompt): r for r in reversed(records)}.values())[::-1]  # first copy wins
    if len(unique) < len(records):
        log.warning(
            "prompts: %d duplicate prompts dropped (%d left)", len(records) - len(unique), len(unique)
        )
    random.Random(cfg.run.seed).shuffle(unique)
    window = prompt_window(len(unique), cfg.sampling.max_prompts, cfg.iteration)
    return [unique[i] for i in window]


def sampling_params(cfg, temperature: float | None = None) -> SamplingParams:
    s = cfg.sampling
    return SamplingParams(
        max_new_tokens=s.max_new_tokens,
        temperature=s.temperature if temperature is None else temperature,
        top_p=s.top_p,
        num_samples=s.k,
        seed=cfg.run.seed,
    )


def select_best(records: list[dict], iteration: int, require_finished: bool) -> tuple[list[dict], int]:
    """This iteration's pick per prompt (by reward) as pool records; also the count of prompts with no pick."""
    best, none_eligible = [], 0
    for record in records:
        # An empty answer is never a pick; an unfinished one is not when require_finished.
        eligible = [
            bool(answer.strip()) and (finished or not require_finished)
            for answer, finished in zip(record["answers"], record["finished"])
        ]
        index = best_index(record["reward"], eligible)
        if index is None:
            none_eligible += 1
            continue
        best.append(
            {
                "key": record["key"],
                "prompt": record["prompt"],
                "answer": record["answers"][index],
                "score": record["reward"][index],
                "is_safety": record["is_safety"],
                "iteration": iteration,
                "meta": record["meta"],
            }
        )
    if none_eligible:
        log.warning(
            "%d of %d prompts had no finished answer among their samples: left out",
            none_eligible,
            len(records),
        )
    return best, none_eligible


def earlier_selections(cfg) -> list[list[dict]]:
    """samples/best.jsonl of iterations 1..k-1, oldest first; a missing one is an error (pooling needs all)."""
    return [
        read_samples(iteration_dir(cfg.run, i) / "samples" / "best.jsonl") for i in range(1, cfg.iteration)
    ]


def training_rows(encoder: ChatEncoder, pool: list[dict], max_length: int) -> tuple[list[dict], int]:
    """SFT rows with the loss on the selected answer only (earlier turns are the prompt set's, not sampled)."""
    rows, too_long = [], 0
    for record in pool:
        dialog = [*record["prompt"], {"role": "assistant", "content": record["answer"]}]
        row = encoder.encode_for_training(dialog, loss_on="last")
        if len(row["input_ids"]) > max_length:
            too_long += 1
            continue
        rows.append(row)
    if too_long:
        log.warning(
            "skipped %d of %d selected samples longer than %d tokens", too_long, len(pool), max_length
        )
    return rows, too_long


def sampling_metrics(records: list[dict], throughput: dict) -> dict:
    rewards = [r["reward"] for r in records]
    finished = [f for r in records for f in r["finished"]]
    metrics = {
        "reward_vs_n": first_n_curve(rewards),
        "sampling": {
            "prompts": len(records),
            "samples_per_prompt": len(rewards[0]),
            "finished_rate": sum(finished) / len(finished),
            "empty_rate": sum(not a.strip() for r in records for a in r["answers"]) / len(finished),
            **throughput,
        },
    }
    if "used_safety" in records[0]:
        used = [u for r in records for u in r["used_safety"]]
        metrics["sampling"]["safety_rm_rate"] = sum(used) / len(used)
    return metrics


def oracle_selection(records: list[dict]) -> dict:
    """The oracle's view of the RM as a selector (the oracle only judges here, it never picks for training)."""
    from chatworld import oracle

    judged = [[oracle.helpfulness(r["prompt"], answer) for answer in r["answers"]] for r in records]
    return selection_quality([r["reward"] for r in records], judged)


def on_accelerator(model):
    if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
        return model.to("cuda")
    return model


def log_curve(tracker, key: str, curve: dict) -> None:
    rows = [[n, mx, md] for n, mx, md in zip(curve["n"], curve["max"], curve["median"])]
    tracker.log_table(key, ["n", "max_reward", "median_reward"], rows)


def run_sweep(cfg) -> None:
    """Figure 8: the best-of-N curve per temperature, printed and saved as JSON in the run (no fine-tune)."""
    policy = policy_dir(cfg)
    encoder = ChatEncoder.from_path(policy)
    model = on_accelerator(load_causal_lm(model_at(cfg.model, policy), None, seed=cfg.run.seed))
    prompts = iteration_prompts(cfg)[: cfg.sweep.max_prompts]
    generator = make_generator(
        cfg.sampling.backend,
        encoder=encoder,
        model=model,
        model_path=policy,
        batch_size=cfg.sampling.batch_size,
        compute=partial(cpu_autocast, cfg.model),  # bf16 on a CPU with native bf16, as PPO's rollouts
    )
    curves = temperature_sweep(
        generator, load_reward_rule(cfg), prompts, sampling_params(cfg), cfg.sweep.temperatures
    )
    print(sweep_table(curves), flush=True)
    out = run_dir(cfg.run) / STAGE / f"temperature_sweep-iter-{cfg.iteration}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"policy": str(policy), "prompts": len(prompts), "k": cfg.sampling.k, "curves": curves})
    tracker = start_tracking(cfg, f"{STAGE}-sweep-iter-{cfg.iteration}", out.parent)
    for temperature, curve in curves.items():
        log_curve(tracker, f"sweep/T={temperature}", curve)
    tracker.finish()
    log.info("temperature sweep saved: %s", out)


@hydra.main(version_base=None, config_path="../conf", config_name="rejection_sampling")
def main(cfg: DictConfig) -> None:
    if cfg.iteration < 1:
        raise SystemExit(f"iteration={cfg.iteration}: iterations count from 1")
    if world_size() > 1:
        # Every process would sample the same prompts into the same file; sampling is not sharded (yet).
        raise SystemExit(
            "rejection sampling runs as one process (use sampling.backend=vllm for fast sampling)"
        )
    if cfg.sweep.enabled:
        return run_sweep(cfg)
    stage = Stage(cfg.run, f"{STAGE}/iter-{cfg.iteration}")
    if not stage.begin_or_skip():
        return
    set_seed(cfg.run.seed)
    policy = policy_dir(cfg)
    log.info("iteration %d: sampling from %s", cfg.iteration, policy)
    encoder = ChatEncoder.from_path(policy)
    prompts = iteration_prompts(cfg)
    model = on_accelerator(load_causal_lm(model_at(cfg.model, policy), cfg.peft, seed=cfg.run.seed))
    tracker = start_tracking(cfg, f"{STAGE}-iter-{cfg.iteration}", stage.work)
    use_oracle = cfg.data.name == "builtin" and cfg.eval.oracle and is_main_process()
    metrics: dict = {"iteration": cfg.iteration, "policy": str(policy), "experiment": cfg.experiment}
    if use_oracle:
        metrics["oracle.before"], samples = oracle_metrics(
            model, encoder, world_dir(cfg.run, cfg.data), cfg.eval
        )
        tracker.log_table("samples/before", ["prompt", "answer"], samples)

    # Sample K per prompt and score them; every chunk is on disk before the next one starts.
    reward_rule = load_reward_rule(cfg)
    generator = make_generator(
        cfg.sampling.backend,
        encoder=encoder,
        model=model,
        model_path=policy,
        batch_size=cfg.sampling.batch_size,
        compute=partial(cpu_autocast, cfg.model),  # bf16 on a CPU with native bf16, as PPO's rollouts
    )
    records, throughput = sample_and_score(
        generator,
        encoder,
        reward_rule,
        prompts,
        sampling_params(cfg),
        stage.work / "samples" / "all.jsonl",
        cfg.sampling.prompts_per_write,
        cfg.iteration,
    )
    del generator, reward_rule  # the reward models (and a vLLM engine) are not needed for training
    metrics.update(sampling_metrics(records, throughput))
    log_curve(tracker, "reward_vs_n", metrics["reward_vs_n"])
    if use_oracle:
        metrics["selection_oracle"] = oracle_selection(records)

    # Select, pool with the earlier iterations' selections, fine-tune.
    best, none_eligible = select_best(records, cfg.iteration, cfg.sampling.require_finished)
    write_samples(stage.work / "samples" / "best.jsonl", best)
    earlier = earlier_selections(cfg)
    pool = pool_best([*earlier, best])
    rows, too_long = training_rows(encoder, pool, cfg.model.max_length)
    if not rows:
        raise SystemExit("no selected samples to fine-tune on (see the warnings above)")
    metrics["selection"] = {
        "selected": len(best),
        "no_eligible_answer": none_eligible,
        "earlier_selected": [len(e) for e in earlier],
        "pooled": len(pool),
        "pooled_from_this_iteration": sum(r["iteration"] == cfg.iteration for r in pool),
        "skipped_too_long": too_long,
        "mean_selected_reward": sum(r["score"] for r in best) / max(len(best), 1),
    }
    log.info("selection: %s", metrics["selection"])
    model, train_metrics = fine_tune(
        model, str(policy), rows, [], cfg.train, cfg.model, stage, tracker, cfg.run.seed
    )
    metrics.update(train_metrics)
    if not is_main_process():
        return
    model = save_model_stage(model, str(policy), stage, cfg.peft.merge_at_save, encoder)
    if use_oracle:
        metrics["oracle.after"], samples = oracle_metrics(
            model, encoder, world_dir(cfg.run, cfg.data), cfg.eval
        )
        tracker.log_table("samples/after", ["prompt", "answer"], samples)
    tracker.summary(metrics)
    land_stage(stage, cfg, base=str(policy), data=describe(cfg.data), metrics=metrics)
    tracker.finish()
    log.info("rejection sampling iteration %d done: %s", cfg.iteration, stage.final)


if __name__ == "__main__":
    sys.exit(main())
