"""``IncludeFile``: a parameter whose value is the contents of a local file.

```python
class PlayListFlow(FlowSpec):
    movie_data = IncludeFile("movie_data", default="movies.csv", help="a CSV of movies")
```

``python flow.py run --movie_data other.csv`` names another file. The driver reads the file once,
when the run starts, and stores its contents as an artifact (content-addressed, so the same file
is stored once across runs). Tasks receive a reference, never the bytes inline, and load them from
the blob store: a task on any stack reads exactly the bytes that were read on the user's machine,
and a resumed run reads the same contents as its origin, even if the file changed since.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import FlowDefinitionError, ParameterError
from .spec import _MISSING, Parameter

if TYPE_CHECKING:
    from ..versioning.artifacts import ArtifactStore

INCLUDED = "lamina_included_file"
"""The key of a parameter value that refers to an included file's stored contents."""


class IncludeFile(Parameter):
    """A parameter whose value is a file's contents: ``str`` when ``is_text`` (decoded with
    ``encoding``), else ``bytes``. The command line and ``run_flow`` take the file's path."""

    def __init__(
        self,
        name: str,
        required: bool | None = None,
        is_text: bool | None = None,
        encoding: str | None = None,
        help: str | None = None,  # noqa: A002 - Metaflow's spelling, known to users
        default: str | None = None,
        **unsupported: Any,
    ) -> None:
        if unsupported:
            raise FlowDefinitionError(
                f"IncludeFile {name!r}: unknown argument(s) {', '.join(sorted(unsupported))}; "
                "it takes required=, is_text=, encoding=, help= and default= (a path)."
            )
        if default is not None and not isinstance(default, str | os.PathLike):
            raise FlowDefinitionError(
                f"IncludeFile {name!r}: default must be a path to a file, got {default!r}."
            )
        self.is_text = True if is_text is None else bool(is_text)
        self.encoding = encoding or "utf-8"
        # a path default is kept as given: the file is read when a run starts, not at import
        super().__init__(
            name,
            default=os.fspath(default) if default is not None else (None if not required else _MISSING),
            type=str,
            help=help or "",
            required=bool(required),
        )

    @property
    def type_name(self) -> str:
        return "path"

    def convert(self, raw: str) -> Any:
        return raw

    def check(self, value: Any) -> Any:
        """A path (``str`` or ``os.PathLike``), or a reference to contents already stored (a
        resumed run keeps its origin's)."""
        if value is None or is_included(value):
            return value
        if isinstance(value, str | os.PathLike):
            return os.fspath(value)
        raise ParameterError(
            f"parameter {self.name!r} (IncludeFile): give the path of a file, got {type(value).__name__} {value!r}."
        )

    def read(self, path: str) -> str | bytes:
        """The file's contents, as the step will see them."""
        try:
            with open(os.path.expanduser(path), "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ParameterError(
                f"parameter --{self.name} (IncludeFile): cannot read {path!r}: {exc.strerror or exc}. "
                f"Give an existing file: `python flow.py run --{self.name} PATH`."
            ) from None
        if not self.is_text:
            return data
        try:
            return data.decode(self.encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParameterError(
                f"parameter --{self.name} (IncludeFile): {path!r} is not text in {self.encoding} ({exc}); "
                "pass is_text=False to receive bytes, or encoding= to name its encoding."
            ) from None

    def __repr__(self) -> str:
        return f"IncludeFile({self.name!r}, default={self.default!r}, is_text={self.is_text})"


def is_included(value: Any) -> bool:
    return isinstance(value, dict) and INCLUDED in value


def include_files(flow_cls: type, params: dict[str, Any], store: ArtifactStore) -> dict[str, Any]:
    """Read every ``IncludeFile`` given as a path, store its contents, and return the parameter
    values with each path replaced by a reference ``{INCLUDED: {path, ref}}`` (JSON, small)."""
    out = dict(params)
    for param in flow_cls.parameters().values():  # type: ignore[attr-defined]
        if not isinstance(param, IncludeFile):
            continue
        value = out.get(param.name)
        if value is None or is_included(value):
            continue
        contents = param.read(value)
        ref = store.save(contents, param.name)
        small = ref.model_copy(update={"meta": {k: v for k, v in ref.meta.items() if k != "preview"}})
        out[param.name] = {INCLUDED: {"path": os.path.abspath(value), "ref": small.model_dump(mode="json")}}
    return out


def load_included(param: Parameter, value: Any, store: ArtifactStore) -> Any:
    """In a task: the contents a reference points at (another parameter's value unchanged).

    :raises ParameterError: an ``IncludeFile`` arrived as a path, not as stored contents (a task
        started by something other than Lamina's driver); reading a path here would read
        another machine's file, or none.
    """
    if not isinstance(param, IncludeFile) or value is None:
        return value
    if not is_included(value):
        raise ParameterError(
            f"IncludeFile --{param.name} reached the task as {value!r}, not as the stored contents: "
            "start the run with `python flow.py run` (or run_flow), which reads and stores the file."
        )
    from ..models import ArtifactRef

    return store.load(ArtifactRef.model_validate(value[INCLUDED]["ref"]))
