"""Cards: an HTML report stored with a task (Metaflow's ``@card`` and ``current.card``).

```python
from lamina import FlowSpec, card, current, step
from lamina.cards import Image, LineChart, Markdown, Table

class TrainFlow(FlowSpec):
    @card
    @step
    def train(self):
        current.card.append(Markdown("# Training"))
        current.card.append(LineChart(list(range(10)), losses, title="loss"))
        ...
```

A card is one self-contained HTML file (no scripts, no network: images are inlined, charts are
SVG) stored beside the task's logs; ``lamina card view FLOW/RUN/STEP/TASK`` opens it. The
``default`` card also lists the task's artifacts; ``@card(type="blank")`` shows only what the step
appended.
"""

from __future__ import annotations

import base64
import html
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from .errors import FlowDefinitionError

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Artifact", "Image", "LineChart", "Markdown", "Table", "card"]

CARD_TYPES = ("default", "blank")


def card(func: F | None = None, *, type: str = "default", id: str | None = None, **options: Any) -> Any:  # noqa: A002
    """Store an HTML card with each task of the step: what the step appends to
    ``current.card``, and (``type="default"``) a table of the task's artifacts."""

    def apply(f: F) -> F:
        from .flow.decorators import _decorations

        if type not in CARD_TYPES:
            raise FlowDefinitionError(
                f"@card on step {f.__name__!r}: type {type!r} is not one of {', '.join(CARD_TYPES)}."
            )
        _decorations(f)["card"] = {"type": type, "id": id}
        return f

    return apply(func) if func is not None else apply


class Component:
    """Something a card shows; ``render()`` returns an HTML fragment."""

    def render(self) -> str:
        raise NotImplementedError


def _cell(value: Any) -> str:
    return value.render() if isinstance(value, Component) else html.escape(_short(value))


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![*\w])\*([^*]+)\*(?!\w)"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)"), r'<a href="\2">\1</a>'),
]


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    return out


class Markdown(Component):
    """Markdown text: headings, paragraphs, ``-``/``*`` lists, ``**bold**``, ``*italic*``,
    `` `code` ``, fenced code blocks and ``[links](https://...)``."""

    def __init__(self, text: str) -> None:
        self.text = str(text)

    def render(self) -> str:
        parts: list[str] = []
        paragraph: list[str] = []
        items: list[str] = []
        lines = self.text.splitlines()

        def flush() -> None:
            if paragraph:
                parts.append("<p>" + " ".join(_inline(p) for p in paragraph) + "</p>")
                paragraph.clear()
            if items:
                parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
                items.clear()

        i = 0
        while i < len(lines):
            line = lines[i].rstrip()
            stripped = line.strip()
            if stripped.startswith("```"):
                flush()
                block = []
                i += 1
                while i < len(lines) and not lines[i].strip().startswith("```"):
                    block.append(lines[i])
                    i += 1
                parts.append("<pre><code>" + html.escape("\n".join(block)) + "</code></pre>")
            elif match := re.match(r"^(#{1,6})\s+(.*)$", stripped):
                flush()
                level = len(match.group(1))
                parts.append(f"<h{level}>{_inline(match.group(2))}</h{level}>")
            elif re.match(r"^[-*]\s+", stripped):
                if paragraph:
                    flush()
                items.append(re.sub(r"^[-*]\s+", "", stripped))
            elif not stripped:
                flush()
            else:
                if items:
                    flush()
                paragraph.append(stripped)
            i += 1
        flush()
        return "\n".join(parts)


class Table(Component):
    """Rows of values (or components), with optional headers: ``Table([[1, "a"]], headers=["n", "s"])``.

    ``Table.from_dataframe(df)`` takes a pandas DataFrame (the first 100 rows).
    """

    def __init__(
        self, data: Sequence[Sequence[Any]] | None = None, headers: Sequence[str] | None = None
    ) -> None:
        self.data = [list(row) for row in (data or [])]
        self.headers = list(headers or [])

    @classmethod
    def from_dataframe(cls, dataframe: Any, truncate: bool = True) -> Table:
        frame = dataframe.head(100) if truncate else dataframe
        return cls([list(row) for row in frame.itertuples(index=False)], [str(c) for c in frame.columns])

    def render(self) -> str:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in self.data)
        return f"<table>{f'<thead><tr>{head}</tr></thead>' if head else ''}<tbody>{body}</tbody></table>"


class Image(Component):
    """An image from its bytes (PNG, JPEG, GIF, SVG or WebP), inlined into the card.

    ``Image.from_matplotlib(fig)`` renders a Matplotlib figure as PNG.
    """

    _KINDS = {b"\x89PNG": "image/png", b"\xff\xd8": "image/jpeg", b"GIF8": "image/gif", b"RIFF": "image/webp"}

    def __init__(self, src: bytes, label: str | None = None) -> None:
        if not isinstance(src, bytes | bytearray):
            raise TypeError(f"Image(src=...) takes the image's bytes, got {type(src).__name__}")
        self.src = bytes(src)
        self.label = label

    @classmethod
    def from_matplotlib(cls, figure: Any, label: str | None = None) -> Image:
        import io

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return cls(buffer.getvalue(), label)

    def render(self) -> str:
        kind = next((m for magic, m in self._KINDS.items() if self.src.startswith(magic)), None)
        if kind is None and self.src.lstrip().startswith((b"<svg", b"<?xml")):
            kind = "image/svg+xml"
        data = base64.b64encode(self.src).decode()
        label = f"<figcaption>{html.escape(self.label)}</figcaption>" if self.label else ""
        return f'<figure><img alt="{html.escape(self.label or "image")}" src="data:{kind or "application/octet-stream"};base64,{data}">{label}</figure>'


class LineChart(Component):
    """A line chart drawn as SVG: ``LineChart(x, y)`` or ``LineChart(x, {"train": y1, "test": y2})``."""

    COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")

    def __init__(
        self,
        x: Sequence[float],
        y: Sequence[float] | dict[str, Sequence[float]],
        *,
        title: str = "",
        xlabel: str = "",
        ylabel: str = "",
        width: int = 520,
        height: int = 260,
    ) -> None:
        self.x = [float(v) for v in x]
        series = y if isinstance(y, dict) else {"": y}
        self.series = {name: [float(v) for v in values] for name, values in series.items()}
        for name, values in self.series.items():
            if len(values) != len(self.x):
                raise ValueError(
                    f"LineChart: series {name or 'y'!r} has {len(values)} points, x has {len(self.x)}"
                )
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.width, self.height = width, height

    def render(self) -> str:
        left, right, top, bottom = 56, 16, 28 if self.title else 12, 36
        w, h = self.width - left - right, self.height - top - bottom
        ys = [v for values in self.series.values() for v in values] or [0.0]
        x0, x1 = (min(self.x), max(self.x)) if self.x else (0.0, 1.0)
        y0, y1 = min(ys), max(ys)
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

        def px(v: float) -> float:
            return left + (v - x0) / (x1 - x0) * w

        def py(v: float) -> float:
            return top + h - (v - y0) / (y1 - y0) * h

        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" class="chart">',
            f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#ccc"/>',
        ]
        if self.title:
            out.append(f'<text x="{left}" y="18" font-weight="bold">{html.escape(self.title)}</text>')
        for value, at in ((y0, top + h), (y1, top + 10)):
            out.append(f'<text x="{left - 6}" y="{at}" text-anchor="end" font-size="11">{value:.4g}</text>')
        for value, align in ((x0, "start"), (x1, "end")):
            out.append(
                f'<text x="{px(value):.1f}" y="{top + h + 14}" text-anchor="{align}" font-size="11">{value:.4g}</text>'
            )
        if self.xlabel:
            out.append(
                f'<text x="{left + w / 2:.0f}" y="{self.height - 4}" text-anchor="middle" font-size="12">{html.escape(self.xlabel)}</text>'
            )
        if self.ylabel:
            out.append(
                f'<text x="12" y="{top + h / 2:.0f}" transform="rotate(-90 12 {top + h / 2:.0f})" text-anchor="middle" font-size="12">{html.escape(self.ylabel)}</text>'
            )
        for n, (name, values) in enumerate(self.series.items()):
            colour = self.COLOURS[n % len(self.COLOURS)]
            points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(self.x, values, strict=True))
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"><title>{html.escape(name)}</title></polyline>'
            )
            if name:
                out.append(
                    f'<text x="{left + w - 4}" y="{top + 14 + 14 * n}" text-anchor="end" fill="{colour}" font-size="12">{html.escape(name)}</text>'
                )
        out.append("</svg>")
        return "".join(out)


class Artifact(Component):
    """Any value, shown as its ``repr`` (shortened)."""

    def __init__(self, value: Any, name: str | None = None) -> None:
        self.value, self.name = value, name

    def render(self) -> str:
        label = f"<strong>{html.escape(self.name)}</strong> " if self.name else ""
        return f"<div>{label}<pre>{html.escape(_short(self.value, 2000))}</pre></div>"


class CardCollector:
    """``current.card``: components appended by the running step, in order."""

    def __init__(self) -> None:
        self.components: list[Component] = []
        self.enabled = False
        self._warned = False

    def _reset(self, enabled: bool) -> None:
        self.components = []
        self.enabled = enabled
        self._warned = False

    def append(self, component: Component) -> None:
        if not isinstance(component, Component):
            raise TypeError(
                f"current.card.append() takes a card component (Markdown, Table, Image, LineChart, Artifact), "
                f"got {type(component).__name__}"
            )
        if not self.enabled and not self._warned:
            self._warned = True
            sys.stderr.write(
                "lamina: current.card.append() in a step without @card: add @card to keep the card\n"
            )
        self.components.append(component)

    def extend(self, components: Iterable[Component]) -> None:
        for component in components:
            self.append(component)

    def clear(self) -> None:
        self.components = []

    def __getitem__(self, card_id: str) -> CardCollector:
        return self  # one card per task: every id names it

    def __len__(self) -> int:
        return len(self.components)


_STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;margin:2rem auto;max-width:60rem;color:#222;padding:0 1rem}
header{border-bottom:1px solid #ddd;margin-bottom:1rem}header p{color:#666;margin:.2rem 0 1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}pre{background:#f6f6f6;padding:.5rem;overflow:auto}img{max-width:100%}section{margin:1rem 0}
"""


def render_card(
    *,
    pathspec: str,
    components: Sequence[Component],
    artifacts: dict[str, tuple[str, int, Any]] | None,
    stack: str,
    finished: str,
) -> str:
    """The whole HTML document. ``artifacts`` (the default card): ``{name: (type, size, value or
    None)}``; a value is shown for small scalars only."""
    body = [
        f"<header><h1>{html.escape(pathspec)}</h1><p>stack {html.escape(stack)} · finished {html.escape(finished)}</p></header>"
    ]
    body += [f"<section>{c.render()}</section>" for c in components]
    if artifacts is not None:
        rows = [
            [name, kind, f"{size:,} B", "" if value is None else _short(value)]
            for name, (kind, size, value) in sorted(artifacts.items())
        ]
        body.append(
            "<section><h2>Artifacts</h2>"
            + Table(rows, ["name", "type", "size", "value"]).render()
            + "</section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(pathspec)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
