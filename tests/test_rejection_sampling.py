"""Rejection sampling's pure parts: best-of-K, pooling, the best-of-N curve, and the resumable sample file."""

import json

import pytest
import torch

from chat.dialog import PromptRecord
from generation import Completion, SamplingParams
from ppo.rs_reward import RewardRule
from ppo.rs_samples import append_samples, read_samples, recover_samples
from ppo.rs_sampling import chunk_seed, length_ordered_chunks, sample_and_score
from ppo.rs_sweep import sweep_table, temperature_sweep
from ppo.selection import (
    best_index,
    first_n_curve,
    pool_best,
    prompt_key,
    prompt_window,
    selection_quality,
)


def user(text):
    return [{"role": "user", "content": text}]


# --- selection math -----------------------------------------------------------------------------------


def test_best_index_takes_the_highest_score_and_the_first_on_ties():
    assert best_index([0.1, 0.7, -2.0, 0.7]) == 1
    assert best_index([-3.0]) == 0


def test_best_index_only_considers_eligible_samples():
    assert best_index([0.1, 0.7, 0.5], eligible=[True, False, True]) == 2
    assert best_index([0.1, 0.7], eligible=[False, False]) is None
    with pytest.raises(ValueError, match="2 scores but 3"):
        best_index([0.1, 0.2], eligible=[True, True, True])


def test_first_n_curve_max_and_median_by_hand():
    scores = [[1.0, 3.0, 2.0, 0.0], [4.0, 0.0, 0.0, 8.0]]
    curve = first_n_curve(scores)
    assert curve["n"] == [1, 2, 3, 4]
    # max of the first N: prompt 1 -> 1, 3, 3, 3; prompt 2 -> 4, 4, 4, 8; mean over prompts.
    assert curve["max"] == pytest.approx([2.5, 3.5, 3.5, 5.5])
    # median of the first N: prompt 1 -> 1, 2, 2, 1.5; prompt 2 -> 4, 2, 0, 2.
    assert curve["median"] == pytest.approx([2.5, 2.0, 1.0, 1.75])


def test_first_n_curve_max_never_decreases_and_rejects_ragged_rows():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 8, generator=generator).tolist()
    maxima = first_n_curve(scores)["max"]
    assert all(b >= a for a, b in zip(maxima, maxima[1:]))
    with pytest.raises(ValueError, match="prompt 1 has 1 scores, expected 2"):
        first_n_curve([[1.0, 2.0], [1.0]])
    with pytest.raises(ValueError):
        first_n_curve([])


def test_pool_best_keeps_the_best_scored_record_per_prompt():
    iter1 = [{"key": "a", "score": 1.0, "it": 1}, {"key": "b", "score": 5.0, "it": 1}]
    iter2 = [
        {"key": "a", "score": 2.0, "it": 2},
        {"key": "b", "score": 4.0, "it": 2},
        {"key": "c", "score": 0.0, "it": 2},
    ]
    pooled = pool_best([iter1, iter2])
    assert [(r["key"], r["it"]) for r in pooled] == [("a", 2), ("b", 1), ("c", 2)]


def test_pool_best_tie_keeps_the_newer_iteration():
    pooled = pool_best([[{"key": "a", "score": 1.0, "it": 1}], [{"key": "a", "score": 1.0, "it": 2}]])
    assert pooled == [{"key": "a", "score": 1.0, "it": 2}]


def test_prompt_window_moves_on_each_iteration_and_wraps():
    assert prompt_window(10, 4, 1) == [0, 1, 2, 3]
    assert prompt_window(10, 4, 2) == [4, 5, 6, 7]
    assert prompt_window(10, 4, 3) == [8, 9, 0, 1]
    assert prompt_window(3, None, 5) == [0, 1, 2]
    assert prompt_window(3, 10, 2) == [0, 1, 2]
    with pytest.raises(ValueError, match="iteration"):
        prompt_window(3, 2, 0)


def test_prompt_key_depends_on_roles_and_contents_only():
    a = [{"role": "user", "content": "hi"}]
    assert prompt_key(a) == prompt_key([{"content": "hi", "role": "user"}])
    assert prompt_key(a) != prompt_key([{"role": "user", "content": "hi!"}])
    assert prompt_key(a) != prompt_key([{"role": "system", "content": "hi"}])


def test_selection_quality_by_hand():
    rm = [[0.1, 0.9, 0.5], [2.0, 1.0, 0.0]]
    oracle = [[0.2, 0.6, 1.0], [0.5, 0.5, 0.0]]
    quality = selection_quality(rm, oracle)
    assert quality["oracle_of_rm_pick"] == pytest.approx((0.6 + 0.5) / 2)
    assert quality["oracle_of_oracle_pick"] == pytest.approx((1.0 + 0.5) / 2)
    assert quality["oracle_of_first_sample"] == pytest.approx((0.2 + 0.5) / 2)
    assert quality["oracle_of_all_samples"] == pytest.approx(2.8 / 6)
    assert quality["rm_pick_is_an_oracle_best"] == pytest.approx(0.5)


# --- the reward rule ------------------------------------------------------------------------------------


class FixedScorer:
    def __init__(self, scores):
        self.scores = scores

    def score(self, prompts, answers):
        return torch.tensor([self.scores[a] for a in answers])


def test_reward_rule_takes_safety_on_safety_prompts_or_unsafe_answers():
    helpful = FixedScorer({"x": 3.0, "y": 1.0, "z": 2.0})
    # sigmoid(-3) = 0.047 < 0.15 (unsafe answer); sigmoid(0) = 0.5
    safety = FixedScorer({"x": -3.0, "y": 0.0, "z": 0.0})
    rule = RewardRule(helpful, safety, threshold=0.15)
    scores = rule.score([user("q")] * 3, [False, False, True], ["x", "y", "z"])
    assert scores["reward"] == [-3.0, 1.0, 0.0]
    assert scores["used_safety"] == [True, False, True]
    assert RewardRule(helpful).score([user("q")] * 2, [True, False], ["x", "y"])["reward"] == [3.0, 1.0]


def test_empty_answers_get_the_floor_score_and_are_never_picked():
    from ppo.rejection_sampling import select_best

    class Strict(FixedScorer):
        def score(self, prompts, answers):
            assert all(a.strip() for a in answers), "an empty answer reached the reward model"
            return super().score(prompts, answers)

    rule = RewardRule(Strict({"x": -20.0, "y": 1.0}), Strict({"x": 0.0, "y": -5.0}), empty_score=-10.0)
    scores = rule.score([user("q")] * 3, [False, False, False], ["x", " ", "y"])
    assert scores["reward"] == [-20.0, -10.0, -5.0]  # y: unsafe by the safety RM, so its safety score
    assert scores["used_safety"] == [False, True, True]
    record = {
        "key": "k",
        "prompt": user("q"),
        "is_safety": False,
        "meta": {},
        "finished": [True, True, False],
    }
    record |= {"answers": ["x", " ", "y"], "reward": scores["reward"]}
    best, none = select_best([record], iteration=1, require_finished=False)
    assert [b["answer"] for b in best] == ["y"] and none == 0
    best, none = select_best([record], iteration=1, require_finished=True)
    assert [b["answer"] for b in best] == ["x"] and best[0]["score"] == -20.0
    record["finished"] = [False, True, False]
    assert select_best([record], iteration=1, require_finished=True) == ([], 1)


# --- samples on disk --------------------------------------------------------------------------------------


def test_recover_samples_drops_a_half_written_last_line_and_appends_cleanly(tmp_path):
    path = tmp_path / "all.jsonl"
    append_samples(path, [{"key": "a", "v": 1}, {"key": "b", "v": 2}])
    with path.open("a") as f:
        f.write('{"key": "c", "v"')  # killed mid-write
    assert [r["key"] for r in recover_samples(path)] == ["a", "b"]
    append_samples(path, [{"key": "c", "v": 3}])
    assert [r["key"] for r in read_samples(path)] == ["a", "b", "c"]


def test_a_corrupt_line_before_the_last_names_file_and_line(tmp_path):
    path = tmp_path / "all.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(ValueError, match=r"all.jsonl:2: invalid json"):
        recover_samples(path)
    path.write_text('{"key": "a"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"all.jsonl:2: .*'key'"):
        recover_samples(path)


def test_missing_files(tmp_path):
    assert recover_samples(tmp_path / "none.jsonl") == []
    with pytest.raises(FileNotFoundError, match="none.jsonl"):
        read_samples(tmp_path / "none.jsonl")


# --- the sampling loop with stand-ins -------------------------------------------------------------------


class CountingGenerator:
    """Answers "<prompt text> #<sample>" and records which prompts it was asked for."""

    def __init__(self):
        self.asked = []

    def generate(self, dialogs, params):
        self.asked.extend(d[-1]["content"] for d in dialogs)
        return [
            [
                Completion(f"{d[-1]['content']} #{i}", [1, 2], finished=i != 0)
                for i in range(params.num_samples)
            ]
            for d in dialogs
        ]


class LengthEncoder:
    def encode_for_generation(self, messages):
        return list(range(len(messages[-1]["content"])))


class SampleNumberReward:
    """Rewards the sample number: sample i of every prompt scores i."""

    def score(self, prompts, is_safety, answers):
        return {"reward": [float(a.rsplit("#", 1)[1]) for a in answers]}


def run_sampling(path, prompts, generator, k=3):
    params = SamplingParams(max_new_tokens=4, temperature=1.0, num_samples=k)
    return sample_and_score(
        generator, LengthEncoder(), SampleNumberReward(), prompts, params, path, 2, 1, show_progress=False
    )


def test_sampling_writes_every_chunk_and_returns_records_in_prompt_order(tmp_path):
    prompts = [PromptRecord(user("q" * n), is_safety=n == 2, meta={}) for n in (1, 5, 2, 4, 3)]
    generator = CountingGenerator()
    records, throughput = run_sampling(tmp_path / "all.jsonl", prompts, generator)
    assert [r["prompt"] for r in records] == [p.prompt for p in prompts]
    assert records[0]["answers"] == ["q #0", "q #1", "q #2"] and records[0]["reward"] == [0.0, 1.0, 2.0]
    assert records[0]["finished"] == [False, True, True]
    assert [r["is_safety"] for r in records] == [False, False, True, False, False]
    assert throughput["samples"] == 15
    # chunks of 2, longest prompts first
    assert generator.asked == ["q" * 5, "q" * 4, "q" * 3, "q" * 2, "q"]
    assert len(read_samples(tmp_path / "all.jsonl")) == 5


def test_restart_skips_prompts_already_sampled_even_after_a_truncated_line(tmp_path):
    path = tmp_path / "all.jsonl"
    prompts = [PromptRecord(user("q" * n), is_safety=False, meta={}) for n in (1, 5, 2, 4, 3)]
    run_sampling(path, prompts[1:2], CountingGenerator())  # the 5-long prompt, as if from a killed run
    lines = path.read_text()
    path.write_text(lines + lines[: len(lines) // 2])  # plus half a record of another write
    generator = CountingGenerator()
    records, throughput = run_sampling(path, prompts, generator)
    assert "q" * 5 not in generator.asked and sorted(generator.asked) == sorted(["q", "qq", "qqq", "qqqq"])
    assert throughput["samples"] == 12
    assert [r["prompt"] for r in records] == [p.prompt for p in prompts]
    on_disk = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(len(r["prompt"][0]["content"]) for r in on_disk) == [1, 2, 3, 4, 5]


def test_chunks_are_length_ordered_and_seeds_differ():
    assert length_ordered_chunks([3, 9, 1, 9, 5], 2) == [[1, 3], [4, 0], [2]]
    seeds = {chunk_seed(0, 1, c) for c in range(100)} | {chunk_seed(0, 2, c) for c in range(100)}
    assert len(seeds) == 200
    with pytest.raises(ValueError, match="prompts_per_write"):
        length_ordered_chunks([1], 0)


def test_temperature_sweep_gives_a_curve_per_temperature():
    prompts = [PromptRecord(user(t), is_safety=False, meta={}) for t in ("a", "b")]
    params = SamplingParams(max_new_tokens=4, temperature=1.0, num_samples=3)
    curves = temperature_sweep(CountingGenerator(), SampleNumberReward(), prompts, params, [0.7, 1.2])
    assert list(curves) == ["0.7", "1.2"]
    assert curves["0.7"]["max"] == [0.0, 1.0, 2.0] and curves["1.2"]["median"] == [0.0, 0.5, 1.0]
    table = sweep_table(curves)
    assert "N=3" in table and "+2.000" in table
    with pytest.raises(ValueError, match="> 0"):
        temperature_sweep(CountingGenerator(), SampleNumberReward(), prompts, params, [0.0])


def test_ppo_reward_models_score_empty_answers_without_reading_them():
    """PPO's policy may say EOS at once: that answer must get the floor score, not crash the RM encoder."""
    from ppo.ppo_scoring import RewardModels

    class Strict(FixedScorer):
        def score(self, prompts, answers):
            assert all(a.strip() for a in answers), "an empty answer reached the reward model"
            return super().score(prompts, answers)

    models = RewardModels(Strict({"x": 2.0}), Strict({"x": -1.0}), empty_score=-7.0)
    helpful, safety = models.score([user("q")] * 3, ["x", "", "x"])
    assert helpful.tolist() == [2.0, -7.0, 2.0] and safety.tolist() == [-1.0, -7.0, -1.0]
    helpful, safety = RewardModels(Strict({}), None, empty_score=-7.0).score([user("q")], [" "])
    assert helpful.tolist() == [-7.0] and safety is None


def test_a_missing_reward_model_names_the_key_to_set(tmp_path):
    from omegaconf import OmegaConf

    from reward.scoring import reward_model_dir

    run = OmegaConf.create({"root": str(tmp_path), "name": "exp"})
    with pytest.raises(
        FileNotFoundError, match=r"safety_rm: no finished safety reward model .*\+experiment=safety"
    ):
        reward_model_dir(run, None, "safety", "safety_rm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"reward.helpfulness: .*empty holds no model"):
        reward_model_dir(run, str(tmp_path / "empty"), "helpfulness", "reward.helpfulness")
