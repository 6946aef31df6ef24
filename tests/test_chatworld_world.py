"""The generated world: layout, determinism, validity, ratings, baselines, GAtt material, token budget."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import chatworld
from chat.dialog import RATINGS, validate_dialog
from chatworld import constraints, oracle, preferences
from chatworld.__main__ import main as cli_main
from chatworld.evaluation import read_jsonl

JSONL_FILES = (
    "sft/train.jsonl", "sft/test.jsonl", "preferences/helpfulness/train.jsonl", "preferences/helpfulness/test.jsonl",
    "preferences/safety/train.jsonl", "preferences/safety/test.jsonl", "preferences/contrast/train.jsonl",
    "preferences/contrast-plain/train.jsonl", "preferences/safety-contrast/train.jsonl", "prompts/train.jsonl",
    "prompts/test.jsonl",
    "gatt/dialogs.jsonl", "gatt/eval.jsonl",
)  # fmt: skip


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory) -> Path:
    return chatworld.write_world(tmp_path_factory.mktemp("world") / "w", seed=0)


@pytest.fixture(scope="session")
def world(world_dir) -> dict[str, list[dict]]:
    return {name: read_jsonl(world_dir / name) for name in JSONL_FILES}


def test_layout_readme_and_manifest(world_dir, world):
    for name in JSONL_FILES:
        assert world[name], name
    for family in ("figure", "hobby", "style"):
        assert json.loads((world_dir / "gatt/constraints" / f"{family}.json").read_text())["family"] == family
    manifest = json.loads((world_dir / "world.json").read_text())
    assert manifest["sizes"] == {name: len(world[name]) for name in JSONL_FILES}
    readme = (world_dir / "README.md").read_text()
    for needle in ("## Oracle rules", "## Ratings", "significantly_better if gap >= 0.6", "| length only |",
                   "| bag of words |", f"| `sft/train.jsonl` | {len(world['sft/train.jsonl'])} |"):  # fmt: skip
        assert needle in readme, needle


def test_same_seed_same_world_other_seed_other_world():
    a = chatworld.generate_world(seed=3, scale=0.02)
    assert a == chatworld.generate_world(seed=3, scale=0.02)
    b = chatworld.generate_world(seed=4, scale=0.02)
    assert set(a) == set(b)
    assert all(a[name] != b[name] for name in a)


def test_written_files_are_deterministic(tmp_path):
    one = chatworld.write_world(tmp_path / "one", seed=5, scale=0.02)
    two = chatworld.write_world(tmp_path / "two", seed=5, scale=0.02)
    for name in (*JSONL_FILES, "README.md", "world.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_every_record_is_a_valid_dialog(world):
    for name in ("sft/train.jsonl", "sft/test.jsonl", "gatt/dialogs.jsonl"):
        for record in world[name]:
            validate_dialog(record["messages"], ends_with="assistant")
    for name in JSONL_FILES:
        if name.startswith(("preferences", "prompts")):
            for record in world[name]:
                validate_dialog(record["prompt"], ends_with="user")
    for name in ("preferences/helpfulness/test.jsonl", "preferences/safety/train.jsonl"):
        for record in world[name]:
            validate_dialog(record["prompt"] + record["chosen"], ends_with="assistant")
            assert record["chosen"] != record["rejected"]


@pytest.mark.parametrize("objective", ["helpfulness", "safety"])
def test_ratings_follow_the_documented_thresholds(world, objective):
    score = oracle.helpfulness if objective == "helpfulness" else oracle.safety_score
    records = world[f"preferences/{objective}/train.jsonl"] + world[f"preferences/{objective}/test.jsonl"]
    counts = dict.fromkeys(RATINGS, 0)
    for record in records[:1500]:
        meta = record["meta"]
        chosen, rejected = record["chosen"][0]["content"], record["rejected"][0]["content"]
        assert score(record["prompt"], chosen) == meta["chosen_score"]
        assert score(record["prompt"], rejected) == meta["rejected_score"]
        true_gap = meta["chosen_score"] - meta["rejected_score"]
        assert abs(meta["annotator_gap"] - true_gap) <= 2 * preferences.ANNOTATOR_NOISE + 1e-9
        assert preferences.rating_for_gap(meta["annotator_gap"]) == record["rating"]
        counts[record["rating"]] += 1
    assert all(n >= 150 for n in counts.values()), counts
    assert preferences.rating_for_gap(0.6) == "significantly_better"
    assert preferences.rating_for_gap(0.59) == "better"
    assert preferences.rating_for_gap(0.15) == "slightly_better"
    assert preferences.rating_for_gap(0.01) == "negligibly_better"
    assert preferences.rating_for_gap(0.0) is None


@pytest.mark.parametrize("name", ["contrast", "contrast-plain"])
def test_contrast_pairs_differ_only_in_the_claimed_value(world, name):
    records = world[f"preferences/{name}/train.jsonl"]
    alike = 0
    for record in records:
        prompt, meta = record["prompt"], record["meta"]
        chosen, rejected = record["chosen"][0]["content"], record["rejected"][0]["content"]
        assert (
            oracle.task_verdict(prompt, chosen) == "correct"
            and oracle.task_verdict(prompt, rejected) == "wrong"
        )
        assert oracle.style_factor(chosen) == oracle.style_factor(rejected)  # one style on both sides
        assert meta["contrast"] and preferences.rating_for_gap(meta["annotator_gap"]) == record["rating"]
        assert meta["annotator_gap"] == round(meta["chosen_score"] - meta["rejected_score"], 4)  # no noise
        a, b = chosen.split(" "), rejected.split(" ")
        alike += len(a) == len(b) and sum(x != y for x, y in zip(a, b)) <= 2  # e.g. "is red." / "is blue."
    assert alike >= 0.8 * len(records), (alike, len(records))
    if name == "contrast-plain":
        assert all(len(r["prompt"]) == 1 for r in records)  # one user turn, no system message
        assert all(oracle.style_factor(r["chosen"][0]["content"]) == 1.0 for r in records)
    else:
        assert sum(len(r["prompt"]) > 1 for r in records) > 0.3 * len(records)  # the world's contexts
        assert sum(oracle.style_factor(r["chosen"][0]["content"]) < 1 for r in records) > 0.3 * len(records)


def test_safety_pairs_prefer_refusal_for_harmful_and_help_for_benign(world):
    for record in world["preferences/safety/train.jsonl"]:
        if record["rating"] != "significantly_better":
            continue
        chosen, rejected = record["chosen"][0]["content"], record["rejected"][0]["content"]
        if record["meta"]["harmful"]:
            assert oracle.is_refusal(chosen) and not oracle.is_refusal(rejected)
        else:
            assert not oracle.is_refusal(chosen)


def test_safety_contrast_pairs_rank_one_refusal_and_one_advice_by_the_request(world):
    records = world["preferences/safety-contrast/train.jsonl"]
    harmful = 0
    for record in records:
        prompt, meta = record["prompt"], record["meta"]
        chosen, rejected = record["chosen"][0]["content"], record["rejected"][0]["content"]
        assert meta["contrast"] and meta["harmful"] == oracle.is_harmful_request(prompt)
        assert oracle.is_safety_prompt(prompt)  # the twin is a benign look-alike, a safety prompt too
        refusal, advice = (chosen, rejected) if meta["harmful"] else (rejected, chosen)
        assert oracle.is_refusal(refusal) and not oracle.is_refusal(advice)
        assert refusal[0].islower() == advice[0].islower()  # one style: both sloppy or neither
        verdict = oracle.safety(prompt, advice)  # on a harmful request the advice is never safe
        assert not meta["harmful"] or verdict["evasive"] or verdict["unsafe_compliance"]
        assert meta["chosen_score"] > meta["rejected_score"]
        assert preferences.rating_for_gap(meta["annotator_gap"]) == record["rating"]
        harmful += meta["harmful"]
    assert 0.4 * len(records) < harmful < 0.6 * len(records)


def test_baselines_are_well_below_a_reward_model(world_dir):
    readme = (world_dir / "README.md").read_text()
    for name in ("length only", "bag of words"):
        row = re.search(rf"\| {name} \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", readme)
        assert row, name
        significantly, *_, average = (float(x) for x in row.groups())
        assert 40 <= significantly <= 85, (name, significantly)
        assert average <= 75, (name, average)
    ceiling = re.search(
        r"\| oracle scores \(ceiling\) \| ([\d.]+) \| [\d.]+ \| [\d.]+ \| ([\d.]+) \|", readme
    )
    assert float(ceiling.group(1)) == 100.0  # the oracle alone decides significant gaps
    assert 50 <= float(ceiling.group(2)) <= 80  # annotator noise decides near-ties


def test_sft_has_no_multi_turn_system_constraint_adherence(world):
    kinds = set()
    for record in world["sft/train.jsonl"]:
        messages, meta = record["messages"], record["meta"]
        kinds.add(meta["kind"])
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        constraint = oracle.constraint_from_system(system) if system else None
        if constraint:
            assert len(answers) == 1 and oracle.adheres(constraint, answers[0])
        if meta["kind"] == "instruction_in_turn":
            at = meta["at_turn"] - 1
            for i, answer in enumerate(answers):
                assert oracle.adheres(meta["constraint"], answer) == (i == at)
        elif not constraint:
            assert not any(oracle.added_constraint(a) for a in answers)
    assert kinds == {"single", "multi", "instruction_in_turn", "system_constraint"}
    turns = [r["meta"]["turns"] for r in world["sft/train.jsonl"]]
    assert max(turns) == 20 and min(turns) == 1


def test_sft_is_imperfect_by_design(world_dir):
    match = re.search(
        r"([\d.]+)% of answers to non-harmful .*?; ([\d.]+)% of harmful",
        (world_dir / "README.md").read_text(),
        re.S,
    )
    imperfect, complied = float(match.group(1)), float(match.group(2))
    assert 18 <= imperfect <= 32 and 18 <= complied <= 32


def test_prompt_sets_are_tagged(world):
    for name in ("prompts/train.jsonl", "prompts/test.jsonl"):
        kinds = set()
        for record in world[name]:
            kinds.add(record["meta"]["kind"])
            assert record["is_safety"] == (record["meta"]["kind"] != "task")
            assert record["is_safety"] == oracle.is_safety_prompt(record["prompt"])
        assert kinds == {"task", "harmful", "benign"}


def test_gatt_material(world):
    fams = constraints.families()
    evals = world["gatt/eval.jsonl"]
    assert {e["meta"]["short"] for e in evals} == {True, False}
    assert any(e["meta"]["heldout"] for e in evals) and not all(e["meta"]["heldout"] for e in evals)
    for e in evals:
        assert len(e["user_turns"]) == 20
        assert oracle.constraint_from_system(e["system"]) == e["constraint"]
        split = "heldout" if e["meta"]["heldout"] else "train"
        assert all(value in getattr(fams[f], split) for f, value in e["constraint"].items())
        assert all(oracle.parse_request(u) for u in e["user_turns"])
    for record in world["gatt/dialogs.jsonl"]:
        assert record["messages"][0]["role"] == "user"  # unconstrained: no system message
        assert not any(
            oracle.added_constraint(m["content"]) for m in record["messages"] if m["role"] == "assistant"
        )
    assert max(r["meta"]["turns"] for r in world["gatt/dialogs.jsonl"]) == 20
    heldout_values = {v for f in fams.values() for v in f.heldout}
    for record in world["sft/train.jsonl"]:
        assert not set(record["meta"].get("constraint", {}).values()) & heldout_values


def _chat_tokens(sp, messages: list[dict]) -> int:
    """Token count of a dialog in the Llama 2 chat format (CHAT_FORMAT.md), BOS/EOS included."""
    messages = list(messages)
    if messages[0]["role"] == "system":
        system = messages.pop(0)["content"]
        messages[0] = {"role": "user", "content": f"<<SYS>>\n{system}\n<</SYS>>\n\n{messages[0]['content']}"}
    total = 0
    for i in range(0, len(messages), 2):
        user, answer = messages[i]["content"], messages[i + 1]["content"]
        total += 2 + len(sp.encode(f"[INST] {user.strip()} [/INST] {answer.strip()} "))
    return total


def test_twenty_turn_dialogs_fit_1024_tokens_of_the_tiny_tokenizer(world):
    spm = pytest.importorskip("sentencepiece")
    from basemodel import TINY_TOKENIZER_DIR

    sp = spm.SentencePieceProcessor(model_file=str(TINY_TOKENIZER_DIR / "tokenizer.model"))
    longest = max(
        _chat_tokens(sp, r["messages"]) for r in world["sft/train.jsonl"] + world["gatt/dialogs.jsonl"]
    )
    assert longest <= 1024
    # A GAtt evaluation dialog with 20 long answers carrying two marks (constraints combine at most two
    # families) must fit too.
    long_answer = (
        "The capital of Argentina is Buenos Aires. I hope this helps. (I love stamp collecting) - Joan of Arc"
    )
    for e in world["gatt/eval.jsonl"][:20]:
        messages = [{"role": "system", "content": e["system"]}]
        for u in e["user_turns"]:
            messages += [{"role": "user", "content": u}, {"role": "assistant", "content": long_answer}]
        assert _chat_tokens(sp, messages) <= 1024


def test_corpus_text_covers_every_file_and_every_mark():
    lines = list(chatworld.corpus_text(seed=1, scale=0.02))
    world = chatworld.generate_world(seed=1, scale=0.02)
    assert world["sft/train.jsonl"][0]["messages"][-1]["content"] in lines
    assert world["gatt/eval.jsonl"][0]["user_turns"][0] in lines
    assert world["preferences/safety/test.jsonl"][0]["rejected"][0]["content"] in lines
    text = "\n".join(lines)
    for fam in constraints.families().values():
        assert all(mark in text for mark in fam.marks.values())


def test_write_world_refuses_foreign_dir_and_ensure_world_reuses(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a chatworld directory"):
        chatworld.write_world(foreign, scale=0.02)
    assert (foreign / "notes.txt").read_text() == "mine"
    out = chatworld.write_world(tmp_path / "w", seed=2, scale=0.02)
    again = chatworld.write_world(out, seed=2, scale=0.03)  # replacing a world is allowed
    assert json.loads((again / "world.json").read_text())["scale"] == 0.03
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind
    ready = tmp_path / "root" / "world-seed7"
    ready.mkdir(parents=True)
    current = json.dumps({"format_version": chatworld.world.FORMAT_VERSION})
    (ready / "world.json").write_text(current)
    assert chatworld.ensure_world(tmp_path / "root", seed=7) == ready  # present: not regenerated
    assert (ready / "world.json").read_text() == current


def test_ensure_world_rebuilds_a_world_from_an_older_generator(tmp_path, monkeypatch):
    small = chatworld.world.write_world
    monkeypatch.setattr(chatworld.world, "write_world", lambda out, seed: small(out, seed=seed, scale=0.02))
    old = tmp_path / "world-seed3"
    old.mkdir()
    (old / "world.json").write_text(json.dumps({"format_version": chatworld.world.FORMAT_VERSION - 1}))
    assert chatworld.ensure_world(tmp_path, seed=3) == old
    manifest = json.loads((old / "world.json").read_text())
    assert manifest["format_version"] == chatworld.world.FORMAT_VERSION and manifest["seed"] == 3
    assert (old / "sft" / "train.jsonl").is_file()


def test_cli_prints_sizes(tmp_path, capsys):
    cli_main(["--out", str(tmp_path / "cli"), "--seed", "1", "--scale", "0.02"])
    out = capsys.readouterr().out
    assert re.search(r"\s+140\s+sft/train.jsonl", out) and "wrote" in out
    assert (tmp_path / "cli" / "README.md").exists()


def test_committed_tokenizer_covers_the_world_like_a_fresh_training():
    """basemodel/tiny_tokenizer stays fixed across world changes (see basemodel/__init__.py), so it must
    still give every character of the world a piece of its own wherever a fresh training on today's world
    would (the rarest few, "Q", "V" and "X", are spelled in bytes by both), and decode every text back."""
    import sentencepiece as spm

    from basemodel.tokenizer_train import DEFAULT_VOCAB_SIZE, train_tokenizer_bytes

    committed = Path(__file__).resolve().parents[1] / "basemodel" / "tiny_tokenizer" / "tokenizer.model"
    texts = list(chatworld.corpus_text())
    ours = spm.SentencePieceProcessor(model_file=str(committed))
    fresh = spm.SentencePieceProcessor(model_proto=train_tokenizer_bytes(texts, DEFAULT_VOCAB_SIZE))

    def spelled_in_bytes(sp) -> set[str]:
        return {c for c in set("".join(texts)) if any(sp.is_byte(i) for i in sp.encode(c))}

    missing = spelled_in_bytes(ours) - spelled_in_bytes(fresh)
    assert not missing, (
        f"the world now uses characters the tokenizer spells in bytes: {sorted(missing)}; retrain with "
        "python -m basemodel.tokenizer_train --out basemodel/tiny_tokenizer"
    )
    assert any(ours.is_byte(i) for i in ours.encode("\u00e9"))  # unseen characters do fall back
    assert all(ours.decode(ours.encode(t)) == t for t in set(texts))
