"""`oracle.before` / `oracle.after`: how a model does on the built-in world's held-out prompts.

The oracle only judges here; it never feeds a training signal (stages train on data or learned rewards).
"""

from __future__ import annotations

import logging

from chat.format import ChatEncoder
from generation import SamplingParams, generate_answers

log = logging.getLogger(__name__)


def oracle_metrics(model, encoder: ChatEncoder, world, eval_cfg) -> tuple[dict, list[list]]:
    """Sampled answers to the held-out prompts, judged by the oracle; also returns sample rows for a table.

    The seed is fixed, so `oracle.before` and `oracle.after` draw their samples the same way."""
    from chatworld.evaluation import evaluate_policy

    params = SamplingParams(
        max_new_tokens=eval_cfg.max_new_tokens, temperature=eval_cfg.temperature, seed=eval_cfg.seed
    )
    samples: list[list] = []

    def generate(dialogs: list[list[dict]]) -> list[str]:
        answers = generate_answers(model, encoder, dialogs, params, batch_size=eval_cfg.batch_size)
        for dialog, answer in zip(dialogs[: eval_cfg.samples_in_table], answers):
            samples.append([dialog[-1]["content"], answer])
        return answers

    sampled = eval_cfg.temperature > 0  # greedy answers are one answer a prompt
    metrics = evaluate_policy(
        generate,
        world,
        eval_cfg.max_prompts,
        eval_cfg.samples_per_prompt if sampled else 1,
        eval_cfg.harmful_samples_per_prompt if sampled else 1,
    )
    log.info("oracle: %s", {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    return metrics, samples
