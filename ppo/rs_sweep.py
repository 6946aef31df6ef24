"""The temperature sweep (Llama 2 figure 8): max reward among the first N samples, per temperature.

No fine-tuning: for each temperature, K samples per prompt from the same policy, scored by the same reward,
reduced to the best-of-N curve. The paper found the best temperature drifts between iterations (1.2-1.3 for
its RLHF models), so it is worth re-running before each iteration.
"""

from __future__ import annotations

from dataclasses import replace

from chat.dialog import PromptRecord
from generation import SamplingParams
from ppo.selection import first_n_curve


def temperature_sweep(
    generator, reward_rule, prompts: list[PromptRecord], params: SamplingParams, temperatures: list[float]
) -> dict[str, dict]:
    """{str(temperature): first_n_curve of the rewards of params.num_samples samples per prompt}."""
    if not temperatures:
        raise ValueError("sweep.temperatures is empty")
    if any(t <= 0 for t in temperatures):
        raise ValueError(
            f"sweep.temperatures must all be > 0 (sampling, not greedy), got {list(temperatures)}"
        )
    k = params.num_samples
    dialogs = [p.prompt for p in prompts]
    curves = {}
    for temperature in temperatures:
        completions = generator.generate(dialogs, replace(params, temperature=float(temperature)))
        flat_prompts = [d for d in dialogs for _ in range(k)]
        flat_safety = [p.is_safety for p in prompts for _ in range(k)]
        flat_answers = [c.text for samples in completions for c in samples]
        rewards = reward_rule.score(flat_prompts, flat_safety, flat_answers)["reward"]
        curves[str(float(temperature))] = first_n_curve(
            [rewards[i * k : (i + 1) * k] for i in range(len(dialogs))]
        )
    return curves


def sweep_table(curves: dict[str, dict]) -> str:
    """Rows = temperatures, columns = N, cells = mean max reward among the first N samples."""
    ns = next(iter(curves.values()))["n"]
    header = "temperature | " + " | ".join(f"N={n}" for n in ns)
    lines = [header, "-" * len(header)]
    for temperature, curve in curves.items():
        lines.append(f"{temperature:>11} | " + " | ".join(f"{value:+.3f}" for value in curve["max"]))
    return "\n".join(lines)
