#!/usr/bin/env python3
"""The layer contract: read the imports of every module and fail on one that goes up or sideways.

    pipeline (runner, CLI)          top: may import everything
    deploy                          core and learner
    sources | learner | sinks       core only (siblings never import each other)
    core                            nothing of the project

``biograd/__init__.py`` and ``biograd/api.py`` (the scripting API) sit beside the
pipeline at the top. Imports inside functions count the same as module-level ones,
and ``if TYPE_CHECKING:`` imports are ignored (they never run).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: folder of each layer -> the biograd subpackages it may import
ALLOWED = {
    "biograd/core": {"core"},
    "sources": {"core", "sources"},
    "learner": {"core", "learner"},
    "sinks": {"core", "sinks"},
    "deploy": {"core", "learner", "deploy"},
    "pipeline": {"core", "sources", "learner", "sinks", "deploy", "pipeline"},
}
STAGES = ("core", "pipeline", "sources", "learner", "sinks", "deploy")


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imported_layers(path: Path) -> list[tuple[int, str, str]]:
    """(line, imported module, its layer) for every ``biograd`` import in one file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if node.lineno in skip:
                continue
            parts = name.split(".")
            if parts[0] in STAGES[1:] and len(parts) >= 1 and parts[0] != "biograd":
                found.append((node.lineno, name, "<top-level " + parts[0] + ">"))
            elif parts[0] == "biograd" and len(parts) > 1 and parts[1] in STAGES:
                found.append((node.lineno, name, parts[1]))
    return found


def violations(root: Path = ROOT) -> list[str]:
    out = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((root / folder).rglob("*.py")):
            for line, name, layer in imported_layers(path):
                if layer not in allowed:
                    out.append(
                        f"{path.relative_to(root)}:{line}: imports {name} ({folder} may import only "
                        f"{', '.join(sorted(allowed))})"
                    )
    return sorted(set(out))


def main() -> int:
    found = violations()
    for v in found:
        print(v, file=sys.stderr)
    if found:
        print(f"layer contract: {len(found)} violation(s); see scripts/check_layers.py", file=sys.stderr)
        return 1
    print("layer contract: kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
