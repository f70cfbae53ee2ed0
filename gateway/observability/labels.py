"""Label values that stay bounded whatever clients send.

A model a client names is a label only when the config knows it (a model group, an alias, or a
wildcard route, which is labelled by its pattern); anything else is "other", so a client cannot
create series by inventing model names. Teams are created by operators, so they are bounded;
keys are not labels unless an operator opts in (`metrics_key_labels`).
"""

from __future__ import annotations

from collections.abc import Iterable

NONE = "none"
OTHER = "other"


class LabelPolicy:
    def __init__(self, models: Iterable[str], *, key_labels: bool = False) -> None:
        self._exact: set[str] = set()
        self._prefixes: list[tuple[str, str]] = []
        for name in models:
            if name.endswith("*"):
                self._prefixes.append((name[:-1], name))
            else:
                self._exact.add(name)
        self.key_labels = key_labels
        self._seen: dict[str, str] = {}

    def model(self, name: str) -> str:
        if not name:
            return NONE
        label = self._seen.get(name)
        if label is None:
            label = self._resolve(name)
            if label != OTHER:
                # Only known names are remembered, so the memo is as bounded as the config.
                self._seen[name] = label
        return label

    def _resolve(self, name: str) -> str:
        if name in self._exact:
            return name
        for prefix, pattern in self._prefixes:
            if name.startswith(prefix):
                return pattern
        return OTHER

    @staticmethod
    def team(team_id: str | None) -> str:
        return NONE if team_id is None else team_id


def bounded(value: str | None, allowed: frozenset[str]) -> str:
    """`value` when it is one of `allowed`, else "other": for labels fed from outside strings."""
    if value is None:
        return NONE
    return value if value in allowed else OTHER
