"""Our PPO against the last upstream one (trl 1.12.0, `trl.experimental.ppo.PPOTrainer`), same settings.

    python bench/ppo.py                      # creates /tmp/trl112-venv on first use (pip install trl==1.12.0)
    python bench/ppo.py --run runs/exp1      # a pipeline run's trained models (default: runs/default if there)
    python bench/ppo.py --random-init        # tiny random-init models: speed only
    python bench/ppo.py --samples-per-prompt 4 --value-init policy   # the tiny PPO config's way of sampling
    python bench/ppo.py --precision fp32 --seeds 0,1,2,3 --venv bench/.venv

Both sides get the same policy and reference copy (a pipeline run's newest policy before PPO, or a tiny random
Llama), the same reward model, the same value model (from the reward model, or with --value-init policy from
the policy with a new head), the same prompts, answers per prompt, batch size, response length, stopping at
EOS, PPO epochs, mini-batches, learning rate and KL coefficient; each runs in its own process (trl 1.12 in a
virtual environment created here with --system-site-packages, so torch and transformers are the same), once
per seed. Printed per seed and side: median seconds per iteration (iterations 2..N), peak resident memory, the
side's own reward gain (mean RM score over the last quarter of the iterations minus the first quarter's) and
the gain of its last policy under one scorer (--eval-samples answers to each prompt, sampled and scored the
same way for the starting policy and every last one); then each side's mean gain under that scorer over the
seeds and, last, the speed ratio of the median seconds per iteration.
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
DEFAULT_RUN = "runs/default"  # relative to the working directory, as the stages write it
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
    parser.add_argument("--iterations", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16, help="prompts per iteration")
    parser.add_argument("--mini-batches", type=int, default=2)
    parser.add_argument("--response-length", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seeds",
        type=seed_list,
        default=[0, 1, 2],
        help="sampling and shuffling seeds, comma-separated: both sides run once per seed on the same models, "
        "and the reward gains are compared by their mean over the seeds (one run's gain swings with the seed)",
    )
    parser.add_argument("--seed", type=int, help="one seed (the same as --seeds S)")
    parser.add_argument(
        "--samples-per-prompt",
        type=int,
        default=1,
        help="answers to each prompt per iteration: ours samples them together, trl gets each prompt this many "
        "times in one batch (the same answers per iteration and per mini-batch on both sides)",
    )
    parser.add_argument(
        "--baseline",
        choices=["none", "prompt_mean"],
        help="our train.baseline (default: prompt_mean with --samples-per-prompt > 1, as the tiny PPO config)",
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
        default=48,
        help="answers per prompt for the reward gain under one scorer (the starting and every last policy); "
        "at 8 the same trained policy's gain read -0.16 and +0.04 at 48 (sampling noise)",
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
    parser.add_argument(
        "--run",
        help="a pipeline run folder (e.g. runs/default): its newest policy before PPO, its helpfulness reward "
        "model and its built-in world's PPO prompts, where --policy / --reward / --prompts do not say otherwise "
        f"(default: {DEFAULT_RUN} when it holds them and none of those flags is given)",
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help=f"the tiny random-init models even where {DEFAULT_RUN} holds a pipeline run (quicker; the reward "
        "gain then says nothing: a random reward model's scores barely vary)",
    )
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seed is not None:
        args.seeds = [args.seed]
    args.seed = args.seeds[0]  # what a side runs with (main sets it per seed)
    if args.baseline is None:
        args.baseline = "prompt_mean" if args.samples_per_prompt > 1 else "none"
    if args.baseline == "prompt_mean" and args.samples_per_prompt < 2:
        parser.error("--baseline prompt_mean needs --samples-per-prompt >= 2")
    if args.samples_per_prompt < 1:
        parser.error(f"--samples-per-prompt must be >= 1, got {args.samples_per_prompt}")
    if args.random_init and models_chosen(args):
        parser.error("--random-init leaves out --run, --policy, --reward and --prompts")
    if args.run:
        fill_from_run(args)
    return args


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds {text!r}: not a comma-separated list of integers"
        ) from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: a seed appears twice")
    return seeds


def models_chosen(args) -> bool:
    return bool(args.run or args.policy or args.reward or args.prompts)


def use_default_run(args) -> bool:
    """Take DEFAULT_RUN's trained models (set args from it, return True) when no models were chosen and that run
    has them all: a reward gain means something only with a trained reward model."""
    if args.random_init or models_chosen(args):
        return False
    found = argparse.Namespace(run=DEFAULT_RUN, policy=None, reward=None, prompts=None)
    try:
        fill_from_run(found)
    except SystemExit:
        return False
    vars(args).update(vars(found))
    return True


def fill_from_run(args) -> None:
    """--policy, --reward and --prompts from a pipeline run folder where not given, as ppo/train.py finds them
    (the newest policy stage before PPO; the world of data seed 0 under the run's root)."""
    from pipeline.stage import find_policy

    run = Path(args.run)
    found = {
        "policy": find_policy(argparse.Namespace(root=run.parent, name=run.name), before="ppo"),
        "reward": run / "reward" / "helpfulness",
        "prompts": run.parent / "_world" / "world-seed0" / "prompts" / "train.jsonl",
    }
    for name, path in found.items():
        if getattr(args, name):
            continue
        if path is None or not path.exists():
            raise SystemExit(
                f"bench: --run {run}: no {name} there ({path or 'no finished sft or rejection sampling'})"
            )
        setattr(args, name, str(path))


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
    from ppo.ppo_scoring import SharedPromptScorer
    from ppo.rewards import RunningMoments
    from ppo.rollout import collect_rollout, out_of_inference_mode, pack_sequences, sequence_scores
    from ppo.trainer import Learner, make_optimizer, ppo_update
    from reward.scoring import score_answers

    torch.manual_seed(args.seed)
    setup = json.loads((workdir / "prompts.json").read_text())
    encoder = ChatEncoder.from_path(workdir / "policy")
    policy = no_dropout(AutoModelForCausalLM.from_pretrained(workdir / "policy"))
    reference = freeze(AutoModelForCausalLM.from_pretrained(workdir / "policy"))
    reward = freeze(AutoModelForSequenceClassification.from_pretrained(workdir / "reward"))
    value = ValueModel(no_dropout(AutoModelForSequenceClassification.from_pretrained(workdir / "value")))
    answers = args.batch * args.samples_per_prompt  # per iteration
    cfg = argparse.Namespace(
        temperature=1.0, clip=0.2, value_clip=0.2, gamma=1.0, lam=0.95, kl_beta=args.kl_coef, kl_estimator="k1",
        whiten="running", safety_threshold=0.15, no_eos_penalty=None, no_eos_mode="subtract", length_penalty=0.0,
        ppo_epochs=1, mini_batch_size=answers // args.mini_batches, micro_batch_size=answers // args.mini_batches,
        max_grad_norm=1.0, adam_beta1=0.9, adam_beta2=0.999, adam_eps=1e-8, weight_decay=0.0,
        layout=args.layout, samples_per_prompt=args.samples_per_prompt, baseline=args.baseline,
    )  # fmt: skip
    learner = Learner(
        policy,
        value,
        make_optimizer(policy, args.lr, cfg),
        make_optimizer(value, args.lr, cfg),
        LocalBackward(),
    )
    generator = HFGenerator(policy, encoder, batch_size=answers)
    scorer = SharedPromptScorer(reward, encoder, batch_size=answers)  # as ppo/train.py scores
    # One row per answer, a prompt's answers next to each other (as ppo/train.py lays them out).
    dialogs = [d for d in setup["dialogs"][: args.batch] for _ in range(args.samples_per_prompt)]
    prompt_ids = [ids for ids in setup["ids"][: args.batch] for _ in range(args.samples_per_prompt)]
    moments, shuffle = RunningMoments(), torch.Generator().manual_seed(args.seed)
    stamps, scores, phases = [time.perf_counter()], [], {}
    # What ppo/train.py's `compute()` enters with model.cpu_bf16_autocast on a CPU with native bf16.
    compute = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")
    for iteration in range(args.iterations):
        params = SamplingParams(
            max_new_tokens=args.response_length,
            temperature=1.0,
            num_samples=args.samples_per_prompt,
            seed=iteration + 1000 * args.seed,
            logprobs=True,
        )
        with compute:
            phase = time.perf_counter()
            sampled = generator.generate(setup["dialogs"][: args.batch], params)
            completions = [c for samples in sampled for c in samples]
            phase = clock(phases, "generate", phase)
            # As ppo/train.py: an empty answer (EOS at once) gets the empty-answer score, not an error.
            raw = score_answers(scorer, dialogs, [c.text for c in completions])
            phase = clock(phases, "score", phase)
            batch = pack_sequences(
                prompt_ids, [c.token_ids for c in completions], setup["pad"], encoder.eos_id
            )
            score, _ = sequence_scores(raw, None, torch.zeros(len(raw), dtype=torch.bool), batch, cfg)
            rollout, moments = collect_rollout(
                policy,
                reference,
                value,
                batch,
                completions,
                score,
                moments,
                cfg,
                calibrate=iteration == 0 and args.value_init == "reward",
            )
            phase = clock(phases, "rollout_forwards", phase)
            ppo_update(learner, out_of_inference_mode(rollout), cfg, shuffle)
            clock(phases, "update", phase)
        scores.append(raw.mean().item())
        stamps.append(time.perf_counter())
    policy.save_pretrained(workdir / f"ours-final-{args.seed}")
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

    # Each prompt --samples-per-prompt times; one batch holds them all, so each iteration answers every copy.
    ids = [ids for ids in setup["ids"][: args.batch] for _ in range(args.samples_per_prompt)]
    config = PPOConfig(
        output_dir=str(workdir / "trl-out"),
        per_device_train_batch_size=len(ids) // args.mini_batches,
        gradient_accumulation_steps=args.mini_batches,
        num_mini_batches=args.mini_batches,
        num_ppo_epochs=1,
        total_episodes=len(ids) * args.iterations,
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
    trainer.policy_model.save_pretrained(workdir / f"trl-final-{args.seed}")
    return summary(stamps, scores)


# ---------------------------------------------------------------- one scorer for both sides


def same_scorer_means(args, workdir: Path, names: list[str]) -> dict[str, float]:
    """Mean RM score of the answers of the policies saved under `names` in the workdir (the starting one and
    each side's last ones), all sampled and read the same way (our generator, our scorer, float32, one seed):
    the sides' own per-iteration scores differ in how they read the RM (trl scores the generated ids as they
    are, ours re-encodes the dialog), so only this compares their gains with each other."""
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
    for name in names:
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
        "samples_per_prompt",
        "baseline",
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
    use_default_run(args)
    trl_python = ensure_venv(Path(args.venv))
    sides = (("trl", f"trl {TRL_VERSION}", str(trl_python)), ("ours", "ours", sys.executable))
    with tempfile.TemporaryDirectory(prefix="ppo-bench-") as tmp:
        workdir = Path(tmp)
        build_models(workdir, args)
        results = {}  # (side, seed) -> that run's summary
        for seed in args.seeds:
            args.seed = seed
            for side, _, python in sides:
                results[side, seed] = run_side(python, side, args, workdir)
        finals = [f"{side}-final-{seed}" for side, _, _ in sides for seed in args.seeds]
        means = same_scorer_means(args, workdir, ["policy", *finals])
    print(
        f"settings: {models_in_use(args)}, "
        f"{args.batch} prompts x {args.samples_per_prompt} answers/iteration, response_length {args.response_length}, "
        f"stop at EOS, 1 PPO epoch, {args.mini_batches} mini-batches, lr {args.lr}, kl {args.kl_coef}, "
        f"{args.iterations} iterations, {args.threads} threads, {args.precision}, value from the {args.value_init}; "
        f"ours: layout {args.layout}, baseline {args.baseline}"
    )
    start = means["policy"]
    gains = {side: [means[f"{side}-final-{seed}"] - start for seed in args.seeds] for side, _, _ in sides}
    for index, seed in enumerate(args.seeds):
        for side, name, _ in sides:
            r = results[side, seed]
            print(
                f"seed {seed} {name:>10}: {r['seconds_per_iteration']:.3f} s/iteration (median of iterations 2..N), "
                f"peak RSS {r['peak_rss_mb']:.0f} MB, own scores {r['scores'][0]:+.3f} at iteration 1, gain "
                f"{r['reward_gain']:+.3f}; gain under one scorer {gains[side][index]:+.4f}"
            )
    print(
        f"reward gain under one scorer ({args.batch} prompts x {args.eval_samples} answers, last policy minus the "
        f"starting one's {start:+.4f}), mean over seeds {','.join(map(str, args.seeds))}: "
        + ", ".join(f"{name} {mean_and_spread(gains[side])}" for side, name, _ in sides)
    )
    medians = {
        side: statistics.median(results[side, seed]["seconds_per_iteration"] for seed in args.seeds)
        for side, _, _ in sides
    }
    print(
        f"speed ratio (trl {TRL_VERSION} s/iteration / ours, medians over the seeds: "
        f"{medians['trl']:.3f} / {medians['ours']:.3f}): {medians['trl'] / medians['ours']:.2f}x"
    )
    return 0


def models_in_use(args) -> str:
    if args.policy:
        return f"trained models from {args.policy}"
    return (
        "tiny random-init Llama (hidden 256, 4 layers; a random reward model's scores barely vary, so the reward "
        f"gains say nothing: run the pipeline into {DEFAULT_RUN} or pass --run for trained models)"
    )


def mean_and_spread(values: list[float]) -> str:
    """'+0.1234' for one value; with more, the mean and its standard error."""
    if len(values) < 2:
        return f"{values[0]:+.4f}"
    return (
        f"{statistics.mean(values):+.4f} (standard error {statistics.stdev(values) / len(values) ** 0.5:.4f})"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
