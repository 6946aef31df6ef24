"""The closed world's fixed facts and word pools.

Everything a request can ask about comes from these tables, so the vocabulary stays bounded (a
~3,000-piece tokenizer covers it) and the oracle can recompute every right answer.
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
    "Sweden": "Stockholm",
    "Poland": "Warsaw",
    "Austria": "Vienna",
    "Portugal": "Lisbon",
    "Ireland": "Dublin",
    "Cuba": "Havana",
    "Chile": "Santiago",
    "Thailand": "Bangkok",
    "Vietnam": "Hanoi",
    "India": "New Delhi",
    "Argentina": "Buenos Aires",
    "Brazil": "Brasilia",
    "Turkey": "Ankara",
    "Iran": "Tehran",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Hungary": "Budapest",
    "Nepal": "Kathmandu",
    "Mexico": "Mexico City",
}

# Each word appears in exactly one pair, so "the other table word in the answer" is well defined.
OPPOSITE_PAIRS = (
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("light", "dark"),
    ("tall", "short"),
    ("old", "young"),
    ("rich", "poor"),
    ("early", "late"),
    ("hard", "soft"),
    ("loud", "quiet"),
    ("wet", "dry"),
    ("full", "empty"),
    ("open", "closed"),
    ("strong", "weak"),
    ("clean", "dirty"),
    ("thick", "thin"),
    ("high", "low"),
    ("up", "down"),
    ("near", "far"),
    ("true", "false"),
    ("good", "bad"),
    ("win", "lose"),
    ("day", "night"),
    ("black", "white"),
    ("inside", "outside"),
    ("push", "pull"),
    ("buy", "sell"),
    ("sweet", "sour"),
    ("brave", "afraid"),
    ("smooth", "rough"),
    ("wide", "narrow"),
)
OPPOSITES = {a: b for a, b in OPPOSITE_PAIRS} | {b: a for a, b in OPPOSITE_PAIRS}

# Things and the kind of thing each is (the "category" family); their union is the word pool of the
# "pick" family. No word is a template word ("word", "it", "is", ...), a number or a category name, so an
# answer's words can be attributed unambiguously.
CATEGORIES = {
    "animal": ("cat", "dog", "bird", "fish", "horse", "cow", "sheep", "goat", "lion", "tiger", "bear", "wolf"),
    "fruit": ("apple", "pear", "plum", "grape", "lemon", "melon", "peach", "berry"),
    "food": ("bread", "cheese", "rice", "soup", "cake"),
    "drink": ("milk", "tea", "juice", "coffee"),
    "object": ("chair", "table", "lamp", "door", "window", "book", "pen", "cup"),
    "vehicle": ("boat", "train", "car", "bus"),
    "plant": ("tree", "flower", "grass", "rose"),
}
CATEGORY_OF = {thing: category for category, things in CATEGORIES.items() for thing in things}
WORD_POOL = sorted(CATEGORY_OF)

# Neutral system messages: they must never parse as a constraint (tested).
NEUTRAL_SYSTEMS = (
    "You are a helpful assistant.",
    "You are a helpful and honest assistant.",
    "Answer the questions of the user.",
    "You are a friendly assistant. Keep answers short.",
    "You are a careful assistant that answers clearly.",
    "Help the user with short and correct answers.",
)
