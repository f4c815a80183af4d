"""Every test module's fixtures (tests/support/fixtures.py); helpers are imported from tests.support."""

from tests.support.browser import browser  # noqa: F401  (the Chromium of the page tests)
from tests.support.fixtures import (  # noqa: F401  fixtures pytest finds by name
    fake_openai,
    fake_vertex,
    gcs_emulator,
    golden_sample,
    isolated_store,
    many_clips_copy,
    repo_copy,
    reproduced_copy,
    reproduced_sample,
)

# Tests that drive DVC in a repository of their own take seconds each, the rest milliseconds. Started first, the
# longest modules first, they spread over the pytest-xdist workers (one test at a time: --maxschedchunk 1) while the
# short ones fill the gaps, instead of the run ending on one long test started last. Within a module, tests that do
# not need the reproduced sample come first: they run while one worker reproduces it and the others would wait.
_REPOSITORY_FIXTURES = {"reproduced_copy", "repo_copy", "vertex_repo", "golden_sample", "many_clips_copy"}
_SAMPLE_FIXTURES = {"reproduced_copy", "reproduced_sample", "vertex_repo", "golden_sample"}
_LONGEST_MODULES_FIRST = ("tests/pipeline/test_real_run.py", "tests/pipeline/test_paid_work.py",
                          "tests/pipeline/test_remotes.py", "tests/gemini/test_vertex.py",
                          "tests/pipeline/test_pipeline.py", "tests/pipeline/test_presets.py",
                          "tests/clips/test_engines.py")  # a Ray cluster's tests: one at a time, seconds each


def pytest_collection_modifyitems(items):
    def fixtures(item) -> set[str]:
        return set(getattr(item, "fixturenames", ()))

    def drives_dvc(item) -> bool:
        return ("tests/pipeline/" in item.nodeid or bool(_REPOSITORY_FIXTURES & fixtures(item))
                or item.nodeid.split("::", 1)[0] in _LONGEST_MODULES_FIRST)

    def module_rank(item) -> int:
        module = item.nodeid.split("::", 1)[0]
        return _LONGEST_MODULES_FIRST.index(module) if module in _LONGEST_MODULES_FIRST else len(_LONGEST_MODULES_FIRST)

    def order(item) -> tuple:
        if not drives_dvc(item):
            return (1,)
        return (0, module_rank(item), bool(_SAMPLE_FIXTURES & fixtures(item)))

    items.sort(key=order)  # stable: tests of one rank keep their collection order
