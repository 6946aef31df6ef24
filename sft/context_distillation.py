"""Safety context distillation (Llama 2 section 4.2.4): the data for `python sft/train.py +experiment=safety`.

For each safety prompt the policy answers twice: once as it is, once with a safety preprompt as system
message ("You are a safe and responsible assistant."). Both answers are scored by the safety reward model
on the prompt WITHOUT the preprompt, which is what the distilled model will see, and the preprompted answer
is kept only where it scores higher. Fine-tuning on (prompt without preprompt -> kept answer) moves the
preprompt's effect into the weights.
"""

from __future__ import annotations

import logging
import random

from chat.dialog import PromptRecord
from generation import SamplingParams, generate_answers

log = logging.getLogger(__name__)


def safety_preprompt(adjectives: list[str], rng: random.Random) -> str:
    """A preprompt from the paper's template: two adjectives associated with safe behaviour."""
    first, second = rng.sample(list(adjectives), 2)
    return f"You are a {first} and {second} assistant."


def with_system(prompt: list[dict], system: str) -> list[dict]:
    """The prompt with `system` as its system message (replacing one it may already have)."""
    turns = prompt[1:] if prompt[0]["role"] == "system" else prompt
    return [{"role": "system", "content": system}, *turns]


def keep_better(
    prompts: list[list[dict]], plain: list[str], distilled: list[str], plain_scores, distilled_scores
) -> list[list[dict]]:
    """Training dialogs: prompt (no preprompt) + distilled answer, where the safety RM prefers it."""
    kept = []
    for prompt, before, after, score_before, score_after in zip(
        prompts, plain, distilled, plain_scores, distilled_scores, strict=True
    ):
        if after.strip() and after.strip() != before.strip() and score_after > score_before:
            kept.append([*prompt, {"role": "assistant", "content": after.strip()}])
    return kept


def distillation_dialogs(
    model, encoder, records: list[PromptRecord], safety_scorer, cfg
) -> tuple[list, dict]:
    """(training dialogs, statistics) from the safety prompts among `records`."""
    rng = random.Random(cfg.seed)
    prompts = [r.prompt for r in records if r.is_safety][: cfg.max_prompts]
    if not prompts:
        raise ValueError("context distillation: the prompt set has no safety prompts (is_safety=true)")
    params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed)
    preprompted = [with_system(p, safety_preprompt(cfg.adjectives, rng)) for p in prompts]
    plain = generate_answers(model, encoder, prompts, params, batch_size=cfg.batch_size)
    distilled = generate_answers(model, encoder, preprompted, params, batch_size=cfg.batch_size)
    scorable = [i for i in range(len(prompts)) if plain[i].strip() and distilled[i].strip()]
    plain_scores = safety_scorer.score([prompts[i] for i in scorable], [plain[i] for i in scorable]).tolist()
    distilled_scores = safety_scorer.score(
        [prompts[i] for i in scorable], [distilled[i] for i in scorable]
    ).tolist()
    dialogs = keep_better(
        [prompts[i] for i in scorable],
        [plain[i] for i in scorable],
        [distilled[i] for i in scorable],
        plain_scores,
        distilled_scores,
    )
    stats = {
        "safety_prompts": len(prompts),
        "scored": len(scorable),
        "kept": len(dialogs),
        "mean_safety_score_plain": sum(plain_scores) / max(len(plain_scores), 1),
        "mean_safety_score_preprompted": sum(distilled_scores) / max(len(distilled_scores), 1),
    }
    log.info("context distillation: kept %d of %d safety prompts", len(dialogs), len(prompts))
    return dialogs, stats


def safety_distillation_data(cfg, model, encoder) -> tuple[list, dict]:
    """The run's safety prompts and safety RM, then `distillation_dialogs`."""
    from chat.readers import read_prompts
    from pipeline.inputs import data_sources
    from reward.scoring import RewardScorer, reward_model_dir

    sources = list(cfg.distill.prompts) or data_sources(cfg.run, cfg.data, "train", "prompts/{split}.jsonl")
    records, _ = read_prompts(sources, split="train")
    rm_dir = reward_model_dir(cfg.run, cfg.distill.safety_rm, "safety", "distill.safety_rm")
    scorer = RewardScorer(str(rm_dir), batch_size=cfg.distill.batch_size)
    dialogs, stats = distillation_dialogs(model, encoder, records, scorer, cfg.distill)
    return dialogs, {**stats, "safety_rm": str(rm_dir)}
