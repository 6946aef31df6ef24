"""Model-based evaluation (Llama 2 section 3.4.1, figure 11): `python -m winrate` or `python winrate/evaluate.py`.

    python -m winrate run.name=exp1                       # every model stage of runs/exp1, 200 held-out prompts
    python -m winrate run.name=exp1 eval.max_prompts=50 run.overwrite=true   # again, after a new stage

Every finished model stage (sft, rejection_sampling/iter-<k>, ppo, ppo-safety, sft-safety, gatt) answers
the held-out prompts greedily, once (answers cached in the output); each judge (the run's reward models,
and the oracle on the built-in world) scores every answer; each stage is compared with SFT and with the
stage before it: win, tie within eval.tie_tolerance (half a win), or loss, per prompt.
Output `runs/<name>/winrate/`: metrics.json (the table), winrate.png, answers/<stage>.jsonl.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import winrate.config  # noqa: F401  (registers the config schema)
from pipeline.config import model_at
from pipeline.stage import Stage, run_dir, write_resolved_config
from pipeline.tracking import start_tracking
from winrate.answers import cached_answers
from winrate.judges import available_judges, on_accelerator
from winrate.plot import save_winrate_plot
from winrate.stages import comparisons, model_stages
from winrate.table import format_winrate_table, mean_scores, winrate_rows

log = logging.getLogger("winrate")
BUILTIN_TEST_PROMPTS = "prompts/test.jsonl"  # within the built-in world
# Absolute: relative to a module run with `python -m`, Hydra would look for a Python package `conf`.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def heldout_prompts(cfg: DictConfig) -> list[list[dict]]:
    """The first eval.max_prompts held-out prompts: eval.prompts, else the world's / the data's test split."""
    from chat.readers import read_prompts

    if cfg.eval.prompts:
        sources = list(cfg.eval.prompts)
    elif cfg.data.name == "builtin":
        from pipeline.inputs import world_dir

        sources = [str(world_dir(cfg.run, cfg.data) / BUILTIN_TEST_PROMPTS)]
    elif cfg.data.test:
        sources = list(cfg.data.test)
    else:
        raise SystemExit("winrate: no held-out prompts: set eval.prompts=[...] or data.test=[...]")
    records, _ = read_prompts(sources, "test")
    return [r.prompt for r in records[: cfg.eval.max_prompts]]


def answer_generator(cfg: DictConfig) -> tuple:
    """(stage folder -> generate(dialogs) -> answers with that stage's model loaded for the call, a text
    naming the sampling settings, which the answer caches are keyed by)."""
    from basemodel.loading import load_causal_lm
    from chat.format import ChatEncoder
    from generation import SamplingParams, generate_answers

    params = SamplingParams(
        max_new_tokens=cfg.eval.max_new_tokens, temperature=cfg.eval.temperature, seed=cfg.eval.seed
    )

    def generator_for(folder: Path):
        def generate(dialogs: list[list[dict]]) -> list[str]:
            model_cfg = model_at(cfg.model, folder)
            model = on_accelerator(load_causal_lm(model_cfg, None, seed=cfg.run.seed))
            encoder = ChatEncoder.from_path(folder)
            return generate_answers(model, encoder, dialogs, params, batch_size=cfg.eval.batch_size)

        return generate

    settings = f"max_new_tokens={params.max_new_tokens} temperature={params.temperature} seed={params.seed}"
    return generator_for, settings


def evaluate(cfg: DictConfig, stage: Stage) -> dict:
    """Answers, scores and the win-rate table of every model stage of the run."""
    run = run_dir(cfg.run)
    stages = model_stages(run)
    pairs = comparisons([name for name, _ in stages])  # fails early when there is no SFT model
    prompts = heldout_prompts(cfg)
    with_oracle = cfg.data.name == "builtin" and cfg.eval.oracle
    judges = available_judges(run, with_oracle, cfg.eval.score_batch_size)
    generator_for, settings = answer_generator(cfg)
    scores: dict[str, dict[str, list[float]]] = {}
    for name, folder in stages:
        answers = cached_answers(name, folder, prompts, [stage.work, stage.final], generator_for, settings)
        scores[name] = {judge: [float(s) for s in score(prompts, answers)] for judge, score in judges.items()}
        log.info("%s: scored %d answers by %s", name, len(answers), ", ".join(judges))
    rows = winrate_rows(scores, pairs, cfg.eval.tie_tolerance)
    return {
        "stages": [name for name, _ in stages],
        "judges": list(judges),
        "prompts": len(prompts),
        "tie_tolerance": cfg.eval.tie_tolerance,
        "table": rows,
        "mean_score": mean_scores(scores),
    }


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="winrate")
def main(cfg: DictConfig) -> None:
    stage = Stage(cfg.run, cfg.stage)
    if not stage.begin_or_skip():
        return
    work = stage.work
    metrics = evaluate(cfg, stage)
    log.info("win rates (%% with ties as half; win/tie/loss):\n%s", format_winrate_table(metrics["table"]))
    save_winrate_plot(metrics["table"], work / "winrate.png")
    tracker = start_tracking(cfg, stage.name, work)
    columns = ["model", "baseline", "judge", "win", "tie", "loss", "n", "win_rate"]
    tracker.log_table("winrate", columns, [[r[c] for c in columns] for r in metrics["table"]])
    write_resolved_config(cfg, work)
    stage.finish(metrics)
    tracker.finish()
    log.info("win rates done: %s", stage.final)


if __name__ == "__main__":
    sys.exit(main())
