"""The checks every preference-pair format shares once its prompt and two answers are known."""

from __future__ import annotations

from chat.dialog import PreferencePair
from chat.readers.fields import check_dialog, check_reply
from chat.readers.skips import SkipRecord


def checked_pair(
    prompt: list[dict],
    chosen: str,
    rejected: str,
    *,
    meta: dict,
    rating: str | None = None,
    margin: float | None = None,
) -> PreferencePair:
    """A PreferencePair, or a SkipRecord naming the first problem, checked in this order:

    the prompt (special_tag, empty_prompt_turn, invalid_dialog: it must be a valid dialog ending with
    a user turn), then the chosen answer (empty_chosen, special_tag), the rejected one (empty_rejected,
    special_tag), and last "identical" (a pair with nothing to prefer teaches the reward model nothing).
    """
    check_dialog(prompt, ends_with="user", empty_reason="empty_prompt_turn")
    check_reply(chosen, "chosen")
    check_reply(rejected, "rejected")
    if chosen == rejected:
        raise SkipRecord("identical", "the chosen and rejected answers are the same text")
    return PreferencePair(
        prompt=prompt, chosen=chosen, rejected=rejected, rating=rating, margin=margin, meta=meta
    )
