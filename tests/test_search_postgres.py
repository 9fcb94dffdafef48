"""tests/test_search.py again, by a pytest of its own whose database is a fresh PostgreSQL one: the search runs
on PostgreSQL's full-text search there (GIN expression indexes, tsquery, ts_headline). Runs whenever
PostgreSQL is reachable, and always under CI=true (missing, it fails there)."""

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from cluster import drop_postgres_database, fresh_postgres_database, postgres_reachable, require

ROOT = Path(__file__).resolve().parent.parent


def test_every_search_test_passes_on_postgresql():
    require(postgres_reachable(), "PostgreSQL")
    name = f"claudechat_search_{uuid.uuid4().hex[:8]}"
    # pytest-django creates (and drops) test_<name> next to it; the server's own database is never touched.
    env = {**os.environ, "DATABASE_URL": fresh_postgres_database(name)}
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                "--create-db",
                "tests/test_search.py",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        drop_postgres_database(f"test_{name}")
        drop_postgres_database(name)

    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), output  # nothing skipped, nothing failed
