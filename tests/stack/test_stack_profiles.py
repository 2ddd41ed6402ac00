"""Stack profiles resolved in-process: ``${VAR}`` substitution, secrets, validation before
anything runs, and what a run records of its stack."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from lamina.errors import ProfileError, UnknownStack
from lamina.stack import resolve_stack, stack_from_snapshot
from lamina.stack.catalog import all_profiles, load_profile
from lamina.stack.config import write_stack_choice
from stack_helpers import profile_text, write_profile


def project_profile(project: Path, name: str, text: str) -> Path:
    return write_profile(project / ".lamina" / "stacks", name, text)


def test_env_references_are_substituted_when_the_stack_is_resolved(
    lamina_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMINA_T_DB", "warehouses/team.duckdb")
    monkeypatch.setenv("LAMINA_T_ROOT", "shared")
    monkeypatch.delenv("LAMINA_T_THREADS", raising=False)
    project_profile(
        lamina_project,
        "envy",
        profile_text(
            data="""
            adapter = "duckdb"
            database = "${LAMINA_T_DB}"
            data_dirs = ["${LAMINA_T_ROOT}/data", "local"]
            threads = "${LAMINA_T_THREADS:-2}"
            """
        ),
    )
    with resolve_stack("envy") as stack:
        settings = stack.settings["data"]
        assert settings.database == "warehouses/team.duckdb"
        assert settings.data_dirs == ["shared/data", "local"]
        assert settings.threads == 2  # the default, converted to the setting's type
        # the profile a run records keeps the references, never the values
        recorded = stack.snapshot()["layers"]["data"]
        assert recorded["database"] == "${LAMINA_T_DB}"
        # a task rebuilds the stack from that record and resolves it in its own environment
        monkeypatch.setenv("LAMINA_T_DB", "elsewhere.duckdb")
        task_stack = stack_from_snapshot(stack.snapshot(), lamina_project)
        assert task_stack.settings["data"].database == "elsewhere.duckdb"


def test_a_default_also_replaces_an_empty_variable(
    lamina_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMINA_T_DB", "")
    project_profile(
        lamina_project,
        "envy",
        profile_text(data='adapter = "duckdb"\ndatabase = "${LAMINA_T_DB:-d.duckdb}"\n'),
    )
    with resolve_stack("envy") as stack:
        assert stack.settings["data"].database == "d.duckdb"


def test_an_unset_variable_names_the_file_table_key_and_variable(
    lamina_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAMINA_T_MISSING", raising=False)
    path = project_profile(
        lamina_project, "envy", profile_text(data='adapter = "duckdb"\ndatabase = "${LAMINA_T_MISSING}"\n')
    )
    with pytest.raises(ProfileError) as caught:
        resolve_stack("envy")
    message = str(caught.value)
    for needle in (
        str(path),
        "[data]",
        "'database'",
        "${LAMINA_T_MISSING}",
        "not set",
        "${LAMINA_T_MISSING:-",
    ):
        assert needle in message
    assert caught.value.exit_code == 2


def test_a_setting_holding_a_reference_is_checked_once_resolved(
    lamina_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMINA_T_THREADS", "many")
    project_profile(
        lamina_project, "envy", profile_text(data='adapter = "duckdb"\nthreads = "${LAMINA_T_THREADS}"\n')
    )
    with pytest.raises(ProfileError, match=r"\[data\].*'threads'.*'many'"):
        resolve_stack("envy")


@pytest.mark.parametrize(
    "data",
    [
        'password = "hunter2"',
        'api_key = "sk-123"',
        "[data.auth]\ntoken = 'abc'",
        'password = "pre-${SUFFIX}"',  # a reference must be the whole value
    ],
)
def test_a_literal_secret_is_refused(lamina_project: Path, data: str) -> None:
    path = project_profile(lamina_project, "leaky", profile_text(data='adapter = "duckdb"\n' + data))
    with pytest.raises(ProfileError, match="literal secret") as caught:
        load_profile("leaky", lamina_project)
    assert str(path) in str(caught.value) and "[data]" in str(caught.value)
    for secret in ("hunter2", "sk-123", "abc"):
        assert secret not in str(caught.value)


@pytest.mark.parametrize("data", ['password = "${DB_PASSWORD}"', 'private_key_file = "~/.ssh/snowflake.p8"'])
def test_references_to_secrets_and_paths_to_key_files_are_fine(lamina_project: Path, data: str) -> None:
    project_profile(lamina_project, "ok", profile_text(data='adapter = "duckdb"\n' + data))
    assert load_profile("ok", lamina_project).layers["data"].settings


def test_settings_are_validated_before_any_layer_is_used(lamina_project: Path) -> None:
    """A typo in a layer the run would touch last still fails at once."""
    project_profile(
        lamina_project,
        "typo",
        profile_text(
            rest='[compute]\nadapter = "local"\nmax_worker = 2\n[orchestration]\nadapter = "local"\n[versioning]\nadapter = "local"\n'
        ),
    )
    with pytest.raises(
        ProfileError, match=r"\[compute\]: unknown key 'max_worker' \(did you mean 'max_workers'"
    ):
        resolve_stack("typo")


def test_profiles_from_the_project_override_the_user_and_the_plugins(
    lamina_project: Path, tmp_path: Path
) -> None:
    user_dir = tmp_path / "user-config" / "stacks"  # LAMINA_CONFIG_DIR of the lamina_project fixture
    write_profile(user_dir, "local", profile_text(head='description = "user"\n'))
    write_profile(user_dir, "only-user", profile_text(head='description = "user"\n'))
    project_profile(lamina_project, "local", profile_text(head='description = "project"\n'))
    entries = all_profiles(lamina_project)
    assert entries["local"].origin == "project"
    assert entries["only-user"].origin == "user"
    assert entries["gcp-vertex"].origin == "builtin"
    assert load_profile("local", lamina_project).description == "project"


def test_an_unknown_stack_lists_the_known_ones(lamina_project: Path) -> None:
    with pytest.raises(UnknownStack, match="no stack named 'nope'.*local"):
        resolve_stack("nope")


def test_the_stack_choice_keeps_the_rest_of_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("# chosen by hand\n[runs]\nlimit = 5\n")
    write_stack_choice(config, "local")
    assert tomllib.loads(config.read_text()) == {"stack": "local", "runs": {"limit": 5}}
    write_stack_choice(config, "gcp-vertex")
    assert tomllib.loads(config.read_text())["stack"] == "gcp-vertex"
    assert config.read_text().count("stack =") == 1 and "# chosen by hand" in config.read_text()


def test_a_broken_config_file_is_not_overwritten(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("stack = \n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        write_stack_choice(config, "local")
    assert config.read_text() == "stack = \n"
