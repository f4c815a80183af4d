"""Every test module's fixtures (tests/support/fixtures.py); helpers are imported from tests.support."""

from tests.support.browser import browser  # noqa: F401  (the Chromium of the page tests)
from tests.support.fixtures import (  # noqa: F401  fixtures pytest finds by name
    fake_vertex,
    gcs_emulator,
    isolated_store,
    repo_copy,
    reproduced_sample,
)
