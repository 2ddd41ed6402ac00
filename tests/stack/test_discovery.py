"""Plugin discovery as a user meets it: ``lamina plugins list``, ``LAMINA_DISABLE_PLUGINS``, and
adapters that do not match their layer's hookspec or lack their SDK, which fail when the stack is
loaded, naming the adapter and what to do."""

from __future__ import annotations

import json
import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lamina import __version__, discovery
from lamina.errors import AdapterNotInstalled, PluginError
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, AdapterSettings
from lamina.plugins.local_orchestration import LocalOrchestration
from lamina.stack import resolve_stack
from stack_helpers import Cli, FakeDist, FakeEntryPoint, assert_user_error, profile_text, write_profile

# -- as the command line shows it --------------------------------------------------------------------


def test_plugins_list_shows_the_builtin_plugin_its_version_and_adapters_per_layer(cli: Cli) -> None:
    proc = cli("plugins", "list")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[2:] if line.strip()]
    builtin = {(row[2], row[3]): row[4] for row in rows if row[0] == "builtin"}
    assert all(row[1] == __version__ for row in rows if row[0] == "builtin")
    for layer_adapter in (
        ("data", "duckdb"),
        ("compute", "local"),
        ("orchestration", "local"),
        ("versioning", "local"),
    ):
        assert builtin[layer_adapter] == "yes"

    listed = json.loads(cli("plugins", "list", "--json").stdout)
    duckdb = next(p for p in listed["plugins"] if p["adapter"] == "duckdb")
    assert duckdb["plugin"] == "builtin" and duckdb["layer"] == "data" and duckdb["installed"] is True


def test_disabling_the_builtin_plugin_removes_its_adapters_and_stacks(cli: Cli) -> None:
    env = {"LAMINA_DISABLE_PLUGINS": "builtin"}
    proc = cli("plugins", "list", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "duckdb" not in proc.stdout
    assert "disabled by LAMINA_DISABLE_PLUGINS: builtin" in proc.stdout

    # resolving the default stack now fails clearly, naming the switch that caused it
    assert_user_error(
        cli("stack", "show", env=env), "no stack named 'local'", "LAMINA_DISABLE_PLUGINS", "builtin"
    )
    # a project profile naming the builtin adapters says they are not installed
    write_profile(cli.project_stacks, "mine", profile_text())
    err = assert_user_error(
        cli("stack", "show", "mine", env=env),
        "unknown data adapter 'duckdb'",
        "Installed data adapters: ",
        "LAMINA_DISABLE_PLUGINS",
    )
    assert "duckdb" not in err.split("Installed data adapters: ")[1]


FAKE_PLUGIN = textwrap.dedent(
    """
    from lamina.hookspecs import hookimpl
    from lamina.models import AdapterInfo, AdapterSettings


    class Settings(AdapterSettings):
        pass


    class GpuCompute:
        def __init__(self, settings, context):
            pass


    @hookimpl
    def lamina_adapters():
        return [
            AdapterInfo(
                layer="compute",
                name="fakegpu",
                settings=Settings,
                factory=GpuCompute,
                extra="gpu",
                requires=("lamina_fake_gpu_sdk",),
                description="a compute adapter whose SDK is not installed",
            )
        ]
    """
)


def install_fake_distribution(site: Path) -> None:
    """What ``pip install lamina-fakeplug`` would leave: a module and its dist-info."""
    site.mkdir(parents=True)
    (site / "lamina_fakeplug.py").write_text(FAKE_PLUGIN)
    info = site / "lamina_fakeplug-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lamina-fakeplug\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[lamina]\nfakeplug = lamina_fakeplug\n")


def test_a_third_party_plugin_is_listed_with_its_version_and_what_to_install(
    cli: Cli, tmp_path: Path
) -> None:
    install_fake_distribution(tmp_path / "site")
    env = {"PYTHONPATH": str(tmp_path / "site")}
    proc = cli("plugins", "list", env=env)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("fakeplug"))
    assert row.split()[:4] == ["fakeplug", "1.2.3", "compute", "fakegpu"]
    assert "no: pip install 'lamina-fakeplug[gpu]'" in row
    assert any(line.startswith("builtin ") for line in proc.stdout.splitlines())  # side by side

    # a stack using it can be registered and selected; a run says what to install
    write_profile(
        cli.project_stacks,
        "gpu",
        profile_text(
            rest='[compute]\nadapter = "fakegpu"\n[orchestration]\nadapter = "local"\n[versioning]\nadapter = "local"\n'
        ),
    )
    shown = cli("stack", "show", "gpu", env=env)
    assert shown.returncode == 0, shown.stderr
    assert (
        "[compute] fakegpu  NOT AVAILABLE: needs lamina_fake_gpu_sdk: pip install 'lamina-fakeplug[gpu]'"
        in shown.stdout
    )

    # and blocking it by name removes it
    blocked = cli("plugins", "list", env={**env, "LAMINA_DISABLE_PLUGINS": "fakeplug"})
    assert "fakegpu" not in blocked.stdout and "duckdb" in blocked.stdout


def test_a_plugin_that_fails_to_import_is_an_error_naming_it(cli: Cli, tmp_path: Path) -> None:
    install_fake_distribution(tmp_path / "site")
    (tmp_path / "site" / "lamina_fakeplug.py").write_text("import lamina_fake_missing_dependency\n")
    env = {"PYTHONPATH": str(tmp_path / "site")}
    assert_user_error(
        cli("stack", "list", env=env),
        "plugin 'fakeplug'",
        "lamina-fakeplug",
        "lamina_fake_missing_dependency",
        "LAMINA_DISABLE_PLUGINS=fakeplug",
    )
    proc = cli("stack", "list", env={**env, "LAMINA_DISABLE_PLUGINS": "fakeplug"})
    assert proc.returncode == 0, proc.stderr


# -- adapters that do not match their layer's spec ---------------------------------------------------


class NoSettings(AdapterSettings):
    pass


class Plugin:
    """A plugin object offering the given adapters."""

    def __init__(self, *adapters: AdapterInfo) -> None:
        self.adapters = list(adapters)

    @hookimpl
    def lamina_adapters(self) -> list[AdapterInfo]:
        return self.adapters


class TypoOrchestration(LocalOrchestration):
    @hookimpl
    def orchestration_chek(self) -> None:  # a typo: no such hook
        pass


class ExtraArgOrchestration(LocalOrchestration):
    @hookimpl
    def orchestration_trigger(self, flow_name: str, parameters: dict[str, Any], priority: int) -> str:
        return "x"


class IncompleteOrchestration:
    def __init__(self, settings: AdapterSettings, context: AdapterContext) -> None:
        pass

    @hookimpl
    def orchestration_check(self) -> None:
        pass


def orchestration_adapter(name: str, factory: Any, **kwargs: Any) -> AdapterInfo:
    return AdapterInfo(layer="orchestration", name=name, settings=NoSettings, factory=factory, **kwargs)


def stack_using(project: Path, adapter: str) -> str:
    rest = f'[compute]\nadapter = "local"\n[orchestration]\nadapter = "{adapter}"\n[versioning]\nadapter = "local"\n'
    write_profile(project / ".lamina" / "stacks", f"with-{adapter}", profile_text(rest=rest))
    return f"with-{adapter}"


@pytest.fixture
def third_party(add_entry_points: Callable[..., None]) -> Callable[..., None]:
    def install(*adapters: AdapterInfo) -> None:
        add_entry_points(FakeEntryPoint("acme", Plugin(*adapters), FakeDist("lamina-acme", "0.3.0")))

    return install


def test_a_mistyped_hook_fails_when_the_stack_is_loaded(
    lamina_project: Path, third_party: Callable[..., None]
) -> None:
    third_party(orchestration_adapter("typo", TypoOrchestration))
    with pytest.raises(PluginError) as caught:
        resolve_stack(stack_using(lamina_project, "typo"))  # before any layer is used
    message = str(caught.value)
    assert "orchestration adapter 'typo'" in message and "lamina-acme" in message
    assert "orchestration_chek" in message and "orchestration_check" in message  # the valid hooks are listed
    assert caught.value.exit_code == 2


def test_a_hook_with_an_argument_the_spec_lacks_fails_at_registration(
    lamina_project: Path, third_party: Callable[..., None]
) -> None:
    third_party(orchestration_adapter("extra-arg", ExtraArgOrchestration))
    with pytest.raises(
        PluginError, match=r"orchestration adapter 'extra-arg'.*orchestration_trigger.*priority"
    ):
        resolve_stack(stack_using(lamina_project, "extra-arg"))


def test_an_adapter_built_by_a_function_is_checked_when_its_layer_is_built(
    lamina_project: Path, third_party: Callable[..., None]
) -> None:
    third_party(orchestration_adapter("made", lambda settings, context: TypoOrchestration(settings, context)))
    stack = resolve_stack(stack_using(lamina_project, "made"))
    with pytest.raises(PluginError, match="orchestration adapter 'made'.*orchestration_chek"):
        stack.orchestration  # noqa: B018


def test_an_adapter_missing_a_required_hook_fails_at_load(
    lamina_project: Path, third_party: Callable[..., None]
) -> None:
    third_party(orchestration_adapter("partial", IncompleteOrchestration))
    with pytest.raises(PluginError, match="does not implement orchestration_deploy, orchestration_trigger"):
        resolve_stack(stack_using(lamina_project, "partial"))


def test_a_missing_sdk_names_the_extra_to_install(
    lamina_project: Path, third_party: Callable[..., None]
) -> None:
    third_party(
        orchestration_adapter(
            "needs-sdk", LocalOrchestration, extra="acme", requires=("lamina_no_such_sdk_for_tests",)
        )
    )
    stack = resolve_stack(stack_using(lamina_project, "needs-sdk"))
    with pytest.raises(AdapterNotInstalled) as caught:
        stack.orchestration  # noqa: B018
    assert "lamina_no_such_sdk_for_tests" in str(caught.value)
    assert "pip install 'lamina-acme[acme]'" in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_first_party_adapter_missing_its_sdk_names_laminas_extra(
    lamina_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("lamina_tests_fake_firstparty")
    module.lamina_adapters = Plugin(  # type: ignore[attr-defined]
        orchestration_adapter(
            "cloudy", LocalOrchestration, extra="cloud", requires=("lamina_no_such_cloud_sdk",)
        )
    ).lamina_adapters
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(
        discovery, "BUILTIN_PLUGINS", (*discovery.BUILTIN_PLUGINS, ("firstparty", module.__name__))
    )
    discovery.reset_registry()
    try:
        ok, why = discovery.adapter_status("orchestration", "cloudy")
        assert not ok and why == "needs lamina_no_such_cloud_sdk: pip install 'lamina[cloud]'"
        stack = resolve_stack(stack_using(lamina_project, "cloudy"))
        with pytest.raises(AdapterNotInstalled, match=r"pip install 'lamina\[cloud\]'"):
            stack.orchestration  # noqa: B018
    finally:
        discovery.reset_registry()


def test_a_plugin_that_fails_to_import_names_the_plugin_and_the_switch(
    lamina_project: Path, add_entry_points: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    add_entry_points(
        FakeEntryPoint(
            "broken", None, FakeDist("lamina-broken", "1.0"), error=ImportError("No module named 'x'")
        )
    )
    with pytest.raises(
        PluginError, match="plugin 'broken' from the distribution 'lamina-broken' failed to import"
    ):
        discovery.get_registry()
    monkeypatch.setenv("LAMINA_DISABLE_PLUGINS", "broken")
    assert "broken" not in discovery.get_registry().plugins


def test_two_plugins_offering_the_same_adapter_are_an_error(
    lamina_project: Path, third_party: Callable[..., None]
) -> None:
    third_party(AdapterInfo(layer="data", name="duckdb", settings=NoSettings, factory=LocalOrchestration))
    with pytest.raises(PluginError, match="two plugins offer a data adapter named 'duckdb'"):
        discovery.get_registry().adapters()


def test_a_plugin_implementing_an_unknown_global_hook_is_refused(
    lamina_project: Path, add_entry_points: Callable[..., None]
) -> None:
    class Sloppy:
        @hookimpl
        def lamina_adapter(self) -> list[AdapterInfo]:  # singular: not a hook
            return []

    add_entry_points(FakeEntryPoint("sloppy", Sloppy(), FakeDist("lamina-sloppy", "0.1")))
    with pytest.raises(PluginError, match="lamina_adapter"):
        discovery.get_registry()


def test_listing_plugins_and_stacks_loads_no_cloud_sdk(cli: Cli) -> None:
    code = (
        "import contextlib, io, sys, lamina, lamina.stack\n"
        "from lamina.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['plugins', 'list']) == 0 and main(['stack', 'list']) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'snowflake', 'google', 'azure', 'sagemaker', 'dask')))"
    )
    proc = cli.run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_an_sdk_is_found_without_importing_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether an adapter's SDK is installed is answered without importing the SDK (importing a
    cloud SDK to find ``sagemaker.core`` would make every listing slow)."""
    package = tmp_path / "lamina_t_heavy_sdk"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    (package / "client.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    info = AdapterInfo(
        layer="data",
        name="heavy",
        settings=NoSettings,
        factory=object,
        requires=("lamina_t_heavy_sdk.client", "lamina_t_heavy_sdk.absent", "lamina_t_no_such_sdk.x"),
    )
    assert discovery.missing_modules(info) == ["lamina_t_heavy_sdk.absent", "lamina_t_no_such_sdk.x"]
    assert "lamina_t_heavy_sdk" not in sys.modules


def test_an_sdk_in_nested_namespace_packages_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``google.cloud.storage`` and ``azure.storage.blob`` live in namespace packages (folders
    without ``__init__.py``) that the import system cannot look inside until their parent is
    imported; they are found anyway, still without importing anything."""
    leaf = tmp_path / "lamina_t_ns" / "cloud" / "storage"
    leaf.mkdir(parents=True)
    (leaf / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    info = AdapterInfo(
        layer="versioning",
        name="nested",
        settings=NoSettings,
        factory=object,
        requires=("lamina_t_ns.cloud.storage", "lamina_t_ns.cloud.bigquery"),
    )
    assert discovery.missing_modules(info) == ["lamina_t_ns.cloud.bigquery"]
    assert not any(name.startswith("lamina_t_ns") for name in sys.modules)
