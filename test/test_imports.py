"""The shape of il_ros's code, read with the AST.

No import cycle between its modules, no private name imported from another module, no file
over the size limit.

How the import graph is built (every ``import`` statement, at module level or inside a
function, since a lazy import is still a dependency):

- ``import il_ros.a.b`` is an edge to the module ``il_ros.a.b``;
- ``from il_ros.a import x`` is an edge to ``il_ros.a.x`` when that is a module, else to
  ``il_ros.a`` (the package ``__init__``, whose re-exports it reads);
- the parent packages that Python runs before a module (``il_ros.models/__init__`` before
  ``il_ros.models.policy``) are NOT edges: every package whose ``__init__`` re-exports its
  modules would otherwise be a cycle with each of them. A module that imports its own
  package's re-exports (``from il_ros.models import Policy`` inside ``il_ros.models``) names
  the ``__init__`` explicitly and closes a real cycle, which is caught.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'il_ros'

MAX_LINES = 450
LONG_FILES: dict[str, str] = {}
"""Files allowed past the limit, with the reason."""


def module_name(path: Path) -> str:
    """Return the dotted module name of a file under the repository root."""
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def all_modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Return {module name: file} for every module of ``package``."""
    return {module_name(p): p for p in sorted(package.rglob('*.py'))}


def _is_private(name: str) -> bool:
    return name.startswith('_') and not name.startswith('__')


def _package_of(module: str, path: Path) -> str:
    return module if path.name == '__init__.py' else module.rpartition('.')[0]


def _absolute(node: ast.ImportFrom, module: str, path: Path) -> str:
    if not node.level:
        return node.module or ''
    base = _package_of(module, path).split('.')
    base = base[:len(base) - node.level + 1]
    return '.'.join(base + ([node.module] if node.module else []))


def imports_of(source: str, module: str, path: Path, modules) -> list[tuple[str, int, str]]:
    """Return (imported module, line, imported name or '') for every il_ros import.

    ``modules``: the names of all modules, to tell ``from pkg import mod`` (an edge to the
    module) from ``from pkg import name`` (an edge to the package).
    """
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, '') for a in node.names
                    if a.name.split('.')[0] == 'il_ros']
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, path)
            if base.split('.')[0] != 'il_ros':
                continue
            for a in node.names:
                sub = f'{base}.{a.name}'
                out.append((sub, node.lineno, '') if sub in modules
                           else (base, node.lineno, a.name))
    return out


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Return {module: the il_ros modules it imports} (see the module doc)."""
    graph = {}
    for name, path in modules.items():
        deps = {dep for dep, _, _ in imports_of(path.read_text(), name, path, modules)}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return one cycle (a path a -> ... -> a) per strongly connected group of modules."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def connect(v):                                  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph, group: set[str]) -> list[str]:
    """A concrete cycle through the group's first module (breadth-first, shortest)."""
    start = min(group)
    paths, seen = [[start]], {start}
    while paths:
        nxt = []
        for p in paths:
            for w in sorted(graph[p[-1]] & group):
                if w == start:
                    return p + [start]
                if w not in seen:
                    seen.add(w)
                    nxt.append(p + [w])
        paths = nxt
    return sorted(group)


def private_imports(modules: dict[str, Path]) -> list[str]:
    """Return 'file:line: what' for each private name taken from another module.

    A private module (``il_ros/ros/_rec_auto.py``) may be imported by the modules of its own
    package; a private name (``_helper``) by no other module, neither by ``from m import
    _helper`` nor as ``m._helper`` on an imported module.
    """
    found = []
    for name, path in modules.items():
        rel = path.relative_to(ROOT)
        tree = ast.parse(path.read_text())
        own_package = _package_of(name, path)
        bound = {}                                   # local name -> imported il_ros module
        for dep, line, what in imports_of(path.read_text(), name, path, modules):
            parts = dep.split('.')
            for k, part in enumerate(parts):
                if _is_private(part) and '.'.join(parts[:k]) != own_package:
                    found.append(f'{rel}:{line}: imports the private module {dep}')
            if what and _is_private(what):
                found.append(f'{rel}:{line}: from {dep} import {what}')
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith('il_ros.') and a.asname:
                        bound[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    sub = f'{_absolute(node, name, path)}.{a.name}'
                    if sub in modules:
                        bound[a.asname or a.name] = sub
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                v = node.value
                if isinstance(v, ast.Name) and v.id in bound and bound[v.id] != name:
                    found.append(f'{rel}:{node.lineno}: {v.id}.{node.attr} '
                                 f'({bound[v.id]}.{node.attr})')
                elif isinstance(v, ast.Attribute) and ast.unparse(v).startswith('il_ros.') \
                        and ast.unparse(v) != name:
                    found.append(f'{rel}:{node.lineno}: {ast.unparse(node)}')
    return found


def test_no_import_cycle_between_modules():
    modules = all_modules()
    graph = import_graph(modules)
    assert len(graph) > 50 and graph['il_ros.models.checkpoint'] >= {'il_ros.models.builders'}
    cycles = find_cycles(graph)
    assert not cycles, 'import cycles:\n' + '\n'.join(' -> '.join(c) for c in cycles)


def test_cycle_finder_finds_a_lazy_cycle():
    """The check above can fail: a function-level import that closes a loop is a cycle."""
    tmp = {'il_ros.a': ROOT / 'il_ros/a.py', 'il_ros.b': ROOT / 'il_ros/b.py',
           'il_ros.pkg': ROOT / 'il_ros/pkg/__init__.py',
           'il_ros.pkg.c': ROOT / 'il_ros/pkg/c.py'}
    sources = {'il_ros.a': 'from il_ros import b\n',
               'il_ros.b': 'def f():\n    from il_ros.pkg.c import thing\n',
               'il_ros.pkg': 'from il_ros.pkg.c import thing\n',
               'il_ros.pkg.c': 'def g():\n    from il_ros.a import x\n'}
    graph = {m: {d for d, _, _ in imports_of(src, m, tmp[m], tmp)} for m, src in sources.items()}
    assert graph['il_ros.a'] == {'il_ros.b'} and graph['il_ros.pkg.c'] == {'il_ros.a'}
    assert find_cycles(graph) == [['il_ros.a', 'il_ros.b', 'il_ros.pkg.c', 'il_ros.a']]
    graph['il_ros.pkg.c'] = set()
    assert find_cycles(graph) == []              # the package __init__ is no implicit edge


def test_no_private_name_taken_from_another_module():
    found = private_imports(all_modules())
    assert not found, ('private names used across modules (make them public or move '
                       'them):\n' + '\n'.join(found))


def test_no_file_over_the_size_limit():
    too_long = []
    for path in sorted(PACKAGE.rglob('*.py')):
        rel = str(path.relative_to(ROOT))
        n = len(path.read_text().splitlines())
        if n > MAX_LINES and rel not in LONG_FILES:
            too_long.append(f'{rel}: {n} lines')
    assert not too_long, (f'files over {MAX_LINES} lines (split them, or add them to '
                          f'LONG_FILES with the reason):\n' + '\n'.join(too_long))
    stale = [f for f in LONG_FILES if not (ROOT / f).is_file()
             or len((ROOT / f).read_text().splitlines()) <= MAX_LINES]
    assert not stale, f'LONG_FILES entries no longer needed: {stale}'
