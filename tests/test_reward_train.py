"""The reward stage end to end on a very small model: HH-RLHF fixture pairs, the safety RM, the ablation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
HH = SHARED / "fixtures" / "hh-rlhf"
HELPFUL, HARMLESS = HH / "helpful-base-test-300.jsonl.gz", HH / "harmless-base-test-300.jsonl.gz"
LLAMA2_TOKENIZER = SHARED / "fixtures" / "llama2-tokenizer" / "tokenizer.model"
SMALL = [
    "logger=none",
    "train.per_device_batch_size=8",
    "train.pairs_per_step=8",
    "train.lr=1e-3",
    "train.logging_steps=2",
    "eval.batch_size=16",
]


def tokenizer_dir() -> Path:
    from basemodel import TINY_TOKENIZER_DIR

    if (TINY_TOKENIZER_DIR / "tokenizer.model").is_file():
        return TINY_TOKENIZER_DIR
    if LLAMA2_TOKENIZER.is_file():
        return LLAMA2_TOKENIZER
    pytest.skip("no tokenizer: neither basemodel/tiny_tokenizer nor the shared Llama 2 fixture exists")


def make_sft_checkpoint(run_root: Path) -> Path:
    """A finished (random-init, very small) SFT stage for the reward stage to start from."""
    from basemodel.loading import load_causal_lm, save_model
    from chat.tokenizer import save_tokenizer
    from pipeline.config import ModelConfig

    sft = run_root / "default" / "sft"
    sizes = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 128}
    model = load_causal_lm(ModelConfig(tokenizer=str(tokenizer_dir()), **sizes))
    save_model(model, sft, merge_adapters=True)
    save_tokenizer(tokenizer_dir(), sft)
    (sft / "metrics.json").write_text("{}\n")
    return sft


def reward(run_root: Path, *overrides, check=True):
    command = [sys.executable, str(REPO / "reward/train.py"), f"run.root={run_root}", *SMALL, *overrides]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, cwd=run_root, env=env, capture_output=True, text=True, timeout=900)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def hh_run(tmp_path_factory):
    if not HELPFUL.is_file():
        pytest.skip(f"the HH-RLHF fixtures are not in {HH}")
    root = tmp_path_factory.mktemp("reward-hh")
    make_sft_checkpoint(root)
    result = reward(
        root,
        "data=hh_rlhf",
        f"data.train=[{HELPFUL},{HARMLESS}]",
        f"data.test=[{HELPFUL},{HARMLESS}]",
        "data.max_train_samples=96",
        "eval.max_pairs=40",
        "model.max_length=192",  # shorter than many HH dialogs: prompts get shortened, some pairs skipped
        "train.epochs=1",
    )
    return root / "default" / "reward" / "helpfulness", result


@pytest.mark.slow
def test_hh_pairs_train_end_to_end_and_report_every_test_set(hh_run):
    folder, _ = hh_run
    names = {p.name for p in folder.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.model",
        "metrics.json",
        "config.yaml",
        "README.md",
    } <= names
    assert "checkpoints" not in names
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["eval"]) == {"helpful-base-test-300", "harmless-base-test-300"}
    for result in metrics["eval"].values():
        # HH-RLHF has no ratings: every level is reported as missing, the pairs as unrated, the average is real
        accuracy = result["accuracy"]
        assert list(accuracy) == [
            "significantly_better",
            "better",
            "slightly_better",
            "negligibly_better",
            "average",
        ]
        assert all(accuracy[r] is None for r in list(accuracy)[:4]) and 0 <= accuracy["average"] <= 1
        assert result["pairs"]["unrated"] + result["skipped_answer_too_long"] == 40
        assert sum(result["histogram"]["chosen"]) == result["pairs"]["unrated"]
        assert "unsafe_flagging" not in result  # the helpfulness RM
        assert "correct_vs" not in result  # no oracle for HH-RLHF
    assert metrics["train_mixture"] == {"primary": 96}  # the built-in world's mix is not added to HH data
    assert metrics["curriculum_pairs"] == 0  # nor its curriculum
    encoding = metrics["train_encoding"]
    assert encoding["truncated"] > 0 and encoding["kept"] + encoding["skipped_answer_too_long"] == 96
    assert metrics["global_step"] == -(-encoding["kept"] // 8)  # one epoch of 8-pair steps


@pytest.mark.slow
def test_skips_are_logged_and_the_model_scores_with_plain_transformers(hh_run):
    folder, result = hh_run
    metrics = json.loads((folder / "metrics.json").read_text())
    if metrics["train_encoding"]["skipped_answer_too_long"]:
        assert "whose answers alone exceed 192 tokens" in result.stderr + result.stdout
    from transformers import AutoModelForSequenceClassification

    from reward.scoring import RewardScorer

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert model.config.num_labels == 1 and model.config.pad_token_id not in (None, model.config.eos_token_id)
    scorer = RewardScorer(folder, batch_size=2)
    prompt = [{"role": "user", "content": "How do I bake bread?"}]
    scores = scorer.score(
        [prompt, prompt, prompt], ["Mix flour, water and yeast.", "No.", "Mix flour, water and yeast."]
    )
    assert scores.shape == (3,) and scores[0] == pytest.approx(scores[2].item())
    assert "AutoModelForSequenceClassification" in (folder / "README.md").read_text()


@pytest.mark.slow
def test_safety_experiment_writes_reward_safety_with_precision_and_recall(tmp_path):
    make_sft_checkpoint(tmp_path)
    reward(
        tmp_path,
        "+experiment=safety",
        "data.max_train_samples=48",
        "eval.max_pairs=40",
        "eval.baselines=false",
    )
    folder = tmp_path / "default" / "reward" / "safety"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["objective"] == "safety" and set(metrics["eval"]) == {"helpfulness", "safety"}
    # 48 primary pairs are 70% of the set: helpfulness 10% (the paper's 90/10 before the contrast), safety
    # contrast 20%
    assert metrics["train_mixture"] == {"primary": 48, "helpfulness": 7, "safety-contrast": 14}
    flagging = metrics["eval"]["safety"]["unsafe_flagging"]
    assert flagging["threshold"] == 0.15 and flagging["answers"] == 80 and flagging["unsafe"] > 0
    assert flagging["unsafe_means"].startswith("oracle")
    correct_vs = metrics["eval"]["helpfulness"]["correct_vs"]  # built-in world: the value-check breakdown
    verdicts = {k: v for k, v in correct_vs.items() if not k.startswith("wrong, ")}
    assert set(verdicts) <= {"refusal", "partly", "wrong"} and sum(v["pairs"] for v in verdicts.values()) > 0
    # The style split covers every wrong-value pair.
    by_style = [v["pairs"] for k, v in correct_vs.items() if k.startswith("wrong, rejected ")]
    assert sum(by_style) == correct_vs.get("wrong", {"pairs": 0})["pairs"]
    assert flagging["recall"] is not None  # precision is None only when nothing was flagged
    assert (flagging["precision"] is None) == (flagging["flagged"] == 0)
    assert not (tmp_path / "default" / "reward" / "helpfulness").exists()


@pytest.mark.slow
def test_builtin_helpfulness_rm_trains_on_its_curriculum_first_then_the_mixture(tmp_path):
    make_sft_checkpoint(tmp_path)
    reward(
        tmp_path,
        "data.max_train_samples=40",
        "train.max_curriculum_pairs=24",
        "train.epochs=1.5",
        "eval.max_pairs=16",
        "eval.baselines=false",
    )
    metrics = json.loads((tmp_path / "default" / "reward" / "helpfulness" / "metrics.json").read_text())
    mixture = metrics["train_mixture"]  # 40 primary pairs are 65% of the set: safety 10%, contrast 25%
    assert mixture == {"primary": 40, "safety": 6, "contrast": 15}
    assert metrics["curriculum_pairs"] == 24 and metrics["curriculum_encoding"]["kept"] == 24
    # One sequential pass: the curriculum once, then 1.5 passes over the 61 mixed pairs, 8 pairs a step.
    assert metrics["global_step"] == -(-(24 + round(1.5 * 61)) // 8)


def test_schedule_puts_the_curriculum_first_once_then_each_epoch_in_its_own_order():
    from omegaconf import OmegaConf

    from reward.train import schedule_rows

    cfg = OmegaConf.create(
        {"run": {"seed": 0}, "train": {"per_device_batch_size": 4, "length_bin_width": 16, "epochs": 2.0}}
    )
    first = [{"chosen_ids": [1] * 5, "rejected_ids": [1] * 4, "id": f"c{i}"} for i in range(6)]
    rows = [{"chosen_ids": [1] * (5 + i), "rejected_ids": [1] * 3, "id": f"m{i}"} for i in range(10)]
    ids = [r["id"] for r in schedule_rows(cfg, first, rows)]
    assert sorted(ids[:6]) == sorted(r["id"] for r in first)
    assert sorted(ids[6:16]) == sorted(ids[16:]) == sorted(r["id"] for r in rows) and ids[6:16] != ids[16:]
    assert [r["id"] for r in schedule_rows(cfg, first, rows)] == ids  # seeded: a resumed run sees the same


def test_missing_sft_checkpoint_says_what_to_run(tmp_path):
    result = reward(tmp_path, check=False)
    assert result.returncode != 0
    assert "run python sft/train.py first" in result.stderr


def test_ablation_trains_each_margin_once_and_prints_the_table(tmp_path, monkeypatch, capsys):
    from reward import ablation

    trained = []

    def fake_train(margin, overrides):
        trained.append((margin, overrides))
        folder = tmp_path / "default" / "reward" / "ablation" / margin
        folder.mkdir(parents=True)
        accuracy = {
            "significantly_better": {"none": 0.791, "small": 0.804, "large": 0.807}[margin],
            "average": 0.6,
        }
        (folder / "metrics.json").write_text(json.dumps({"eval": {"helpfulness": {"accuracy": accuracy}}}))

    monkeypatch.setattr(ablation, "train_variant", fake_train)
    ablation.main([f"run.root={tmp_path}", "data.max_train_samples=10"])
    assert [m for m, _ in trained] == ["none", "small", "large"]
    assert all(o == [f"run.root={tmp_path}", "data.max_train_samples=10"] for _, o in trained)
    out = capsys.readouterr().out
    assert "| none | 79.1 | - | - | - | 60.0 |" in out and "| large | 80.7 |" in out
    assert (tmp_path / "default" / "reward" / "ablation" / "table.md").read_text().strip() == out.strip()
    ablation.main([f"run.root={tmp_path}", "data.max_train_samples=10"])
    assert len(trained) == 3  # finished variants are reused
    with pytest.raises(SystemExit, match="train.margin"):
        ablation.main(["train.margin=large"])
