"""Safety context distillation: which answers are kept, and the stage end to end with tiny models."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from chat.dialog import PromptRecord
from sft.context_distillation import distillation_dialogs, keep_better, safety_preprompt, with_system

REPO = Path(__file__).resolve().parents[1]
PROMPT = [{"role": "user", "content": "How do I pick a lock?"}]


def test_preprompt_uses_two_different_adjectives_of_the_list():
    text = safety_preprompt(["safe", "wise"], random.Random(0))
    assert text in ("You are a safe and wise assistant.", "You are a wise and safe assistant.")


def test_preprompt_goes_in_as_the_system_message_replacing_any_other():
    assert with_system(PROMPT, "Be safe.") == [{"role": "system", "content": "Be safe."}, *PROMPT]
    old = [{"role": "system", "content": "Old."}, *PROMPT]
    assert with_system(old, "Be safe.")[0]["content"] == "Be safe." and len(with_system(old, "Be safe.")) == 2


def test_only_distilled_answers_the_safety_rm_prefers_are_kept_without_the_preprompt():
    prompts = [PROMPT, PROMPT, PROMPT, PROMPT]
    plain = ["Sure, here is how.", "No.", "Same answer.", "Sure."]
    distilled = ["I can't help with that.", "Yes, like this.", "Same answer.", "  "]
    kept = keep_better(prompts, plain, distilled, [0.1, 0.9, 0.2, 0.1], [0.8, 0.3, 0.9, 0.9])
    # 1st: preferred -> kept; 2nd: worse -> dropped; 3rd: unchanged answer teaches nothing; 4th: empty
    assert kept == [[*PROMPT, {"role": "assistant", "content": "I can't help with that."}]]


def test_distillation_dialogs_keep_only_safety_prompts(monkeypatch):
    import sft.context_distillation as cd

    def fake_generate(model, encoder, dialogs, params, batch_size):
        return ["I can't help with that." if d[0]["role"] == "system" else "Here is how." for d in dialogs]

    class Scorer:
        def score(self, prompts, answers):
            return torch.tensor([1.0 if a.startswith("I can't") else -1.0 for a in answers])

    monkeypatch.setattr(cd, "generate_answers", fake_generate)
    records = [PromptRecord(PROMPT, is_safety=True), PromptRecord([{"role": "user", "content": "Hi"}])]
    cfg = type("C", (), {"seed": 0, "max_prompts": 10, "max_new_tokens": 8, "temperature": 0.0, "batch_size": 4,
                         "adjectives": ["safe", "wise", "careful"]})  # fmt: skip
    dialogs, stats = distillation_dialogs(None, None, records, Scorer(), cfg)
    assert dialogs == [[*PROMPT, {"role": "assistant", "content": "I can't help with that."}]]
    assert stats["safety_prompts"] == 1 and stats["kept"] == 1
    assert stats["mean_safety_score_preprompted"] > stats["mean_safety_score_plain"]


@pytest.mark.slow
def test_safety_experiment_distils_into_sft_safety(tmp_path):
    from basemodel.loading import load_sequence_classifier
    from pipeline.config import ModelConfig

    small = ModelConfig(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128)
    rm = load_sequence_classifier(small, None, seed=0, pad_token_id=0)
    rm.save_pretrained(tmp_path / "safety-rm")
    from basemodel import TINY_TOKENIZER_DIR
    from chat.tokenizer import save_tokenizer

    save_tokenizer(TINY_TOKENIZER_DIR, tmp_path / "safety-rm")
    common = [f"run.root={tmp_path}", "logger=none", "model.hidden_size=64", "model.num_layers=2",
              "model.num_heads=2", "model.num_kv_heads=1", "model.intermediate_size=128",
              "eval.max_prompts=8", "eval.max_new_tokens=8", "train.per_device_batch_size=8",
              "train.sequences_per_step=8"]  # fmt: skip
    run = [sys.executable, str(REPO / "sft/train.py"), *common]
    first = subprocess.run(
        [*run, "data.max_train_samples=64", "train.epochs=1"], capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr[-2000:]
    distill = [*run, "+experiment=safety", f"distill.safety_rm={tmp_path / 'safety-rm'}", "distill.max_prompts=24",
               "distill.max_new_tokens=8", "distill.temperature=1.0"]  # fmt: skip
    result = subprocess.run(distill, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "default" / "sft-safety" / "metrics.json").read_text())
    assert metrics["distillation"]["safety_prompts"] == 24
    assert 0 < metrics["distillation"]["kept"] <= 24
    assert metrics["oracle.before"] and metrics["oracle.after"]
    card = (tmp_path / "default" / "sft-safety" / "README.md").read_text()
    assert str(tmp_path / "default" / "sft") in card, "it started from the run's newest policy"

    # A safety RM that scores every answer alike prefers no preprompted one: nothing to distil, and the stage
    # lands the policy it started from instead of failing in the trainer on an empty data set.
    with torch.no_grad():
        rm.score.weight.zero_()
    rm.save_pretrained(tmp_path / "flat-rm")
    save_tokenizer(TINY_TOKENIZER_DIR, tmp_path / "flat-rm")
    start = tmp_path / "default" / "sft"
    flat = [a for a in distill if not a.startswith("distill.safety_rm=")]
    flat += [f"distill.safety_rm={tmp_path / 'flat-rm'}", "run.name=flat", f"init_from={start}"]
    result = subprocess.run(flat, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "flat" / "sft-safety" / "metrics.json").read_text())
    assert metrics["distillation"]["kept"] == 0 and metrics["train_skipped"]
    landed = load_file(tmp_path / "flat" / "sft-safety" / "model.safetensors")
    started = load_file(start / "model.safetensors")
    assert landed.keys() == started.keys() and all(torch.equal(landed[k], started[k]) for k in started)
