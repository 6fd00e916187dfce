"""The repository stands on its own: nothing in it points at files a user's clone does not have.

The project was built next to a reference folder (`shared/`: Antrea's old ELK files, registries, a
capture corpus, notes) that is not part of the repository. What the project needs from it is
copied in with its origin and licence (ipfix_antrea/data, tests/data), and docs and comments cite
the upstream source instead; a citation of the reference folder would send readers nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"/work/|(?<![\w.-])(?:\.\./)*shared/(?:docs|registry|corpus|antrea-elk|hooks)\b")
TEXT = {".py", ".md", ".go", ".json", ".toml", ".yaml", ".yml", ".sh", ".csv", ".txt", ".cfg", ".ndjson"}


def test_no_file_cites_the_reference_folder_outside_the_repository():
    cited = []
    for top in ("README.md", "CHANGELOG.md", "pyproject.toml", "docs", "ipfix_antrea", "benchmarks",
                "tests", ".ci"):
        root = REPO / top
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.suffix not in TEXT or "node_modules" in path.parts or path == Path(__file__):
                continue
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if OUTSIDE.search(line):
                    cited.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert cited == []
