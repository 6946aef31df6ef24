"""Ghost Attention, step 1: synthesize the GAtt dataset (Llama 2 paper, section 3.3).

    python gatt/synthesize.py                        # the built-in world, the run's latest policy, minutes
    python gatt/synthesize.py synthesis.dialogs=[my_dialogs.jsonl] synthesis.constraints=my_lists/

For every unconstrained multi-turn dialog an instruction is drawn from the constraint lists (families
combined at random, the short form half the time) and put in front of every user turn; each answer is
sampled from the run's latest policy, K samples per turn, the reward model keeping the best (as in
rejection sampling). The training examples then keep the instruction only as a system message, and only
their last answer carries loss; several are cut from each dialog. On the built-in world, samples that
break the constraint are dropped before the reward model picks, and a turn with none left is not trained
(synthesis.oracle_filter; the oracle filters data, it never ranks samples). Base SFT dialogs are replayed in the mix (synthesis.replay_share).
Output: `<run.root>/<run.name>/gatt-data/` with `samples.jsonl` (every sampled dialog, written as they
are made; a restart skips them) and `train.jsonl` ({"messages", "input_ids", "labels", "meta"} rows).
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
from chat.readers import read_dialogs
from gatt.dataset import gatt_rows, mixed_rows, write_rows
from gatt.instructions import SHIPPED_LISTS, load_constraint_lists
from gatt.policy import latest_policy, policy_model_cfg
from gatt.sampling import plan_dialogs, sample_dialogs
from gatt.synthesis import user_turns
from generation import SamplingParams, make_generator
from pipeline.inputs import data_sources, describe, read_sft_dialogs, world_dir
from pipeline.processes import world_size
from pipeline.stage import Stage, write_resolved_config
from ppo.rejection_sampling import on_accelerator
from ppo.rs_reward import load_reward_rule

log = logging.getLogger("gatt.synthesize")
STAGE = "gatt-data"
SFT_FILES = "sft/{split}.jsonl"  # within the built-in world: the replayed base dialogs


def constraint_folder(cfg) -> Path:
    if cfg.synthesis.constraints:
        return Path(cfg.synthesis.constraints)
    if cfg.data.name == "builtin":
        return world_dir(cfg.run, cfg.data) / "gatt" / "constraints"
    return SHIPPED_LISTS


def source_dialogs(cfg) -> list[list[str]]:
    """The user turns of the unconstrained dialogs (configured files, or the built-in world's)."""
    sources = list(cfg.synthesis.dialogs)
    if not sources:
        if cfg.data.name != "builtin":
            raise ValueError(
                "synthesis.dialogs: give multi-turn dialog files (only data=builtin has its own)"
            )
        sources = [str(world_dir(cfg.run, cfg.data) / "gatt" / "dialogs.jsonl")]
    dialogs, report = read_dialogs(sources)
    if report.skipped:
        log.warning("source dialogs: %s", report)
    users = [user_turns(d) for d in dialogs]
    return users[: cfg.synthesis.max_dialogs] if cfg.synthesis.max_dialogs else users


def constraint_judge(cfg):
    """The built-in world's constraint check when filtering is on, else every picked answer is kept."""
    if cfg.data.name == "builtin" and cfg.synthesis.oracle_filter:
        from chatworld.oracle import adheres

        return adheres
    return lambda constraint, answer: True


def sampling_params(cfg) -> SamplingParams:
    s = cfg.synthesis
    return SamplingParams(
        max_new_tokens=s.max_new_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        num_samples=s.k,
        seed=cfg.run.seed,
    )


@hydra.main(version_base=None, config_path="../conf", config_name="gatt")
def main(cfg: DictConfig) -> None:
    if world_size() > 1:
        raise SystemExit("GAtt synthesis runs as one process")
    stage = Stage(cfg.run, STAGE)
    if not stage.begin_or_skip():
        return
    set_seed(cfg.run.seed)
    policy = latest_policy(cfg)
    log.info("sampling GAtt dialogs from %s", policy)
    encoder = ChatEncoder.from_path(policy)
    families = load_constraint_lists(constraint_folder(cfg), list(cfg.synthesis.families))
    plans = plan_dialogs(source_dialogs(cfg), families, cfg.synthesis, cfg.run.seed)
    model = on_accelerator(load_causal_lm(policy_model_cfg(cfg, policy), None, seed=cfg.run.seed))
    positions = min(cfg.model.max_length, model.config.max_position_embeddings)
    records, throughput = sample_dialogs(
        make_generator("auto", encoder=encoder, model=model, batch_size=cfg.synthesis.batch_size),
        load_reward_rule(cfg),
        plans,
        sampling_params(cfg),
        constraint_judge(cfg),
        stage.work / "samples.jsonl",
        cfg.synthesis.dialogs_per_write,
        positions - cfg.synthesis.max_new_tokens,
        cfg.synthesis.require_finished,
    )
    rows, stats = gatt_rows(encoder, records, cfg.synthesis.cut_points, cfg.run.seed, cfg.model.max_length)
    log.info("GAtt examples: %s", stats)
    if not rows:
        raise SystemExit(
            f"no GAtt example survived ({stats['dropped_turns']} of {stats['sampled_turns']} sampled turns broke "
            "the constraint): nothing to train on; does the policy follow an instruction given in a user turn?"
        )
    base = read_sft_dialogs(data_sources(cfg.run, cfg.data, "train", SFT_FILES), cfg.data.format, "train")
    mix = mixed_rows(rows, base, encoder, cfg.synthesis.replay_share, cfg.run.seed, cfg.model.max_length)
    write_rows(stage.work / "train.jsonl", mix)
    stats["replay_rows"] = len(mix) - len(rows)
    stats["rows"] = len(mix)
    metrics = {"policy": str(policy), "data": describe(cfg.data), "synthesis": stats, "sampling": throughput}
    log.info("GAtt data written: %s rows (%s replayed)", stats["rows"], stats["replay_rows"])
    write_resolved_config(cfg, stage.work)
    stage.finish(metrics)


if __name__ == "__main__":
    sys.exit(main())
