"""The README's tour works as written: its commands run, in order, in a copy of the examples.

Every fenced block of README.md runs, except those marked ``<!-- tour: skip (why) -->`` on the
line before (installs, the emulated cloud, excerpts): ``bash`` blocks as shell commands,
``python`` blocks as scripts, and a ``toml`` block whose first line is ``# NAME.toml`` is written
to that file first. ``RUN_ID`` stands for the latest run's id, ``RUN_A`` and ``RUN_B`` for the two
latest runs'.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
SKIP = re.compile(r"<!-- tour: skip\b[^>]*-->\s*$")

PRELUDE = """set -euo pipefail
latest_run() { lamina runs --json --limit 2 | python -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])'; }
nth_run() { lamina runs --json --limit 2 | python -c "import json,sys; print(json.load(sys.stdin)[$1]['id'])"; }
"""


def tour_blocks(readme: str) -> list[tuple[str, str]]:
    blocks = []
    for match in FENCE.finditer(readme):
        before = readme[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if SKIP.search(before):
            continue
        blocks.append((match.group(1), match.group(2)))
    return blocks


def tour_script(readme: str) -> str:
    parts = [PRELUDE]
    for lang, body in tour_blocks(readme):
        if lang == "bash":
            for line in body.splitlines():
                if line.strip().startswith("pip install"):
                    continue  # installs are CI's set-up, never the tour test's
                line = line.replace("RUN_ID", "$(latest_run)")
                line = line.replace("RUN_A", "$(nth_run 1)").replace("RUN_B", "$(nth_run 0)")
                parts.append(f"echo {shlex.quote('+ ' + line.split('#')[0].strip())} >&2\n{line}")
        elif lang == "python":
            parts.append(f"python - <<'LAMINA_TOUR_PY'\n{body}LAMINA_TOUR_PY")
        elif lang == "toml":
            name = body.splitlines()[0].lstrip("# ").strip()
            assert name.endswith(".toml"), (
                f"a toml block in the tour must start with '# NAME.toml': {body[:60]!r}"
            )
            parts.append(f"cat > {name} <<'LAMINA_TOUR_TOML'\n{body}LAMINA_TOUR_TOML")
        else:
            raise AssertionError(f"a README block in {lang or 'no language'} is neither run nor marked skip")
    return "\n".join(parts) + "\n"


def test_the_tour_marks_what_it_skips_and_runs_the_rest() -> None:
    readme = (ROOT / "README.md").read_text()
    script = tour_script(readme)
    assert "python examples/quickstart/flow.py run --count 3" in script
    assert "lamina verify" in script and "lamina stack register mine --file my-stack.toml" in script
    assert "pip install" not in script and "lamina emulate" not in script


@pytest.mark.timeout(600)
def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(
        ROOT / "examples", checkout / "examples", ignore=shutil.ignore_patterns(".lamina", "__pycache__")
    )
    script = tour_script((ROOT / "README.md").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["LAMINA_CONFIG_DIR"] = str(tmp_path / "user-config")
    env["LAMINA_CODE_DIR"] = str(tmp_path / "code-cache")
    result = subprocess.run(
        ["bash", "-c", script], cwd=checkout, env=env, capture_output=True, text=True, timeout=580
    )
    tail = (result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0, tail
    assert "the graph is valid" in result.stdout, tail
    assert "none damaged" in result.stdout, tail
    assert "Traceback" not in result.stderr, tail
    assert (checkout / "restored" / "flow.py").is_file()
