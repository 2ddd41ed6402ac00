"""``lamina stack list | show | use | register | remove | check``, as a user sees them.

Every test runs the real command in a subprocess, in a throwaway project, with
``LAMINA_CONFIG_DIR`` pointing at a temporary directory so the user's own configuration is never
read or written.
"""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest
from stack_helpers import Cli, assert_user_error, profile_text, write_profile

FLOW = textwrap.dedent(
    """
    from lamina import FlowSpec, step


    class HelloFlow(FlowSpec):
        @step
        def start(self):
            self.greeting = "hello"
            self.next(self.end)

        @step
        def end(self):
            print(self.greeting)


    if __name__ == "__main__":
        HelloFlow()
    """
)


def local_copy(description: str) -> str:
    return profile_text(head=f'description = "{description}"\n')


def stack_line(proc) -> str:
    return proc.stdout.splitlines()[0]


# -- list, show -------------------------------------------------------------------------------------


def test_list_marks_the_stack_in_use_and_which_stacks_lack_adapters(cli: Cli) -> None:
    proc = cli("stack", "list")
    assert proc.returncode == 0, proc.stderr
    rows = {
        line.split()[1] if line.startswith("*") else line.split()[0]: line
        for line in proc.stdout.splitlines()[2:]
    }
    assert {"local", "aws-sagemaker", "gcp-vertex", "azure-ml"} <= set(rows)
    assert rows["local"].startswith("*") and "ready" in rows["local"]
    assert "adapters missing" in rows["gcp-vertex"] and not rows["gcp-vertex"].startswith("*")


def test_show_says_which_adapters_are_not_available_and_why(cli: Cli) -> None:
    proc = cli("stack", "show", "gcp-vertex")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for adapter in ("bigquery", "vertex", "vertex-pipelines"):
        assert f"] {adapter}  NOT AVAILABLE: planned for the gcp-vertex stack" in out
    assert "] gcs  ok: installed" in out or "] gcs  NOT AVAILABLE: needs google.cloud.storage" in out
    # settings are shown as written: environment references are not resolved (no secrets leak)
    assert "'${GOOGLE_CLOUD_PROJECT}'" in out


def test_show_json_lists_every_layer_with_its_status(cli: Cli) -> None:
    import json

    proc = cli("stack", "show", "local", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["name"] == "local"
    assert {layer: v["adapter"] for layer, v in shown["layers"].items()} == {
        "data": "duckdb",
        "compute": "local",
        "orchestration": "local",
        "versioning": "local",
    }
    assert all(v["available"] for v in shown["layers"].values())


# -- use and which stack runs -----------------------------------------------------------------------


def test_use_switches_to_a_stack_whose_adapters_are_missing_and_says_what_is_missing(cli: Cli) -> None:
    proc = cli("stack", "use", "gcp-vertex")
    assert proc.returncode == 0, proc.stderr
    for layer, adapter in (
        ("data", "bigquery"),
        ("compute", "vertex"),
        ("orchestration", "vertex-pipelines"),
    ):
        assert f"the {layer} adapter '{adapter}' is not available" in proc.stdout
    config = cli.project / ".lamina" / "config.toml"
    assert tomllib.loads(config.read_text())["stack"] == "gcp-vertex"
    assert not (cli.config_dir / "config.toml").exists()

    shown = cli("stack", "show")
    assert stack_line(shown).startswith("stack gcp-vertex")
    assert f"selected by: {config}" in shown.stdout

    # ...and a run on it fails before anything runs, saying what is missing
    (cli.project / "flow.py").write_text(FLOW)
    assert_user_error(cli.flow(cli.project / "flow.py", "run"), "bigquery", "not available")


def test_use_unknown_stack_is_refused_and_lists_known_stacks(cli: Cli) -> None:
    err = assert_user_error(cli("stack", "use", "nope"), "no stack named 'nope'", "local", "gcp-vertex")
    assert "register" in err
    assert not (cli.project / ".lamina" / "config.toml").exists()


def test_use_refuses_a_malformed_profile_but_not_one_whose_plugin_is_not_installed(cli: Cli) -> None:
    path = write_profile(cli.project_stacks, "typo", profile_text(data='adapter = "duckdb"\nthreds = 2\n'))
    assert_user_error(cli("stack", "use", "typo"), str(path), "[data]", "unknown key 'threds'")
    assert not (cli.project / ".lamina" / "config.toml").exists()

    write_profile(cli.project_stacks, "later", profile_text(data='adapter = "acme-warehouse"\n'))
    proc = cli("stack", "use", "later")
    assert proc.returncode == 0, proc.stderr
    assert "the data adapter 'acme-warehouse' is not available: unknown data adapter" in proc.stdout


def test_use_user_keeps_the_rest_of_the_user_config(cli: Cli) -> None:
    cli.config_dir.mkdir(parents=True)
    config = cli.config_dir / "config.toml"
    config.write_text('# my settings\nstack = "gcp-vertex"\n\n[ui]\ncolor = false\n')
    proc = cli("stack", "use", "local", "--user")
    assert proc.returncode == 0, proc.stderr
    text = config.read_text()
    assert tomllib.loads(text) == {"stack": "local", "ui": {"color": False}}
    assert "# my settings" in text
    assert not (cli.project / ".lamina" / "config.toml").exists()


@pytest.fixture
def four_levels(cli: Cli) -> Cli:
    """A stack chosen at each level: user config, project config, ``LAMINA_STACK``, ``--stack``."""
    for name in ("by-user", "by-project", "by-env", "by-flag"):
        write_profile(cli.project_stacks, name, local_copy(name))
    cli.config_dir.mkdir(parents=True)
    (cli.config_dir / "config.toml").write_text('stack = "by-user"\n')
    (cli.project / ".lamina" / "config.toml").write_text('stack = "by-project"\n')
    return cli


def test_stack_flag_wins_over_everything(four_levels: Cli) -> None:
    cli = four_levels
    (cli.project / "flow.py").write_text(FLOW)
    proc = cli.flow(cli.project / "flow.py", "check", "--stack", "by-flag", env={"LAMINA_STACK": "by-env"})
    assert proc.returncode == 0, proc.stderr
    assert "on stack by-flag" in proc.stdout


def test_lamina_stack_env_wins_over_config_files(four_levels: Cli) -> None:
    proc = four_levels("stack", "show", env={"LAMINA_STACK": "by-env"})
    assert proc.returncode == 0, proc.stderr
    assert stack_line(proc).startswith("stack by-env")
    assert "selected by: LAMINA_STACK" in proc.stdout


def test_project_config_wins_over_user_config(four_levels: Cli) -> None:
    proc = four_levels("stack", "show")
    assert stack_line(proc).startswith("stack by-project")
    assert f"selected by: {four_levels.project / '.lamina' / 'config.toml'}" in proc.stdout


def test_user_config_wins_over_the_default(four_levels: Cli) -> None:
    (four_levels.project / ".lamina" / "config.toml").unlink()
    proc = four_levels("stack", "show")
    assert stack_line(proc).startswith("stack by-user")
    assert f"selected by: {four_levels.config_dir / 'config.toml'}" in proc.stdout


def test_local_is_the_default(cli: Cli) -> None:
    proc = cli("stack", "show")
    assert stack_line(proc).startswith("stack local")
    assert "selected by: default" in proc.stdout


def test_a_stack_found_from_a_subdirectory_of_the_project(four_levels: Cli) -> None:
    sub = four_levels.project / "notebooks" / "deep"
    sub.mkdir(parents=True)
    proc = four_levels("stack", "show", cwd=sub)
    assert stack_line(proc).startswith("stack by-project")


def test_a_selected_stack_that_no_longer_exists_says_who_selected_it(cli: Cli) -> None:
    (cli.project / ".lamina" / "config.toml").write_text('stack = "gone"\n')
    assert_user_error(
        cli("stack", "show"), "no stack named 'gone'", str(cli.project / ".lamina" / "config.toml")
    )


# -- register, remove, and where profiles come from -------------------------------------------------


def test_project_profiles_override_user_ones_which_override_builtin_ones(cli: Cli, tmp_path: Path) -> None:
    user_file = write_profile(tmp_path, "mine-user", local_copy("the user's local"))
    project_file = write_profile(tmp_path, "mine-project", local_copy("the project's local"))

    proc = cli("stack", "register", "local", "--file", str(user_file), "--user")
    assert proc.returncode == 0, proc.stderr
    assert (cli.user_stacks / "local.toml").is_file()
    assert "overrides the builtin stack" in proc.stdout
    assert "the user's local" in cli("stack", "show", "local").stdout

    proc = cli("stack", "register", "local", "--file", str(project_file))
    assert proc.returncode == 0, proc.stderr
    assert (cli.project_stacks / "local.toml").is_file()
    assert "overrides the user stack" in proc.stdout
    shown = cli("stack", "show", "local").stdout
    assert "the project's local" in shown and str(cli.project_stacks / "local.toml") in shown
    listed = [line for line in cli("stack", "list").stdout.splitlines() if " local " in line]
    assert len(listed) == 1 and " project " in listed[0]

    proc = cli("stack", "remove", "local")
    assert proc.returncode == 0, proc.stderr
    assert "the user stack of that name is used again" in proc.stdout
    assert "the user's local" in cli("stack", "show", "local").stdout

    assert cli("stack", "remove", "local").returncode == 0
    assert "stacks/local.toml" in cli("stack", "show", "local").stdout.splitlines()[0]
    assert_user_error(cli("stack", "remove", "local"), "ships with a plugin")


def test_register_then_use_then_remove_a_project_stack(cli: Cli, tmp_path: Path) -> None:
    source = write_profile(tmp_path, "src", local_copy("team warehouse"))
    proc = cli("stack", "register", "team", "--file", str(source))
    assert proc.returncode == 0, proc.stderr
    assert f"registered stack team ({cli.project_stacks / 'team.toml'})" in proc.stdout
    assert cli("stack", "use", "team").returncode == 0
    assert "* " in next(line for line in cli("stack", "list").stdout.splitlines() if " team " in line)

    proc = cli("stack", "remove", "team")
    assert proc.returncode == 0, proc.stderr
    assert "still selects it" in proc.stdout  # the project config still names it: say so
    assert_user_error(cli("stack", "remove", "team"), "no registered stack named 'team'")


def test_register_refuses_a_bad_name_and_a_missing_file(cli: Cli, tmp_path: Path) -> None:
    assert_user_error(cli("stack", "register", "../evil", "--file", "x.toml"), "not a valid stack name")
    assert_user_error(
        cli("stack", "register", "ok", "--file", str(tmp_path / "absent.toml")), "absent.toml", "no such file"
    )
    assert not cli.project_stacks.exists()


def test_register_accepts_a_stack_whose_adapters_are_not_installed_yet(cli: Cli, tmp_path: Path) -> None:
    source = write_profile(
        tmp_path,
        "mixed",
        profile_text(data='adapter = "bigquery"\nproject = "${GOOGLE_CLOUD_PROJECT}"\n'),
    )
    proc = cli("stack", "register", "mixed", "--file", str(source))
    assert proc.returncode == 0, proc.stderr
    assert "the data adapter 'bigquery' is not available" in proc.stdout


# -- check -------------------------------------------------------------------------------------------


def test_check_local_probes_every_layer(cli: Cli) -> None:
    proc = cli("stack", "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for layer in ("data", "compute", "orchestration", "versioning"):
        assert any(line.split()[:2] == ["ok", layer] for line in proc.stdout.splitlines())
    assert "all layers ok" in proc.stdout


def test_check_gives_a_verdict_per_layer_when_adapters_are_missing(cli: Cli) -> None:
    proc = cli("stack", "check", "gcp-vertex")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    fails = [line for line in proc.stdout.splitlines() if line.strip().startswith("FAIL")]
    assert len(fails) == 4
    assert any("bigquery" in line and "not available" in line for line in fails)
    assert "4 layer(s) failed" in proc.stdout


def test_check_reports_an_unset_variable_on_its_layer_only(cli: Cli) -> None:
    write_profile(
        cli.project_stacks, "envy", profile_text(data='adapter = "duckdb"\ndatabase = "${LAMINA_T_DB}"\n')
    )
    proc = cli("stack", "check", "envy")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    data = next(line for line in lines if " data " in line)
    assert data.strip().startswith("FAIL") and "LAMINA_T_DB" in data
    assert sum(line.strip().startswith("ok") for line in lines) == 3


# -- malformed profiles ------------------------------------------------------------------------------

MALFORMED = {
    "bad-toml": ('[data\nadapter = "duckdb"\n', ["not valid TOML", "line 1"]),
    "top-key": (
        'colour = "blue"\n' + profile_text(),
        ["unknown top-level key 'colour'"],
    ),
    "adapter-key": (
        profile_text(data='adapter = "duckdb"\ndatabse = "x.duckdb"\n'),
        ["[data]", "unknown key 'databse'", "did you mean 'database'"],
    ),
    "wrong-type": (
        profile_text(data='adapter = "duckdb"\nthreads = "four"\n'),
        ["[data]", "'threads'", "'four'"],
    ),
    "unknown-adapter": (
        profile_text(data='adapter = "nosuch"\n'),
        ["[data]", "'adapter'", "unknown data adapter 'nosuch'", "Installed data adapters: duckdb"],
    ),
    "missing-layer": (
        profile_text(rest='[compute]\nadapter = "local"\n[orchestration]\nadapter = "local"\n'),
        ["[versioning] is missing"],
    ),
    "literal-secret": (
        profile_text(data='adapter = "duckdb"\npassword = "hunter2"\n'),
        ["[data]", "'password'", "literal secret", "${PASSWORD}"],
    ),
    "bad-option": (
        profile_text(head="[options]\ntrace = 'loud'\n"),
        ["[options]", "'trace'", "'loud'"],
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_register_reports_a_malformed_profile(cli: Cli, tmp_path: Path, case: str) -> None:
    text, needles = MALFORMED[case]
    source = write_profile(tmp_path, case, text)
    err = assert_user_error(cli("stack", "register", case, "--file", str(source)), str(source), *needles)
    assert "hunter2" not in err
    assert not (cli.project_stacks / f"{case}.toml").exists()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_show_reports_a_malformed_profile(cli: Cli, case: str) -> None:
    text, needles = MALFORMED[case]
    path = write_profile(cli.project_stacks, case, text)
    assert_user_error(cli("stack", "show", case), str(path), *needles)


def test_list_marks_malformed_profiles_invalid_and_keeps_working(cli: Cli) -> None:
    for case, (text, _) in MALFORMED.items():
        write_profile(cli.project_stacks, case, text)
    listed = cli("stack", "list")
    assert listed.returncode == 0, listed.stderr
    status = {line.split()[0]: line for line in listed.stdout.splitlines()[2:] if not line.startswith("*")}
    for case in MALFORMED:
        assert " invalid" in status[case], status[case]
    assert "ready" in next(line for line in listed.stdout.splitlines() if line.startswith("*"))


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_run_reports_a_malformed_profile_before_running(cli: Cli, case: str) -> None:
    text, needles = MALFORMED[case]
    path = write_profile(cli.project_stacks, case, text)
    flow = cli.project / "flow.py"
    flow.write_text(FLOW)
    assert_user_error(cli.flow(flow, "run", "--stack", case), str(path), *needles)
    assert not (cli.project / ".lamina" / "metadata.db").exists()  # nothing ran


def test_an_unset_variable_is_reported_when_the_stack_runs_not_before(cli: Cli, tmp_path: Path) -> None:
    text = profile_text(data='adapter = "duckdb"\ndatabase = "${LAMINA_T_WAREHOUSE}"\n')
    source = write_profile(tmp_path, "envy", text)
    assert cli("stack", "register", "envy", "--file", str(source)).returncode == 0
    shown = cli("stack", "show", "envy")
    assert shown.returncode == 0 and "'${LAMINA_T_WAREHOUSE}'" in shown.stdout
    flow = cli.project / "flow.py"
    flow.write_text(FLOW)
    assert_user_error(
        cli.flow(flow, "run", "--stack", "envy"),
        str(cli.project_stacks / "envy.toml"),
        "[data]",
        "'database'",
        "${LAMINA_T_WAREHOUSE}",
        "not set",
    )
