"""Ghost Attention, step 3: the evidence (Llama 2 paper, table 30 and figure 10).

    python gatt/evaluate.py                 # after gatt/train.py, on the built-in world, minutes

For the policy before GAtt and the GAtt model: 20-turn dialogs with a constraint in the system message,
answered turn by turn (greedy, each model's own answers fed back), the share of answers honouring the
constraint at every turn, on the constraint values GAtt trains on (`adherence_by_turn`, the headline) and
on held-out ones (`adherence_heldout_by_turn`); how often each adds a constraint nobody asked for (neutral
prompts); and the maximum attention later tokens pay to the system message. Written into `<run>/gatt/`:
metrics.json gains those {before, after} (and the other numbers), plus `adherence.png` and
`attention.png`. The built-in world's oracle judges; it trains nothing.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig
from transformers import set_seed

import gatt.config  # noqa: F401  (registers the config schema)
from basemodel.loading import load_causal_lm
from chat.format import ChatEncoder
from chatworld.evaluation import adherence_by_turn, evaluate_policy, mean_or_none, read_jsonl
from gatt.attention import attention_to_span, binned, system_span, turn_peaks
from gatt.plots import adherence_plot, attention_plot
from gatt.policy import policy_model_cfg
from generation import SamplingParams, generate_answers
from pipeline.inputs import world_dir
from pipeline.stage import COMPLETE_MARKER, find_policy, run_dir, write_json
from ppo.rejection_sampling import on_accelerator

log = logging.getLogger("gatt.evaluate")
TABLE_TURNS = (2, 4, 6, 20)  # the turns the paper's table 30 reports
ATTENTION_BIN = 8  # tokens per column of the attention figure
EMPTY_ANSWER = "..."  # fed back in place of an empty answer (see greedy)


def models_to_compare(cfg) -> dict[str, Path]:
    gatt_dir = run_dir(cfg.run) / "gatt"
    if not (gatt_dir / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(f"no finished GAtt model in {gatt_dir}; run python gatt/train.py first")
    before = Path(cfg.init_from) if cfg.init_from else find_policy(cfg.run, before="gatt")
    if before is None:
        raise FileNotFoundError(
            f"no policy before GAtt in {run_dir(cfg.run)} to compare with (set init_from)"
        )
    return {"before": before, "after": gatt_dir}


def greedy(model, encoder, cfg, empty_count: list[int] | None = None):
    """Greedy answers; an empty one (EOS at once) becomes EMPTY_ANSWER, counted in `empty_count[0]`.

    The chat format has no empty assistant turn, so an empty answer could not be fed back into the
    dialog; the stand-in carries no constraint mark, so it is judged as not adhering, as the empty one.
    """
    params = SamplingParams(max_new_tokens=cfg.eval.max_new_tokens, temperature=0.0)

    def generate(dialogs: list[list[dict]]) -> list[str]:
        answers = generate_answers(model, encoder, dialogs, params, batch_size=cfg.eval.batch_size)
        if empty_count is not None:
            empty_count[0] += sum(not a.strip() for a in answers)
        return [a if a.strip() else EMPTY_ANSWER for a in answers]

    return generate


def transcript(generate, eval_dialog: dict, turns: int) -> list[dict]:
    """One evaluation dialog answered turn by turn by `generate` (its own answers fed back)."""
    messages = [{"role": "system", "content": eval_dialog["system"]}]
    for user in eval_dialog["user_turns"][:turns]:
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": generate([messages])[0]})
    return messages


def fit_transcript(encoder, messages: list[dict], max_tokens: int) -> list[dict]:
    """The longest prefix of whole turns whose encoding fits the model's positions."""
    while len(messages) > 3 and len(encoder.encode_for_training(messages)["input_ids"]) > max_tokens:
        messages = messages[:-2]
    return messages


def load_policy(cfg, path: Path, **overrides):
    return on_accelerator(load_causal_lm(policy_model_cfg(cfg, path, **overrides), None, seed=cfg.run.seed))


def read_attention(models: dict, encoder, messages: list[dict]) -> dict:
    """Each model's [layers, tokens] attention to the system message over one transcript, and its turn peaks."""
    messages = fit_transcript(encoder, messages, next(iter(models.values())).config.max_position_embeddings)
    ids, start, end = system_span(encoder, messages)
    turn_ends = [
        len(encoder.encode_for_training(messages[: 1 + 2 * t])["input_ids"])
        for t in range(1, len(messages) // 2)
    ]
    maps = {label: attention_to_span(model, ids, start, end) for label, model in models.items()}
    return {
        "maps": maps,
        "peaks": {label: turn_peaks(m, end, turn_ends) for label, m in maps.items()},
        "turn_ends": turn_ends,
        "end": end,
        "tokens": len(ids),
        "system_tokens": end - start,
        "turns": len(messages) // 2,
    }


def attention_figure(
    cfg, paths: dict, encoder, shown: dict, transcripts: list[list[dict]], out: Path
) -> dict:
    """Figure 10 on one evaluation dialog as the GAtt model answers it, read by both models; and the mean per
    turn peak over `transcripts` (the GAtt model's own 20-turn evaluation dialogs), so the number does not
    rest on one dialog."""
    models = {label: load_policy(cfg, path, attn_implementation="eager") for label, path in paths.items()}
    after = models["after"]
    shown_read = read_attention(
        models, encoder, transcript(greedy(after, encoder, cfg), shown, cfg.eval.attention_turns)
    )
    end, turn_ends = shown_read["end"], shown_read["turn_ends"]
    maps, summary = {}, {k: shown_read[k] for k in ("tokens", "system_tokens", "turns")}
    over_dialogs = [read_attention(models, encoder, messages)["peaks"] for messages in transcripts]
    for label, path in paths.items():
        per_token = shown_read["maps"][label]
        maps[f"{label} GAtt ({path.name})"] = binned(per_token, ATTENTION_BIN).tolist()
        strongest = per_token.amax(dim=0)
        last_turn = strongest[turn_ends[-1] - end :] if turn_ends else strongest
        peaks = shown_read["peaks"][label]
        pooled = [p for dialog in over_dialogs for p in dialog[label]]
        summary[label] = {
            "turn_peak_attention": peaks,  # turns 2, 3, ... of the figure's dialog: the strongest look back
            "mean_turn_peak_attention": mean_or_none(peaks),
            "mean_turn_peak_attention_over_dialogs": mean_or_none(pooled),
            "mean_max_attention": strongest.mean().item(),
            "last_turn_mean_max_attention": last_turn.mean().item(),
        }
        log.info(
            "%s: peak attention to the system message per later turn %.3f (figure dialog), %.3f (%d dialogs)",
            label, summary[label]["mean_turn_peak_attention"] or 0,
            summary[label]["mean_turn_peak_attention_over_dialogs"] or 0, len(transcripts),
        )  # fmt: skip
    summary["dialogs"] = len(transcripts)
    turn_starts = [(t - end) // ATTENTION_BIN for t in turn_ends]
    title = f"Max attention to the system message ({summary['turns']} turns: {shown['system']})"
    attention_plot(out / "attention.png", maps, turn_starts, title)
    return summary


def neutral_rates(generate, world, max_prompts: int) -> dict:
    scores = evaluate_policy(generate, world, max_prompts=max_prompts)
    return {"constraint_added": scores["constraint_added"], "helpfulness": scores["helpfulness"]}


@hydra.main(version_base=None, config_path="../conf", config_name="gatt")
def main(cfg: DictConfig) -> None:
    if cfg.data.name != "builtin":
        raise SystemExit(
            "gatt/evaluate.py needs the built-in world (data=builtin): its oracle judges the constraints"
        )
    set_seed(cfg.run.seed)
    paths = models_to_compare(cfg)
    if "adherence_by_turn" in json_metrics(paths["after"]) and not cfg.run.overwrite:
        log.warning("%s is already evaluated; pass run.overwrite=true to evaluate again", paths["after"])
        return
    world = world_dir(cfg.run, cfg.data)
    eval_dialogs = read_jsonl(world / "gatt" / "eval.jsonl")[: cfg.eval.max_dialogs]
    encoder = ChatEncoder.from_path(paths["after"])
    results, neutral, empty = {}, {}, {}
    for label, path in paths.items():
        empty[label] = [0]
        generate = greedy(load_policy(cfg, path), encoder, cfg, empty[label])
        log.info("%s (%s): %d dialogs of up to %d turns", label, path, len(eval_dialogs), max(cfg.eval.turns))
        results[label] = adherence_by_turn(generate, eval_dialogs, list(cfg.eval.turns))
        neutral[label] = neutral_rates(generate, world, cfg.eval.neutral_prompts)
        for split in ("seen", "heldout"):
            shares = {t: round(v, 3) for t, v in results[label][f"{split}_by_turn"].items() if v is not None}
            log.info("%s adherence, %s constraint values: %s", label, split, shares)

    out = paths["after"]
    # The headline is the constraint values GAtt trains on (the paper's table 30); held-out values show
    # how far it generalises past them.
    curves = {f"{label} GAtt": r["seen_by_turn"] for label, r in results.items()}
    curves |= {f"{label} GAtt, held-out values": r["heldout_by_turn"] for label, r in results.items()}
    adherence_plot(out / "adherence.png", curves, "Constraint adherence over a dialog")
    trained = [i for i, d in enumerate(eval_dialogs) if not d.get("meta", {}).get("heldout")]
    transcripts = [results["after"]["transcripts"][i] for i in trained[: cfg.eval.attention_dialogs]]
    attention = attention_figure(
        cfg, paths, encoder, eval_dialogs[cfg.eval.attention_dialog], transcripts, out
    )
    metrics = json_metrics(out)
    metrics.update(
        {
            "adherence_by_turn": {label: r["seen_by_turn"] for label, r in results.items()},
            "adherence_table30": {
                label: {t: r["seen_by_turn"].get(t) for t in TABLE_TURNS} for label, r in results.items()
            },
            "adherence_heldout_by_turn": {label: r["heldout_by_turn"] for label, r in results.items()},
            "adherence_all_by_turn": {label: r["by_turn"] for label, r in results.items()},
            "helpfulness_by_turn": {label: r["helpfulness_by_turn"] for label, r in results.items()},
            "eval_dialogs": len(eval_dialogs),
            "neutral_prompts": neutral,
            "empty_answers": {label: count[0] for label, count in empty.items()},
            "attention": attention,
            "compared": {label: str(path) for label, path in paths.items()},
        }
    )
    write_json(out / COMPLETE_MARKER, metrics)
    log.info("GAtt evaluation written to %s (metrics.json, adherence.png, attention.png)", out)


def json_metrics(folder: Path) -> dict:
    return json.loads((folder / COMPLETE_MARKER).read_text())


if __name__ == "__main__":
    sys.exit(main())
