"""A real JupyterLab server and headless Chromium (the system browser, never a download)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TOKENDIM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """JupyterLab on a free loopback port, no token, serving a temporary folder."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    root = tmp_path_factory.mktemp("lab")
    port = _free_port()
    env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1")
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--allow-root",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail("JupyterLab did not start:\n" + (root / "server.log").read_text())
            time.sleep(0.5)
    try:
        yield {"url": url, "root": root}
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if ARTIFACTS.exists():
            shutil.copy(root / "server.log", ARTIFACTS / "jupyter-server.log")


SERVER_COMMANDS = {
    "lab": [
        "-m",
        "jupyter",
        "lab",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ],
    "notebook": ["-m", "jupyter", "notebook"],
}
JUPYTER_OPTIONS = [
    "--allow-root",
    "--no-browser",
    "--ip=127.0.0.1",
    "--ServerApp.token=",
    "--ServerApp.password=",
    "--ServerApp.disable_check_xsrf=True",
]


@contextlib.contextmanager
def serve(kind: str, root: Path, notebook: str = "") -> Iterator[str]:
    """Run JupyterLab ("lab"), Notebook 7 ("notebook") or Voila ("voila", on ``notebook``) in
    ``root`` on a free loopback port; yield its base URL; stop it by its process id."""
    port = _free_port()
    if kind == "voila":
        args = [
            "-m",
            "voila",
            notebook,
            "--no-browser",
            "--Voila.ip=127.0.0.1",
            f"--port={port}",
            "--token=",
        ]
    else:
        args = [
            *SERVER_COMMANDS[kind],
            *JUPYTER_OPTIONS,
            f"--port={port}",
            f"--ServerApp.root_dir={root}",
        ]
    env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1")
    log_path = root / f"{kind}-server.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root
    )
    url = f"http://127.0.0.1:{port}"
    probe = f"{url}/voila/static/" if kind == "voila" else f"{url}/api/status"
    deadline = time.monotonic() + 120
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
            if kind != "voila":
                with urllib.request.urlopen(probe, timeout=2):
                    pass
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail(f"{kind} did not start:\n" + log_path.read_text())
            time.sleep(0.5)
    try:
        yield url
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if ARTIFACTS.exists():
            shutil.copy(log_path, ARTIFACTS / f"{kind}-server.log")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
