"""The built-in ``dask`` stack runs the corpus of flow shapes with the same results as ``local``.

Every run starts its own LocalCluster on 127.0.0.1 (the profile names no scheduler) and closes
it when the run ends, as a user's ``run --stack dask`` does.
"""

from __future__ import annotations

import pytest
from lamina.testing import StackSuite

pytest.importorskip("distributed")


@pytest.mark.slow
class TestDaskStack(StackSuite):
    @pytest.fixture
    def stack_name(self, monkeypatch: pytest.MonkeyPatch) -> str:
        monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)  # the profile's address
        return "dask"
