"""What customers install: the instrumentation alone, and the namespace layout."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Server-side packages that must never reach a customer's app through the instrumentation.
FORBIDDEN = {"fastapi", "starlette", "uvicorn", "clickhouse-connect", "chdb", "chdb-core", "streamlit", "pyarrow"}


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@pytest.fixture(scope="module")
def customer_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only ``pip install ./instrumentation`` in it."""
    directory = tmp_path_factory.mktemp("customer") / "venv"
    venv.create(directory, with_pip=True)
    python = directory / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT / "instrumentation")],
        check=True,
        timeout=600,
    )
    return python


def test_the_instrumentation_installs_no_server_packages(customer_venv: Path) -> None:
    listed = subprocess.run(
        [str(customer_venv), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
        check=True,
        capture_output=True,
        text=True,
    )
    installed = {_normalise(package["name"]) for package in json.loads(listed.stdout)}
    assert "fulfillwatch-instrumentation" in installed
    assert "opentelemetry-api" in installed
    assert installed & FORBIDDEN == set()


def test_the_installed_instrumentation_works_and_owns_only_its_namespace(customer_venv: Path) -> None:
    script = (
        "import fulfillwatch, fulfillwatch.instrumentation as fw, os\n"
        "os.environ['OTEL_TRACES_EXPORTER'] = 'none'\n"
        "fw.init(service_name='customer')\n"
        "h = fw.record_receipt('evt_1', event_type='invoice.paid')\n"
        "with fw.fulfillment('evt_1', receipt=h.carrier()): pass\n"
        "print(getattr(fulfillwatch, '__file__', None), sorted(fulfillwatch.__path__))\n"
    )
    done = subprocess.run([str(customer_venv), "-c", script], check=True, capture_output=True, text=True)
    file, _ = done.stdout.split(" ", 1)
    assert file == "None"  # a PEP 420 namespace: no fulfillwatch/__init__.py to clash with
    site = Path(
        subprocess.run(
            [str(customer_venv), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    top_level = {p.name for p in site.iterdir() if p.is_dir() and not p.name.endswith((".dist-info", "__pycache__"))}
    assert "instrumentation" not in top_level and "dashboard" not in top_level


def test_the_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    [entry] = [ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.name == "fulfillwatch_celery"]
    assert entry.value == "fulfillwatch.instrumentation.celery:CeleryFulfillmentInstrumentor"
    assert entry.load().__name__ == "CeleryFulfillmentInstrumentor"
    from importlib.metadata import distribution

    requires = distribution("fulfillwatch-instrumentation").requires or []
    assert any(r.startswith("celery") and "extra == 'instruments'" in r.replace('"', "'") for r in requires)


def test_the_vocabulary_module_is_standard_library_only() -> None:
    vocabulary = ROOT / "instrumentation/src/fulfillwatch/instrumentation/vocabulary.py"
    code = (
        "import sys; before = set(sys.modules)\n"
        "import importlib.util, pathlib\n"
        f"spec = importlib.util.spec_from_file_location('vocab', {str(vocabulary)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in sys.stdlib_module_names))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert done.stdout.strip() in ("[]", "['vocab']")


def test_the_cli_makes_secrets_and_api_keys_the_config_accepts() -> None:
    from fulfillwatch.collector_processor.ingest_auth import hash_api_key
    from fulfillwatch.incident_engine.config import check_signing_secret

    secret = subprocess.run(
        [sys.executable, "-m", "fulfillwatch.incident_engine", "new-secret"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert check_signing_secret(secret) == secret
    made = subprocess.run(
        [sys.executable, "-m", "fulfillwatch.incident_engine", "new-api-key", "--project", "shop", "--service", "web"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    key = made.split(": ", 1)[1].split()[0]
    assert f'[ingest_keys."shop"]\nsha256 = "{hash_api_key(key)}"\nprojects = ["shop"]' in made
    assert '[projects."shop"]\nservices = ["web"]' in made
    made = subprocess.run(
        [sys.executable, "-m", "fulfillwatch.incident_engine", "new-api-token", "oncall", "--scope", "operate"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    token = made.split(": ", 1)[1].split()[0]
    assert f'[api_tokens."oncall"]\nsha256 = "{hash_api_key(token)}"\nscopes = ["operate"]' in made
