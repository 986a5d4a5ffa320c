"""Cost formulas against hand-computed cases, and the catalog lint."""

from __future__ import annotations

import json

import pytest

from harness.contract.errors import UserError
from harness.hardware.catalog import figure, lint, load_catalog
from harness.procurement.cost import OwnedInputs, cloud_cost, cost_per_units, owned_cost, owned_usd_per_serving_hour


def test_cloud_cost_per_million_tokens_by_hand():
    # $3.60 per GPU-hour at 1,000 token/s: 3.6M tokens per hour -> $1.00 per 1M tokens
    result = cloud_cost(1000.0, "token", 3.60)
    assert result.value == pytest.approx(1.00) and result.per == "1M tokens" and result.currency == "USD"
    # images are priced per 1k: $2/h at 10 image/s = 36,000 images/h -> $0.0556 per 1k
    assert cost_per_units(2.0, 10.0, "image") == pytest.approx(2.0 / 36.0)


def test_owned_cost_with_utilisation_pue_and_hosting_by_hand():
    inputs = OwnedInputs(purchase_usd=30_000, years=4, utilisation=0.5, watts=700, watts_estimated=True,
                         usd_per_kwh=0.10, pue=1.4, hosting_usd_per_year=1_752)
    hourly = owned_usd_per_serving_hour(inputs)
    # serving hours = 4 x 8760 x 0.5 = 17,520: amortisation 30,000 / 17,520 = 1.712329 $/h
    assert hourly["amortisation"] == pytest.approx(30_000 / 17_520)
    # hosting 1,752 $/year over 4,380 serving hours a year = 0.40 $/h
    assert hourly["hosting"] == pytest.approx(0.40)
    # energy 0.7 kW x 1.4 PUE x 0.10 $/kWh = 0.098 $/h
    assert hourly["energy"] == pytest.approx(0.098)
    result = owned_cost(500.0, "token", inputs)  # 1.8M tokens per hour
    assert result.value == pytest.approx((30_000 / 17_520 + 0.40 + 0.098) / 1.8)
    assert result.estimated is True  # TDP-based watts are labelled estimated


@pytest.mark.parametrize("bad", [dict(utilisation=0), dict(utilisation=1.5), dict(pue=0.9), dict(years=0)])
def test_owned_inputs_are_validated(bad):
    base = dict(purchase_usd=1, years=1, utilisation=1, watts=1, watts_estimated=False, usd_per_kwh=0.1, pue=1.2)
    with pytest.raises(ValueError):
        OwnedInputs(**{**base, **bad})


def test_builtin_catalog_passes_the_lint_and_matches_devices():
    catalog = load_catalog()
    assert figure(catalog.entries["nvidia-h100-sxm5"], "memory_bandwidth_gbps") == 3350
    assert catalog.match("NVIDIA H100 80GB HBM3")["id"] == "nvidia-h100-sxm5"
    assert catalog.match("AMD EPYC")["id"] == "amd-epyc"
    assert catalog.match("Acme X1") is None
    assert figure(catalog.entries["huawei-ascend-910b"], "memory_gb") is None  # unknown stays absent


def test_lint_catches_unsourced_undated_and_guessed_figures(tmp_path):
    bad = tmp_path / "mine.toml"
    bad.write_text(
        'schema_version = 1\n[sources]\nQ = "our negotiated quote"\n'
        '[[hardware]]\nid = "x1"\nname = "Acme X1"\nkind = "npu"\nmatch = ["X1"]\n'
        'memory_gb = { value = 64, as_of = "2026-11-01" }\n'
    )
    with pytest.raises(UserError, match=r"mine.toml: hardware 'x1' memory_gb: missing source"):
        load_catalog([bad])
    problems = lint({"schema_version": 1, "hardware": [{
        "id": "y", "name": "Y", "kind": "gpu", "match": ["Y"],
        "tdp_w": {"value": 0, "source": "S1", "as_of": "yesterday"},
        "licence_required": {"value": True},
        "prices": [{"usd_per_device_hour": -1}],
        "colour": "red",
    }]}, "t.toml", {"S1": "x"})
    text = "\n".join(problems)
    assert "tdp_w: as_of must be a YYYY-MM-DD date" in text
    assert "tdp_w: value 0 must be a positive number" in text
    assert "licence_required: missing source" in text
    assert "prices[0]: missing instance, region, retrieved, source_url" in text
    assert "usd_per_device_hour -1 must be a positive number" in text
    assert "unknown field 'colour'" in text


def test_user_catalogs_layer_over_the_builtin_one(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text(
        'schema_version = 1\n[sources]\nQ = "our negotiated quote, 2026-11"\n'
        '[[hardware]]\nid = "amd-epyc"\nname = "Our EPYC fleet"\nkind = "cpu"\nmatch = ["AMD EPYC"]\n'
        'tdp_w = { value = 360, source = "Q", as_of = "2026-11-01" }\n'
        '[[hardware.prices]]\nusd_per_device_hour = 0.42\ninstance = "on-prem"\nregion = "eu-west"\n'
        'source_url = "internal://quotes/42"\nretrieved = "2026-11-01"\n'
    )
    catalog = load_catalog([mine])
    assert catalog.entries["amd-epyc"]["name"] == "Our EPYC fleet"
    assert catalog.entries["amd-epyc"]["prices"][0]["usd_per_device_hour"] == 0.42
    assert "nvidia-h100-sxm5" in catalog.entries


def test_the_builtin_catalog_has_thirty_sourced_devices_eight_designed_in_china():
    import tomllib

    from harness.hardware.catalog import builtin_text

    assert lint(tomllib.loads(builtin_text()), "harness/data/catalog.toml") == []  # every figure sourced and dated
    catalog = load_catalog()
    assert len(catalog.entries) >= 30
    china = sorted(i for i, e in catalog.entries.items() if figure(e, "designer_country") == "CN")
    assert len(china) >= 8, china
    for wanted in ("nvidia-h200-sxm", "nvidia-a100-sxm4-80gb", "huawei-ascend-910c", "cambricon-mlu370-x8",
                   "aws-graviton4", "intel-xeon"):
        assert wanted in catalog.entries


def test_a_cpu_is_priced_by_the_vcpus_it_used_at_a_sourced_reference_price():
    from harness.procurement.rank import cloud_price
    from harness.results.record import Record

    catalog = load_catalog()
    entry = catalog.match("Intel(R) Xeon(R) Processor")
    base = {"run_id": "r", "key": "k", "status": "ok",
            "spec": {"backend": "torch", "device": "cpu", "workload": "llm", "dtype": "float32", "batch_size": 1,
                     "threads": 4}, "device_info": {"model": "Intel(R) Xeon(R) Processor"}}
    hourly, price = cloud_price(entry, Record.of(base))
    cheapest = min(p["usd_per_vcpu_hour"] for p in entry["vcpu_prices"])
    assert hourly == pytest.approx(4 * cheapest) and price["reference"] is True
    assert "x 4 vCPUs" in price["basis"] and price["source_url"].startswith("https://")
    # On a cloud VM that names its instance (DMI), that instance's row is used.
    named = {**base, "device_info": {"model": "Intel(R) Xeon(R) Processor", "cloud_instance": "m7i.xlarge"}}
    hourly, price = cloud_price(entry, Record.of(named))
    assert price["instance"].startswith("m7i.xlarge") and hourly == pytest.approx(4 * 0.0504)
    assert "the host's own instance, rented whole" in price["basis"]
    one_thread = {**named, "spec": {**named["spec"], "threads": 1}}  # the whole instance is paid for anyway
    assert cloud_price(entry, Record.of(one_thread))[0] == pytest.approx(4 * 0.0504)


def test_the_generic_x86_cpus_have_reference_prices_from_three_clouds_each_pinned_to_its_source():
    """AWS, Google Cloud and Azure list prices for an unnamed Xeon and an unnamed EPYC, each row
    naming its provider and a source pinned to a commit (a moving price list is no source)."""
    import re

    catalog = load_catalog()
    for model in ("Intel(R) Xeon(R) Processor", "AMD EPYC 7B13"):
        rows = catalog.match(model)["vcpu_prices"]
        providers = {re.match(r"\S+ \((AWS|GCP|Azure), ", row["instance"]).group(1) for row in rows}
        assert providers == {"AWS", "GCP", "Azure"}, (model, providers)
        for row in rows:
            assert row["usd_per_vcpu_hour"] * row["vcpus"] == pytest.approx(
                float(re.search(r"\$([0-9.]+)/h", row["instance"]).group(1)), rel=1e-3), row
            if "skypilot-catalog" in row["source_url"]:
                assert re.search(r"/blob/[0-9a-f]{40}/", row["source_url"]), row["source_url"]


def test_a_vcpu_price_without_its_source_fails_the_lint(tmp_path):
    bad = tmp_path / "cpu.toml"
    bad.write_text('schema_version = 1\n[[hardware]]\nid = "x"\nname = "x"\nkind = "cpu"\nmatch = ["x"]\n'
                   '[[hardware.vcpu_prices]]\nusd_per_vcpu_hour = 0.05\ninstance = "a.large"\nvcpus = 2\n'
                   'region = "r"\n')
    with pytest.raises(UserError, match=r"vcpu_prices\[0\]: missing retrieved, source_url"):
        load_catalog([bad])


def test_rank_prices_every_cpu_candidate_of_a_run_out_of_the_box():
    from pathlib import Path

    from click.testing import CliRunner

    from harness.presentation.cli import cli

    fixtures = Path(__file__).resolve().parent / "fixtures" / "runs-2026-12-01"
    run = next(p for p in sorted(fixtures.iterdir()) if (p / "run.json").exists())
    result = CliRunner().invoke(cli, ["rank", str(run), "--json"], prog_name="bakeoff")  # no --catalog
    assert result.exit_code == 0, result.output
    ranking = json.loads(result.output)
    assert ranking["ranked"], ranking["excluded"]
    for candidate in ranking["ranked"]:
        price = candidate["cost"]["inputs"]["price"]
        assert candidate["catalog_id"] == "intel-xeon" and price["reference"] and price["source_url"]
    # Nothing measured and trusted goes unpriced: what is excluded is a probe or fails a check.
    for excluded in ranking["excluded"]:
        assert "no cloud price" not in excluded["excluded_by"][0], excluded
    text = CliRunner().invoke(cli, ["rank", str(run)], prog_name="bakeoff").output
    assert "(reference price)" in text and "list price from https://" in " ".join(text.split())


ARM_CPUINFO = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd sve\nCPU implementer\t: {impl}\n" \
              "CPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: {part}\nCPU revision\t: 1\n"


@pytest.mark.parametrize("impl, part, system_vendor, model, entry_id", [
    ("0x41", "0xd40", "Amazon EC2", "AWS Graviton3 (Neoverse-V1)", "aws-graviton3"),
    ("0x41", "0xd4f", "Amazon EC2", "AWS Graviton4 (Neoverse-V2)", "aws-graviton4"),
    ("0x48", "0xd01", None, "HiSilicon Kunpeng-920 (TaiShan-v110)", "huawei-kunpeng-920"),
    # A Neoverse-V2 outside AWS may be Grace or Axion: the core is named, no chip is guessed.
    ("0x41", "0xd4f", "QEMU", "ARM Neoverse-V2", None),
    ("0x41", "0xfff", None, "ARM part 0xfff", None),
])
def test_an_arm_host_is_named_from_its_midr_so_graviton_and_kunpeng_match(tmp_path, impl, part, system_vendor,
                                                                           model, entry_id):
    from harness.engine.telemetry.environment import cpu_identity

    if system_vendor:
        (tmp_path / "sys_vendor").write_text(system_vendor + "\n")
    identity = cpu_identity(ARM_CPUINFO.format(impl=impl, part=part), dmi=tmp_path, machine="aarch64")
    assert identity["model"] == model and identity["architecture"] == "aarch64"
    entry = load_catalog().match(identity["model"])
    assert (entry["id"] if entry else None) == entry_id


def test_an_x86_host_keeps_its_model_name():
    from harness.engine.telemetry.environment import cpu_identity

    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
    assert cpu_identity(text, machine="x86_64") == {"vendor": "AMD", "model": "AMD EPYC 9654 96-Core Processor",
                                                     "architecture": "x86_64"}
