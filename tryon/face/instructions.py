"""Instruction editing: "older, smiling, no glasses" -> {"age": 10.0, "smile": 1.0, "glasses": -1.0}.

A small fixed vocabulary, no model: every word must be known, or `parse_instruction` raises
InputError naming the unknown words (and listing the known ones), so a typo never silently does nothing.

Grammar, per clause (clauses are separated by commas, semicolons, "and", "but", "&", "+"):

    [negation] [modifier] [more|less] ATTRIBUTE [filler words]

- ATTRIBUTE words and synonyms map to an edit and a sign (VOCABULARY): "older" -> age +,
  "younger" -> age −, "smiling" -> smile +, "serious" -> smile −, "glasses" -> glasses +, ...
- negations "no", "not", "without", "non" flip the sign ("no glasses" -> glasses −1);
  "less" flips it and halves the step ("less smiling" -> smile −0.5).
- modifiers scale the step: "a bit", "a little", "slightly", "somewhat" ×0.5; "more", "quite" ×1;
  "much", "very", "a lot", "really", "way" ×1.5; "extremely", "totally" ×2. The result is clamped
  to the edit's range (EDIT_RANGES).
- one step is DEFAULT_STEPS[name]: 10 for age (its unit is a tenth of the others'), 1 otherwise.
- filler words ("make", "me", "look", "a", "the", "with", "hair", "face", ...) are ignored.

The same edit named twice adds up (then clamps). StyleCLIP-style free-text directions would need
CLIP weights, which do not exist offline; they are not implemented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from tryon.errors import InputError

# Every edit the vocabulary can name, its step and its range. tryon.face.edits re-exports these.
EDIT_NAMES: tuple[str, ...] = (
    "age", "gender", "smile", "pose", "glasses", "blond_hair", "bald", "mustache", "beard", "hat", "makeup",
)
EDIT_RANGES: dict[str, tuple[float, float]] = {
    name: ((-15.0, 15.0) if name == "age" else (-1.5, 1.5)) for name in EDIT_NAMES
}
DEFAULT_STEPS: dict[str, float] = {name: (10.0 if name == "age" else 1.0) for name in EDIT_NAMES}

# word or phrase -> (edit, sign). Phrases (several words) are matched before single words.
VOCABULARY: dict[str, tuple[str, int]] = {
    **{w: ("age", 1) for w in ("older", "old", "aged", "elderly", "aging", "ageing", "age")},
    **{w: ("age", -1) for w in ("younger", "young", "youthful", "rejuvenated", "de-aged")},
    **{w: ("gender", 1) for w in ("male", "man", "masculine", "manly", "manlier")},
    **{w: ("gender", -1) for w in ("female", "woman", "feminine", "womanly", "girly")},
    **{w: ("smile", 1) for w in ("smiling", "smile", "smiles", "smiley", "happy", "happier", "grin", "grinning",
                                 "cheerful")},
    **{w: ("smile", -1) for w in ("serious", "frowning", "frown", "stern", "sad", "sadder", "unsmiling")},
    **{w: ("glasses", 1) for w in ("glasses", "eyeglasses", "spectacles", "specs", "bespectacled")},
    **{w: ("blond_hair", 1) for w in ("blond", "blonde", "fair-haired")},
    **{w: ("bald", 1) for w in ("bald", "balder", "hairless")},
    **{w: ("mustache", 1) for w in ("mustache", "moustache", "mustached", "moustached")},
    **{w: ("beard", 1) for w in ("beard", "bearded", "beardy", "stubble")},
    **{w: ("hat", 1) for w in ("hat", "cap", "hats")},
    **{w: ("makeup", 1) for w in ("makeup", "make-up", "made-up", "lipstick")},
    "clean-shaven": ("beard", -1),
    "shaved": ("beard", -1),
    "make up": ("makeup", 1),
    "turn left": ("pose", -1),
    "turned left": ("pose", -1),
    "facing left": ("pose", -1),
    "look left": ("pose", -1),
    "looking left": ("pose", -1),
    "turn right": ("pose", 1),
    "turned right": ("pose", 1),
    "facing right": ("pose", 1),
    "look right": ("pose", 1),
    "looking right": ("pose", 1),
    "left": ("pose", -1),
    "right": ("pose", 1),
}
NEGATIONS = ("no", "not", "without", "non", "un")
MODIFIERS: dict[str, float] = {
    "a bit": 0.5, "a little": 0.5, "a tad": 0.5, "slightly": 0.5, "somewhat": 0.5, "mildly": 0.5, "little": 0.5,
    "more": 1.0, "quite": 1.0, "much more": 1.5, "a lot": 1.5, "lots": 1.5, "much": 1.5, "very": 1.5,
    "really": 1.5, "way": 1.5, "strongly": 1.5, "extremely": 2.0, "totally": 2.0, "super": 2.0,
}
LESS = "less"
FILLERS = frozenset((
    "make", "me", "him", "her", "them", "it", "look", "looks", "looking", "appear", "seem", "be", "a", "an", "the",
    "with", "wearing", "wear", "have", "has", "having", "please", "face", "person", "hair", "haired", "to", "of",
    "some",
))
_CLAUSE_SPLIT = re.compile(r"[,;&+\n]|\band\b|\bbut\b|\bthen\b", re.IGNORECASE)
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*")
MAX_INSTRUCTION_CHARS = 500


def instruction_words() -> list[str]:
    """Every word and phrase the parser knows (attributes, negations, modifiers), sorted."""
    return sorted({*VOCABULARY, *NEGATIONS, *MODIFIERS, LESS})


def parse_instruction(text: str) -> dict[str, float]:
    """Instruction text -> {edit name: strength}. InputError on unknown words or an empty clause.

    >>> parse_instruction("older, smiling, no glasses")
    {'age': 10.0, 'smile': 1.0, 'glasses': -1.0}
    >>> parse_instruction("a bit younger and much more feminine")
    {'age': -5.0, 'gender': -1.5}
    """
    if not isinstance(text, str):
        raise InputError(f"an instruction is text, got {type(text).__name__}")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise InputError(f"the instruction is too long ({len(text)} characters, at most {MAX_INSTRUCTION_CHARS})")
    strengths: dict[str, float] = {}
    unknown: list[str] = []
    problems: list[str] = []
    for clause in _CLAUSE_SPLIT.split(text.lower()):
        tokens = _tokens(clause)
        if not tokens:
            continue
        found = _parse_clause(tokens, unknown)
        if not found and not unknown:
            problems.append(f"{clause.strip()!r} names no edit")
        for name, value in found:
            strengths[name] = strengths.get(name, 0.0) + value
    if unknown:
        words = ", ".join(repr(w) for w in dict.fromkeys(unknown))
        raise InputError(
            f"unknown word(s) in the instruction: {words}. Known edit words: "
            f"{', '.join(sorted(w for w in VOCABULARY if ' ' not in w))}; modifiers: "
            f"{', '.join(sorted(MODIFIERS))}; negations: {', '.join(NEGATIONS)}, {LESS}"
        )
    if problems or not strengths:
        what = "; ".join(problems) if problems else "it is empty"
        raise InputError(f"the instruction says nothing to edit ({what}); try e.g. 'older, smiling, no glasses'")
    return {name: _clamp(name, value) for name, value in strengths.items()}


def _tokens(clause: str) -> list[str]:
    return _TOKEN.findall(clause.replace("’", "'").replace("'", ""))


def _match(tokens: list[str], i: int, table: Mapping[str, object]) -> tuple[str, int] | None:
    """The longest phrase of `table` starting at tokens[i] -> (phrase, words used)."""
    for n in (3, 2, 1):
        phrase = " ".join(tokens[i : i + n])
        if len(tokens) - i >= n and phrase in table:
            return phrase, n
    return None


def _parse_clause(tokens: list[str], unknown: list[str]) -> list[tuple[str, float]]:
    """One clause -> [(edit, strength)]; appends words it does not know to `unknown`."""
    out: list[tuple[str, float]] = []
    sign, factor = 1, 1.0
    i = 0
    while i < len(tokens):
        word = tokens[i]
        attribute = _match(tokens, i, VOCABULARY)
        modifier = _match(tokens, i, MODIFIERS)
        # A phrase that is both ("a bit" vs an attribute) cannot happen; attributes win ties by length.
        if attribute and (not modifier or attribute[1] >= modifier[1]):
            name, attr_sign = VOCABULARY[attribute[0]]
            out.append((name, sign * attr_sign * factor * DEFAULT_STEPS[name]))
            sign, factor = 1, 1.0
            i += attribute[1]
        elif modifier:
            factor *= MODIFIERS[modifier[0]]
            i += modifier[1]
        elif word in NEGATIONS:
            sign = -sign
            i += 1
        elif word == LESS:
            sign, factor = -sign, factor * 0.5
            i += 1
        elif word in FILLERS:
            i += 1
        else:
            unknown.append(word)
            i += 1
    return out


def _clamp(name: str, value: float) -> float:
    lo, hi = EDIT_RANGES[name]
    return float(min(max(value, lo), hi))
