"""`python -m chat.render` run as a subprocess with the Llama 2 tokenizer fixture."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sentencepiece as spm

from tests.test_chat_format import DIALOGS, LLAMA2_DIR, LLAMA2_MODEL, meta_reference_ids, turn

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not LLAMA2_MODEL.exists(), reason=f"Llama 2 tokenizer fixture not found at {LLAMA2_MODEL}"
)


def render(dialogs_file: Path, *extra: str, tokenizer: Path = LLAMA2_DIR) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "-m",
        "chat.render",
        "--tokenizer",
        str(tokenizer),
        "--dialogs",
        str(dialogs_file),
    ]
    return subprocess.run(
        [*command, *extra], capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60
    )


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def messages_line(messages: list[dict], **other_keys) -> str:
    return json.dumps({"messages": messages, **other_keys}, ensure_ascii=False)


def test_training_lines(tmp_path):
    names = ["single_turn", "system_prompt", "unicode"]
    lines = [messages_line(DIALOGS[name], meta={"source": name}) for name in names]
    dialogs_file = write_lines(tmp_path / "dialogs.jsonl", [lines[0], "", "   ", *lines[1:]])
    result = render(dialogs_file)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    sp = spm.SentencePieceProcessor(model_file=str(LLAMA2_MODEL))
    assert [record["input_ids"] for record in records] == [
        meta_reference_ids(sp, DIALOGS[name]) for name in names
    ]
    hello = sp.encode("Hello!")
    assert records[0]["labels"] == [-100] * (len(records[0]["labels"]) - len(hello) - 2) + [*hello, 29871, 2]
    assert all(set(record) == {"input_ids", "labels"} for record in records)


def test_generation_lines(tmp_path):
    prompts = [DIALOGS["multi_turn"][:-1], [turn("user", "Hi")]]
    result = render(
        write_lines(tmp_path / "prompts.jsonl", [messages_line(p) for p in prompts]), "--for-generation"
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    sp = spm.SentencePieceProcessor(model_file=str(LLAMA2_MODEL))
    assert records == [{"input_ids": meta_reference_ids(sp, prompt)} for prompt in prompts]
    assert records[1]["input_ids"][-4:] == [518, 29914, 25580, 29962]  # ends with "[/INST]", no EOS


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"messages": [', "invalid JSON"),
        ('["not", "an", "object"]', "expected a JSON object, got list"),
        ('{"dialog": []}', "missing key 'messages'"),
        (
            messages_line([turn("user", "a [INST] b"), turn("assistant", "c")]),
            "contains the special tag '\\[INST\\]'",
        ),
        (messages_line([turn("assistant", "c")]), "message 0: expected role 'user'"),
        (messages_line([turn("user", "Hi")]), "must end with a assistant message"),
    ],
)
def test_a_bad_line_is_named_with_its_number(tmp_path, bad_line, reason):
    good = messages_line(DIALOGS["single_turn"])
    dialogs_file = write_lines(tmp_path / "dialogs.jsonl", [good, "", bad_line, good])
    result = render(dialogs_file)
    assert result.returncode == 1
    assert f"{dialogs_file}:3: " in result.stderr
    assert re.search(reason, result.stderr), result.stderr


def test_generation_needs_dialogs_ending_with_user(tmp_path):
    dialogs_file = write_lines(tmp_path / "prompts.jsonl", [messages_line(DIALOGS["single_turn"])])
    result = render(dialogs_file, "--for-generation")
    assert result.returncode == 1
    assert f"{dialogs_file}:1: dialog must end with a user message" in result.stderr


def test_invalid_utf8_is_named_with_its_line_number(tmp_path):
    dialogs_file = tmp_path / "dialogs.jsonl"
    dialogs_file.write_bytes(messages_line(DIALOGS["single_turn"]).encode() + b'\n{"messages": "\xff"}\n')
    result = render(dialogs_file)
    assert result.returncode == 1
    assert f"{dialogs_file}:2: " in result.stderr and "utf-8" in result.stderr


def test_missing_files_are_named(tmp_path):
    missing_dialogs = render(tmp_path / "nowhere.jsonl")
    assert missing_dialogs.returncode == 1
    assert f"dialogs file {tmp_path / 'nowhere.jsonl'} does not exist" in missing_dialogs.stderr
    dialogs_file = write_lines(tmp_path / "dialogs.jsonl", [messages_line(DIALOGS["single_turn"])])
    missing_tokenizer = render(dialogs_file, tokenizer=tmp_path / "no-tokenizer")
    assert missing_tokenizer.returncode == 1
    assert f"tokenizer path {tmp_path / 'no-tokenizer'} does not exist" in missing_tokenizer.stderr
