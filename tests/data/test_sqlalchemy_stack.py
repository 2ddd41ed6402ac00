"""The ``sqlalchemy`` data layer as users meet it: in a stack profile, through ``lamina stack``
and the layer facade, and under a flow that must print exactly what it prints on ``local``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lamina.client import Run
from lamina.errors import ProfileError
from lamina.stack import resolve_stack
from lamina.stack.profile import load_profile_file
from sqla_helpers import Database, open_database

FLOW = Path(__file__).parent / "flows" / "regions.py"
LOCAL_LAYERS = (
    '[compute]\nadapter = "local"\n[orchestration]\nadapter = "local"\n[versioning]\nadapter = "local"\n'
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Database]:
    yield from open_database("postgresql")


@pytest.fixture(scope="module")
def mariadb() -> Iterator[Database]:
    yield from open_database("mariadb")


@pytest.fixture(params=["postgresql", "mariadb"])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue("postgres" if request.param == "postgresql" else "mariadb")


def write_stack(project: Path, name: str, data_table: str, options: str = "") -> Path:
    """A project stack profile: ``data_table`` for [data], local adapters for the other layers."""
    folder = project / ".lamina" / "stacks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(data_table + LOCAL_LAYERS + options)
    return path


# -- profiles hold no secrets ----------------------------------------------------------------


def test_a_literal_password_in_the_url_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pg.toml"
    path.write_text(
        '[data]\nadapter = "sqlalchemy"\nurl = "postgresql+psycopg://analyst:hunter22@db/wh"\n' + LOCAL_LAYERS
    )
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    message = str(caught.value)
    assert str(path) in message and "[data]" in message and "'url'" in message
    assert "literal password" in message and "${DB_URL}" in message and "password_env" in message
    assert "hunter22" not in message


def test_the_url_or_the_password_may_come_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "pg.toml"
    for data in (
        'url = "${PG_URL}"',
        'url = "postgresql+psycopg://analyst:${PG_PASSWORD}@db/wh"',
        'url = "postgresql+psycopg://analyst@db/wh"\npassword_env = "PG_PASSWORD"',
    ):
        path.write_text(f'[data]\nadapter = "sqlalchemy"\n{data}\n' + LOCAL_LAYERS)
        assert load_profile_file(path).layers["data"].adapter == "sqlalchemy"


def test_a_stack_takes_its_url_from_the_environment(
    lamina_project: Path, postgres: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMINA_TEST_PG_URL", postgres.url)
    write_stack(
        lamina_project,
        "pg",
        f'[data]\nadapter = "sqlalchemy"\nurl = "${{LAMINA_TEST_PG_URL}}"\nschema = "{postgres.schema}"\n',
    )
    with resolve_stack("pg", lamina_project) as stack:
        stack.data.write("from_env", {"id": [1, 2]})
        assert stack.data.read("from_env").column("id").to_pylist() == [1, 2]
        assert "${LAMINA_TEST_PG_URL}" in str(stack.profile.to_snapshot())  # recorded unresolved


# -- lamina stack check, and the facade's retries ---------------------------------------------


def test_stack_check_probes_the_database(
    lamina_project: Path, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    from lamina.cli.main import main

    source = lamina_project / "sql.toml"
    source.write_text(database.profile_table() + LOCAL_LAYERS)
    assert main(["stack", "register", "sql", "--file", str(source)]) == 0
    assert main(["stack", "check", "sql"]) == 0
    out = capsys.readouterr().out
    data_line = next(line for line in out.splitlines() if " data " in line)
    assert data_line.split()[0] == "ok" and "sqlalchemy" in data_line and "tables" in data_line
    assert "all layers ok" in out


def test_stack_check_says_why_a_login_fails(lamina_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lamina.cli.main import main

    write_stack(
        lamina_project,
        "norole",
        '[data]\nadapter = "sqlalchemy"\nurl = "postgresql+psycopg://nosuchrole@127.0.0.1:5432/test"\n',
    )
    assert main(["stack", "check", "norole"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  data" in out and "refused the login" in out and "fix:" in out


@pytest.mark.parametrize(
    ("url", "retried"),
    [
        ("postgresql+psycopg://u@127.0.0.1:1/test", True),
        ("postgresql+psycopg://nosuchrole@127.0.0.1:5432/test", False),
    ],
    ids=["unreachable", "refused-login"],
)
def test_the_facade_retries_dropped_connections_not_refused_logins(
    lamina_project: Path, postgres: Database, url: str, retried: bool
) -> None:
    from lamina.errors import DataError

    options = "[options]\nretry_attempts = 3\nretry_backoff = 0\n"
    write_stack(lamina_project, "flaky", f'[data]\nadapter = "sqlalchemy"\nurl = "{url}"\n', options)
    with resolve_stack("flaky", lamina_project) as stack, pytest.raises(DataError):
        try:
            stack.data.tables()
        finally:
            assert stack.data.retries == (2 if retried else 0)


# -- a flow prints on PostgreSQL and MariaDB what it prints on local --------------------------


def printed(run_id: str) -> dict[str, list[str]]:
    """What each step's tasks printed, sorted by task (foreach order)."""
    run = Run(run_id)
    return {step.name: sorted(task.stdout for task in step.tasks) for step in run.steps}


def test_a_flow_prints_the_same_as_on_local(lamina_project: Path, database: Database, run_flow) -> None:
    local = run_flow(FLOW, stack="local")
    assert local.ok, local.message
    write_stack(lamina_project, "warehouse", database.profile_table())
    remote = run_flow(FLOW, stack="warehouse")
    assert remote.ok, remote.message
    expected, got = printed(local.run_id), printed(remote.run_id)
    assert expected["per_region"] and all(expected["per_region"])  # it printed something per region
    assert got == expected
    reads = Run(remote.run_id).data_reads
    assert {r.snapshot.adapter for r in reads} == {"sqlalchemy"}
    written = [r.snapshot for r in reads if r.snapshot.kind == "write"]
    read = [r.snapshot for r in reads if r.snapshot.kind == "table"]
    assert read[0].handle == written[-1].handle  # the end step read what start wrote last
    local_reads = Run(local.run_id).data_reads
    assert read[0].handle == next(r.snapshot.handle for r in local_reads if r.snapshot.kind == "table")
