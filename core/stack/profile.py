"""Stack profiles: one TOML table per layer naming an adapter and its settings.

```toml
description = "Embedded: DuckDB, local workers, the built-in scheduler, files + SQLite"

[data]
adapter = "duckdb"
database = ".lamina/data/warehouse.duckdb"   # the adapter's own settings

[compute]
adapter = "local"

[orchestration]
adapter = "local"

[versioning]
adapter = "local"

[options]            # cross-cutting plugins, optional
trace = false
query_cache = false
retry_attempts = 5
```

Profiles hold no secrets: a key that names a secret must reference the environment
(``${SNOWFLAKE_PASSWORD}``), and every ``${VAR}`` is substituted only when the stack is resolved,
so the profile recorded with a run never holds a secret.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ProfileError
from ..models import LAYERS
from ..redaction import is_secret_name, mask_text

if TYPE_CHECKING:
    from ..discovery import Registry

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_EXAMPLE_ADAPTER = {"data": "duckdb", "compute": "local", "orchestration": "local", "versioning": "local"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class StackOptions(BaseModel):
    """Cross-cutting plugins a profile turns on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trace: bool = False
    query_cache: bool = False
    retry_attempts: int = Field(default=5, ge=1, le=50)
    retry_backoff: float = Field(default=0.05, ge=0, le=60)


class LayerConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    adapter: str
    settings: dict[str, Any] = Field(default_factory=dict)


class StackProfile(BaseModel):
    """A parsed (not yet resolved) profile."""

    model_config = ConfigDict(frozen=True)

    name: str
    source: str
    """Where it came from: a file path, or ``builtin:<name>``."""
    origin: str = "builtin"
    """``project``, ``user`` or the plugin that ships it."""
    description: str = ""
    layers: dict[str, LayerConfig]
    options: StackOptions = Field(default_factory=StackOptions)

    def to_snapshot(self) -> dict[str, Any]:
        """The profile as recorded with a run: unresolved ``${VAR}`` references, so no secrets."""
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "layers": {layer: {"adapter": cfg.adapter, **cfg.settings} for layer, cfg in self.layers.items()},
            "options": self.options.model_dump(),
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> StackProfile:
        layers = {}
        for layer, table in data["layers"].items():
            table = dict(table)
            layers[layer] = LayerConfig(adapter=table.pop("adapter"), settings=table)
        return cls(
            name=data["name"],
            source=data.get("source", "snapshot"),
            origin="snapshot",
            description=data.get("description", ""),
            layers=layers,
            options=StackOptions(**data.get("options", {})),
        )


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise ProfileError(
            f"{name!r} is not a valid stack name: use letters, digits, '-', '_' and '.', starting with a letter or digit."
        )
    return name


def load_profile_file(path: Path, name: str | None = None, origin: str = "project") -> StackProfile:
    """Parse and structurally validate a profile file. Adapter settings are checked by
    :func:`validate_settings`, which needs the installed adapters."""
    name = name or path.stem
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such file.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}. Fix the syntax and try again.") from exc
    return parse_profile(raw, name=name, source=str(path), origin=origin)


def parse_profile(raw: dict[str, Any], *, name: str, source: str, origin: str) -> StackProfile:
    allowed = {"description", "options", *LAYERS}
    for key in raw:
        if key not in allowed:
            raise ProfileError(
                f"{source}: unknown top-level key {key!r}. A profile has the tables "
                f"[{'], ['.join(LAYERS)}] and optionally [options] and 'description'."
            )
    layers: dict[str, LayerConfig] = {}
    for layer in LAYERS:
        table = raw.get(layer)
        if table is None:
            raise ProfileError(
                f"{source}: table [{layer}] is missing. Every profile names one adapter per layer, "
                f'e.g. [{layer}] adapter = "{_EXAMPLE_ADAPTER[layer]}" (`lamina plugins list` shows them all).'
            )
        if not isinstance(table, dict):
            raise ProfileError(f"{source}: [{layer}] must be a table, got {type(table).__name__}.")
        adapter = table.get("adapter")
        if not isinstance(adapter, str) or not adapter:
            raise ProfileError(f"{source}: table [{layer}], key 'adapter' is missing or not a string.")
        settings = {k: v for k, v in table.items() if k != "adapter"}
        _reject_literal_secrets(source, layer, settings)
        layers[layer] = LayerConfig(adapter=adapter, settings=settings)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ProfileError(f"{source}: key 'description' must be a string.")
    options_raw = raw.get("options", {})
    try:
        options = (
            StackOptions(**options_raw)
            if isinstance(options_raw, dict)
            else StackOptions.model_validate(options_raw)
        )
    except ValidationError as exc:
        raise ProfileError(_format_validation(source, "options", exc, model=StackOptions)) from None
    return StackProfile(
        name=name, source=source, origin=origin, description=description, layers=layers, options=options
    )


def _reject_literal_secrets(source: str, layer: str, settings: dict[str, Any], prefix: str = "") -> None:
    for key, value in settings.items():
        if isinstance(value, dict):
            _reject_literal_secrets(source, layer, value, f"{prefix}{key}.")
        elif (
            is_secret_name(key)  # not private_key_file, secrets_arn: references, not secrets
            and isinstance(value, str)
            and value
            and not _ENV_REF.fullmatch(value)
        ):
            raise ProfileError(
                f"{source}: table [{layer}], key '{prefix}{key}' holds a literal secret. Profiles hold no "
                f'secrets: reference the environment instead, e.g. {prefix}{key} = "${{{key.upper()}}}", '
                "or rely on the service's own credential chain."
            )
        elif isinstance(value, str) and mask_text(_ENV_REF.sub("", value), []) != _ENV_REF.sub("", value):
            shown = mask_text(value, [])
            var = "DB_URL" if key.lower().endswith("url") else key.upper()
            raise ProfileError(
                f"{source}: table [{layer}], key '{prefix}{key}' holds a literal password or another secret "
                f"inside its value ({shown!r}: a URL's password, an AccountKey or a signature). Profiles hold no secrets: take "
                f'the whole value from the environment ({prefix}{key} = "${{{var}}}"), write the '
                "password as a reference (user:${DB_PASSWORD}@host), name the variable that holds it "
                '(password_env = "DB_PASSWORD", where the adapter offers it), or let the driver find the '
                "credential (PGPASSWORD, ~/.pgpass, the cloud's credential chain)."
            )


def validate_settings(
    profile: StackProfile,
    registry: Registry,
    *,
    resolve_env: bool,
    layers: tuple[str, ...] | None = None,
    skip_unavailable: bool = False,
) -> dict[str, Any]:
    """Check every layer's adapter exists and its settings match the adapter's model.

    :param resolve_env: substitute ``${VAR}`` references first (an unset one is an error).
        Without it, a setting that still holds a reference is not type-checked, every other
        setting is: that is how a profile is checked before its variables are set.
    :param layers: only these layers (default: all).
    :param skip_unavailable: an adapter the project knows of but that is not in this release
        or not installed (see ``lamina.discovery.KNOWN_ADAPTERS``) is skipped, not an error;
        an adapter nobody offers still is.
    :return: ``{layer: settings model instance}`` for the layers that were checked.
    :raises ProfileError: naming the file, the table and the key.
    """
    from ..discovery import KNOWN_ADAPTERS

    out: dict[str, Any] = {}
    for layer, cfg in profile.layers.items():
        if layers is not None and layer not in layers:
            continue
        info = registry.adapter(layer, cfg.adapter)
        if info is None:
            known = KNOWN_ADAPTERS.get((layer, cfg.adapter))
            if known and skip_unavailable:
                continue
            raise unknown_adapter_error(profile, layer, registry)
        settings = resolve_env_refs(cfg.settings, profile.source, layer) if resolve_env else cfg.settings
        try:
            out[layer] = info.settings.model_validate(settings)
        except ValidationError as exc:
            errors = exc.errors()
            if not resolve_env:
                errors = [e for e in errors if not _holds_env_ref(e.get("input"))]
            if errors:
                raise ProfileError(
                    _format_validation(profile.source, layer, exc, errors, info.settings, cfg.adapter)
                ) from None
    return out


def unknown_adapter_error(profile: StackProfile, layer: str, registry: Registry) -> ProfileError:
    """The error for a layer whose adapter no loaded plugin offers; it lists the installed ones."""
    from ..discovery import KNOWN_ADAPTERS, disabled_plugins

    adapter = profile.layers[layer].adapter
    installed = ", ".join(registry.adapter_names(layer)) or "none"
    known = KNOWN_ADAPTERS.get((layer, adapter))
    blocked = disabled_plugins()
    return ProfileError(
        f"{profile.source}: table [{layer}], key 'adapter': "
        + (
            f"the {layer} adapter {adapter!r} is not available ({known}). "
            if known
            else f"unknown {layer} adapter {adapter!r}. "
        )
        + f"Installed {layer} adapters: {installed}"
        + (f" (plugins disabled by LAMINA_DISABLE_PLUGINS: {', '.join(sorted(blocked))})" if blocked else "")
        + ". `lamina plugins list` shows what is available."
    )


def _holds_env_ref(value: Any) -> bool:
    return isinstance(value, str) and _ENV_REF.search(value) is not None


def remote_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A stack snapshot for a task on another machine: its non-secret ``${VAR}`` references are
    resolved here, in the driver, since the remote task does not have the driver's environment
    (``LAMINA_S3_BUCKET``, ``SNOWFLAKE_ACCOUNT``...). Keys that name secrets keep their references:
    the task resolves them from its own environment (a secret manager, a job identity), so no
    secret is ever written into a job or pipeline definition.

    :raises ProfileError: a non-secret reference names an unset variable.
    """
    source = str(snapshot.get("source", "profile"))
    layers = {
        layer: {
            key: value
            if key == "adapter" or is_secret_name(key)  # lamina.redaction: *_arn, *_env... are references
            else resolve_env_refs(value, source, layer, key)
            for key, value in table.items()
        }
        for layer, table in snapshot.get("layers", {}).items()
    }
    return {**snapshot, "layers": layers}


def resolve_env_refs(value: Any, source: str, layer: str, key: str = "") -> Any:
    if isinstance(value, dict):
        return {
            k: resolve_env_refs(v, source, layer, f"{key}{k}" if not key else f"{key}.{k}")
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [resolve_env_refs(v, source, layer, key) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        value = os.environ.get(var)
        if default is not None and not value:  # as in the shell, ${VAR:-x} also replaces an empty VAR
            return default
        if value is not None:
            return value
        raise ProfileError(
            f"{source}: table [{layer}], key '{key}' references ${{{var}}}, which is not set. "
            f"Export {var}, or write ${{{var}:-default}} to give a default."
        )

    return _ENV_REF.sub(substitute, value)


def _format_validation(
    source: str,
    table: str,
    exc: ValidationError,
    errors: list[Any] | None = None,
    model: type[BaseModel] | None = None,
    adapter: str = "",
) -> str:
    parts = []
    for err in exc.errors() if errors is None else errors:
        key = ".".join(str(p) for p in err["loc"]) or "?"
        if err["type"] == "extra_forbidden":
            part = f"unknown key '{key}'"
            if model is not None and len(err["loc"]) == 1:
                fields = list(model.model_fields)
                close = difflib.get_close_matches(key, fields, n=1)
                part += f" (did you mean '{close[0]}'?" if close else " ("
                whose = f"the {adapter} adapter's keys" if adapter else "known keys"
                part += f"{'; ' if close else ''}{whose}: {', '.join(fields) or 'none'})"
            parts.append(part)
        elif err["type"] == "missing":
            parts.append(f"key '{key}' is required")
        else:
            # a value may have come from the environment: never echo one whose key names a secret
            shown = "***" if is_secret_name(key) else mask_text(repr(err.get("input")), [])
            parts.append(f"key '{key}': {err['msg']} (got {shown})")
    return f"{source}: table [{table}]: " + "; ".join(parts) + "."
