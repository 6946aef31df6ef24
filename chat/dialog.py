"""The internal forms every reader produces and every stage consumes.

A message is a plain dict ``{"role": "system"|"user"|"assistant", "content": str}`` and a dialog is a
list of them, exactly the ``messages`` layout of the jsonl files, so records round-trip through json
without conversion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ROLES = ("system", "user", "assistant")

# The paper's four preference levels, strongest first (Llama 2, table 27).
RATINGS = ("significantly_better", "better", "slightly_better", "negligibly_better")

# Tags that Meta's reference code treats as unsafe inside a message: they would let a message
# forge the turn structure, so we reject them instead of re-interpreting them.
SPECIAL_TAGS = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")


class DialogError(ValueError):
    """A dialog that cannot be encoded in the Llama 2 format; the message says why."""


def validate_dialog(messages: list[dict], *, ends_with: str | None = None) -> None:
    """Check roles, alternation, contents and special tags; raise DialogError naming the problem.

    ``ends_with`` is "assistant" for training dialogs, "user" for generation prompts, None for either.
    """
    if not isinstance(messages, list) or not messages:
        raise DialogError("empty dialog: expected at least one user message")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"} or "role" not in message:
            raise DialogError(
                f"message {i}: expected an object with 'role' and 'content', got {message!r:.80}"
            )
        role, content = message["role"], message.get("content")
        if role not in ROLES:
            raise DialogError(f"message {i}: unknown role {role!r} (expected one of {', '.join(ROLES)})")
        if not isinstance(content, str):
            raise DialogError(f"message {i} ({role}): content must be a string, got {type(content).__name__}")
        for tag in SPECIAL_TAGS:
            if tag in content:
                raise DialogError(f"message {i} ({role}): contains the special tag {tag!r}")
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    if not turns:
        raise DialogError("dialog has a system message but no user message")
    for i, message in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            position = i + (len(messages) - len(turns))
            raise DialogError(
                f"message {position}: expected role {expected!r}, got {message['role']!r} "
                "(roles must be: optional system, then user/assistant alternating)"
            )
        if not message["content"].strip():
            position = i + (len(messages) - len(turns))
            raise DialogError(f"message {position} ({message['role']}): empty content")
    if ends_with is not None and turns[-1]["role"] != ends_with:
        raise DialogError(f"dialog must end with a {ends_with} message, ends with {turns[-1]['role']!r}")


@dataclass
class PreferencePair:
    """A prompt dialog (ending with a user turn) and two answers, chosen preferred over rejected."""

    prompt: list[dict]
    chosen: str
    rejected: str
    rating: str | None = None  # one of RATINGS, when the dataset has one
    margin: float | None = None  # a numeric margin given by the dataset, used as is
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PromptRecord:
    """A prompt dialog for sampling (rejection sampling, PPO), tagged safety or not."""

    prompt: list[dict]
    is_safety: bool = False
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)
