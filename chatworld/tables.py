"""The closed world's fixed facts and word pools.

Everything a request can ask about comes from these tables, so the vocabulary stays bounded (a
~3,000-piece tokenizer covers it) and the oracle can recompute every right answer. The tables are small
on purpose: the tiny model must see each key often to learn its lookup within the SFT budget.
"""

from __future__ import annotations

# Single- or two-word capitals; no capital contains its country's name, so the oracle can find the
# claimed city in an answer without confusing it with the question.
CAPITALS = {
    "France": "Paris",
    "Spain": "Madrid",
    "Italy": "Rome",
    "Germany": "Berlin",
    "Japan": "Tokyo",
    "China": "Beijing",
    "Egypt": "Cairo",
    "Peru": "Lima",
    "Kenya": "Nairobi",
    "Canada": "Ottawa",
    "Russia": "Moscow",
    "Greece": "Athens",
    "Norway": "Oslo",
    "India": "New Delhi",
    "Argentina": "Buenos Aires",
    "Brazil": "Brasilia",
}

# Each word appears in exactly one pair, so "the other table word in the answer" is well defined.
OPPOSITE_PAIRS = (
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("light", "dark"),
    ("old", "young"),
    ("wet", "dry"),
    ("full", "empty"),
    ("open", "closed"),
    ("strong", "weak"),
    ("up", "down"),
    ("near", "far"),
    ("good", "bad"),
    ("day", "night"),
    ("black", "white"),
    ("push", "pull"),
)
OPPOSITES = {a: b for a, b in OPPOSITE_PAIRS} | {b: a for a, b in OPPOSITE_PAIRS}

# Things and the kind of thing each is (the "category" family); their union is the word pool of the
# "pick" family. No word is a template word ("word", "it", "is", ...), a number or a category name, so an
# answer's words can be attributed unambiguously.
CATEGORIES = {
    "animal": ("cat", "dog", "lion", "cow", "horse", "bird"),
    "fruit": ("apple", "pear", "plum", "grape"),
    "food": ("bread", "cheese", "rice", "cake"),
    "drink": ("milk", "tea", "juice"),
    "object": ("chair", "table", "lamp", "cup", "book"),
    "vehicle": ("boat", "train", "car", "bus"),
    "plant": ("tree", "flower", "grass", "rose"),
}
CATEGORY_OF = {thing: category for category, things in CATEGORIES.items() for thing in things}
WORD_POOL = sorted(CATEGORY_OF)

# Things and their colour (the "colour" family). No colour is an opposite-table word, so a colour answer
# never reads as an answer to an opposite request.
COLOURS = {
    "tomato": "red",
    "cherry": "red",
    "strawberry": "red",
    "leaf": "green",
    "lime": "green",
    "cucumber": "green",
    "sky": "blue",
    "sea": "blue",
    "ocean": "blue",
    "banana": "yellow",
    "sun": "yellow",
    "corn": "yellow",
    "chocolate": "brown",
    "mud": "brown",
    "walnut": "brown",
}

# Neutral system messages: they must never parse as a constraint (tested).
NEUTRAL_SYSTEMS = (
    "You are a helpful assistant.",
    "You are a helpful and honest assistant.",
    "Answer the questions of the user.",
    "You are a friendly assistant. Keep answers short.",
    "You are a careful assistant that answers clearly.",
    "Help the user with short and correct answers.",
)
