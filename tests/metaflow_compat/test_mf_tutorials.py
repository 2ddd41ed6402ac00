"""Metaflow's published tutorial flows, with only ``from metaflow import`` changed to
``from lamina import``, run on the local stack and print what they print on Metaflow.

The flows in ``flows/`` follow the tutorials step for step; the movie data is a small CSV of our
own with the tutorials' columns (each genre has one movie or at least three: the statistics
tutorial's quartile index runs past the end of a genre with exactly two, on Metaflow as here).
"""

from __future__ import annotations

from pathlib import Path

from lamina import Flow, Run
from mf_helpers import flow_cli, movies, printed


def test_helloworld(lamina_project: Path) -> None:
    done = flow_cli("helloworld.py", "run")
    assert done.returncode == 0, done.stderr
    assert printed(done.stdout) == ["HelloFlow is starting.", "Metaflow says: Hi!", "HelloFlow is all done."]


def _playlist_lines(lines: list[str], genre: str, count: int, candidates: set[str]) -> None:
    assert lines[0] == f"Playlist for movies in genre '{genre}'"
    picks = lines[1:-1]
    assert len(picks) == count
    titles = []
    for number, line in enumerate(picks, start=1):
        prefix = f"Pick {number}: '"
        assert line.startswith(prefix) and line.endswith("'"), line
        titles.append(line[len(prefix) : -1])
    assert set(titles) <= candidates and len(set(titles)) == count
    assert lines[-1].startswith("Bonus Pick: '")


def test_playlist_includes_the_movie_file(lamina_project: Path) -> None:
    done = flow_cli(
        "playlist.py", "run", "--genre", "Sci-Fi", "--recommendations", "3", "--run-id-file", "rid"
    )
    assert done.returncode == 0, done.stderr
    scifi = {m["movie_title"] for m in movies() if "sci-fi" in m["genres"].lower()}
    lines = printed(done.stdout)
    _playlist_lines(lines, "Sci-Fi", 3, scifi)
    bonus_title, bonus_genres = lines[-1][len("Bonus Pick: '") :].split("' from '")
    assert bonus_title not in scifi and "Sci-Fi" not in bonus_genres
    run = Run(Path("rid").read_text())
    assert run["start"].task.data.dataframe["movie_title"] == [m["movie_title"] for m in movies()]


def test_statistics_then_the_playlist_sequel_reads_them_through_the_client(lamina_project: Path) -> None:
    done = flow_cli("stats.py", "run", "--run-id-file", "rid")
    assert done.returncode == 0, done.stderr
    genres = {g for m in movies() for g in m["genres"].split("|")}
    computed = {line[len("Computing statistics for ") :] for line in printed(done.stdout)}
    assert computed == genres
    stats_run = Flow("MovieStatsFlow").latest_successful_run
    assert stats_run.id == Path("rid").read_text()
    stats = stats_run.data.genre_stats
    assert set(stats) == {g.lower() for g in genres}
    scifi = sorted((int(m["gross"]), m["movie_title"]) for m in movies() if "Sci-Fi" in m["genres"])
    assert stats["sci-fi"]["dataframe"]["movie_title"] == [t for _, t in scifi]
    n = len(scifi)
    assert stats["sci-fi"]["quartiles"] == [scifi[round(n * c)][0] for c in (0.25, 0.5, 0.75)]

    sequel = flow_cli("playlist_redux.py", "run", "--recommendations", "2")
    assert sequel.returncode == 0, sequel.stderr
    lines = printed(sequel.stdout)
    assert lines[0].startswith("Using metadata provider: local@sqlite:///")
    assert lines[1] == f"Using analysis from 'Run('MovieStatsFlow/{stats_run.id}')'"
    top = {t for g, t in scifi if g >= stats["sci-fi"]["quartiles"][-1]}
    _playlist_lines(lines[2:], "Sci-Fi", min(2, len(top)), top)


def _levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def test_playlist_plus_gets_its_conda_package_in_one_step_only(
    lamina_project: Path, tmp_path_factory, monkeypatch
) -> None:
    monkeypatch.setenv("LAMINA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "lamina-env-cache"))
    assert flow_cli("stats.py", "run").returncode == 0
    done = flow_cli("playlist_plus.py", "--environment=conda", "run", "--hint", "Nebula Draft")
    assert done.returncode == 0, done.stderr
    lines = printed(done.stdout)
    assert lines[0].startswith("Using metadata provider: local@")
    closest = min(movies(), key=lambda m: _levenshtein("Nebula Draft", m["movie_title"]))
    assert lines[-1] == f"Bonus Pick: '{closest['movie_title']}' from '{closest['genres']}'"
    assert lines[-1] == "Bonus Pick: 'Nebula Drift' from 'Adventure|Sci-Fi'"
    assert done.stderr.count("asks for Python 3.9.10") == 1  # one notice for the run
    import importlib.util

    assert importlib.util.find_spec("editdistance") is None  # the driver's environment never got it
