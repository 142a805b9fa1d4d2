"""Blocks of code written twice: runs of MIN_LINES or more consecutive lines that stand again elsewhere.

Lines are compared by their tokens, so a copy that was re-indented, re-spaced or re-commented still matches, and
by their shape (names, strings and numbers read as placeholders), so a copy with other names or values matches
too, when at least half of its lines are also the same to the letter (a copy, not two things of one form, like
two dataclasses or two dict literals). Blank lines, comments, imports and lines without a name of their own
(punctuation, literals, keywords alone: data and brackets) are passed over. The `duplicates` tool of the
development machine does the like, but CI does not have it.
"""

from __future__ import annotations

import keyword
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MIN_LINES = 6
SOURCE_SUFFIXES = {".py", ".sh", ".html", ".css", ".js"}
HASH_COMMENTS = {".py", ".sh"}
TOKEN = re.compile(r"""[rRbBfFuU]{0,2}(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')|[A-Za-z_]\w*|\d[\w.]*|\S""")
KEYWORDS = set(keyword.kwlist) | {"self", "cls"}


@dataclass(frozen=True)
class Place:
    path: Path
    first: int  # line numbers in the file, 1-based, inclusive
    last: int

    def __str__(self) -> str:
        return f"{self.path}:{self.first}-{self.last}"


@dataclass(frozen=True)
class Line:
    number: int
    tokens: tuple[str, ...]

    @property
    def shape(self) -> tuple[str, ...]:
        return tuple(
            "S" if token[-1] in "\"'" else "0" if token[0].isdigit() else "N" if is_name(token) else token
            for token in self.tokens
        )


def is_name(token: str) -> bool:
    return (token[0].isalpha() or token[0] == "_") and token[-1] not in "\"'" and token not in KEYWORDS


def code_lines(path: Path) -> list[Line]:
    """The lines that count, with their tokens."""
    kept: list[Line] = []
    in_import = False
    for number, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
        tokens = TOKEN.findall(text)
        if path.suffix in HASH_COMMENTS and "#" in tokens:
            tokens = tokens[: tokens.index("#")]
        if path.suffix == ".py" and (in_import or tokens[:1] in (["import"], ["from"])):
            in_import = (in_import or "(" in tokens) and ")" not in tokens  # a parenthesised import goes on
            continue
        if path.suffix in (".js", ".css") and tokens[:2] in (["/", "/"], ["/", "*"]):
            continue
        if any(is_name(token) for token in tokens):
            kept.append(Line(number, tuple(tokens)))
    return kept


def sources(roots: Iterable[Path]) -> list[Path]:
    return sorted(
        path
        for root in roots
        for path in root.rglob("*")
        if path.suffix in SOURCE_SUFFIXES and path.is_file() and "__pycache__" not in path.parts
    )


def repeats(paths: Iterable[Path], min_lines: int = MIN_LINES) -> list[tuple[Place, Place]]:
    """Pairs of places sharing a run of at least `min_lines` lines of one shape, at least half of them the same
    to the letter; each run once, at its full length."""
    lines = {path: code_lines(path) for path in paths}
    windows: dict[tuple[tuple[str, ...], ...], list[tuple[Path, int]]] = defaultdict(list)
    for path, kept in lines.items():
        for i in range(len(kept) - min_lines + 1):
            windows[tuple(line.shape for line in kept[i : i + min_lines])].append((path, i))
    shared: dict[tuple[Path, Path, int], set[int]] = defaultdict(set)  # (a, b, offset in b) -> window starts in a
    for places in windows.values():
        for k, (a, i) in enumerate(places):
            for b, j in places[k + 1 :]:
                if a != b or abs(i - j) >= min_lines:  # not a block of like lines overlapping itself
                    shared[(a, b, j - i)].add(i)
    pairs = []
    for (a, b, offset), starts in shared.items():
        for start in sorted(starts):
            if start - 1 in starts:
                continue  # inside a run already counted
            end = start + min_lines - 1
            while end - min_lines + 2 in starts:
                end += 1
            run = range(start, end + 1)
            same = sum(lines[a][i].tokens == lines[b][i + offset].tokens for i in run)
            if 2 * same >= len(run):
                first, last = lines[a][start].number, lines[a][end].number
                pairs.append(
                    (Place(a, first, last), Place(b, lines[b][start + offset].number, lines[b][end + offset].number))
                )
    return sorted(pairs, key=lambda pair: (str(pair[0]), str(pair[1])))
