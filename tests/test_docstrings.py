"""Every public name documents its arguments and what it returns.

Public names: what ``neurofit.__all__`` exports (resolved through the package's lazy exports), the
reduction API (``OptNeuron``, ``Experiment``, ``Chunk``) and the recording readers (``read_recording``,
``Recording``, ``Sweep``, ``Step``, ``QCSettings``). Checked for each: functions; a class's constructor
(class docstring and ``__init__`` docstring read together); the public methods a class has from
neurofit (its own and those inherited from neurofit base classes). A docstring must exist, name every
parameter (not self/cls/*args/**kwargs) and, when the callable returns something, say what it
returns. Exception classes are left out.
"""
import ast
import importlib
import inspect
import re
import textwrap

import pytest

import neurofit

EXTRA = {"neurofit.reduction": ["OptNeuron", "Experiment", "Chunk"],
         "neurofit.data.recordings": ["read_recording", "Recording", "Sweep", "Step", "QCSettings"]}

RETURN_WORDS = ("Returns", "returns", "Return", "Yields", "yields", "→", "->")


def public_names() -> dict:
    """Public name -> (qualified name, object); the first module that exports an object names it."""
    found, seen = {}, set()
    sources = [("neurofit", list(neurofit.__all__))] + list(EXTRA.items())
    for module_name, names in sources:
        module = importlib.import_module(module_name)
        for name in names:
            obj = getattr(module, name)
            if id(obj) in seen or (inspect.isclass(obj) and issubclass(obj, BaseException)):
                continue
            seen.add(id(obj))
            found[name] = (f"{module_name}.{name}", obj)
    return found


def _from_neurofit(obj) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] == "neurofit"


def public_methods(cls) -> dict:
    """Method name -> function for the public methods ``cls`` has from neurofit classes (properties left out)."""
    methods = {}
    for klass in cls.__mro__:
        if not _from_neurofit(klass):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_") or name in methods:
                continue
            function = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
            if inspect.isfunction(function):
                methods[name] = function
    return methods


def cases() -> list:
    """(qualified name, kind, object) for every checked callable."""
    found = []
    for qualified, obj in public_names().values():
        if inspect.isclass(obj):
            found.append((qualified, "class", obj))
            for name, function in sorted(public_methods(obj).items()):
                found.append((f"{qualified}.{name}", "method", (obj, name, function)))
        elif callable(obj):
            found.append((qualified, "function", obj))
    return found


def _own_class_doc(cls) -> str:
    """The class's own docstring, '' when it has none (a dataclass's generated signature does not count)."""
    doc = inspect.cleandoc(vars(cls).get("__doc__") or "")
    if re.fullmatch(rf"{re.escape(cls.__name__)}\(.*\)", doc, flags=re.S):
        return ""
    return doc


def _init_doc(cls) -> str:
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            return inspect.cleandoc(vars(klass)["__init__"].__doc__ or "") if _from_neurofit(klass) else ""
    return ""


def _parameters(signature: inspect.Signature) -> list:
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in signature.parameters.values() if p.name not in ("self", "cls") and p.kind not in skip]


def returns_something(function) -> bool:
    """From the return annotation when there is one, otherwise from the source: a ``return value`` or a yield."""
    function = inspect.unwrap(function)
    annotation = inspect.signature(function).return_annotation
    if annotation is not inspect.Signature.empty:
        return annotation not in (None, "None", type(None))
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    nodes = list(ast.iter_child_nodes(tree.body[0]))
    while nodes:
        node = nodes.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            return True
        nodes.extend(ast.iter_child_nodes(node))
    return False


def problems(kind: str, obj) -> list:
    """What the docstring of one case lacks; empty when it is complete."""
    if kind == "class":
        doc = "\n".join(part for part in (_own_class_doc(obj), _init_doc(obj)) if part)
        signature, function = inspect.signature(obj), None
    else:
        function = obj[2] if kind == "method" else obj
        doc = inspect.getdoc(getattr(obj[0], obj[1]) if kind == "method" else obj) or ""
        signature = inspect.signature(inspect.unwrap(function))
    if not doc.strip():
        return ["no docstring"]
    found = []
    missing = [name for name in _parameters(signature) if not re.search(rf"(?<!\w){re.escape(name)}(?!\w)", doc)]
    if missing:
        found.append("parameters not documented: " + ", ".join(missing))
    if function is not None and returns_something(function) and not any(word in doc for word in RETURN_WORDS):
        found.append("return value not documented")
    return found


CASES = cases()


def test_the_public_names_are_collected():
    names = {qualified for qualified, kind, _ in CASES if kind != "method"}
    for expected in ("neurofit.Model", "neurofit.simulate", "neurofit.Inferencer", "neurofit.reduction.OptNeuron",
                     "neurofit.reduction.Experiment", "neurofit.reduction.Chunk", "neurofit.read_recording",
                     "neurofit.data.recordings.Step"):
        assert expected in names
    assert not any(qualified.endswith("Error") for qualified in names)


@pytest.mark.parametrize("qualified, kind, obj", CASES, ids=[case[0] for case in CASES])
def test_docstring_documents_parameters_and_return(qualified, kind, obj):
    found = problems(kind, obj)
    assert not found, f"{qualified}: " + "; ".join(found)
