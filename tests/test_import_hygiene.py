"""``import lamina``, listing adapters and ``lamina stack list`` never load a cloud SDK or a heavy library.

Each check runs in a fresh interpreter so that nothing another test imported can hide or fake
an import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "boto3",
    "botocore",
    "snowflake",
    "google",
    "azure",
    "sagemaker",
    "dask",
    "distributed",
    "ray",
    "duckdb",
    "pandas",
    "sklearn",
    "torch",
    "sqlalchemy",
    "psycopg",
    "pymysql",
    "adbc_driver_postgresql",
    "adbc_driver_manager",
    "connectorx",
    "starlette",
    "uvicorn",
)

PROBE = """
import contextlib, io, json, sys

heavy = set(sys.argv[1].split(","))
import lamina
import lamina.cli.main
import lamina.discovery

adapters = lamina.discovery.get_registry().adapters()
with contextlib.redirect_stdout(io.StringIO()) as listing:
    status = lamina.cli.main.main(["stack", "list"])
loaded = sorted(
    name for name in sys.modules if name.split(".")[0] in heavy or name == "lamina.ui" or name.startswith("lamina.ui.")
)
print(json.dumps({"status": status, "adapters": len(adapters), "listing": listing.getvalue(), "loaded": loaded}))
"""


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """No Lamina settings from the caller; the user's configuration in a temporary folder."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LAMINA_")}
    env["LAMINA_CONFIG_DIR"] = str(tmp_path / "user-config")
    return env


def test_importing_listing_adapters_and_listing_stacks_load_no_heavy_module(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(HEAVY)],
        cwd=tmp_path,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["status"] == 0
    assert found["adapters"] > 0
    assert "local" in found["listing"]
    offenders = found["loaded"]
    assert not offenders, (
        "these modules were imported by `import lamina`, the adapter registry or `lamina stack list`; "
        f"import them lazily, where the adapter needs them: {', '.join(offenders)}"
    )


def test_the_cli_start_up_and_its_help_never_load_the_ui(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """``lamina ui`` is an optional extra: only running that command may import it."""
    probe = (
        "import contextlib, io, json, sys\n"
        "import lamina.cli.main\n"
        "for argv in (['--help'], ['ui', '--help'], ['runs', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        lamina.cli.main.main(argv)\n"
        "print(json.dumps(sorted(n for n in sys.modules if n.startswith(('lamina.ui', 'starlette', 'uvicorn')))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=clean_env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [], "the CLI's start-up imported the UI"


def test_lamina_help_exits_0(tmp_path: Path, clean_env: dict[str, str]) -> None:
    script = Path(sys.executable).with_name("lamina")
    assert script.exists(), f"the lamina command is not installed beside {sys.executable}"
    result = subprocess.run(
        [str(script), "--help"], cwd=tmp_path, env=clean_env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: lamina")
    for command in ("stack", "plugins", "runs", "show", "ui"):
        assert command in result.stdout
