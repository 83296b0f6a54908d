"""The house rules of server/: every package says what it is for, and no module imports, at any
depth and even from inside a function, a module that imports it back."""
import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[1] / "server"


def _module_name(path):
    parts = path.relative_to(SERVER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(p): p for p in SERVER.rglob("*.py")}


def _resolve(name, modules):
    """The server module an import of `name` loads last (None outside server/)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph():
    """{module: {modules it imports}}, imports inside functions included. A package's own
    __init__, which Python runs before any of its modules, is not an edge: only what is written."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                found = _resolve(target, modules)
                if found and found != name:
                    edges.add(found)
        graph[name] = edges
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_server_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", sorted(p.parent.name for p in SERVER.glob("*/__init__.py")))
def test_every_package_names_its_one_job(package):
    doc = ast.get_docstring(ast.parse((SERVER / package / "__init__.py").read_text()))
    assert doc and len(doc) > 40, f"server/{package}/__init__.py needs a docstring saying what the package is for"


def test_server_top_level_stays_small():
    top = sorted(p.name for p in SERVER.glob("*.py"))
    assert len(top) <= 8, f"group these into packages by concern: {top}"


SERVERS = ("gunicorn", "uvicorn", "uvicorn_worker", "a2wsgi", "httptools", "werkzeug.serving")


def _imports_of_servers():
    """(file, line, dotted name) of every name imported from an HTTP server package."""
    found = []
    for path in SERVER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            found += [(path.name, node.lineno, name) for name in names
                      if any(name == server or name.startswith(server + ".") for server in SERVERS)]
    return found


def test_no_private_name_of_an_http_server_is_imported():
    """Only what the servers publish: no `_name` anywhere in an imported path (such names change
    without notice, and patching one pinned gunicorn below 28)."""
    imported = _imports_of_servers()
    assert any(name.startswith("uvicorn_worker.") for _, _, name in imported)  # the check sees our imports
    private = [(f, line, name) for f, line, name in imported if any(part.startswith("_") for part in name.split("."))]
    assert private == []


def test_no_module_of_ours_speaks_http_on_a_socket():
    """Parsing HTTP is the server's job: no asyncio protocol, no socket reads in server/."""
    offenders = []
    for path in SERVER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and node.name in ("data_received", "buffer_updated", "get_buffer"):
                offenders.append((path.name, node.name))
            if isinstance(node, ast.Attribute) and node.attr in ("recv", "recv_into", "Protocol", "BufferedProtocol"):
                offenders.append((path.name, node.attr))
    assert offenders == []


def test_no_module_keeps_a_cache_of_its_own():
    """State that outlives a request lives in server/cache.py's caches (each saying what
    invalidates it): no module-level dict, list or set that starts empty to be filled later."""
    empty = (ast.Dict, ast.List, ast.Set)
    offenders = []
    for path in SERVER.rglob("*.py"):
        for node in ast.parse(path.read_text(), str(path)).body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if isinstance(value, empty) and not getattr(value, "keys", getattr(value, "elts", None)):
                offenders.append((path.name, node.lineno))
            if isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", "")) in (
                    "dict", "list", "set", "OrderedDict", "defaultdict", "WeakValueDictionary") and not value.args:
                offenders.append((path.name, node.lineno))
    assert offenders == []
