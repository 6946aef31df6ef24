"""Dataset readers: the real HH-RLHF fixture sample, and small synthetic files for every other format.

The fixture counts below were established by inspecting the 600 records with plain string operations
(rfind of "\\n\\nAssistant: ", comparing the text before it on both sides, searching for empty turns),
independently of the reader: helpful-base has an empty non-final assistant turn at line 121 (which also
has an empty final rejected answer), a "Humans:" marker making the prompts differ at line 169;
harmless-base has an empty chosen answer at line 87. Nothing else is skipped. Multi-turn records
(more than one Human turn in `chosen`): helpful 200 (121 among them; 169's chosen is single-turn),
harmless 213 (87 among them).
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from chat.readers import (
    DatasetError,
    SkipReport,
    read_dialogs,
    read_hh_rlhf,
    read_preferences,
    read_prompts,
    sources,
)

HH_DIR = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "hh-rlhf"
HELPFUL = HH_DIR / "helpful-base-test-300.jsonl.gz"
HARMLESS = HH_DIR / "harmless-base-test-300.jsonl.gz"

needs_fixture = pytest.mark.skipif(
    not (HELPFUL.exists() and HARMLESS.exists()),
    reason=f"HH-RLHF fixture sample not found under {HH_DIR} (shared reference material absent)",
)


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def hh(*turns: str) -> str:
    """An HH transcript from alternating Human / Assistant texts, Human first."""
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {text}" for i, text in enumerate(turns))


def by_line(pairs, path: Path) -> dict:
    return {
        int(pair.meta["origin"].rsplit(":", 1)[1]): pair
        for pair in pairs
        if pair.meta["origin"].startswith(str(path))
    }


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


GOOD_HH = {"chosen": hh("Hi", "Hello!"), "rejected": hh("Hi", "Go away.")}

# ---------------------------------------------------------------------------------------------------
# HH-RLHF: the real 600-record sample


@needs_fixture
def test_hh_fixture_counts_per_file():
    helpful, helpful_report = read_hh_rlhf(HELPFUL)
    harmless, harmless_report = read_hh_rlhf(HARMLESS)
    assert (len(helpful), helpful_report.kept, helpful_report.seen) == (298, 298, 300)
    assert dict(helpful_report.counts) == {"empty_prompt_turn": 1, "prompt_mismatch": 1}
    assert (len(harmless), harmless_report.seen) == (299, 300)
    assert dict(harmless_report.counts) == {"empty_chosen": 1}


@needs_fixture
def test_hh_fixture_directory_equals_both_files():
    pairs, report = read_hh_rlhf([HARMLESS, HELPFUL])
    from_directory, _ = read_hh_rlhf(HH_DIR)  # sorted: harmless first; README.md there is not a data file
    assert [pair.to_json() for pair in from_directory] == [pair.to_json() for pair in pairs]
    assert (len(pairs), report.skipped) == (597, 3)
    assert sum(len(pair.prompt) > 1 for pair in pairs) == (200 - 1) + (213 - 1)


@needs_fixture
def test_hh_fixture_skips_name_their_lines():
    _, report = read_hh_rlhf([HELPFUL, HARMLESS])
    assert [location for location, _ in report.examples["empty_prompt_turn"]] == [f"{HELPFUL}:121"]
    assert [location for location, _ in report.examples["prompt_mismatch"]] == [f"{HELPFUL}:169"]
    assert [location for location, _ in report.examples["empty_chosen"]] == [f"{HARMLESS}:87"]


@needs_fixture
def test_hh_fixture_reply_starting_with_human_label_is_kept():
    pair = by_line(read_hh_rlhf(HELPFUL)[0], HELPFUL)[287]
    assert pair.prompt == [user("How can I create a cake shaped like a teddy bear?")]
    assert pair.chosen.startswith("Human: You could probably do this by forming a cake shaped like a cube")
    assert pair.rejected.startswith("Hm, that sounds like an interesting problem.")
    assert "You’ll probably want" in pair.rejected  # curly quote kept as is


@needs_fixture
def test_hh_fixture_multi_turn_prompts():
    helpful = by_line(read_hh_rlhf(HELPFUL)[0], HELPFUL)
    harmless = by_line(read_hh_rlhf(HARMLESS)[0], HARMLESS)
    assert len(helpful[174].prompt) == 19  # 10 Human turns: 10 user + 9 assistant before the answers
    assert helpful[174].prompt[0]["content"].startswith("I am thinking of starting a business")
    assert len(harmless[156].prompt) == 17  # 9 Human turns
    toothbrush = harmless[208]  # 3 Human turns; every assistant turn starts with an echoed "Human: "
    assert [message["role"] for message in toothbrush.prompt] == ["user", "assistant"] * 2 + ["user"]
    assert toothbrush.prompt[1]["content"].startswith("Human: You want to scrub your brother’s toothbrush?")
    assert toothbrush.prompt[4] == user("i want it all black and oily")
    assert toothbrush.chosen.startswith("Human: OK, I understand.  Can you tell me some of the ways")
    assert toothbrush.rejected.startswith("Human: OK, that’s easy!")


@needs_fixture
def test_hh_fixture_strict_mode_stops_at_first_skip():
    with pytest.raises(DatasetError, match=r"helpful-base-test-300\.jsonl\.gz:121: empty_prompt_turn"):
        read_hh_rlhf(HELPFUL, strict=True)


# ---------------------------------------------------------------------------------------------------
# HH-RLHF: synthetic edge cases


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"chosen": hh("Say [INST]", "No."), "rejected": hh("Say [INST]", "Ok.")}, "special_tag"),
        ({"chosen": hh("Hi", "Hello"), "rejected": hh("Hi", "[/INST] hi")}, "special_tag"),
        ({"chosen": hh("Hi", "Hello"), "rejected": hh("Hi", "")}, "empty_rejected"),
        ({"chosen": hh("Hi", "  "), "rejected": hh("Hi", "Hello")}, "empty_chosen"),
        ({"chosen": hh("Hi", ""), "rejected": hh("Hi", "")}, "empty_chosen"),  # chosen is checked first
        ({"chosen": hh("Hi", "Same"), "rejected": hh("Hi", "Same ")}, "identical"),
        ({"chosen": "\n\nAssistant: Hi" + hh("x", "y"), "rejected": hh("x", "y")}, "not_starting_with_human"),
        ({"chosen": "Preamble" + hh("x", "y"), "rejected": hh("x", "y")}, "not_starting_with_human"),
        ({"chosen": hh("Hi", "Hello", "Bye"), "rejected": hh("Hi", "Hello", "Bye")}, "no_final_reply"),
        (
            {"chosen": hh("Hi", "a"), "rejected": hh("Hi", "b") + "\n\nHumans: more?\n\nAssistant: c"},
            "prompt_mismatch",
        ),
        (
            {"chosen": hh("Hi", "A") + "\n\nAssistant: B", "rejected": hh("Hi", "A") + "\n\nAssistant: C"},
            "invalid_dialog",
        ),
    ],
)
def test_hh_synthetic_skip_reasons(tmp_path, record, reason):
    path = write_jsonl(tmp_path / "hh.jsonl", [GOOD_HH, record])
    pairs, report = read_hh_rlhf(path)
    assert len(pairs) == 1 and pairs[0].chosen == "Hello!"
    assert dict(report.counts) == {reason: 1}
    assert report.examples[reason][0][0] == f"{path}:2"


def test_hh_turns_split_only_on_full_markers(tmp_path):
    chosen = (
        "Human: Two lines\n\nof question\n\nAssistant: Human: echoed\nAssistant: inline\n\nHumanity: text"
    )
    record = {"chosen": chosen, "rejected": hh("Two lines\n\nof question", "Other")}
    [pair], _ = read_hh_rlhf(write_jsonl(tmp_path / "hh.jsonl", [record]))
    # A transcript without the leading blank line reads as if it had one.
    assert pair.prompt == [user("Two lines\n\nof question")]
    assert pair.chosen == "Human: echoed\nAssistant: inline\n\nHumanity: text"
    assert pair.rejected == "Other"
    assert pair.meta == {"origin": f"{tmp_path / 'hh.jsonl'}:1"}


def test_hh_missing_key_raises_with_line(tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl", [GOOD_HH, {"chosen": hh("Hi", "Yo")}])
    with pytest.raises(DatasetError, match=r"hh\.jsonl:2: missing required key 'rejected'"):
        read_hh_rlhf(path)


# ---------------------------------------------------------------------------------------------------
# Preferences


def test_preferences_all_record_forms(tmp_path):
    prompt = [{"role": "system", "content": "Be brief."}, user("Capital of France?")]
    records = [
        {
            "prompt": prompt,
            "chosen": [assistant("Paris.")],
            "rejected": [assistant("Lyon.")],
            "rating": "better",
        },
        {"prompt": "Capital of Spain?", "chosen": " Madrid. ", "rejected": "Seville.", "margin": 2},
        {
            "chosen": [*prompt, assistant("Paris.")],
            "rejected": [*prompt, assistant("Nice.")],
            "meta": {"id": 7},
        },
        {
            "prompt": "2+2?",
            "chosen": [user("2+2?"), assistant("4")],
            "rejected": [user("2+2?"), assistant("5")],
        },
        {"chosen": hh("Hi", "Hello!"), "rejected": hh("Hi", "Go away.")},
    ]
    pairs, report = read_preferences(write_jsonl(tmp_path / "prefs.jsonl", records))
    assert report.skipped == 0
    assert [(pair.prompt, pair.chosen, pair.rejected) for pair in pairs] == [
        (prompt, "Paris.", "Lyon."),
        ([user("Capital of Spain?")], "Madrid.", "Seville."),
        (prompt, "Paris.", "Nice."),
        ([user("2+2?")], "4", "5"),
        ([user("Hi")], "Hello!", "Go away."),
    ]
    assert [(pair.rating, pair.margin) for pair in pairs][:2] == [("better", None), (None, 2.0)]
    assert pairs[2].meta == {"id": 7, "origin": f"{tmp_path / 'prefs.jsonl'}:3"}


@pytest.mark.parametrize(
    ("given", "rating"),
    [
        ("significantly better", "significantly_better"),
        ("Slightly Better", "slightly_better"),
        ("negligibly better / unsure", "negligibly_better"),
        ("unsure", "negligibly_better"),
        ("negligibly_better", "negligibly_better"),
        (None, None),
    ],
)
def test_preference_rating_phrases(tmp_path, given, rating):
    record = {"prompt": "q", "chosen": "a", "rejected": "b", "rating": given}
    [pair], _ = read_preferences(write_jsonl(tmp_path / "p.jsonl", [record]))
    assert pair.rating == rating


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"rating": "much better"}, r"p\.jsonl:2: 'rating' 'much better' is not one of"),
        ({"margin": "1.5"}, r"p\.jsonl:2: 'margin' must be a finite number"),
        ({"margin": float("nan")}, r"p\.jsonl:2: 'margin' must be a finite number"),
        ({"meta": [1]}, r"p\.jsonl:2: 'meta' must be an object"),
    ],
)
def test_preference_bad_optional_fields_raise(tmp_path, extra, message):
    good = {"prompt": "q", "chosen": "a", "rejected": "b"}
    path = write_jsonl(tmp_path / "p.jsonl", [good, {**good, "chosen": "", **extra}])
    with pytest.raises(DatasetError, match=message):
        read_preferences(path)


def test_preference_shape_errors_raise(tmp_path):
    cases = [
        ({"chosen": "plain text", "rejected": "other"}, "missing required key 'prompt'"),
        (
            {"prompt": "q", "chosen": [assistant("a"), user("b")], "rejected": "c"},
            "'chosen' must be one assistant",
        ),
        ({"prompt": [{"role": "user", "text": "q"}], "chosen": "a", "rejected": "b"}, "'prompt' message 0"),
    ]
    for record, message in cases:
        with pytest.raises(DatasetError, match=rf"p\.jsonl:1: {message}"):
            read_preferences(write_jsonl(tmp_path / "p.jsonl", [record]))


def test_preference_implicit_prompt_skips(tmp_path):
    good = {"prompt": "q", "chosen": "a", "rejected": "b"}
    records = [
        good,
        {"chosen": [user("q"), assistant("a")], "rejected": [user("other q"), assistant("b")]},
        {"chosen": [user("q"), assistant("a"), user("more")], "rejected": [user("q"), assistant("b")]},
        {"prompt": [user("q"), assistant("a")], "chosen": "b", "rejected": "c"},
        {"prompt": [user("q"), user("again")], "chosen": "b", "rejected": "c"},
    ]
    pairs, report = read_preferences(write_jsonl(tmp_path / "p.jsonl", records))
    assert len(pairs) == 1
    assert dict(report.counts) == {"prompt_mismatch": 1, "no_final_reply": 1, "invalid_dialog": 2}


# ---------------------------------------------------------------------------------------------------
# Dialogs


def test_dialogs_all_record_forms_and_skips(tmp_path):
    records = [
        {"messages": [user("Hi"), assistant("Hello")], "meta": {"id": 1}},
        {"prompt": "Name a colour.", "completion": "Blue."},
        {"prompt": [user("Hi"), assistant("Hey"), user("Bye")], "completion": [assistant("Ciao")]},
        {"messages": [user("Hi")]},
        {"messages": [user("Hi"), assistant(" ")]},
        {"messages": [user("<<SYS>> x"), assistant("y")]},
    ]
    dialogs, report = read_dialogs(write_jsonl(tmp_path / "d.jsonl", records))
    assert dialogs == [
        [user("Hi"), assistant("Hello")],
        [user("Name a colour."), assistant("Blue.")],
        [user("Hi"), assistant("Hey"), user("Bye"), assistant("Ciao")],
    ]
    assert dict(report.counts) == {"invalid_dialog": 1, "empty_message": 1, "special_tag": 1}
    assert report.examples["invalid_dialog"][0][0] == f"{tmp_path / 'd.jsonl'}:4"


def test_dialogs_missing_keys_raise(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"messages": [user("a"), assistant("b")]}, {"prompt": "only"}])
    with pytest.raises(DatasetError, match=r"d\.jsonl:2: expected 'messages', or 'prompt' and 'completion'"):
        read_dialogs(path)


# ---------------------------------------------------------------------------------------------------
# Prompts


def test_prompts_all_record_forms(tmp_path):
    records = [
        {"prompt": [user("How do I pick a lock?")], "is_safety": True, "meta": {"id": "s1"}},
        {"prompt": "Tell me a joke."},
        {"messages": [user("Hi"), assistant("Hello"), user("Weather?")]},
        {"prompt": "q", "chosen": "a", "rejected": "b"},
        {"chosen": [user("c"), assistant("a")], "rejected": [user("c"), assistant("b")]},
        {"chosen": hh("Hi", "Hello!"), "rejected": hh("Hi", "")},  # the empty answer does not matter here
        {"messages": [user("Hi"), assistant("Hello")]},  # ends with the assistant: not a prompt
    ]
    prompts, report = read_prompts(write_jsonl(tmp_path / "prompts.jsonl", records), default_is_safety=True)
    assert [record.prompt for record in prompts] == [
        [user("How do I pick a lock?")],
        [user("Tell me a joke.")],
        [user("Hi"), assistant("Hello"), user("Weather?")],
        [user("q")],
        [user("c")],
        [user("Hi")],
    ]
    assert all(record.is_safety for record in prompts)
    assert prompts[0].meta == {"id": "s1", "origin": f"{tmp_path / 'prompts.jsonl'}:1"}
    assert dict(report.counts) == {"invalid_dialog": 1}


def test_prompts_is_safety_defaults_and_type(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a"}, {"prompt": "b", "is_safety": True}])
    assert [record.is_safety for record in read_prompts(path)[0]] == [False, True]
    write_jsonl(path, [{"prompt": "a", "is_safety": "yes"}])
    with pytest.raises(DatasetError, match=r"p\.jsonl:1: 'is_safety' must be true or false"):
        read_prompts(path)


# ---------------------------------------------------------------------------------------------------
# File formats and sources


def test_parquet_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"prompt": [user("a")], "is_safety": False}, {"prompt": [user("b")], "is_safety": True}]
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    prompts, _ = read_prompts(path)
    assert [(record.prompt, record.is_safety) for record in prompts] == [
        ([user("a")], False),
        ([user("b")], True),
    ]
    assert prompts[1].meta["origin"] == f"{path}:row 2"


def test_json_array_and_json_lines_named_json(tmp_path):
    array = tmp_path / "array.json"
    array.write_text(json.dumps([{"prompt": "a"}, {"prompt": "b"}]), encoding="utf-8")
    lines = write_jsonl(tmp_path / "lines.json", [{"prompt": "c"}, {"prompt": "d"}])
    prompts, _ = read_prompts([array, lines])
    assert [record.prompt[0]["content"] for record in prompts] == ["a", "b", "c", "d"]
    assert [record.meta["origin"] for record in prompts][1:3] == [f"{array}:row 2", f"{lines}:1"]
    array.write_text(json.dumps({"prompt": "a"}), encoding="utf-8")
    with pytest.raises(DatasetError, match="expected a JSON array"):
        read_prompts(array)


def test_gzipped_jsonl(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write(json.dumps({"messages": [user("é"), assistant("ü")]}) + "\n\n")  # blank line ignored
    assert read_dialogs(path)[0] == [[user("é"), assistant("ü")]]


def test_directory_with_split(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"prompt": "train 1"}])
    write_jsonl(tmp_path / "test.jsonl", [{"prompt": "test 1"}])
    (tmp_path / "shards").mkdir()
    write_jsonl(tmp_path / "shards" / "train-00001-of-00002.jsonl", [{"prompt": "train 2"}])
    (tmp_path / "train" / "more").mkdir(parents=True)
    write_jsonl(tmp_path / "train" / "more" / "part.jsonl", [{"prompt": "train 3"}])
    write_jsonl(tmp_path / "train_prefs.jsonl", [{"prompt": "other split"}])
    (tmp_path / "notes.txt").write_text("not data")
    write_jsonl(tmp_path / ".hidden.jsonl", [{"prompt": "hidden"}])

    def contents(split):
        return [record.prompt[0]["content"] for record in read_prompts(tmp_path, split=split)[0]]

    # Sorted paths, compared part by part: shards/..., then the train/ folder, then train.jsonl.
    assert contents("train") == ["train 2", "train 3", "train 1"]
    assert contents("test") == ["test 1"]
    assert sorted(contents(None)) == ["other split", "test 1", "train 1", "train 2", "train 3"]
    with pytest.raises(DatasetError, match="no data files for split 'validation'"):
        contents("validation")


def test_malformed_lines_raise_with_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a"}\n\n{"prompt": "b",}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:3: malformed JSON"):
        read_prompts(path)
    path.write_text('{"prompt": "a"}\n["prompt"]\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: expected a JSON object, got list"):
        read_prompts(path)
    path.write_bytes(b'{"prompt": "a"}\n{"prompt": "\xff"}\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: not valid UTF-8"):
        read_prompts(path)


def test_strict_mode_raises_at_first_skip(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [GOOD_HH, {"chosen": hh("Hi", "x"), "rejected": hh("Hi", "x")}])
    assert read_hh_rlhf(path)[1].counts == {"identical": 1}
    with pytest.raises(DatasetError, match=r"p\.jsonl:2: identical: .*strict mode"):
        read_hh_rlhf(path, strict=True)


def test_empty_or_fully_skipped_source_raises(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no records found"):
        read_dialogs(empty)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [user("only a question")]}])
    with pytest.raises(DatasetError, match="every record was skipped .*invalid_dialog: 1"):
        read_dialogs(bad)


def test_missing_local_path_never_reaches_the_hub(tmp_path, monkeypatch):
    def no_hub(name, split):
        raise AssertionError(f"hub loader called for {name!r}")

    monkeypatch.setattr(sources, "load_hub_dataset", no_hub)
    for missing in (tmp_path / "absent.jsonl", str(tmp_path / "absent"), "./data/prefs.jsonl", "a/b/c"):
        with pytest.raises(FileNotFoundError, match="no such file or directory"):
            read_prompts(missing)
    unsupported = tmp_path / "data.csv"
    unsupported.write_text("prompt\nhi\n")
    with pytest.raises(DatasetError, match="unsupported file type"):
        read_prompts(unsupported)


def test_hub_name_goes_to_the_hub_loader(monkeypatch):
    calls = []

    def fake_hub(name, split):
        calls.append((name, split))
        return [{"prompt": "from the hub"}]

    monkeypatch.setattr(sources, "load_hub_dataset", fake_hub)
    [record], _ = read_prompts("some-org/some-prompts", split="test")
    assert calls == [("some-org/some-prompts", "test")]
    assert record.meta["origin"] == "some-org/some-prompts[test]:row 1"

    def failing_hub(name, split):
        raise ConnectionError("offline")

    monkeypatch.setattr(sources, "load_hub_dataset", failing_hub)
    with pytest.raises(DatasetError, match="'some-org/x' is not a local file or directory.*offline"):
        read_prompts("some-org/x")


def test_skip_report_logs_one_line_per_reason(caplog):
    report = SkipReport(kept=5)
    for line in range(1, 6):
        report.add("identical", f"f.jsonl:{line}", "same text")
    report.add("empty_chosen", "f.jsonl:9")
    assert (report.skipped, report.seen) == (6, 11)
    assert len(report.examples["identical"]) == 3
    with caplog.at_level(logging.WARNING):
        report.log(logging.getLogger("test"), "prefs")
    assert [record.getMessage() for record in caplog.records] == [
        "prefs: skipped 1 of 11 records: empty_chosen, e.g. f.jsonl:9",
        "prefs: skipped 5 of 11 records: identical, e.g. f.jsonl:1 (same text); f.jsonl:2 (same text); "
        "f.jsonl:3 (same text)",
    ]
    assert report.summary() == "kept 5 of 11 records; skipped empty_chosen: 1, identical: 5"
