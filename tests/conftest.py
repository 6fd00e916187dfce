"""Test-wide settings.

Under CI (CI=true) hypothesis runs derandomized: the same examples every run, so a submission
cannot fail on an example no earlier run tried. Developers' runs stay random and keep exploring;
what they find is saved in .hypothesis/ and replayed locally.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")
