"""Samples/s of batched generation (HFGenerator, many prompts x K samples per call) vs one prompt at a time.

    python bench/generation.py                          # random tiny Llama, 64 built-in-world prompts
    python bench/generation.py --model runs/dev/sft     # a trained policy
    python bench/generation.py --prompts 32 --k 4 --batch-size 64 --max-new-tokens 48 --precision fp32

Both paths sample the same prompts with the same SamplingParams (K samples per prompt decoded together, KV
cache on) and the same precision (default: what `python ppo/rejection_sampling.py` uses, bf16 autocast on a
CPU with native bf16); the batched path groups prompts of similar length. Sampling runs to max_new_tokens
unless every sequence of a batch has ended, so a random model (which rarely says EOS) gives the ratio for
full-length answers. The two paths alternate for --rounds rounds (a busy machine slows both alike); the
median speeds are printed side by side, and last the median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# `python bench/generation.py` puts bench/ first on sys.path, where this very file would shadow the
# `generation` package it benchmarks; the repository root takes its place (imported, it leaves sys.path be).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)


def load_model(path: str | None, seed: int):
    """(model, encoder): the checkpoint at `path`, or a random tiny Llama with the built-in tokenizer."""
    from basemodel.loading import load_causal_lm, load_tokenizer_path
    from chat.format import ChatEncoder
    from pipeline.config import ModelConfig

    model_cfg = ModelConfig(path=path)
    model = load_causal_lm(model_cfg, seed=seed)
    return model, ChatEncoder.from_path(load_tokenizer_path(model_cfg))


def bench_prompts(n: int) -> list[list[dict]]:
    """n prompts of the built-in world's RS / PPO prompt set (seeded): varied lengths, some multi-turn."""
    import random

    from chatworld.prompt_sets import prompt_record

    rng = random.Random(0)
    return [prompt_record(rng)["prompt"] for _ in range(n)]


def samples_per_second(generator, dialogs, params, one_at_a_time: bool) -> tuple[float, int]:
    """(samples/s, samples) of generating for all dialogs, in one call or one call per dialog."""
    started = time.perf_counter()
    if one_at_a_time:
        results = [generator.generate([dialog], params)[0] for dialog in dialogs]
    else:
        results = generator.generate(dialogs, params)
    seconds = time.perf_counter() - started
    samples = sum(len(samples) for samples in results)
    return samples / seconds, samples


def compute_context(precision: str, model):
    """The context both paths decode in: the rejection-sampling stage's own ("stage"), or fp32 / bf16."""
    from functools import partial

    import torch

    from basemodel.precision import cpu_autocast
    from pipeline.config import ModelConfig

    if precision == "stage":
        return partial(cpu_autocast, ModelConfig(path=None))
    device = next(model.parameters()).device.type
    return partial(torch.autocast, device, dtype=torch.bfloat16, enabled=precision == "bf16")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint directory (default: random tiny Llama)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--k", type=int, default=4, help="samples per prompt")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per batch of the batched path")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="default: rejection sampling's")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--precision", choices=("stage", "fp32", "bf16"), default="stage")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of both paths (medians)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")

    import torch

    from generation import HFGenerator, SamplingParams

    model, encoder = load_model(args.model, args.seed)
    if torch.cuda.is_available():
        model = model.to("cuda")
    compute = compute_context(args.precision, model)
    dialogs = bench_prompts(args.prompts)
    params = SamplingParams(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, num_samples=args.k, seed=args.seed
    )
    batched_path = HFGenerator(model, encoder, args.batch_size, compute=compute)
    single_path = HFGenerator(model, encoder, args.k, compute=compute)
    single_path.generate(dialogs[:1], params)  # warm-up
    batched, single = [], []
    for _ in range(args.rounds):
        speed, n = samples_per_second(batched_path, dialogs, params, False)
        batched.append(speed)
        single.append(samples_per_second(single_path, dialogs, params, True)[0])
    with compute():
        in_bf16 = torch.is_autocast_enabled(next(model.parameters()).device.type)
    result = {
        "samples": n,
        "precision": "bf16 autocast"
        if in_bf16
        else str(next(model.parameters()).dtype).removeprefix("torch."),
        "batched_samples_per_s": statistics.median(batched),
        "one_at_a_time_samples_per_s": statistics.median(single),
        "ratios": [b / s for b, s in zip(batched, single, strict=True)],
    }
    result["ratio"] = statistics.median(result["ratios"])  # of rounds, each pair timed back to back
    print(
        f"{n} samples ({args.prompts} prompts x {args.k}, {args.max_new_tokens} new tokens, {result['precision']},"
        f" median of {args.rounds} rounds; ratio per round "
        + " / ".join(f"{r:.2f}" for r in result["ratios"])
        + ")",
        flush=True,
    )
    print(
        f"batched (batch {args.batch_size}) {result['batched_samples_per_s']:.1f} samples/s | one prompt at a time"
        f" {result['one_at_a_time_samples_per_s']:.1f} samples/s | ratio {result['ratio']:.1f}x",
        flush=True,
    )
    return result


if __name__ == "__main__":
    main()
