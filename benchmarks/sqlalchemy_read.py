"""Reading a 1,000,000-row, 5-column PostgreSQL table into Arrow: the ``sqlalchemy`` data adapter
against ``pandas.read_sql`` on the same table, in the same run.

Each case runs in a fresh Python process (so one case's memory never counts for another), which
imports what it needs, reads the whole table, checks the row count and reports the read's wall
time and the process's peak RSS. The table is written once, through the adapter (binary-free
``COPY``), in a schema of its own that is dropped at the end.

    python benchmarks/sqlalchemy_read.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--rows 1000000] [--repeat 3]

Goal (issue 10): the adapter at least 5x faster than pandas, with no more memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid

CASES = {
    "adapter": "the sqlalchemy data adapter, data_read (reader auto: ADBC)",
    "adapter-dbapi": "the sqlalchemy data adapter, data_read (reader dbapi: psycopg, server-side cursor)",
    "pandas": "pandas.read_sql over a SQLAlchemy engine (psycopg)",
}

CHILD = r"""
import json, resource, sys, time

def status(key):  # /proc: the high-water mark restarts at exec, unlike getrusage's ru_maxrss
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

case, url, schema, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if case.startswith("adapter"):
    from pathlib import Path
    from lamina.hookspecs import AdapterContext
    from lamina.plugins.sqlalchemy_data import SQLAlchemyData, SQLAlchemySettings
    import pyarrow, sqlalchemy, adbc_driver_postgresql.dbapi, psycopg  # imports are not the read
    reader = "dbapi" if case == "adapter-dbapi" else "auto"
    adapter = SQLAlchemyData(SQLAlchemySettings(url=url, schema=schema, reader=reader),
                             AdapterContext(Path("."), "bench", "sqlalchemy"))
    adapter.data_tables()  # connect first: the pool's first connection is not the read
    before, cpu_start = status("VmRSS"), cpu()
    start = time.perf_counter()
    result = adapter.data_read("bench")
    seconds = time.perf_counter() - start
    count = result.table.num_rows
else:
    import pandas as pd, sqlalchemy as sa, psycopg
    engine = sa.create_engine(url)
    with engine.connect() as c:
        c.exec_driver_sql("SELECT 1")
    before, cpu_start = status("VmRSS"), cpu()
    start = time.perf_counter()
    frame = pd.read_sql(f"SELECT * FROM {schema}.bench", engine)
    seconds = time.perf_counter() - start
    count = len(frame)
assert count == rows, (case, count)
print(json.dumps({"seconds": seconds, "cpu": cpu() - cpu_start, "peak_mib": status("VmHWM"), "before_mib": before}))
"""


def run_case(case: str, url: str, schema: str, rows: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, case, url, schema, str(rows)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def setup(url: str, schema: str, rows: int) -> float:
    """Create the schema and write the table through the adapter; return the write's seconds."""
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.compute as pc
    import sqlalchemy as sa
    from lamina.hookspecs import AdapterContext
    from lamina.plugins.sqlalchemy_data import SQLAlchemyData, SQLAlchemySettings

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    ids = pa.array(range(rows), pa.int64())
    table = pa.table(
        {
            "id": ids,
            "value": pc.multiply(pc.cast(ids, pa.float64()), 1.5),
            "label": pc.binary_join_element_wise("item-", pc.cast(ids, pa.string()), ""),
            "flag": pc.equal(pc.bit_wise_and(ids, 1), 0),
            "bucket": pc.bit_wise_and(ids, 1023),
        }
    )
    adapter = SQLAlchemyData(
        SQLAlchemySettings(url=url, schema=schema), AdapterContext(Path("."), "bench", "sqlalchemy")
    )
    start = time.perf_counter()
    adapter.data_write("bench", table, "replace")
    seconds = time.perf_counter() - start
    adapter.data_close()
    return seconds


def teardown(url: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    schema = f"lamina_bench_{uuid.uuid4().hex[:8]}"
    print(f"writing {args.rows:,} rows x 5 columns into {schema}.bench ...", file=sys.stderr)
    try:
        write_seconds = setup(args.url, schema, args.rows)
        results: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
        for round_ in range(args.repeat):  # interleaved, so a load change hits every case alike
            for case in CASES:
                print(f"round {round_ + 1}/{args.repeat}: {case}", file=sys.stderr)
                results[case].append(run_case(case, args.url, schema, args.rows))
    finally:
        teardown(args.url, schema)
    print(f"Table: {args.rows:,} rows x 5 columns (int64, float64, string, bool, int64) in PostgreSQL.")
    print(f"Written once through the adapter (COPY): {write_seconds:.2f} s.\n")
    print(
        f"| case | read wall time, median of {args.repeat} (s) | client CPU (s) | peak RSS (MiB) | RSS before the read (MiB) |"
    )
    print("|---|---|---|---|---|")
    medians: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for case, samples in results.items():
        medians[case] = statistics.median(s["seconds"] for s in samples)
        peaks[case] = max(s["peak_mib"] for s in samples)
        before = max(s["before_mib"] for s in samples)
        cpu = statistics.median(s["cpu"] for s in samples)
        print(f"| {CASES[case]} | {medians[case]:.2f} | {cpu:.2f} | {peaks[case]:.0f} | {before:.0f} |")
    speedup = medians["pandas"] / medians["adapter"]
    memory = peaks["adapter"] / peaks["pandas"]
    import os

    print(f"\nload average during the run: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} cores")
    print(f"adapter vs pandas.read_sql: {speedup:.1f}x faster, {memory:.2f}x the peak memory")
    print(f"goal (>= 5x faster, no more memory): {'met' if speedup >= 5 and memory <= 1 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
