"""Code run in a new Python process: what a later session of the user would see.

A new process starts with empty in-memory memos (verified store entries, file hashes), so
tests of what persists between sessions run there instead of clearing private caches.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def in_new_process(code: str, *args: object, timeout: float = 300) -> str:
    """Run ``code`` with ``sys.argv[1:] == args`` in a new interpreter; its stdout.

    It imports the package from this checkout and inherits the environment (the test's
    ``TOKENDIM_CACHE_DIR`` included).
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
