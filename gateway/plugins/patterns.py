"""Finding and masking patterns in text, whole or as it streams in.

Streams are masked across chunk boundaries: text is released only up to the first place where a
pattern might still be starting. That place is found with the `regex` module's partial matching
(a match that the end of the text cut short is reported as partial), so only a tail that could
still become a match is held back, whatever patterns an operator configures; a word of prose is
held until the character after it arrives. A held tail never grows past `MAX_HOLD` characters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import regex

# Text released before the held tail is searched with this much of what came before it, so
# look-behinds at the start of a search see the real previous characters.
CONTEXT = 16
MAX_HOLD = 512

# The matched text -> the length of its valid prefix (a match may be trimmed), or None: not valid.
Validator = Callable[[str], int | None]


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: regex.Pattern[str]
    replacement: str
    valid: Validator | None = None


Counts = dict[str, int]


class Masker:
    """Rules in priority order (an earlier rule wins where matches overlap), and optional exemptions:
    text inside an exempt match is never masked."""

    def __init__(self, rules: Iterable[Rule], exempt: regex.Pattern[str] | None = None) -> None:
        self.rules = tuple(rules)
        self.exempt = exempt

    def spans(self, text: str, pos: int = 0, endpos: int | None = None) -> list[tuple[int, int, Rule]]:
        end = len(text) if endpos is None else endpos
        free: list[tuple[int, int]] = []
        if self.exempt is not None:
            free = [m.span() for m in self.exempt.finditer(text, pos, end)]
        taken: list[tuple[int, int, Rule]] = []
        for rule in self.rules:
            for m in rule.pattern.finditer(text, pos, end, overlapped=False):
                start, stop = m.span()
                if rule.valid is not None:
                    length = rule.valid(m.group())
                    if length is None:
                        continue
                    stop = start + length
                if start == stop or _overlaps(start, stop, free) or _overlaps(start, stop, taken):
                    continue
                taken.append((start, stop, rule))
        taken.sort(key=lambda span: span[0])
        return taken

    def mask(self, text: str, counts: Counts | None = None, pos: int = 0, endpos: int | None = None) -> str:
        """`text[pos:endpos]` with every match inside it replaced; the rest of `text` is context."""
        end = len(text) if endpos is None else endpos
        spans = [span for span in self.spans(text, pos) if span[1] <= end]
        if not spans:
            return text[pos:end]
        out: list[str] = []
        at = pos
        for start, stop, rule in spans:
            out.append(text[at:start])
            out.append(rule.replacement)
            at = stop
            if counts is not None:
                counts[rule.kind] = counts.get(rule.kind, 0) + 1
        out.append(text[at:end])
        return "".join(out)

    def found(self, text: str) -> Counts:
        counts: Counts = {}
        for _, _, rule in self.spans(text):
            counts[rule.kind] = counts.get(rule.kind, 0) + 1
        return counts

    def hold_point(self, text: str, pos: int) -> int:
        """The first index from which `text` must be held: a match might start there and not be over."""
        end = len(text)
        hold = end
        patterns = [rule.pattern for rule in self.rules]
        if self.exempt is not None:
            patterns.append(self.exempt)
        full: list[tuple[int, int]] = []
        for pattern in patterns:
            for m in pattern.finditer(text, pos, end, partial=True):
                start, stop = m.span()
                # A complete match may still grow (more digits of a card, the rest of a domain):
                # it is held while the text after it could belong to it.
                if m.partial or stop == end or pattern.fullmatch(text, start, end, partial=True):
                    hold = min(hold, start)
                    break
                full.append((start, stop))
        # Never cut through a match that ends after the hold point.
        changed = True
        while changed:
            changed = False
            for start, stop in full:
                if start < hold < stop:
                    hold, changed = start, True
        return max(hold, end - MAX_HOLD, pos)

    def stream(self, report: Callable[[Counts], None]) -> MaskingStream:
        return MaskingStream(self, report)


class MaskingStream:
    """A `ChunkHook` masking one stream; `report` gets the counts of what it masked, per choice."""

    def __init__(self, masker: Masker, report: Callable[[Counts], None]) -> None:
        self.masker = masker
        self.report = report
        self._held: dict[int, str] = {}
        self._before: dict[int, str] = {}
        self._counts: Counts = {}

    def feed(self, index: int, text: str) -> str:
        before = self._before.get(index, "")
        buffer = before + self._held.get(index, "") + text
        pos = len(before)
        hold = self.masker.hold_point(buffer, pos)
        self._held[index] = buffer[hold:]
        if hold == pos:
            return ""
        released = self.masker.mask(buffer, self._counts, pos, hold)
        self._before[index] = buffer[max(0, hold - CONTEXT) : hold]
        return released

    def flush(self, index: int) -> str:
        before = self._before.pop(index, "")
        held = self._held.pop(index, "")
        out = self.masker.mask(before + held, self._counts, len(before)) if held else ""
        if self._counts:
            counts, self._counts = self._counts, {}
            self.report(counts)
        return out


def _overlaps(start: int, stop: int, spans: Iterable[tuple[int, int] | tuple[int, int, Rule]]) -> bool:
    return any(start < span[1] and span[0] < stop for span in spans)


def literal_terms(terms: Iterable[str]) -> str:
    """Whole-word, case-insensitive alternation of literal terms (longest first)."""
    escaped = sorted((regex.escape(t.strip()) for t in terms if t.strip()), key=len, reverse=True)
    return r"(?<!\w)(?:" + "|".join(escaped) + r")(?!\w)" if escaped else ""
