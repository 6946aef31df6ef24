"""The Llama 2-Chat format, token for token (CHAT_FORMAT.md, Meta's ``chat_completion``).

Each completed (user, assistant) pair is its own SentencePiece segment
``[BOS] + encode("[INST] {user} [/INST] {answer} ") + [EOS]`` and a generation prompt ends with
``[BOS] + encode("[INST] {user} [/INST]")``. Encoding segment by segment (not "render a string, then
tokenize") is what gives every segment its dummy-prefix space and keeps literal "<s>"/"</s>" as text:
BOS/EOS only ever come from ids.
"""

from __future__ import annotations

from pathlib import Path

from chat.dialog import DialogError, validate_dialog
from chat.tokenizer import load_text_tokenizer

B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
IGNORE_INDEX = -100  # the label PyTorch's cross-entropy skips
LOSS_ON = ("all", "last")


def fold_system_message(messages: list[dict]) -> list[dict]:
    """Merge a leading system message into the first user message, as Meta's code does (nothing stripped)."""
    if messages[0]["role"] != "system":
        return list(messages)
    first_user = messages[1]
    merged = B_SYS + messages[0]["content"] + E_SYS + first_user["content"]
    return [{"role": "user", "content": merged}, *messages[2:]]


def prompt_text(user_content: str) -> str:
    return f"{B_INST} {user_content.strip()} {E_INST}"


def answer_text(assistant_content: str) -> str:
    # The trailing space is part of the reference text: it becomes its own token (29871) before EOS.
    return f" {assistant_content.strip()} "


class ChatEncoder:
    """Dialogs -> Llama 2-Chat token ids (and SFT labels) over a text tokenizer from chat/tokenizer.py."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    @classmethod
    def from_path(cls, path: str | Path) -> ChatEncoder:
        return cls(load_text_tokenizer(path))

    @property
    def bos_id(self) -> int:
        return self.tokenizer.bos_id

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_id

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_id

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def encode_for_training(self, messages: list[dict], loss_on: str = "all") -> dict[str, list[int]]:
        """input_ids and labels for a dialog ending with an assistant answer.

        Labels carry the id on every answer token and the EOS closing it, IGNORE_INDEX on BOS and on each
        "[INST] ... [/INST]" part. ``loss_on="last"`` keeps only the last answer's labels (GAtt samples).
        """
        if loss_on not in LOSS_ON:
            raise ValueError(f"loss_on must be one of {', '.join(LOSS_ON)}, got {loss_on!r}")
        validate_dialog(messages, ends_with="assistant")
        turns = fold_system_message(messages)
        offset = len(messages) - len(turns)  # to name messages by their index in the caller's list
        input_ids: list[int] = []
        labels: list[int] = []
        last_pair_start = len(turns) - 2
        for start in range(0, len(turns), 2):
            ids, pair_labels = self._encode_pair(turns[start], turns[start + 1], start + 1 + offset)
            if loss_on == "last" and start != last_pair_start:
                pair_labels = [IGNORE_INDEX] * len(ids)
            input_ids += ids
            labels += pair_labels
        return {"input_ids": input_ids, "labels": labels}

    def encode_for_generation(self, messages: list[dict]) -> list[int]:
        """Ids of a dialog ending with a user message, up to and including its "[/INST]" (no EOS)."""
        validate_dialog(messages, ends_with="user")
        turns = fold_system_message(messages)
        offset = len(messages) - len(turns)
        input_ids: list[int] = []
        for start in range(0, len(turns) - 1, 2):
            input_ids += self._encode_pair(turns[start], turns[start + 1], start + 1 + offset)[0]
        return input_ids + [self.bos_id] + self.tokenizer.encode(prompt_text(turns[-1]["content"]))

    def _encode_pair(self, user: dict, assistant: dict, answer_index: int) -> tuple[list[int], list[int]]:
        """One segment's ids and labels; the prompt is encoded alone to find the exact label boundary."""
        prompt = prompt_text(user["content"])
        segment_ids = self.tokenizer.encode(prompt + answer_text(assistant["content"]))
        prompt_ids = self.tokenizer.encode(prompt)
        if segment_ids[: len(prompt_ids)] != prompt_ids:
            # A tokenizer that merges across "[/INST]" and the answer would make the boundary ambiguous;
            # SentencePiece with Llama 2's vocabulary never does, so this flags a foreign tokenizer.
            raise DialogError(
                f"message {answer_index}: the tokens of the prompt are not a prefix of the tokens of "
                "prompt + answer, so the label boundary is ambiguous with this tokenizer"
            )
        answer_ids = segment_ids[len(prompt_ids) :]
        ids = [self.bos_id, *segment_ids, self.eos_id]
        labels = [IGNORE_INDEX] * (1 + len(prompt_ids)) + answer_ids + [self.eos_id]
        return ids, labels
