"""Measured figures in Markdown come from the committed result files, so a document cannot drift
from the run it cites.

A document names the result files it quotes once, by alias (anywhere in the file):

    <!--figures core=loadtests/results/core-2026-11-23.json ledger=loadtests/results/ledger-2026-11-23.json -->

and each figure is a span whose text this script writes:

    <!--fig core:targets.gateway.cells[mode=non-stream,concurrency=16].rps |,.0f-->4,644<!--/fig-->

A reference is `alias:path`: dotted keys into the JSON, `[key=value,...]` picking the one element
of a list whose fields match (`[3]` picks by position). A span may compute from several references
with + - * /, parentheses and round(x, digits) (spaces around the operators), for derived figures;
after ` |` comes a Python format spec. HTML comments do not render, so readers see only the figures.

    python loadtests/figures.py docs/capacity.md README.md     # rewrite the spans
    python loadtests/figures.py --check docs/*.md              # exit 1, listing spans that differ

tests/loadtests/test_figures.py runs the check over every Markdown file of the repository.
"""

from __future__ import annotations

import argparse
import ast
import json
import operator
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

SOURCES = re.compile(r"<!--figures\s+(?P<pairs>[^>]*?)\s*-->")
SPAN = re.compile(r"<!--fig\s+(?P<expr>.*?)(?:\s+\|(?P<spec>[^>]*?))?\s*-->(?P<text>.*?)<!--/fig-->", re.S)
REFERENCE = re.compile(r"(?P<alias>[A-Za-z_][\w-]*):(?P<path>[\w-]+(?:\.[\w-]+|\[[^\]]*\])*)")
_STEP = re.compile(r"\.?(?P<key>[\w-]+)|\[(?P<select>[^\]]*)\]")
_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}  # fmt: skip


class FigureError(ValueError):
    pass


def lookup(data: Any, path: str) -> Any:
    node = data
    for step in _STEP.finditer(path):
        key, select = step["key"], step["select"]
        if key is not None:
            if not isinstance(node, dict) or key not in node:
                raise FigureError(f"{path}: no key {key!r}")
            node = node[key]
        elif select.isdigit():
            if not isinstance(node, list) or int(select) >= len(node):
                raise FigureError(f"{path}: no element [{select}]")
            node = node[int(select)]
        else:
            wanted = dict(pair.split("=", 1) for pair in select.split(","))
            if not isinstance(node, list):
                raise FigureError(f"{path}: [{select}] needs a list")
            found = [item for item in node if all(str(item.get(k)) == v for k, v in wanted.items())]
            if len(found) != 1:
                raise FigureError(f"{path}: [{select}] matches {len(found)} elements, not one")
            node = found[0]
    return node


def evaluate(expr: str, sources: dict[str, Any]) -> Any:
    values: dict[str, Any] = {}

    def name(match: re.Match[str]) -> str:
        if match["alias"] not in sources:
            raise FigureError(f"{expr}: no result file named {match['alias']!r} (declare it in <!--figures ...-->)")
        var = f"_v{len(values)}"
        values[var] = lookup(sources[match["alias"]], match["path"])
        return var

    tree = ast.parse(REFERENCE.sub(name, expr), mode="eval")

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Name) and node.id in values:
            return values[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "round"
                and len(node.args) == 2 and not node.keywords):  # fmt: skip
            return round(walk(node.args[0]), int(walk(node.args[1])))
        raise FigureError(f"{expr}: only references, numbers, + - * / and round(x, digits) are allowed")

    return walk(tree)


@dataclass(frozen=True)
class Difference:
    path: Path
    line: int
    expr: str
    written: str
    measured: str


def render(text: str, base: Path = REPO) -> tuple[str, list[tuple[int, str, str, str]]]:
    """The text with every span's figure rewritten, and the spans whose figure changed
    as (line, expression, written, measured)."""
    sources: dict[str, Any] = {}
    for declared in SOURCES.finditer(text):
        for pair in declared["pairs"].split():
            alias, _, file = pair.partition("=")
            try:
                sources[alias] = json.loads((base / file).read_text())
            except OSError as exc:
                raise FigureError(f"{alias}={file}: {exc.strerror}") from None
    changed: list[tuple[int, str, str, str]] = []

    def replace(match: re.Match[str]) -> str:
        value = evaluate(match["expr"], sources)
        figure = format(value, (match["spec"] or "").strip())
        if figure != match["text"]:
            changed.append((text.count("\n", 0, match.start()) + 1, match["expr"], match["text"], figure))
        return f"{text[match.start() : match.start('text')]}{figure}<!--/fig-->"

    return SPAN.sub(replace, text), changed


def differences(paths: list[Path], base: Path = REPO) -> list[Difference]:
    found = []
    for path in paths:
        _, changed = render(path.read_text(), base)
        found += [Difference(path, *change) for change in changed]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render measured figures in Markdown from loadtests/results.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a figure differs")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.check:
        found = differences(args.files)
        for d in found:
            print(f"{d.path}:{d.line}: {d.written!r} but the result file says {d.measured!r} ({d.expr})")
        return 1 if found else 0
    for path in args.files:
        text, changed = render(path.read_text())
        if changed:
            path.write_text(text)
            print(f"{path}: {len(changed)} figures updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
