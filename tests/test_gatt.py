"""Ghost Attention's data logic on hand-built dialogs: instructions, cut points, labels, sampling, attention."""

import json
import random
from types import SimpleNamespace

import pytest
import torch

import basemodel
from chat.format import IGNORE_INDEX, ChatEncoder
from chatworld import oracle
from chatworld.constraints import DATA_DIR, ConstraintError
from gatt.attention import attention_to_span, binned, system_span, turn_peaks
from gatt.dataset import gatt_rows, read_training_rows, replay_rows, write_rows
from gatt.instructions import attach_instruction, instruction_text, load_constraint_lists, sample_constraint
from gatt.sampling import pick_answer, plan_dialogs, sample_chunk, sample_dialogs
from gatt.synthesis import check_row, choose_cuts, replay_count, sampling_prompt, training_dialog, user_turns
from generation import Completion, SamplingParams

USERS = ["What is the capital of France?", "Spell cat.", "Name a fruit."]
ANSWERS = ["Paris. - Napoleon", "c a t - Napoleon", "A plum. - Napoleon"]
INST = "Figure: Napoleon"


@pytest.fixture(scope="module")
def encoder():
    return ChatEncoder.from_path(basemodel.TINY_TOKENIZER_DIR)


@pytest.fixture(scope="module")
def families():
    return load_constraint_lists(DATA_DIR, ["style", "hobby", "figure"])


# --- instructions -------------------------------------------------------------------------------------


def test_instruction_texts_are_the_worlds_wording_and_parse_back(families):
    rng = random.Random(0)
    assert instruction_text({"figure": "Napoleon"}, families, True, rng) == "Figure: Napoleon"
    full = instruction_text({"figure": "Napoleon"}, families, False, rng)
    assert full in ("Always act as Napoleon.", "Act as Napoleon from now on.")
    both = instruction_text({"hobby": "tennis", "figure": "Napoleon"}, families, True, rng)
    assert both == "Hobby: tennis. Figure: Napoleon"
    # The world's own parser (independent of gatt) reads the constraint back from every form.
    assert oracle.constraint_from_system(full) == {"figure": "Napoleon"}
    assert oracle.constraint_from_system(both) == {"hobby": "tennis", "figure": "Napoleon"}


def test_attach_instruction_adds_a_full_stop_only_where_missing():
    assert attach_instruction("Figure: Napoleon", "Hi?") == "Figure: Napoleon. Hi?"
    assert attach_instruction("Always act as Napoleon.", "Hi?") == "Always act as Napoleon. Hi?"


def test_sample_constraint_combines_on_request_and_uses_training_values_only(families):
    rng = random.Random(1)
    singles = [sample_constraint(rng, families, 0.0) for _ in range(50)]
    doubles = [sample_constraint(rng, families, 1.0) for _ in range(50)]
    assert all(len(c) == 1 for c in singles) and all(len(c) == 2 for c in doubles)
    for constraint in singles + doubles:
        for name, value in constraint.items():
            assert value in families[name].train and value not in families[name].heldout
    assert {next(iter(c)) for c in singles} == {"style", "hobby", "figure"}


def test_a_missing_constraint_list_is_named(tmp_path):
    with pytest.raises(ConstraintError, match=str(tmp_path / "hobby.json")):
        load_constraint_lists(tmp_path, ["hobby"])


def test_plans_are_fixed_per_dialog_index(families):
    cfg = SimpleNamespace(combine_p=0.2, short_p=0.5, max_turns=2)
    sources = [USERS, USERS[:1], USERS[1:]]
    plans = plan_dialogs(sources, families, cfg, seed=3)
    assert [p["users"] for p in plans] == [USERS[:2], USERS[:1], USERS[1:3]]
    assert plan_dialogs(sources[:1], families, cfg, seed=3)[0] == plans[0]  # fewer dialogs: same plan
    assert len({p["key"] for p in plans}) == 3
    for plan in plans:
        assert oracle.constraint_from_system(plan["instruction"]) == plan["constraint"]


# --- dialog transforms and labels ---------------------------------------------------------------------


def test_sampling_prompt_carries_the_instruction_in_every_user_turn():
    prompt = sampling_prompt(INST, USERS, ANSWERS[:2])
    assert [m["role"] for m in prompt] == ["user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in prompt[::2]] == [f"{INST}. {u}" for u in USERS]
    assert [m["content"] for m in prompt[1::2]] == ANSWERS[:2]
    with pytest.raises(ValueError, match="3 answers"):
        sampling_prompt(INST, USERS, ANSWERS)


def test_training_dialog_moves_the_instruction_to_the_system_message():
    dialog = training_dialog(INST, USERS, ANSWERS, cut=2)
    assert dialog == [
        {"role": "system", "content": INST},
        {"role": "user", "content": USERS[0]},
        {"role": "assistant", "content": ANSWERS[0]},
        {"role": "user", "content": USERS[1]},
        {"role": "assistant", "content": ANSWERS[1]},
    ]
    for bad in (0, 4):
        with pytest.raises(ValueError, match=f"cut {bad}"):
            training_dialog(INST, USERS, ANSWERS, cut=bad)


def test_only_the_last_answer_carries_loss(encoder, families):
    records = [
        {
            "key": "k",
            "source": 7,
            "instruction": INST,
            "constraint": {"figure": "Napoleon"},
            "short": True,
            "users": USERS,
            "answers": ANSWERS,
            "keep": [True, True, True],
            "stopped_at": None,
        }
    ]
    rows, stats = gatt_rows(encoder, records, cut_points=16, seed=0, max_length=4096)
    assert [r["meta"]["cut"] for r in rows] == [1, 2, 3]
    assert stats["gatt_rows"] == 3 and stats["dropped_turns"] == 0
    for row in rows:
        cut = row["meta"]["cut"]
        earlier = encoder.encode_for_training(row["messages"][:-2])["input_ids"] if cut > 1 else []
        assert row["input_ids"][: len(earlier)] == earlier
        assert set(row["labels"][: len(earlier)]) <= {IGNORE_INDEX}  # earlier turns, answers included
        trained = [t for t in row["labels"] if t != IGNORE_INDEX]
        assert trained[-1] == encoder.eos_id
        assert encoder.decode(trained[:-1]).strip() == ANSWERS[cut - 1]
        assert row["messages"][0] == {"role": "system", "content": INST}
        assert all(INST not in m["content"] for m in row["messages"][1:])


def test_untrainable_turns_are_never_cut_points_and_long_rows_are_skipped(encoder):
    record = {
        "key": "k",
        "source": 0,
        "instruction": INST,
        "constraint": {"figure": "Napoleon"},
        "short": True,
        "users": USERS,
        "answers": ANSWERS,
        "keep": [True, False, True],
        "stopped_at": None,
    }
    rows, stats = gatt_rows(encoder, [record], cut_points=16, seed=0, max_length=4096)
    assert [r["meta"]["cut"] for r in rows] == [1, 3] and stats["dropped_turns"] == 1
    shortest = len(rows[0]["input_ids"])
    rows, stats = gatt_rows(encoder, [record], cut_points=16, seed=0, max_length=shortest)
    assert [r["meta"]["cut"] for r in rows] == [1] and stats["skipped_too_long"] == 1


def test_choose_cuts_keeps_the_last_trainable_turn():
    trainable = [True] * 20
    for seed in range(20):
        cuts = choose_cuts(trainable, 5, random.Random(seed))
        assert len(cuts) == 5 and len(set(cuts)) == 5 and cuts == sorted(cuts) and cuts[-1] == 20
    assert choose_cuts([True, False, True, False], 16, random.Random(0)) == [1, 3]
    assert choose_cuts([False, False], 4, random.Random(0)) == []


def test_replay_rows_train_every_answer_and_make_up_the_share(encoder):
    assert replay_count(75, 0.25) == 25 and replay_count(10, 0.0) == 0
    with pytest.raises(ValueError, match="replay_share"):
        replay_count(10, 1.0)
    base = [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": f"Hello {i}"}] for i in range(5)
    ]
    rows = replay_rows(encoder, base, 3, seed=0, max_length=4096)
    assert len(rows) == 3 and all(r["meta"]["replay"] for r in rows)
    assert {r["meta"]["base_index"] for r in rows} <= set(range(5))
    expected = encoder.encode_for_training(base[rows[0]["meta"]["base_index"]], loss_on="all")
    assert rows[0]["labels"] == expected["labels"]


def test_user_turns_drop_answers_and_system_messages():
    dialog = [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "a"}]
    assert user_turns(dialog + [{"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]) == [
        "a",
        "c",
    ]


def test_bad_dataset_rows_name_the_line(tmp_path):
    good = {"input_ids": [1, 2, 3], "labels": [IGNORE_INDEX, 2, 3], "meta": {"replay": True}}
    path = tmp_path / "train.jsonl"
    write_rows(path, [good, good])
    rows, stats = read_training_rows(path)
    assert (
        rows == [{"input_ids": [1, 2, 3], "labels": [IGNORE_INDEX, 2, 3]}] * 2 and stats["replay_rows"] == 2
    )
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "labels": [1, 2]}) + "\n")
    with pytest.raises(ValueError, match=r"train.jsonl:2: 3 input_ids but 2 labels"):
        read_training_rows(path)
    with pytest.raises(ValueError, match="nothing to train"):
        check_row({"input_ids": [1], "labels": [IGNORE_INDEX]}, "x")


# --- sampling -----------------------------------------------------------------------------------------


def done(text: str, finished: bool = True) -> Completion:
    return Completion(text, [], finished)


def test_pick_answer_drops_rejected_samples_before_the_reward_model_picks():
    napoleon = {"figure": "Napoleon"}
    samples = [done("x - Lincoln"), done("y - Napoleon"), done("z - Napoleon", finished=False)]
    assert pick_answer(samples, [3.0, 1.0, 5.0], napoleon, oracle.adheres) == ("y - Napoleon", 1.0, True)
    # None accepted: the RM's best usable sample carries the dialog on, untrained.
    assert pick_answer(samples[:1], [3.0], napoleon, oracle.adheres) == ("x - Lincoln", 3.0, False)
    assert pick_answer([samples[2]], [5.0], napoleon, oracle.adheres) is None
    assert pick_answer([samples[2]], [5.0], napoleon, oracle.adheres, require_finished=False)[2] is True
    assert pick_answer([done("  ")], [9.0], napoleon, lambda c, a: True) is None


class ScriptedGenerator:
    """Answers "t<turn>s<sample>" for every prompt and records what it was asked."""

    def __init__(self, encoder, finished: bool = True):
        self.encoder, self.calls, self.finished = encoder, [], finished

    def generate(self, dialogs, params):
        self.calls.append(dialogs)
        turn = (len(dialogs[0]) + 1) // 2
        return [[done(f"t{turn}s{k}", self.finished) for k in range(params.num_samples)] for _ in dialogs]


class ScoreBySample:
    """Scores sample s of every answer "t<turn>s<s>" by `order[s]`."""

    def __init__(self, order):
        self.order = order

    def score(self, prompts, is_safety, answers):
        return {"reward": [self.order[int(a.split("s")[1])] for a in answers]}


def test_sample_chunk_builds_each_turn_on_the_picked_answers(encoder, families):
    cfg = SimpleNamespace(combine_p=0.0, short_p=1.0, max_turns=None)
    plans = plan_dialogs([USERS, USERS[:2]], families, cfg, seed=0)
    generator = ScriptedGenerator(encoder)
    params = SamplingParams(max_new_tokens=4, temperature=0.3, num_samples=3)
    records = sample_chunk(
        generator, ScoreBySample([0.0, 2.0, 1.0]), plans, params, lambda c, a: True, 10_000
    )
    assert [len(call) for call in generator.calls] == [2, 2, 1]  # the 2-turn dialog leaves after turn 2
    assert records[0]["answers"] == ["t1s1", "t2s1", "t3s1"] and records[1]["answers"] == ["t1s1", "t2s1"]
    assert records[0]["reward"] == [2.0, 2.0, 2.0] and records[0]["keep"] == [True] * 3
    last_prompt = generator.calls[2][0]
    assert last_prompt == sampling_prompt(plans[0]["instruction"], USERS, ["t1s1", "t2s1"])
    # A prompt that would not fit the model's positions stops its dialog (and names the turn).
    short = sample_chunk(
        ScriptedGenerator(encoder), ScoreBySample([0, 1, 2]), plans, params, lambda c, a: True, 40
    )
    assert all(r["stopped_at"] is not None and len(r["answers"]) == r["stopped_at"] - 1 for r in short)


def test_sample_dialogs_writes_as_it_goes_and_a_restart_skips_done_dialogs(tmp_path, encoder, families):
    cfg = SimpleNamespace(combine_p=0.0, short_p=1.0, max_turns=None)
    plans = plan_dialogs([USERS, USERS[:1], USERS[:2]], families, cfg, seed=0)
    params = SamplingParams(max_new_tokens=4, temperature=0.3, num_samples=2)
    path = tmp_path / "samples.jsonl"
    first, _ = sample_dialogs(
        ScriptedGenerator(encoder),
        ScoreBySample([1, 0]),
        plans[:2],
        params,
        lambda c, a: True,
        path,
        1,
        10_000,
    )
    assert len(path.read_text().splitlines()) == 2
    generator = ScriptedGenerator(encoder)
    records, throughput = sample_dialogs(
        generator,
        ScoreBySample([1, 0]),
        plans,
        params,
        lambda c, a: True,
        path,
        1,
        10_000,
        show_progress=False,
    )
    assert [len(call) for call in generator.calls] == [1, 1]  # only the third dialog, 2 turns
    assert records[:2] == first and records[2]["answers"] == ["t1s0", "t2s0"]
    assert throughput["turns_sampled"] == 2


def test_unfinished_answers_stop_a_dialog_unless_allowed(tmp_path, encoder, families):
    cfg = SimpleNamespace(combine_p=0.0, short_p=1.0, max_turns=None)
    plans = plan_dialogs([USERS[:2]], families, cfg, seed=0)
    params = SamplingParams(max_new_tokens=4, temperature=0.3, num_samples=2)
    args = (ScoreBySample([1, 0]), plans, params, lambda c, a: True)
    cut_off = ScriptedGenerator(encoder, finished=False)
    strict, _ = sample_dialogs(cut_off, *args, tmp_path / "a.jsonl", 1, 10_000, show_progress=False)
    assert strict[0]["answers"] == [] and strict[0]["stopped_at"] == 1
    lenient, _ = sample_dialogs(cut_off, *args, tmp_path / "b.jsonl", 1, 10_000, False, show_progress=False)
    assert lenient[0]["answers"] == ["t1s0", "t2s0"] and lenient[0]["stopped_at"] is None


# --- attention ----------------------------------------------------------------------------------------


def test_system_span_covers_the_system_text(encoder):
    messages = [
        {"role": "system", "content": "Figure: Napoleon"},
        *training_dialog(INST, USERS, ANSWERS, 2)[1:],
    ]
    ids, start, end = system_span(encoder, messages)
    assert ids == encoder.encode_for_training(messages)["input_ids"]
    assert "Figure: Napoleon" in encoder.decode(ids[start:end])
    assert USERS[0] not in encoder.decode(ids[start:end])


class FixedAttention(torch.nn.Module):
    """Returns the given per-layer attention weights whatever the input."""

    def __init__(self, layers):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.layers = layers

    def forward(self, input_ids, output_attentions=False):
        return SimpleNamespace(attentions=self.layers)


def test_attention_to_span_takes_the_max_over_heads_and_span_tokens():
    # 1 layer, 2 heads, 4 tokens: the span is tokens 1..2, later token 3 only.
    layer = torch.zeros(1, 2, 4, 4)
    layer[0, 0, 3] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    layer[0, 1, 3] = torch.tensor([0.5, 0.1, 0.6, 0.0])
    assert attention_to_span(FixedAttention((layer,)), [1, 2, 3, 4], 1, 3).tolist() == [[pytest.approx(0.6)]]
    with pytest.raises(RuntimeError, match="eager"):
        attention_to_span(FixedAttention((None,)), [1, 2, 3, 4], 1, 3)


def test_turn_peaks_take_each_later_turns_strongest_look_back():
    # 2 layers, map columns are positions 10..16; turn 1 ends at 12, turn 2 at 15, turn 3 runs to the end.
    per_token = torch.tensor([[0.9, 0.1, 0.2, 0.0, 0.3, 0.1, 0.0], [0.0, 0.1, 0.1, 0.6, 0.2, 0.0, 0.4]])
    assert turn_peaks(per_token, 10, [12, 15]) == pytest.approx([0.6, 0.4])
    assert turn_peaks(per_token, 10, []) == []  # one turn: nothing after the first


def test_binned_keeps_the_maximum_of_neighbours():
    assert binned(torch.tensor([[1.0, 5.0, 2.0, 0.0, 3.0]]), 2).tolist() == [[5.0, 2.0, 3.0]]


# --- evaluation helpers -------------------------------------------------------------------------------


def test_transcript_feeds_the_models_own_answers_back_and_fits_whole_turns(encoder):
    from gatt.evaluate import fit_transcript, transcript

    seen = []

    def generate(dialogs):
        seen.append([dict(m) for m in dialogs[0]])
        return [f"answer {len(seen)}"]

    eval_dialog = {"system": INST, "user_turns": USERS}
    messages = transcript(generate, eval_dialog, turns=2)
    assert messages == training_dialog(INST, USERS, ["answer 1", "answer 2"], 2)
    assert seen[1] == messages[:4]  # turn 2 was asked with turn 1's own answer in context
    one_turn = len(encoder.encode_for_training(messages[:3])["input_ids"])
    assert fit_transcript(encoder, messages, one_turn) == messages[:3]
    assert fit_transcript(encoder, messages, 10_000) == messages


def test_empty_answers_are_fed_back_as_a_counted_stand_in(monkeypatch):
    import gatt.evaluate as evaluate

    monkeypatch.setattr(evaluate, "generate_answers", lambda *args, **kwargs: ["", "ok - Napoleon"])
    cfg = SimpleNamespace(eval=SimpleNamespace(max_new_tokens=4, batch_size=2))
    empty = [0]
    answers = evaluate.greedy(None, None, cfg, empty)([[], []])
    assert answers == [evaluate.EMPTY_ANSWER, "ok - Napoleon"] and empty == [1]
    assert not oracle.adheres({"figure": "Napoleon"}, evaluate.EMPTY_ANSWER)
