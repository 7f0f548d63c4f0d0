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


ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"


def test_architecture_maps_each_behaviour_to_its_package() -> None:
    text = ARCHITECTURE.read_text()
    table = text.split("## Where each behaviour lives", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    for behaviour in ("ingest", "detection", "lifecycle", "reprocess", "alerts", "API", "dashboard"):
        assert any(behaviour in row.split("|")[1] for row in rows), f"no row for {behaviour}"
    for room in ("model", "detection", "incidents", "delivery", "sources", "api"):
        assert f"incident_engine.{room}" in table, f"incident_engine.{room} is not in the table"


def test_every_file_the_docs_cite_exists() -> None:
    # Backticked paths in docs/*.md (`incidents/log_reads.py`, `examples/demo.py`): each must be
    # the end of a file in the repository, so a reader never follows a reference into nothing.
    files = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
    cited_as_absent = {"fulfillwatch/__init__.py"}  # "no fulfillwatch/__init__.py anywhere" (PEP 420)
    missing = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for cited in sorted(set(re.findall(r"`([\w./-]+\.(?:py|yaml|yml|toml|md|sh))`", doc.read_text()))):
            if cited not in cited_as_absent and not any(f == cited or f.endswith("/" + cited) for f in files):
                missing.append(f"{doc.name}: {cited}")
    assert not missing, missing
