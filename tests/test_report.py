"""The HTML report: escaped, self-contained, and rendered for real in headless Chromium."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.presentation.cli import cli
from harness.presentation.report import build_report
from harness.results.store import read_manifest, read_records

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = '<script>alert("owned")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    """A real run: gemm and a tiny LLM on torch, with a membw ceiling, plus a run manifest."""
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(cli, ["run", "-b", "torch", "-b", "onnxruntime", "-w", "gemm", "-w", "llm",
                                      "-w", "membw", "-p", "gemm.size=64", "-p", "membw.size_mib=8",
                                      "--preset", "tiny", "--iterations", "10", "--warmup", "1",
                                      "--launcher", "inline", "--out", str(out), "--json"], prog_name="bakeoff")
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


def write_report(run_dir: Path, target: Path, *extra: str) -> Path:
    catalog = Path(__file__).resolve().parent.parent / "docs" / "catalog.example.toml"
    result = CliRunner().invoke(cli, ["report", str(run_dir), "-o", str(target), "--catalog", str(catalog), *extra],
                                prog_name="bakeoff")
    assert result.exit_code == 0, result.output
    return target


def test_report_is_self_contained_and_has_every_section(report_run, tmp_path):
    text = write_report(report_run, tmp_path / "report.html").read_text()
    for heading in ("Decision", "Capability probes", "Throughput versus interactivity", "Cost versus latency",
                    "Detail"):
        assert f"<h2>{heading}</h2>" in text
    for heading in ("Every benchmark", "Not charted", "Throughput by backend and dtype", "Latency distributions",
                    "Roofline", "Environment"):
        assert f"<h3>{heading}</h3>" in text
    assert re.findall(r"<h2>([^<]*)</h2>", text)[0] == "Decision"  # the answer first, the detail after
    assert text.count("<svg") >= 5  # pareto, 3 throughput, 3 latency, roofline (at least)
    assert not re.search(r"per 1k (FLOP|B)s?\b", text)  # probes are capabilities, never priced per FLOP or byte
    assert "<script" not in text.lower()
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', text)  # nothing fetched at view time
    assert "rank 1" in text and "per 1M tokens" in text


def test_strings_from_runs_are_escaped(report_run):
    records = read_records(report_run)
    records[0] = {**records[0], "spec": {**records[0]["spec"], "device": EVIL, "workload": EVIL}}
    manifest = {**read_manifest(report_run), "run_id": EVIL}
    text = build_report(records, [manifest])
    assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in text


def test_markdown_report(report_run, tmp_path):
    text = write_report(report_run, tmp_path / "report.md", "--format", "markdown").read_text()
    assert text.startswith("# bakeoff report\n\n## Decision") and "Recommended: **" in text
    assert text.index("## Decision") < text.index("## Every benchmark")
    assert "| workload | candidate | cost |" in text and "token/s" in text
    # Each ranked candidate says by how much it passed parity (the run's are float32 on the CPU).
    header = next(line for line in text.splitlines() if line.startswith("| rank | candidate |"))
    assert "parity vs float32 reference" in header
    column = header.strip("|").split("|").index(" parity vs float32 reference ")
    rows = [line.strip("|").split("|") for line in text.splitlines()
            if re.match(r"\| (★ )?\d", line)]
    assert rows and all(re.fullmatch(r" (exact|cosine [0-9.]+(, \d+ tokens? differ)?) ", row[column]) for row in rows), rows
    assert not re.search(r"per 1k (FLOP|B)s?\b", text)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")
def test_report_renders_in_headless_chromium_without_errors_or_requests(report_run, tmp_path):
    report = write_report(report_run, tmp_path / "report.html")
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{report.name}"
    ARTIFACTS.mkdir(exist_ok=True)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    try:
        dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
        shot = subprocess.run([*flags, f"--screenshot={ARTIFACTS / 'report.png'}", "--window-size=1200,3000", url],
                              capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") >= 5  # the charts are in the rendered DOM
    # Decision first; one cost chart per ranked workload, so no chart mixes units; no price per FLOP or byte.
    assert re.findall(r"<h2>([^<]*)</h2>", dom.stdout)[0] == "Decision"
    from harness.hardware.catalog import load_catalog
    from harness.procurement.rank import rank

    ranked = rank(read_records(report_run), load_catalog([Path(__file__).resolve().parent.parent / "docs"
                                                          / "catalog.example.toml"])).ranked
    costs = dom.stdout[dom.stdout.index("<h2>Cost versus latency</h2>"):dom.stdout.index("<h2>Detail</h2>")]
    assert ranked and costs.count("<svg") == len({c["workload"] for c in ranked})
    assert not re.search(r"per 1k (FLOP|B)s?\b", dom.stdout)
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == []  # no console messages, errors included
    assert set(requests) == {f"/{report.name}"}  # the page asked for nothing but itself
    assert shot.returncode == 0 and (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_output_into_a_missing_folder_is_one_line_exit_2(report_run, tmp_path):
    for command in (["report", str(report_run), "-o", str(tmp_path / "no" / "such" / "r.html")],
                    ["export", str(report_run), "--format", "csv", "-o", str(tmp_path / "no" / "r.csv")]):
        result = CliRunner().invoke(cli, command, prog_name="bakeoff")
        assert result.exit_code == 2 and "does not exist" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_noisy_candidate_is_marked_in_the_summary_but_still_ranked(report_run):
    from harness.hardware.catalog import load_catalog
    from harness.procurement.rank import rank

    records = read_records(report_run)
    reason = "other processes used 48% of the machine's CPU time while it was measured"
    noisy_key = next(r["key"] for r in records if r["spec"]["workload"] == "llm" and r["status"] == "ok")
    # The others are marked quiet: the fixture's own run is marked noisy when the suite shares a busy machine.
    records = [{**r, "interference": {"noisy": r["key"] == noisy_key, "reasons": [reason] if r["key"] == noisy_key
                                      else []}} for r in records]
    catalog = load_catalog([Path(__file__).resolve().parent.parent / "docs" / "catalog.example.toml"])
    ranking = rank(records, catalog)
    text = build_report(records, [read_manifest(report_run)], ranking)
    (row,) = [row for row in text.split("<tr>") if "noisy: other" in row]  # the detail's row says why
    assert "rank " in row and reason.replace("'", "&#x27;") in row
    (marked,) = [row for row in text.split("<tr>") if "(noisy: interference)" in row]  # the decision marks it
    assert text.count("noisy: ") == 2


def _untrusted(records):
    """Copies of the run's torch gemm record that failed parity and that are invalid for their scenario, each on
    its own device name so that its candidate label is its own, in the same workload as the good records."""
    good = next(r for r in records if r["spec"]["workload"] == "gemm" and r["spec"]["backend"] == "torch")
    liar = {**good, "key": "liar", "spec": {**good["spec"], "device": "liar"},
            "parity": {**good["parity"], "passed": False, "reason": "max_rel_error 0.5 > 0.001 <b>"}}
    short = {**good, "key": "short", "spec": {**good["spec"], "device": "short"},
             "scenario": {**good["scenario"], "valid": False, "validity_reason": "3 queries < min_queries 1024"}}
    return liar, short


def test_charts_leave_out_untrusted_records_and_the_report_lists_them_with_the_reason(report_run, monkeypatch):
    from harness.presentation import report

    records = read_records(report_run)
    liar, short = _untrusted(records)
    drawn: list[list[str]] = []  # the candidate labels on each chart's y axis, as the chart functions drew them

    def capture(figure):
        drawn.append([tick.get_text() for axis in figure.axes for tick in axis.get_yticklabels()])
        return "<svg></svg>"

    monkeypatch.setattr(report, "_svg", capture)
    everything = [*records, liar, short]
    report.throughput_charts(everything)
    report.latency_charts(everything)
    report.roofline_chart(everything)
    labels = [text for chart in drawn for text in chart]
    assert "torch/cpu float32 b1" in labels  # the good copy is still drawn
    assert not [text for text in labels if "liar" in text or "short" in text]

    text = build_report(everything, [read_manifest(report_run)])
    section = text[text.index("<h3>Not charted</h3>"):text.index("<h3>Throughput by backend and dtype</h3>")]
    rows = {row.split("</td>")[1].removeprefix("<td>"): row for row in section.split("<tr>")[2:]}
    assert set(rows) == {"torch/liar float32 b1", "torch/short float32 b1"}
    assert "parity failed: max_rel_error 0.5 &gt; 0.001 &lt;b&gt;" in rows["torch/liar float32 b1"]  # escaped
    assert "invalid single-stream result: 3 queries &lt; min_queries 1024" in rows["torch/short float32 b1"]
    assert f"2 of {len(everything)} records are left out of the charts" in section


def test_a_report_with_only_trusted_records_says_every_record_is_charted(report_run):
    text = build_report(read_records(report_run), [read_manifest(report_run)])
    section = text[text.index("<h3>Not charted</h3>"):text.index("<h3>Throughput by backend and dtype</h3>")]
    assert "Every record is charted" in section and "<table" not in section


def test_the_decision_says_when_the_recommended_margin_is_within_noise():
    from harness.presentation.report import decision_section
    from harness.procurement.rank import Ranking

    def candidate(name, rank, cost, ci):
        return {"candidate": name, "workload": "llm preset=tiny single-stream", "rank": rank, "catalog_id": "c",
                "load": "", "throughput": 100.0, "throughput_ci": ci, "throughput_unit": "token/s", "p99_s": 0.01,
                "watts": None, "watts_estimated": True, "noisy": False, "parity": "exact",
                "cost": {"value": cost, "per": "1M tokens", "usd_per_device_hour": 1.0, "estimated": False,
                         "inputs": {"price": {}}}}

    clear = Ranking(ranked=[candidate("a", 1, 1.0, [99, 101]), candidate("b", 2, 2.0, [49, 51])])
    assert "Not a clear win" not in "".join(decision_section(clear))
    close = Ranking(ranked=[candidate("a", 1, 1.0, [98, 103]), candidate("b", 2, 1.02, [96, 99])])
    text = "".join(decision_section(close))
    assert "Not a clear win" in text and "b measured a throughput whose 95% interval overlaps" in text
    assert "2 (≈ rank 1)" in text


def test_the_parity_margin_is_said_in_a_buyers_terms():
    from harness.results.record import parity_summary

    def record(parity):
        return {"run_id": "r", "key": "k", "status": "ok", "parity": parity,
                "spec": {"backend": "llama-cpp", "device": "cpu", "workload": "llm", "dtype": "q4_k_m", "batch_size": 1}}

    assert parity_summary(record({"passed": True, "cosine": 0.97412, "max_abs_error": 0.4, "mismatched_ids": 2})) \
        == "cosine 0.97412, 2 tokens differ"
    assert parity_summary(record({"passed": True, "cosine": 1.0000000002, "max_abs_error": 1e-7})) == "cosine 1"
    assert parity_summary(record({"passed": True, "cosine": 1.0, "max_abs_error": 0.0, "mismatched_ids": 0})) == "exact"
    assert parity_summary(record({"passed": True, "max_rel_error": 3.1e-4, "max_abs_error": 1e-6})) \
        == "max rel. error 0.00031"
    assert parity_summary(record(None)) == "not checked"
