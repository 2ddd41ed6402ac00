"""Maps the source folders onto one import package.

The package list is computed from the tree so that a new subpackage can never be dropped
from the wheel by a forgotten entry (tests/test_packaging.py checks the built wheel too).
"""

from setuptools import find_packages, setup


def _packages() -> list[str]:
    found = ["lamina", "lamina.plugins", "lamina.stacks"]
    found += [f"lamina.{name}" for name in find_packages("core")]
    found += [f"lamina.plugins.{name}" for name in find_packages("plugins")]
    return found


setup(packages=_packages())
