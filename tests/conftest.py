"""Test-wide settings.

Under CI (CI=true) hypothesis runs derandomized: the same examples every run, so a submission
cannot fail on an example no earlier run tried. Developers' runs stay random and keep exploring;
what they find is saved in .hypothesis/ and replayed locally.
"""

from __future__ import annotations

import os

import pytest
from elasticsearch_server import cleanup, require_es, unique_prefix
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


@pytest.fixture(scope="module")
def server():
    """The Elasticsearch test server (see elasticsearch_server.require_es: skips locally, fails in CI)."""
    return require_es()


@pytest.fixture
def prefix(server, request):
    """An index prefix of the test's own, its indices and templates removed afterwards."""
    name = unique_prefix(request.node.name.split("[")[0][5:25].replace("_", "-"))
    yield name
    cleanup(server, name)
