"""`bakeoff new-backend` end to end, by running the plugin author's guide
(docs/writing-a-backend.md) command by command: scaffold, install, list, run,
the generated conformance tests, and building the wheel."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.presentation.cli import cli
from harness.tools.scaffold import PluginNames

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "writing-a-backend.md"
PIP_OFFLINE = ["--no-deps", "--no-build-isolation", "--no-index"]


def guide_commands() -> list[str]:
    """Every ``$ command`` line in the guide's console blocks, in order."""
    blocks = re.findall(r"```console\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return [line[2:].strip() for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def as_test_command(command: str, site: Path) -> list[str]:
    """The guide's command as this sandbox runs it: the same program and arguments, with pip
    kept offline and installing into a --target folder instead of site-packages."""
    words = shlex.split(command)
    program, args = words[0], words[1:]
    if program == "bakeoff":
        return [sys.executable, "-m", "harness.presentation.cli", *args]
    if program == "pytest":
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    if program == "pip" and args[:2] == ["install", "-e"]:
        return [sys.executable, "-m", "pip", "install", "-q", *PIP_OFFLINE, "--target", str(site), args[2]]
    if program == "pip" and args[0] == "wheel":
        return [sys.executable, "-m", "pip", "wheel", "-q", *PIP_OFFLINE, *[a for a in args[1:] if a != "--no-deps"]]
    raise AssertionError(f"the guide has a command this test does not exercise: {command!r}")


def test_the_guide_lists_the_whole_journey():
    programs = [c.split()[0] + " " + c.split()[1] for c in guide_commands()]
    assert programs == ["bakeoff new-backend", "pip install", "bakeoff backends", "bakeoff run",
                        "pytest plugins/bakeoff-acme/tests", "pip wheel"]


@pytest.mark.slow
def test_every_guide_command_works_end_to_end(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
           "BAKEOFF_CACHE_DIR": str(tmp_path / "cache")}
    outputs = {}
    for command in guide_commands():
        result = subprocess.run(as_test_command(command, site), cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        outputs[command.split()[0] + " " + command.split()[1]] = result.stdout

    # Scaffold: the package's files.
    package = tmp_path / "plugins" / "bakeoff-acme"
    assert (package / "src" / "bakeoff_acme" / "backend.py").exists()
    assert 'acme = "bakeoff_acme.backend:AcmeBackend"' in (package / "pyproject.toml").read_text()
    # Install + list: bakeoff finds the plugin through its entry point.
    assert re.search(r"acme\s.*cpu\s.*yes", outputs["bakeoff backends"])
    listing = subprocess.run([sys.executable, "-m", "harness.presentation.cli", "backends", "--json"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    acme = [r for r in json.loads(listing.stdout) if r["backend"] == "acme"]
    assert acme and acme[0]["available"] and acme[0]["plugin"].startswith("bakeoff_acme.backend:AcmeBackend")
    # Run: records written, measured, parity checked.
    records = list((tmp_path / "results").glob("*/records/*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["status"] == "ok" and record["spec"]["backend"] == "acme" and record["parity"]["passed"]
    # The generated conformance tests passed unchanged (all six contracts ran, none skipped).
    assert "7 passed" in outputs["pytest plugins/bakeoff-acme/tests"]
    # Publish: a wheel.
    assert list((tmp_path / "dist").glob("bakeoff_acme-0.1.0-*.whl"))


def test_bad_names_and_existing_folders_are_one_line_errors(tmp_path):
    runner = CliRunner()
    for args, message in ((["new-backend", "Acme"], "use lowercase letters"),
                          (["new-backend", "torch", "--dir", str(tmp_path)], "already used by an installed backend")):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1
    assert runner.invoke(cli, ["new-backend", "acme", "--dir", str(tmp_path)]).exit_code == 0
    again = runner.invoke(cli, ["new-backend", "acme", "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output


def test_names_map_to_python_identifiers():
    names = PluginNames.of("acme-npu2")
    assert (names.module, names.class_name, names.distribution) == ("bakeoff_acme_npu2", "AcmeNpu2Backend",
                                                                    "bakeoff-acme-npu2")
