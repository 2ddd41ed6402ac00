"""Data-layer tests: pytest's assertion messages inside the shared conformance suite."""

import pytest

pytest.register_assert_rewrite("lamina.testing.data_suite")
