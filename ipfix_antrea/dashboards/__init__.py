"""Kibana dashboards for the collector's documents, shipped with the package.

`KIBANA_NDJSON` is a Kibana 8.x/9.x saved-objects file (a data view for ``flow-*`` and the
dashboards, their visualizations and a saved search) to import through Kibana's saved-objects
import API. It is generated from the readable description in `ipfix_antrea.dashboards.build`
(``python -m ipfix_antrea.dashboards.build`` rewrites it); docs/visualization.md describes the
dashboards.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["KIBANA_NDJSON", "saved_objects"]

#: The saved-objects file, as installed with the package.
KIBANA_NDJSON: Path = Path(str(resources.files(__name__).joinpath("kibana.ndjson")))


def saved_objects() -> list[dict[str, Any]]:
    """The saved objects of `KIBANA_NDJSON`, one dict per line."""
    with KIBANA_NDJSON.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
