import sys
from pathlib import Path

# The reference implementation in tests/ is imported by name from test modules in sub-folders.
sys.path.insert(0, str(Path(__file__).parent))


import pytest  # noqa: E402

from tiny import tiny_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def pipe():
    """A tiny random SynCamMaster pipeline without progress bars, one per test module."""
    pipeline = tiny_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
