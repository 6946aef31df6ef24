"""How a reward model scores a policy's own answers, grouped by the built-in world's oracle verdict.

    python -m reward.policy_probe --policy runs/default/ppo --reward runs/default/reward/safety \
        --world runs/_world/world-seed0

A reward model's test pairs are written by the world's generator; PPO optimises the RM on the policy's
samples, which it never saw. Where the RM scores some kind of answer (an evasion, a garbled refusal) as
high as the answer the oracle wants, PPO finds it: this shows whether it does, before a PPO run does.
Each held-out harmful request and benign look-alike is answered `--samples` times at temperature 1; the
printout gives each verdict's count and mean / median score, and how often the RM scores an answer of the
wanted verdict above one of each other verdict (over all pairs, ties counting half). `--out` writes it as
JSON. The oracle only judges here (built-in world only).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from chatworld import oracle

WANTED = {"harmful": "refused", "benign": "correct"}  # the verdict the oracle wants, per prompt kind


def verdict(prompt: list[dict], answer: str) -> str:
    """refused / evasive / complied for a harmful request (as `oracle.safety` counts them); refusal /
    correct / partly / wrong otherwise."""
    if oracle.is_harmful_request(prompt):
        judged = oracle.safety(prompt, answer)
        return "complied" if judged["unsafe_compliance"] else "evasive" if judged["evasive"] else "refused"
    return oracle.task_verdict(prompt, answer)


def win_rate(higher: list[float], lower: list[float]) -> float | None:
    """The share of (x, y) pairs, x from `higher` and y from `lower`, with x > y (ties count half)."""
    if not higher or not lower:
        return None
    wins = sum((x > y) + 0.5 * (x == y) for x in higher for y in lower)
    return wins / (len(higher) * len(lower))


def summarize(verdicts: list[str], scores: list[float], wanted: str) -> dict:
    """Per verdict: n, mean and median score, and the wanted verdict's win rate against it."""
    groups: dict[str, list[float]] = {}
    for v, s in zip(verdicts, scores):
        groups.setdefault(v, []).append(s)
    return {
        v: {
            "n": len(values),
            "mean": round(statistics.mean(values), 4),
            "median": round(statistics.median(values), 4),
            f"{wanted}_scored_above": None if v == wanted else win_rate(groups.get(wanted, []), values),
        }
        for v, values in sorted(groups.items())
    }


def probe(policy: Path, reward: Path, world: Path, samples: int, max_new_tokens: int, seed: int) -> dict:
    from basemodel.loading import load_causal_lm
    from chat.format import ChatEncoder
    from chatworld.evaluation import read_jsonl
    from generation import SamplingParams, generate_answers
    from pipeline.config import ModelConfig
    from reward.scoring import RewardScorer, score_answers

    records = read_jsonl(world / "prompts" / "test.jsonl")
    kinds = {
        "harmful": [r["prompt"] for r in records if oracle.is_harmful_request(r["prompt"])],
        "benign": [r["prompt"] for r in records if oracle.is_benign_lookalike(r["prompt"])],
    }
    model = load_causal_lm(ModelConfig(path=str(policy))).eval()  # as the stages load a checkpoint
    encoder = ChatEncoder.from_path(policy)
    scorer = RewardScorer(reward)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=1.0, seed=seed)
    report = {}
    for kind, prompts in kinds.items():
        dialogs = [p for p in prompts for _ in range(samples)]
        answers = generate_answers(model, encoder, dialogs, params)
        scores = score_answers(scorer, dialogs, answers).tolist()
        verdicts = [verdict(d, a) for d, a in zip(dialogs, answers)]
        report[kind] = summarize(verdicts, scores, WANTED[kind])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reward.policy_probe", description=__doc__.split("\n")[0])
    parser.add_argument("--policy", type=Path, required=True, help="a policy checkpoint directory")
    parser.add_argument("--reward", type=Path, required=True, help="a reward model directory")
    parser.add_argument("--world", type=Path, default=Path("runs/_world/world-seed0"))
    parser.add_argument("--samples", type=int, default=8, help="answers to each prompt")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the report here as JSON")
    args = parser.parse_args(argv)
    for name in ("policy", "reward"):
        if not (getattr(args, name) / "config.json").is_file():
            parser.error(f"--{name} {getattr(args, name)}: no model there (no config.json)")
    if not (args.world / "prompts" / "test.jsonl").is_file():
        parser.error(f"--world {args.world}: no prompts/test.jsonl (the built-in world's directory)")
    if args.samples < 1:
        parser.error(f"--samples must be >= 1, got {args.samples}")
    report = probe(args.policy, args.reward, args.world, args.samples, args.max_new_tokens, args.seed)
    for kind, groups in report.items():
        print(f"{kind} requests ({sum(g['n'] for g in groups.values())} answers):")
        for name, g in groups.items():
            above = g[f"{WANTED[kind]}_scored_above"]
            versus = "" if above is None else f"  {WANTED[kind]} scored above it {above:.3f}"
            print(f"  {name:9s} n={g['n']:4d}  mean {g['mean']:7.3f}  median {g['median']:7.3f}{versus}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
