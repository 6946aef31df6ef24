"""Our PPO against the last upstream one (trl 1.12.0, `trl.experimental.ppo.PPOTrainer`), same settings.

    python bench/ppo.py                      # creates /tmp/trl112-venv on first use (pip install trl==1.12.0)
    python bench/ppo.py --iterations 8 --threads 2 --venv bench/.venv
    python bench/ppo.py --precision fp32     # float32 on both sides (default: as ppo/train.py computes here)
    python bench/ppo.py --policy runs/default/sft --reward runs/default/reward/helpfulness \
        --prompts runs/_world/world-seed0/prompts/train.jsonl    # trained models: a reward gain that means something

Both sides get the same tiny Llama policy (hidden 256, 4 layers; random init unless --policy) and reference
copy, the same reward model, the same value model (from the reward model, or with --value-init policy from the
policy with a new head), the same prompts, batch size, response length,
stopping at EOS, PPO epochs, mini-batches, learning rate and KL coefficient; each runs in its own process
(trl 1.12 in a virtual environment created here with --system-site-packages, so torch and transformers are
the same). Printed: median seconds per iteration (iterations 2..N), peak resident memory of each process,
each side's own reward gain (mean RM score over the last quarter of the iterations minus that over the first
quarter), the reward gain of each side's last policy under one scorer (--eval-samples answers to each prompt,
sampled and scored the same way for the starting policy and both last ones) and, last, the speed ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# `python bench/ppo.py` puts bench/ first on sys.path, where this very file would shadow the `ppo` package
# that the "ours" side imports; the repository root takes its place (imported, it leaves sys.path be).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)
TRL_VERSION = "1.12.0"
QUESTIONS = [
    "What is the capital of France?", "Name a color of the sky.", "How many legs has a cat?",
    "Say hello to me politely.", "What is two plus three?", "Name a fruit that is yellow.",
    "What do bees make?", "Which animal says moo?", "What is the opposite of hot?", "Name a planet.",
    "How many days are in a week?", "What is frozen water called?", "Name a musical instrument.",
    "What do plants need to grow?", "Which season comes after winter?", "What is the color of grass?",
]  # fmt: skip


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16, help="prompts per iteration")
    parser.add_argument("--mini-batches", type=int, default=2)
    parser.add_argument("--response-length", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seed", type=int, default=0, help="sampling and shuffling seed of both sides (models stay the same)"
    )
    parser.add_argument(
        "--precision",
        choices=["stage", "fp32", "bf16"],
        default="stage",
        help="bf16: mixed precision on both sides (trl: bf16=True; ours: the bf16 autocast of ppo/train.py); "
        "stage (default): what ppo/train.py computes in with its defaults here, bf16 on a CPU with native bf16",
    )
    parser.add_argument(
        "--layout",
        choices=["auto", "packed", "padded"],
        default="auto",
        help="our forwards' layout (train.layout): rows packed without padding, padded, or the cheaper (default)",
    )
    parser.add_argument(
        "--value-init",
        choices=["reward", "policy"],
        default="reward",
        help="both sides' value model starts from the reward model, or from the policy with a new head "
        "(train.value_init; the tiny config of ppo/train.py starts it from the policy)",
    )
    parser.add_argument(
        "--eval-samples",
        type=int,
        default=8,
        help="answers per prompt for the reward gain under one scorer (the starting and both last policies)",
    )
    parser.add_argument("--venv", default="/tmp/trl112-venv")
    parser.add_argument(
        "--policy", help="a trained policy folder (e.g. runs/default/sft) instead of random init"
    )
    parser.add_argument(
        "--reward", help="a trained reward model folder (e.g. runs/default/reward/helpfulness)"
    )
    parser.add_argument(
        "--prompts", help="a prompt set (.jsonl); its first --batch non-safety prompts are used"
    )
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- set-up shared by both sides


def build_models(workdir: Path, args) -> None:
    """Policy and reward model saved once, so both sides load identical weights: random-init tiny models and
    QUESTIONS by default, or trained checkpoints (`--policy`, `--reward`) and a prompt set (`--prompts`)."""
    from basemodel import TINY_TOKENIZER_DIR
    from basemodel.loading import load_causal_lm, load_sequence_classifier
    from chat.format import ChatEncoder
    from chat.readers import read_prompts
    from chat.tokenizer import load_hf_tokenizer, save_tokenizer
    from pipeline.config import ModelConfig
    from reward.scoring import reward_pad_id

    if args.policy:
        shutil.copytree(args.policy, workdir / "policy", ignore=shutil.ignore_patterns("*.partial", "wandb"))
    else:
        load_causal_lm(ModelConfig(), None, seed=0).save_pretrained(workdir / "policy")
        save_tokenizer(TINY_TOKENIZER_DIR, workdir / "policy")
    encoder = ChatEncoder.from_path(workdir / "policy")
    if args.reward:
        shutil.copytree(args.reward, workdir / "reward", ignore=shutil.ignore_patterns("*.partial", "wandb"))
        pad = json.loads((workdir / "reward" / "config.json").read_text())["pad_token_id"]
    else:
        pad = reward_pad_id(encoder, load_hf_tokenizer(workdir / "policy").unk_token_id)
        load_sequence_classifier(ModelConfig(), None, seed=1, pad_token_id=pad).save_pretrained(
            workdir / "reward"
        )
        save_tokenizer(TINY_TOKENIZER_DIR, workdir / "reward")
    # The value model both sides start from: the reward model, or (as the tiny PPO config does) the policy
    # with a new scalar head, saved once so that both load the same head.
    value_from = workdir / ("reward" if args.value_init == "reward" else "policy")
    value = load_sequence_classifier(value_from, None, seed=2, pad_token_id=pad)
    value.save_pretrained(workdir / "value")
    if args.prompts:
        records, _ = read_prompts([args.prompts])
        dialogs = [r.prompt for r in records if not r.is_safety][: args.batch]
    else:
        dialogs = [[{"role": "user", "content": q}] for q in QUESTIONS]
    if len(dialogs) < args.batch:
        raise SystemExit(f"bench: {len(dialogs)} prompts, fewer than --batch {args.batch}")
    prompts = [encoder.encode_for_generation(d) for d in dialogs]
    (workdir / "prompts.json").write_text(json.dumps({"dialogs": dialogs, "ids": prompts, "pad": pad}))


def both_sides_precision(precision: str) -> str:
    """fp32 or bf16; "stage" is what ppo/train.py computes in with its default model config on this machine."""
    if precision != "stage":
        return precision
    from basemodel.precision import train_in_bf16
    from pipeline.config import ModelConfig

    return "bf16" if train_in_bf16(ModelConfig()) else "fp32"


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    probe = [str(python), "-c", f"import trl, sys; sys.exit(trl.__version__ != '{TRL_VERSION}')"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} with trl=={TRL_VERSION} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"trl=={TRL_VERSION}"], check=True)
    return python


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def summary(stamps: list[float], scores: list[float]) -> dict:
    quarter = max(1, len(scores) // 4)
    per_iteration = [b - a for a, b in zip(stamps, stamps[1:])]
    return {
        "seconds_per_iteration": statistics.median(per_iteration[1:] or per_iteration),
        "iteration_seconds": per_iteration,
        "scores": scores,
        # a quarter of the iterations at each end: one iteration's 16 answers are too few to compare
        "reward_gain": statistics.mean(scores[-quarter:]) - statistics.mean(scores[:quarter]),
        "peak_rss_mb": peak_rss_mb(),
    }


# ---------------------------------------------------------------- our side


def run_ours(args, workdir: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from chat.format import ChatEncoder
    from generation import HFGenerator, SamplingParams
    from ppo.ppo_models import ValueModel, freeze, no_dropout
    from ppo.rewards import RunningMoments
    from ppo.rollout import (
        calibrate_value_head,
        finish_rollout,
        out_of_inference_mode,
        pack_sequences,
        recorded_logprobs,
        rollout_forwards,
        sequence_scores,
    )
    from ppo.trainer import Learner, make_optimizer, ppo_update
    from reward.scoring import RewardScorer, score_answers

    torch.manual_seed(args.seed)
    setup = json.loads((workdir / "prompts.json").read_text())
    encoder = ChatEncoder.from_path(workdir / "policy")
    policy = no_dropout(AutoModelForCausalLM.from_pretrained(workdir / "policy"))
    reference = freeze(AutoModelForCausalLM.from_pretrained(workdir / "policy"))
    reward = freeze(AutoModelForSequenceClassification.from_pretrained(workdir / "reward"))
    value = ValueModel(no_dropout(AutoModelForSequenceClassification.from_pretrained(workdir / "value")))
    cfg = argparse.Namespace(
        temperature=1.0, clip=0.2, value_clip=0.2, gamma=1.0, lam=0.95, kl_beta=args.kl_coef, kl_estimator="k1",
        whiten="running", safety_threshold=0.15, no_eos_penalty=None, no_eos_mode="subtract", length_penalty=0.0,
        ppo_epochs=1, mini_batch_size=args.batch // args.mini_batches, micro_batch_size=args.batch // args.mini_batches,
        max_grad_norm=1.0, adam_beta1=0.9, adam_beta2=0.999, adam_eps=1e-8, weight_decay=0.0,
        layout=args.layout, samples_per_prompt=1, baseline="none",
    )  # fmt: skip
    learner = Learner(
        policy,
        value,
        make_optimizer(policy, args.lr, cfg),
        make_optimizer(value, args.lr, cfg),
        LocalBackward(),
    )
    generator = HFGenerator(policy, encoder, batch_size=args.batch)
    scorer = RewardScorer(reward, encoder, batch_size=args.batch)
    dialogs = setup["dialogs"][: args.batch]
    moments, shuffle = RunningMoments(), torch.Generator().manual_seed(args.seed)
    stamps, scores, phases = [time.perf_counter()], [], {}
    # What ppo/train.py's `compute()` enters with model.cpu_bf16_autocast on a CPU with native bf16.
    compute = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")
    for iteration in range(args.iterations):
        params = SamplingParams(
            max_new_tokens=args.response_length,
            temperature=1.0,
            seed=iteration + 1000 * args.seed,
            logprobs=True,
        )
        with compute:
            phase = time.perf_counter()
            completions = [c[0] for c in generator.generate(dialogs, params)]
            phase = clock(phases, "generate", phase)
            # As ppo/train.py: an empty answer (EOS at once) gets the empty-answer score, not an error.
            raw = score_answers(scorer, dialogs, [c.text for c in completions])
            phase = clock(phases, "score", phase)
            batch = pack_sequences(
                setup["ids"][: args.batch], [c.token_ids for c in completions], setup["pad"], encoder.eos_id
            )
            forwards = rollout_forwards(
                policy,
                reference,
                value,
                batch,
                1.0,
                cfg.layout,
                cfg.micro_batch_size,
                recorded_logprobs(completions, batch),
            )
            phase = clock(phases, "rollout_forwards", phase)
            score, _ = sequence_scores(raw, None, torch.zeros(len(raw), dtype=torch.bool), batch, cfg)
            if iteration == 0 and args.value_init == "reward":  # as ppo/train.py does
                calibrate_value_head(value, score)
            rollout, moments = finish_rollout(batch, forwards, score, moments, cfg)
            ppo_update(learner, out_of_inference_mode(rollout), cfg, shuffle)
            clock(phases, "update", phase)
        scores.append(raw.mean().item())
        stamps.append(time.perf_counter())
    policy.save_pretrained(workdir / "ours-final")
    # Our side's seconds per phase, median over iterations 2..N (printed by --side ours, for profiling).
    return {
        **summary(stamps, scores),
        "phase_seconds": {k: statistics.median(v[1:] or v) for k, v in phases.items()},
    }


def clock(phases: dict[str, list[float]], name: str, since: float) -> float:
    """Add the seconds since ``since`` to phase ``name``; return now, the next phase's start."""
    now = time.perf_counter()
    phases.setdefault(name, []).append(now - since)
    return now


class LocalBackward:
    def backward(self, loss):
        loss.backward()

    def clip_grad_norm_(self, params, max_norm):
        import torch

        return torch.nn.utils.clip_grad_norm_(params, max_norm)


# ---------------------------------------------------------------- trl 1.12's side


def run_trl(args, workdir: Path) -> dict:
    import torch
    import trl
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        TrainerCallback,
    )
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    assert trl.__version__ == TRL_VERSION, trl.__version__
    torch.manual_seed(args.seed)
    setup = json.loads((workdir / "prompts.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(workdir / "policy")
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(setup["pad"])  # as our reward models pad
    # Prompts padded on the left, as trl's PPO examples load the tokenizer: trl batches its queries with the
    # tokenizer's own padding side, and right-padded queries would have it generate after the padding.
    tokenizer.padding_side = "left"
    stamps, scores = [], []

    class Clock(TrainerCallback):
        def on_train_begin(self, *_, **__):
            stamps.append(time.perf_counter())

        def on_step_end(self, *_, **__):
            stamps.append(time.perf_counter())

        def on_log(self, _args, _state, _control, logs=None, **__):
            if logs and "objective/scores" in logs:
                scores.append(logs["objective/scores"])

    ids = setup["ids"][: args.batch]
    config = PPOConfig(
        output_dir=str(workdir / "trl-out"),
        per_device_train_batch_size=args.batch // args.mini_batches,
        gradient_accumulation_steps=args.mini_batches,
        num_mini_batches=args.mini_batches,
        num_ppo_epochs=1,
        total_episodes=args.batch * args.iterations,
        response_length=args.response_length,
        stop_token="eos",
        temperature=1.0,
        learning_rate=args.lr,
        kl_coef=args.kl_coef,
        lr_scheduler_type="constant",
        num_sample_generations=0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=args.precision == "bf16",
        seed=args.seed,
        dataloader_num_workers=0,
    )
    trainer = PPOTrainer(
        args=config,
        processing_class=tokenizer,
        model=AutoModelForCausalLM.from_pretrained(workdir / "policy"),
        ref_model=AutoModelForCausalLM.from_pretrained(workdir / "policy"),
        reward_model=AutoModelForSequenceClassification.from_pretrained(workdir / "reward"),
        value_model=AutoModelForSequenceClassification.from_pretrained(workdir / "value"),
        train_dataset=Dataset.from_dict({"input_ids": ids}),
        callbacks=[Clock()],
    )
    trainer.train()
    trainer.policy_model.save_pretrained(workdir / "trl-final")
    return summary(stamps, scores)


# ---------------------------------------------------------------- one scorer for both sides


def same_scorer_means(args, workdir: Path) -> dict[str, float]:
    """Mean RM score of the answers of the starting policy and of each side's last one, all sampled and read
    the same way (our generator, our scorer, float32, one seed): the sides' own per-iteration scores differ
    in how they read the RM (trl scores the generated ids as they are, ours re-encodes the dialog), so only
    this compares their gains with each other."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from chat.format import ChatEncoder
    from generation import HFGenerator, SamplingParams
    from ppo.ppo_models import freeze
    from reward.scoring import RewardScorer, score_answers

    torch.set_num_threads(args.threads)
    dialogs = json.loads((workdir / "prompts.json").read_text())["dialogs"][: args.batch]
    encoder = ChatEncoder.from_path(workdir / "policy")
    reward = freeze(AutoModelForSequenceClassification.from_pretrained(workdir / "reward"))
    scorer = RewardScorer(reward, encoder, batch_size=64)
    params = SamplingParams(
        max_new_tokens=args.response_length, temperature=1.0, num_samples=args.eval_samples, seed=4321
    )
    means = {}
    for name in ("policy", "trl-final", "ours-final"):
        model = freeze(AutoModelForCausalLM.from_pretrained(workdir / name))
        sampled = HFGenerator(model, encoder, batch_size=64).generate(dialogs, params)
        answered = [dialog for dialog, samples in zip(dialogs, sampled) for _ in samples]
        texts = [c.text for samples in sampled for c in samples]
        means[name] = score_answers(scorer, answered, texts).mean().item()
    return means


# ---------------------------------------------------------------- orchestration


def run_side(python: str, side: str, args, workdir: Path) -> dict:
    command = [python, __file__, "--side", side, "--workdir", str(workdir)]
    for flag in (
        "iterations",
        "batch",
        "mini_batches",
        "response_length",
        "lr",
        "kl_coef",
        "threads",
        "precision",
        "seed",
        "value_init",
        "layout",
    ):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": str(args.threads),
        "WANDB_MODE": "disabled",
    }
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench: the {side} side failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    args.precision = both_sides_precision(args.precision)
    if args.side:
        import torch

        torch.set_num_threads(args.threads)
        run = run_ours if args.side == "ours" else run_trl
        print(json.dumps(run(args, Path(args.workdir))))
        return 0
    trl_python = ensure_venv(Path(args.venv))
    with tempfile.TemporaryDirectory(prefix="ppo-bench-") as tmp:
        workdir = Path(tmp)
        build_models(workdir, args)
        results = {
            side: run_side(py, side, args, workdir)
            for side, py in (("trl", str(trl_python)), ("ours", sys.executable))
        }
        means = same_scorer_means(args, workdir)
    print(
        f"settings: tiny Llama (hidden 256, 4 layers), {args.batch} prompts/iteration, response_length "
        f"{args.response_length}, stop at EOS, 1 PPO epoch, {args.mini_batches} mini-batches, lr {args.lr}, "
        f"kl {args.kl_coef}, {args.iterations} iterations, {args.threads} threads, {args.precision}, seed {args.seed}"
        + f", our layout {args.layout}, value from the {args.value_init}"
    )
    for side, name in (("trl", f"trl {TRL_VERSION}"), ("ours", "ours")):
        r = results[side]
        print(
            f"{name:>10}: {r['seconds_per_iteration']:.3f} s/iteration (median of iterations 2..N), "
            f"peak RSS {r['peak_rss_mb']:.0f} MB, reward gain {r['reward_gain']:+.4f} "
            f"(scores {r['scores'][0]:+.4f} at iteration 1, {r['scores'][-1]:+.4f} at the last)"
        )
    print(
        f"reward gain under one scorer ({args.batch} prompts x {args.eval_samples} answers, last policy minus "
        f"the starting one's {means['policy']:+.4f}): trl {means['trl-final'] - means['policy']:+.4f}, "
        f"ours {means['ours-final'] - means['policy']:+.4f}"
    )
    ratio = results["trl"]["seconds_per_iteration"] / results["ours"]["seconds_per_iteration"]
    print(f"speed ratio (trl {TRL_VERSION} s/iteration / ours): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
