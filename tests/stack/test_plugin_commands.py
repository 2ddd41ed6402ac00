"""Plugins add ``lamina`` commands and emulators through hooks; `lamina --help` lists a plugin's
command without importing it, and ``lamina emulate`` starts only the emulators a stack needs."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lamina.cli.main import main as lamina_main
from lamina.discovery import get_registry
from lamina.hookspecs import CommandInfo, hookimpl

RAN: list[str] = []


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("--loud", action="store_true")


def run(args: argparse.Namespace) -> int:
    RAN.append(args.name.upper() if args.loud else args.name)
    return 3


class GreeterPlugin:
    @hookimpl
    def lamina_cli_commands(self) -> list[CommandInfo]:
        return [CommandInfo(name="greet", help="greet someone (a plugin's command)", module=__name__)]


def test_a_plugin_command_is_listed_and_runs_with_its_own_options(
    lamina_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = GreeterPlugin()
    get_registry().pm.register(plugin, name="greeter")
    try:
        with pytest.raises(SystemExit):
            lamina_main(["--help"])
        assert "greet someone (a plugin's command)" in capsys.readouterr().out
        assert lamina_main(["greet", "ada", "--loud"]) == 3
        assert RAN == ["ADA"]
        with pytest.raises(SystemExit):
            lamina_main(["greet", "--help"])
        assert "--loud" in capsys.readouterr().out
    finally:
        get_registry().pm.unregister(plugin)


def test_the_plugins_emulators_name_the_adapters_they_serve(lamina_project: Path) -> None:
    offered = [e for found in get_registry().hook().lamina_emulators() for e in found]
    served = {pair: e.name for e in offered for pair in e.serves}
    assert served[("data", "snowflake")] == "snowflake"
    assert served[("compute", "sagemaker")] == "sagemaker"
    assert all(e.extra == "aws-emulator" for e in offered if e.name in ("s3", "sagemaker"))


def test_a_mixed_stack_starts_only_the_emulators_its_adapters_need(lamina_project: Path) -> None:
    pytest.importorskip("fakesnow")
    profile = lamina_project / "mixed.toml"
    profile.write_text(
        textwrap.dedent(
            """
            description = "Snowflake data, everything else local"
            [data]
            adapter = "snowflake"
            account = "${SNOWFLAKE_ACCOUNT}"
            user = "${SNOWFLAKE_USER}"
            password = "${SNOWFLAKE_PASSWORD}"
            database = "${SNOWFLAKE_DATABASE}"
            warehouse = "${SNOWFLAKE_WAREHOUSE}"
            host = "${SNOWFLAKE_HOST}"
            port = "${SNOWFLAKE_PORT}"
            protocol = "${SNOWFLAKE_PROTOCOL}"
            [compute]
            adapter = "local"
            [orchestration]
            adapter = "local"
            [versioning]
            adapter = "local"
            """
        )
    )
    assert lamina_main(["stack", "register", "mixed", "--file", str(profile)]) == 0
    probe = "import os; print(sorted(k for k in os.environ if k.startswith(('SNOWFLAKE_', 'AWS_ENDPOINT'))))"
    proc = subprocess.run(
        [sys.executable, "-m", "lamina", "emulate", "mixed", "--", sys.executable, "-c", probe],
        capture_output=True, text=True, timeout=180, cwd=lamina_project,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "(snowflake)" in proc.stderr and "stopped" in proc.stderr
    assert "SNOWFLAKE_PORT" in proc.stdout and "AWS_ENDPOINT_URL" not in proc.stdout, "moto was not needed"
