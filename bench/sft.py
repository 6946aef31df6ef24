"""SFT throughput: padded batches vs packing vs padding-free, same data, same model, same steps.

    python bench/sft.py [--steps 12] [--batch 8] [--max-length 256] [--repeats 2]

Trains the tiny Llama with trl's SFTTrainer on the built-in world's SFT dialogs (token-exact Llama 2
encoding) in each mode and prints trained (non-padding) tokens per second side by side, with the ratio
to the padded baseline last. Modes run interleaved `--repeats` times and the median is reported, since
this machine's speed drifts between runs.

Packed and padding-free rows carry position ids that restart at every dialog, and transformers derives a
per-dialog causal mask from them (sdpa on CPU included; tests/test_sft_batching.py), so no dialog attends
to its neighbours. `padding_free+bf16` adds bf16 autocast, which pays on CPUs with native bf16
(AVX512-BF16 / AMX) and on GPUs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from basemodel import TINY_TOKENIZER_DIR
from basemodel.loading import load_causal_lm
from chat.format import ChatEncoder
from chat.readers import read_dialogs
from chat.tokenizer import load_hf_tokenizer
from chatworld import ensure_world
from pipeline.config import ModelConfig

MODES = {
    "padded": {"packing": False, "padding_free": False},
    "packing": {"packing": True, "padding_free": False},
    "padding_free": {"packing": False, "padding_free": True},
    "padding_free+bf16": {"packing": False, "padding_free": True, "bf16": True},
}


def run_mode(mode: str, rows: list[dict], args, out: Path) -> float:
    """Non-padding tokens trained per second in one mode."""
    model = load_causal_lm(ModelConfig(max_length=args.max_length), None, seed=0)
    config = SFTConfig(
        output_dir=str(out / mode),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        learning_rate=1e-3,
        # padding-free rows are never cut (trl refuses a max_length there): the rows already fit, see main
        max_length=None if MODES[mode]["padding_free"] else args.max_length,
        logging_steps=10**6,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        seed=0,
        **MODES[mode],
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=load_hf_tokenizer(TINY_TOKENIZER_DIR),
    )
    started = time.perf_counter()
    trainer.train()
    return trainer.state.num_input_tokens_seen / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Print the table; return each mode's median tokens/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        world = ensure_world(Path(tmp) / "world")
        dialogs, _ = read_dialogs(world / "sft" / "train.jsonl")
        encoder = ChatEncoder.from_path(TINY_TOKENIZER_DIR)
        # Only dialogs that fit max_length, so every mode trains on the same, uncut tokens.
        encoded = (encoder.encode_for_training(d) for d in dialogs)
        fitting = [row for row in encoded if len(row["input_ids"]) <= args.max_length]
        rows = fitting[: args.steps * args.batch * 2]
        speeds: dict[str, list[float]] = {mode: [] for mode in args.modes}
        for _ in range(args.repeats):
            for mode in args.modes:
                speeds[mode].append(run_mode(mode, rows, args, Path(tmp)))

    baseline = statistics.median(speeds["padded"]) if "padded" in speeds else None
    print(f"SFT throughput, tiny Llama, batch {args.batch}, {args.steps} steps, median of {args.repeats}")
    print(f"{'mode':<19}{'tokens/s':>10}{'vs padded':>11}")
    medians = {mode: statistics.median(values) for mode, values in speeds.items()}
    for mode, tokens_per_s in medians.items():
        ratio = f"{tokens_per_s / baseline:.2f}x" if baseline else "-"
        print(f"{mode:<19}{tokens_per_s:>10.0f}{ratio:>11}")
    return medians


if __name__ == "__main__":
    main()
