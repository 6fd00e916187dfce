"""What every benchmark does with its machine-readable result: `--json PATH` (or `-`)."""

from __future__ import annotations

import json


def write_json(doc: dict, target: str) -> None:
    """``doc`` as indented JSON to standard output (``-``) or to the file ``target``."""
    text = json.dumps(doc, indent=2)
    if target == "-":
        print(text)
    else:
        with open(target, "w") as f:
            f.write(text + "\n")
