"""The package's layering (docs/design.md): every module imports only from the layers below its own, never along the
forbidden edges, without cycles, and never inside a function to dodge one (commands may import lazily, for speed)."""
import ast
from pathlib import Path

import nnlandmark

PACKAGE = Path(nnlandmark.__file__).parent

LAYERS = ["errors", "paths", "geometry", "landmark_set", "io", "labelmaps", "heatmaps", "network", "losses",
          "evaluation", "presence", "uncertainty", "stages", "selection", "inference", "trainers", "dataset_conversion",
          "planning", "demo", "commands"]
NEVER = {"evaluation": {"trainers", "losses", "inference", "dataset_conversion"},
         "dataset_conversion": {"inference", "trainers", "losses", "heatmaps", "network", "evaluation", "presence"},
         "inference": {"trainers", "losses"}}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path):
    """(imported nnlandmark module, line, inside a function?) of every import in a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    in_function = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "nnlandmark":
            names = [f"{node.module}.{a.name}" if is_module(f"{node.module}.{a.name}") else node.module
                     for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "nnlandmark"]
        else:
            continue
        for name in names:
            yield name, node.lineno, id(node) in in_function


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def edges():
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        for target, line, in_function in imports(path):
            yield source, target, f"{path.relative_to(PACKAGE.parent)}:{line}", in_function


def test_every_module_belongs_to_a_layer():
    tops = {layer(module_name(p)) for p in PACKAGE.rglob("*.py")} - {""}
    assert tops <= set(LAYERS), f"modules outside the layer list: {sorted(tops - set(LAYERS))}"


def wrong_imports(found):
    """The (source, target, where, _) edges that go upward or along a forbidden edge."""
    wrong = []
    for source, target, where, _ in found:
        a, b = layer(source), layer(target)
        if a != b and b != "" and (LAYERS.index(b) > LAYERS.index(a) or b in NEVER.get(a, ())):
            wrong.append(f"{where}: {a} imports {b}")
    return wrong


def test_modules_import_only_downward_and_never_along_forbidden_edges():
    wrong = wrong_imports(edges())
    assert not wrong, "\n".join(wrong)


def test_no_import_inside_a_function_outside_the_commands():
    inside = [f"{where}: {target}" for source, target, where, in_function in edges()
              if in_function and layer(source) != "commands"]
    assert not inside, "\n".join(inside)


def test_module_imports_have_no_cycle():
    graph = {}
    for source, target, _, _ in edges():
        graph.setdefault(source, set()).add(target)
    state = {}

    def visit(module, stack):
        state[module] = "open"
        for target in graph.get(module, ()):
            assert state.get(target) != "open", " -> ".join(stack + [module, target])
            if target not in state:
                visit(target, stack + [module])
        state[module] = "done"

    for module in list(graph):
        if module not in state:
            visit(module, [])


def test_the_check_fires_on_upward_and_forbidden_imports_only():
    upward = ("nnlandmark.geometry", "nnlandmark.inference.predictor", "geometry.py:1", False)
    forbidden = ("nnlandmark.dataset_conversion.convert", "nnlandmark.losses", "convert.py:2", False)
    fine = ("nnlandmark.trainers.validation", "nnlandmark.inference.predictor", "validation.py:3", False)
    same_layer = ("nnlandmark.evaluation.pipeline", "nnlandmark.evaluation.qc", "pipeline.py:4", False)
    assert wrong_imports([upward, forbidden, fine, same_layer]) == ["geometry.py:1: geometry imports inference",
                                                                    "convert.py:2: dataset_conversion imports losses"]
