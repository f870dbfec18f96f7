"""The package layout is the pipeline: imports point one way, from later steps to earlier
ones (language -> loading -> plan -> evaluate -> claim kinds -> judge -> output -> run ->
drivers), at module level and inside functions alike; modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "interp_assert"

#: each top-level part of the package and its step in the pipeline (0: shared foundations)
LAYERS = {
    "errors": 0, "labels": 0, "resources": 0, "workers": 0, "usercode": 0, "progress": 0,
    "language": 1, "loading": 2, "plan": 3, "evaluate": 4, "adapters": 4, "claims": 5,
    "judge": 6, "output": 7, "run": 8, "drivers": 9,
}
MAX_LINES = 410


def part_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "interp_assert" and len(parts) > 1 else None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of the package in ``path``, outside TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, name) for line, name in found if name.startswith("interp_assert.")]


def test_imports_point_one_way() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        own = part_of(module)
        if own is None or own == "__init__":
            continue
        assert own in LAYERS, f"{module}: add its folder to LAYERS"
        for line, name in imports(path):
            other = part_of(name)
            if other in LAYERS and LAYERS[other] > LAYERS[own]:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {own} "
                                f"(step {LAYERS[own]}) imports {name} (step {LAYERS[other]})")
    assert problems == [], "\n".join(problems)


def test_modules_stay_small() -> None:
    large = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
             if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert large == {}
