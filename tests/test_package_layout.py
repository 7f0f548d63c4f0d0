"""Each package is what its documentation says: the modules its docstring lists are exactly the
ones it has, its ``__all__`` names things that exist, and the instrumentation's public API is
documented in the README. A newcomer follows ``docs/ARCHITECTURE.md`` → package docstring →
module, so neither hop may point at something that moved."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / d / "src" for d in ("instrumentation", "collector_processor", "incident_engine", "dashboard")]
#: Modules every distribution has that are plumbing, not a place where behaviour lives.
PLUMBING = {"version", "__main__"}


def _packages() -> list[tuple[str, Path]]:
    found = []
    for source in SOURCES:
        for init in sorted(source.rglob("__init__.py")):
            found.append((".".join(init.parent.relative_to(source).parts), init.parent))
    return found


PACKAGES = _packages()


def _parts(directory: Path) -> set[str]:
    modules = {p.stem for p in directory.glob("*.py") if not p.stem.startswith("_")}
    packages = {p.name for p in directory.iterdir() if (p / "__init__.py").exists()}
    return (modules | packages) - PLUMBING


def test_every_distribution_has_its_packages() -> None:
    names = {name for name, _ in PACKAGES}
    for room in ("model", "detection", "incidents", "delivery", "sources", "api"):
        assert f"fulfillwatch.incident_engine.{room}" in names


@pytest.mark.parametrize(("name", "directory"), PACKAGES, ids=[name for name, _ in PACKAGES])
def test_the_docstring_lists_exactly_the_packages_modules(name: str, directory: Path) -> None:
    package = importlib.import_module(name)
    doc = package.__doc__ or ""
    assert doc.strip(), f"{name} has no docstring"
    if name == "fulfillwatch.instrumentation":
        return  # a user's guide, not a map: its public API is checked against the README below
    listed = set(re.findall(r":mod:`\.(\w+)`", doc))
    assert listed == _parts(directory), f"{name}: documented {sorted(listed)}, present {sorted(_parts(directory))}"


@pytest.mark.parametrize(("name", "directory"), PACKAGES, ids=[name for name, _ in PACKAGES])
def test_all_names_what_exists(name: str, directory: Path) -> None:
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    for entry in exported:
        assert hasattr(package, entry) or importlib.util.find_spec(f"{name}.{entry}"), f"{name}.{entry}"
    if name.count(".") == 2 and name.startswith("fulfillwatch.incident_engine."):
        modules = _parts(directory)
        if name != "fulfillwatch.incident_engine.api":  # the API package exports its app factory
            assert set(exported) == modules, f"{name}: __all__ {sorted(exported)} vs modules {sorted(modules)}"


def test_the_instrumentation_api_is_documented_in_the_readme() -> None:
    import fulfillwatch.instrumentation as fw

    readme = (ROOT / "README.md").read_text()
    undocumented = [name for name in fw.__all__ if f"`{name}" not in readme]
    assert not undocumented, f"public but not in README.md: {undocumented}"
