"""Dataset readers: local jsonl / json / parquet files (.gz jsonl too), directories of them, or hub dataset
names, read into the internal forms of ``chat.dialog``.

Every reader returns ``(items, SkipReport)``. Malformed input (bad JSON, missing keys, wrong types)
raises DatasetError naming file:line; records with unusable content are skipped, counted by reason and
logged, or raise DatasetError at the first one with ``strict=True``. A source with no records, or whose
records were all skipped, raises too.
"""

from chat.readers.dialogs import read_dialogs
from chat.readers.hh import read_hh_rlhf
from chat.readers.preferences import read_preferences
from chat.readers.prompts import read_prompts
from chat.readers.skips import DatasetError, SkipReport

__all__ = ["DatasetError", "SkipReport", "read_dialogs", "read_hh_rlhf", "read_preferences", "read_prompts"]
