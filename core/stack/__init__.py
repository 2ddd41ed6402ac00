"""Resolving a stack: a profile, one plugin manager per layer, and the facades the core calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import AdapterNotInstalled, PluginError
from ..hookspecs import LAYER_SPECS, AdapterContext
from ..models import LAYERS, AdapterInfo
from .adapters import check_adapter_class, new_layer_manager, register_adapter
from .config import find_project_dir, selected_stack
from .crosscut import QueryCache, TraceLog, make_tracer
from .facades import FACADES, ComputeLayer, DataLayer, LayerFacade, OrchestrationLayer, VersioningLayer
from .profile import StackProfile, validate_settings

__all__ = ["Stack", "resolve_stack", "stack_from_snapshot", "find_project_dir"]


class Stack:
    """A resolved stack. Layers are built on first use, so a task that only reads data never
    connects to the compute service."""

    def __init__(
        self,
        profile: StackProfile,
        project_dir: Path,
        *,
        role: str = "driver",
        reason: str = "",
        validate: bool = True,
    ) -> None:
        """:param validate: check every layer's settings and adapter hooks now (the default:
        a bad profile or a mistyped hook fails before anything runs). ``lamina stack check``
        turns it off to report each layer on its own; a layer is then checked when built."""
        from ..discovery import get_registry

        self.profile = profile
        self.project_dir = project_dir
        self.role = role
        self.reason = reason
        self.registry = get_registry()
        self.settings: dict[str, Any] = {}
        if validate:
            self.settings = validate_settings(profile, self.registry, resolve_env=True)
            for layer, cfg in profile.layers.items():
                info = self.registry.adapter(layer, cfg.adapter)
                assert info is not None  # validate_settings checked it
                check_adapter_class(layer, info.factory, cfg.adapter, _origin(info))
        self.trace = TraceLog(echo=_env_flag("LAMINA_TRACE"))
        self.query_cache: QueryCache | None = None
        self._layers: dict[str, LayerFacade] = {}
        self.extra_plugins: dict[str, list[object]] = {layer: [] for layer in LAYERS}

    @property
    def name(self) -> str:
        return self.profile.name

    def snapshot(self) -> dict[str, Any]:
        """The profile as recorded with a run (unresolved ``${VAR}``: no secrets)."""
        return self.profile.to_snapshot()

    def layer(self, layer: str) -> LayerFacade:
        facade = self._layers.get(layer)
        if facade is None:
            facade = self._layers[layer] = self._build(layer)
        return facade

    @property
    def data(self) -> DataLayer:
        return self.layer("data")  # type: ignore[return-value]

    @property
    def compute(self) -> ComputeLayer:
        return self.layer("compute")  # type: ignore[return-value]

    @property
    def orchestration(self) -> OrchestrationLayer:
        return self.layer("orchestration")  # type: ignore[return-value]

    @property
    def versioning(self) -> VersioningLayer:
        return self.layer("versioning")  # type: ignore[return-value]

    def add_plugin(self, layer: str, plugin: object) -> None:
        """Register a cross-cutting plugin beside the adapter (wrappers, ``tryfirst`` answers).

        :raises PluginError: the plugin implements a hook the layer does not define.
        """
        if layer in self._layers:
            self._register_extra(self._layers[layer].pm, layer, plugin)
        else:
            self.extra_plugins[layer].append(plugin)

    @staticmethod
    def _register_extra(pm: Any, layer: str, plugin: object) -> None:
        try:
            pm.register(plugin)
            pm.check_pending()
        except Exception as exc:
            if pm.is_registered(plugin):
                pm.unregister(plugin)
            raise PluginError(
                f"the {layer} plugin {type(plugin).__name__} does not match the {layer} hookspec: "
                + " ".join(str(exc).split())
            ) from exc

    def _build(self, layer: str) -> LayerFacade:
        cfg = self.profile.layers[layer]
        if layer not in self.settings:
            self.settings.update(
                validate_settings(self.profile, self.registry, resolve_env=True, layers=(layer,))
            )
        info = self.registry.adapter(layer, cfg.adapter)
        assert info is not None  # validate_settings checked it
        missing = info.missing_modules()
        if missing:
            raise AdapterNotInstalled(
                f"stack {self.name!r} uses the {layer} adapter {cfg.adapter!r}, which needs "
                f"{', '.join(missing)}: install it with {info.install_hint()}"
            )
        context = AdapterContext(
            project_dir=self.project_dir, stack_name=self.name, adapter_name=cfg.adapter, role=self.role
        )
        try:
            adapter = info.factory(self.settings[layer], context)
        except ImportError as exc:
            raise AdapterNotInstalled(
                f"the {layer} adapter {cfg.adapter!r} could not import {exc.name or exc}: install it with {info.install_hint()}"
            ) from exc
        pm = new_layer_manager(layer)
        register_adapter(pm, layer, adapter, cfg.adapter, _origin(info))
        options = self.profile.options
        if options.trace or self.trace.echo:
            pm.register(make_tracer(layer, LAYER_SPECS[layer], self.trace), name=f"{layer}:trace")
        if layer == "data" and options.query_cache:
            self.query_cache = QueryCache()
            pm.register(self.query_cache.lookup, name="data:cache-lookup")
            pm.register(self.query_cache.fill, name="data:cache-fill")
        for plugin in self.extra_plugins[layer]:
            self._register_extra(pm, layer, plugin)
        facade_cls = FACADES[layer]
        return facade_cls(
            pm, adapter, info, retry_attempts=options.retry_attempts, retry_backoff=options.retry_backoff
        )

    def close(self) -> None:
        for facade in self._layers.values():
            try:
                facade.close()
            except Exception:  # closing must not hide the error that ended the run
                pass
        self._layers.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        layers = ", ".join(f"{layer}={cfg.adapter}" for layer, cfg in self.profile.layers.items())
        return f"<Stack {self.name}: {layers}>"


def _origin(info: AdapterInfo) -> str:
    return f"plugin {info.plugin_name} {info.plugin_version}".strip()


def _env_flag(name: str) -> bool:
    import os

    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def resolve_stack(
    name: str | None = None, project_dir: Path | None = None, *, role: str = "driver", validate: bool = True
) -> Stack:
    """Resolve which stack runs (``--stack``, ``LAMINA_STACK``, project, user, ``local``) and build it.

    :raises ProfileError: the profile is malformed (naming the file, the table and the key).
    :raises PluginError: an adapter does not match its layer's hookspec.
    """
    from .catalog import load_profile

    project = find_project_dir(project_dir)
    chosen, reason = selected_stack(name, project)
    profile = load_profile(chosen, project, reason="" if reason in ("--stack", "default") else reason)
    return Stack(profile, project, role=role, reason=reason, validate=validate)


def stack_from_snapshot(
    snapshot: dict[str, Any], project_dir: Path | None = None, *, role: str = "task"
) -> Stack:
    """Rebuild a run's stack from the snapshot carried in a :class:`TaskSpec`."""
    profile = StackProfile.from_snapshot(snapshot)
    return Stack(profile, find_project_dir(project_dir), role=role, reason="task")
