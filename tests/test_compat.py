"""Result folders written by an earlier bakeoff still load, compare and report unchanged.

Why this exists (issue 17): the result record is moving from a plain dict to a
typed record. Run folders already on people's disks (and in CI baselines) were
written by the dict code, and ``show``, ``compare``, ``export`` and ``report``
must keep reading them and keep giving the same numbers, units and verdicts.

tests/fixtures/runs-2026-12-01/ holds two small CPU runs written by the code
at commit 0d504f181f80033ae1649be1363e5afd5fa3c85b (before the change), exactly
as that code wrote them (run.json + records/, whose records carry the raw
samples that compare's significance tests use), and, in golden/, what that same
commit's ``show --json``, ``compare --json``, ``export --format csv`` and
``report --format markdown`` printed for them. How they were made:
tests/fixtures/runs-2026-12-01/README.md. Never regenerate them to make this test
pass: a difference here means the reader changed what an old run says.

The comparison is structural (parsed JSON, CSV and markdown tables, keyed by
benchmark key/name rather than position or byte), so a new column, a new JSON
field, reordered output or a new float formatting pass, while a changed median,
p99, throughput, unit, status, validity, parity or compare verdict fails.

What is deliberately not compared, because it does not come from the fixture
files (it depends on the reader's machine, time or data files):
  * report: the HTML itself (matplotlib's random SVG ids; the layout), the output
    path, and the markdown "cost" column (priced from the catalog files, which are
    edited on their own; docs/catalog.example.toml and the built-in catalog);
  * report --json: the output path and the tmp run paths it lists;
  * compare: the human-readable labels are compared as word sets (their wording
    is cosmetic), and fingerprint/interference warnings by count and benchmark,
    not prose.
Everything show, compare and export print is otherwise a pure function of the
stored files (compare's bootstrap is seeded: numpy's default_rng(0).random),
so it is compared in full precision (rel. tolerance 1e-9, for float formatting
only).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.presentation.cli import cli

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "runs-2026-12-01"
GOLDEN = FIXTURES / "golden"
CATALOG = REPO / "docs" / "catalog.example.toml"
BASE = "20261201-123358-d744"  # gemm + llm, torch + onnxruntime, single-stream
NEW = "20261201-123503-644b"   # the same, plus the server scenario (two of them invalid)
RUNS = (BASE, NEW)
REL = 1e-9  # the numbers are stored; only their text formatting may differ


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="bakeoff")


def golden_json(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


@pytest.fixture
def runs(tmp_path) -> dict[str, Path]:
    """Copies of the fixture runs: a reader that writes into a run folder
    (a lock, a cache, a migration) must never touch the committed fixture."""
    root = tmp_path / "results"
    root.mkdir()
    for run in RUNS:
        shutil.copytree(FIXTURES / run, root / run)
    return {run: root / run for run in RUNS}


# -- comparison helpers -------------------------------------------------------------

def assert_same(actual: Any, expected: Any, where: str) -> None:
    """``actual`` equals ``expected``: numbers within REL, every expected dict key
    present (extra keys in ``actual`` are allowed), lists element by element."""
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, (int, float)):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), \
            f"{where}: {actual!r} is not a number (expected {expected!r})"
        assert math.isclose(actual, expected, rel_tol=REL, abs_tol=0.0), \
            f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), \
            f"{where}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        for key, value in expected.items():
            assert key in actual, f"{where}: {key!r} missing"
            assert_same(actual[key], value, f"{where}.{key}")
    else:  # pragma: no cover - JSON has no other types
        raise TypeError(f"{where}: unexpected {type(expected)}")


def dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[part]
    return obj


# The fields of a record that a reader must reproduce: identity, outcome, the
# measured numbers and their units, the raw samples, parity and scenario validity.
RECORD_FIELDS = (
    "schema_version", "kind", "run_id", "key", "fingerprint",
    "spec.backend", "spec.device", "spec.workload", "spec.params", "spec.dtype",
    "spec.batch_size", "spec.scenario", "spec.stopping", "spec.server", "spec.threads",
    "status", "reason", "failure", "unit", "work_per_step", "flops_per_step",
    "backend_version", "stats", "throughput", "warnings",
    "measurement.latencies_ns", "measurement.token_offsets_ns", "measurement.warmup",
    "measurement.timer", "measurement.harness_overhead_ns", "measurement.elapsed_ns",
    "parity.passed", "parity.reason", "parity.max_abs_error", "parity.max_rel_error",
    "parity.cosine", "parity.tolerance",
    "scenario.name", "scenario.metric", "scenario.valid", "scenario.validity_reason",
    "stopping.mode", "stopping.reason", "stopping.target_reached", "stopping.achieved_ci",
    "energy.joules", "memory.host_peak_rss_bytes", "memory.weight_bytes",
    "interference.noisy", "interference.other_cpu_share",
    "precision", "plausibility.verdict", "started_at", "finished_at",
)
SERVER_FIELDS = ("scenario.target_qps", "scenario.achieved_qps", "scenario.goodput")
TOKEN_FIELDS = ("tokens.ttft", "tokens.tpot", "tokens.itl")
MANIFEST_FIELDS = ("schema_version", "kind", "run_id", "status", "started_at", "finished_at",
                   "bakeoff_version", "git", "settings", "plan")


# -- show ---------------------------------------------------------------------------

@pytest.mark.parametrize("run", RUNS)
def test_show_json_of_an_old_run_is_unchanged(runs, run):
    result = invoke("show", runs[run], "--json")
    assert result.exit_code == 0, result.output
    shown, golden = json.loads(result.stdout), golden_json(f"show-{run}.json")

    for field in MANIFEST_FIELDS:
        assert_same(dig(shown["manifest"], field), dig(golden["manifest"], field), f"manifest.{field}")

    records = {r["key"]: r for r in shown["records"]}
    expected = {r["key"]: r for r in golden["records"]}
    assert sorted(records) == sorted(expected)
    for key, old in expected.items():
        fields = RECORD_FIELDS
        if old["spec"]["scenario"] == "server":
            fields += SERVER_FIELDS
        if old.get("tokens"):
            fields += TOKEN_FIELDS
        for field in fields:
            assert_same(dig(records[key], field), dig(old, field), f"{key}.{field}")


def test_show_table_of_an_old_run(runs):
    result = invoke("show", runs[NEW])
    assert result.exit_code == 0, result.output
    assert NEW in result.stdout
    # The table's status column: the two overloaded llm server runs are invalid.
    assert result.stdout.count("invalid") >= 2, result.stdout
    assert "Traceback" not in result.output


# -- compare ------------------------------------------------------------------------

def unloaded(label: str) -> str:
    """A label as the goldens' bakeoff wrote it: before load points were named in labels
    (``server[qps=50]``, ``rank 1 at qps=50``), the scenario stood alone."""
    label = re.sub(r"\b(server|concurrent)\[(?:qps|concurrency|max|trace)[^\]]*\]", r"\1", label)
    return re.sub(r"^(rank \d+) at \S+", r"\1", label)


def words(label: str) -> list[str]:
    return sorted(re.split(r"[\s/]+", unloaded(label).strip()))


def test_compare_of_old_runs_gives_the_same_ratios_and_verdicts(runs):
    result = invoke("compare", runs[BASE], runs[NEW], "--json")
    assert result.exit_code == 0, result.output
    shown, golden = json.loads(result.stdout), golden_json("compare.json")

    assert_same(shown["threshold"], golden["threshold"], "threshold")
    assert len(shown["results"]) == len(golden["results"]) == 1
    new, old = shown["results"][0], golden["results"][0]
    assert_same(new["alpha"], old["alpha"], "alpha")

    comparisons = {c["key"]: c for c in new["comparisons"]}
    expected = {c["key"]: c for c in old["comparisons"]}
    assert sorted(comparisons) == sorted(expected)
    # The golden covers every verdict but "unchanged": a regression gate reading
    # these runs must still see the same ones.
    assert {c["verdict"] for c in expected.values()} == {"improved", "regressed", "inconclusive"}
    for key, want in expected.items():
        got = comparisons[key]
        for field in ("base_run", "new_run", "base_median_s", "new_median_s", "ratio",
                      "ratio_ci", "p_value", "verdict"):
            assert_same(got.get(field), want[field], f"{key}.{field}")
        assert words(got["label"]) == words(want["label"]), (got["label"], want["label"])

    for side in ("only_base", "only_new", "not_comparable"):
        assert sorted(map(words, new[side])) == sorted(map(words, old[side])), side
    for warnings in ("fingerprint_warnings", "interference_warnings"):
        assert len(new[warnings]) == len(old[warnings]), (warnings, new[warnings])
    for want, got in zip(sorted(old["interference_warnings"]), sorted(new["interference_warnings"])):
        # the benchmark it is about: the label before the first colon
        assert words(got.split(":")[0]) == words(want.split(":")[0]), (got, want)


def test_compare_regression_gate_on_old_runs(runs):
    """--fail-on-regression sees the llm/onnxruntime regression (ratio 1.32 > 5%)."""
    result = invoke("compare", runs[BASE], runs[NEW], "--fail-on-regression")
    assert result.exit_code == 1, result.output
    result = invoke("compare", runs[BASE], runs[NEW], "--threshold", "50%", "--fail-on-regression")
    assert result.exit_code == 0, result.output


# -- export -------------------------------------------------------------------------

def cell(text: str) -> Any:
    """A CSV cell as a value, so 1 == 1.0 and 2.4e-05 == 0.000024 (formatting is cosmetic)."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return float(text)
    except ValueError:
        return text


def test_export_csv_of_old_runs_is_unchanged(runs):
    result = invoke("export", runs[BASE], runs[NEW], "--format", "csv")
    assert result.exit_code == 0, result.output
    got_rows = list(csv.DictReader(io.StringIO(result.stdout)))
    want_rows = list(csv.DictReader(io.StringIO((GOLDEN / "export.csv").read_text())))

    # Every column the old export had is still there (new columns are fine).
    missing = set(want_rows[0]) - set(got_rows[0])
    assert not missing, f"export lost columns: {sorted(missing)}"

    got = {(r["run_id"], r["key"]): r for r in got_rows}
    want = {(r["run_id"], r["key"]): r for r in want_rows}
    assert len(got) == len(got_rows) and len(want) == len(want_rows) == 12
    assert sorted(got) == sorted(want)
    for row_key, old in want.items():
        new = got[row_key]
        for column, text in old.items():
            if column == "latencies_s":  # the raw samples, as JSON text
                assert_same(json.loads(new[column]) if new[column] else None,
                            json.loads(text) if text else None, f"{row_key}.{column}")
            else:
                assert_same(cell(new[column]), cell(text), f"{row_key}.{column}")

    # The headline numbers, spelled out so a failure reads plainly.
    statuses = {(r["run_id"], r["scenario"], r["backend"], r["workload"]):
                (r["status"], r["valid"], r["rankable"]) for r in got.values()}
    assert statuses[(NEW, "server", "torch", "llm")] == ("ok", "False", "False")
    assert statuses[(NEW, "server", "torch", "gemm")] == ("ok", "True", "True")
    assert {r["throughput_unit"] for r in got.values() if r["workload"] == "gemm"} == {"FLOP/s"}
    assert {r["throughput_unit"] for r in got.values() if r["workload"] == "llm"} == {"token/s"}
    assert {r["parity_passed"] for r in got.values()} == {"True"}


# -- report -------------------------------------------------------------------------

PREFIX = {"": 1.0, "n": 1e-9, "µ": 1e-6, "μ": 1e-6, "u": 1e-6, "m": 1e-3,
          "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
BASE_UNITS = ("FLOP/s", "token/s", "queries/s", "B/s", "s")


def quantity(text: str) -> tuple[float, str]:
    """'21.6 GFLOP/s' -> (2.16e10, 'FLOP/s'); '117 µs' -> (1.17e-4, 's')."""
    number, unit = text.split()
    for base in BASE_UNITS:
        if unit.endswith(base) and unit[: -len(base)] in PREFIX:
            return float(number) * PREFIX[unit[: -len(base)]], base
    raise AssertionError(f"unrecognised quantity {text!r}")


def markdown_rows(text: str) -> list[dict[str, str]]:
    """The rows of the table of every benchmark (since issue 19 under its own heading, after the
    decision; the goldens' report is that one table)."""
    text = text.split("## Every benchmark", 1)[-1]
    lines = [line for line in text.splitlines() if line.startswith("|")]
    split = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    header = split(lines[0])
    return [dict(zip(header, split(line))) for line in lines[2:]]


def test_report_html_of_old_runs(runs, tmp_path):
    out = tmp_path / "x.html"
    result = invoke("report", runs[BASE], runs[NEW], "-o", out, "--catalog", CATALOG)
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    for needle in (BASE, NEW, "torch", "onnxruntime", "gemm", "llm"):
        assert needle in html, needle
    assert "Traceback" not in html


def test_report_markdown_of_old_runs_gives_the_same_table(runs, tmp_path):
    out = tmp_path / "x.md"
    result = invoke("report", runs[BASE], runs[NEW], "-o", out, "--format", "markdown",
                    "--catalog", CATALOG)
    assert result.exit_code == 0, result.output
    got, want = markdown_rows(out.read_text()), markdown_rows((GOLDEN / "report.md").read_text())
    assert len(got) == len(want) == 12

    def keyed(rows):  # the same candidate appears once per run: number the repeats
        seen: dict[tuple[str, str], int] = {}
        out = {}
        for row in rows:
            name = (unloaded(row["workload"]), row["candidate"])
            seen[name] = seen.get(name, 0) + 1
            out[name + (seen[name],)] = row
        return out

    got, want = keyed(got), keyed(want)
    assert sorted(got) == sorted(want)
    for name, old in want.items():
        new = got[name]
        # Cost is not compared: it is priced from the catalog, not the run.
        for column in ("throughput", "p99"):
            (a, a_unit), (b, b_unit) = quantity(new[column]), quantity(old[column])
            assert a_unit == b_unit and math.isclose(a, b, rel_tol=0.01), (name, column, new[column], old[column])
        assert new["parity"] == old["parity"], name
        # "rank N" or the invalidity reason first; then notes such as "noisy: ..."
        new_status, old_status = new["status / policy"], old["status / policy"]
        if name[0].split()[0] in ("gemm", "membw") and old_status.startswith("rank"):
            # Since issue 19 the roofline probes are capability figures, never priced per FLOP or byte.
            assert new_status.startswith("a capability probe"), (name, new_status)
        else:
            assert unloaded(new_status.split(" · ")[0]) == old_status.split(" · ")[0], (name, new_status, old_status)
        assert ("noisy" in new_status) == ("noisy" in old_status), (name, new_status, old_status)
