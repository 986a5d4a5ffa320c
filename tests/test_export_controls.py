"""Export-control figures computed by rule (harness/hardware/controls.py and
harness/data/export_rules.toml): TPP, performance density, the 3A090.a test and the January 2026
case-by-case lane, as derived catalog fields policies can use."""

from __future__ import annotations

import pytest

from harness.contract.errors import UserError
from harness.hardware.catalog import load_catalog
from harness.hardware.controls import classification_disagreement, derive, tpp
from harness.procurement.policy import load_policy


def _cell(value, source="S1"):
    return {"value": value, "source": source, "as_of": "2026-11-29"}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_tpp_is_two_macs_times_bit_length_at_the_best_precision(catalog):
    assert catalog.entries["nvidia-h100-sxm5"]["tpp"]["value"] == pytest.approx(15830, rel=1e-3)
    assert catalog.entries["nvidia-h20"]["tpp"]["value"] == pytest.approx(2368, rel=1e-3)
    assert catalog.entries["nvidia-a100-sxm4-80gb"]["tpp"]["value"] == pytest.approx(4992, rel=1e-3)
    a100 = {"id": "a100", "fp16_dense_tflops": _cell(312), "int8_dense_tops": _cell(624)}
    assert tpp(a100)["value"] == pytest.approx(4992)
    assert "16 bits x 312 dense FP16 TFLOPS" in tpp(a100)["basis"] or "8 bits x 624" in tpp(a100)["basis"]
    assert tpp({"id": "cpu"}) is None  # no dense figure: no TPP, never a guess


def test_the_3a090a_rule_puts_h100_above_and_h20_below(catalog):
    h100, h20 = catalog.entries["nvidia-h100-sxm5"], catalog.entries["nvidia-h20"]
    assert h100["eccn_3a090a"]["value"] is True
    assert h20["eccn_3a090a"]["value"] is False  # TPP 2,368 >= 1,600, but PD 2.9 < 5.92
    assert h20["performance_density"]["value"] == pytest.approx(2368 / 814, rel=1e-3)
    assert h20["within_case_by_case_lane"]["value"] is True
    assert h20["eccn_3a090a"]["effective"] == "2023-11-17" and h20["eccn_3a090a"]["rule_source"] == "S25d"
    # Without a die area the density clause is unknown, so a mid-range part's verdict stays absent.
    mid = {"id": "mid", "fp16_dense_tflops": _cell(150)}
    assert "eccn_3a090a" not in derive(mid, catalog.rules)
    assert catalog.warnings == []  # no typed classification in the built-in catalog contradicts the rule


def test_a_typed_classification_that_contradicts_the_rule_is_a_warning(catalog):
    entry = {"id": "claims-controlled", "fp16_dense_tflops": _cell(50),
             "export_classification": _cell("3A090.a", "D")}
    cells = derive(entry, catalog.rules)
    assert "computes below it" in classification_disagreement(entry, cells)


def test_a_newer_rule_revision_in_a_user_file_replaces_the_built_in(tmp_path):
    revision = tmp_path / "rules-2027.toml"
    revision.write_text('schema_version = 1\n[sources]\nX1 = "a hypothetical 2027 revision"\n'
                        '[[export_rule]]\nfield = "eccn_3a090a"\nname = "3A090.a (2027): TPP >= 2,000"\n'
                        'effective = "2027-01-01"\nsource = "X1"\n[[export_rule.when]]\ntpp_at_least = 2000\n')
    h20 = load_catalog([revision]).entries["nvidia-h20"]
    assert h20["eccn_3a090a"]["value"] is True and h20["eccn_3a090a"]["effective"] == "2027-01-01"


def test_a_malformed_rule_is_a_user_error_naming_the_file_and_condition(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('schema_version = 1\n[[export_rule]]\nfield = "x"\nname = "x"\neffective = "2027-01-01"\n'
                   'source = "S25d"\n[[export_rule.when]]\ntpp_over = 1\n')
    with pytest.raises(UserError, match=r"bad.toml: export_rule 'x': condition 'tpp_over': allowed"):
        load_catalog([bad])


def test_policies_test_computed_fields(tmp_path, catalog):
    policy = tmp_path / "below.toml"
    policy.write_text('schema_version = 1\nname = "below the line"\n[[rules]]\nid = "tpp-below-4800"\n'
                      'why = "no licence wait"\nfield = "tpp"\nmax = 4799\n[[rules]]\nid = "lane"\nwhy = "x"\n'
                      'field = "within_case_by_case_lane"\nis = true\n')
    rules = load_policy(policy)
    assert rules.evaluate(catalog.entries["nvidia-h20"]) == []
    (reason,) = rules.evaluate(catalog.entries["nvidia-h100-sxm5"])
    assert "tpp-below-4800" in reason and "15831" in reason


def test_bakeoff_catalog_lists_every_device_and_what_a_policy_excludes_before_measuring(tmp_path):
    import json
    from pathlib import Path

    from click.testing import CliRunner

    from harness.presentation.cli import cli

    policy = Path(__file__).resolve().parent.parent / "docs" / "policies" / "exclude-us-designed.toml"
    listed = CliRunner().invoke(cli, ["catalog", "--policy", str(policy), "--json"], prog_name="bakeoff")
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.output)
    ids = {entry["id"] for entry in data["entries"]}
    assert len(ids) >= 30 and data["policy"] == "No US-designed hardware"
    assert "policy rule 'designer-not-us'" in data["excluded"]["nvidia-h100-sxm5"][0]
    assert "huawei-ascend-910c" not in data["excluded"]  # designed and sold from China: admitted
    h100 = next(e for e in data["entries"] if e["id"] == "nvidia-h100-sxm5")
    assert h100["tpp"]["value"] == pytest.approx(15830, rel=1e-3) and h100["eccn_3a090a"]["value"] is True
    text = " ".join(CliRunner().invoke(cli, ["catalog", "--policy", str(policy)], prog_name="bakeoff").output.split())
    excluded = len(data["excluded"])
    assert f"excludes {excluded} of {len(ids)} devices; its rules: designer-not-us" in text and "admitted" in text
    missing = CliRunner().invoke(cli, ["catalog", "--policy", str(tmp_path / "none.toml")], prog_name="bakeoff")
    assert missing.exit_code == 2 and "none.toml" in missing.output
