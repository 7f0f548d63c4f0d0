"""How every benchmark ends: its result printed as JSON, and written to ``--json`` if given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report(result: dict[str, Any], json_path: Path | None) -> None:
    """Print ``result`` as indented JSON; also write it to ``json_path`` when one is given."""
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    if json_path is not None:
        json_path.write_text(text + "\n")
