"""One public surface per subpackage: `__init__` re-exports, others import only from it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("package", ["propdev.actors", "propdev.supervision"])
def test_the_public_names_are_a_tuple_and_all_importable(package: str) -> None:
    module = importlib.import_module(package)
    assert isinstance(module.__all__, tuple)
    assert list(module.__all__) == sorted(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_the_actor_api_other_code_relies_on_is_exported() -> None:
    from propdev import actors, supervision

    for name in ("Actor", "ActorSystem", "Address", "ActorError", "AskTimeout", "MailboxFull"):
        assert name in actors.__all__
    assert "ActorStoppedError" in actors.__all__
    for name in (
        "RestartStrategy",
        "Restart",
        "ChildSpec",
        "Supervisor",
        "RestartIntensity",
        "restart_scope",
        "EscalationError",
    ):
        assert name in supervision.__all__


@pytest.mark.parametrize(
    ("package", "other"), [("actors", "propdev.supervision"), ("supervision", "propdev.actors")]
)
def test_a_subpackage_imports_the_other_only_through_its_init(package: str, other: str) -> None:
    for path in (ROOT / "propdev" / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(other):
                assert node.module == other, f"{path.name} imports {node.module}"


def test_supervision_does_not_depend_on_the_actor_runtime() -> None:
    for path in (ROOT / "propdev" / "supervision").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("propdev.actors"), path.name


def test_errors_inherit_what_callers_catch() -> None:
    from propdev.actors import ActorError, AskTimeout, UnknownActorError

    assert issubclass(AskTimeout, TimeoutError)
    assert issubclass(UnknownActorError, KeyError)
    assert issubclass(UnknownActorError, ActorError)
    assert str(UnknownActorError("no device:1")) == "no device:1"
