"""resources --place-and-route: a tiny Dense network's RTL through yosys and nextpnr (the fpga
extra's YoWASP tools), the fit failure with figures (exit 1) and an unknown part (exit 2)."""

import json

import pytest

from hwprune.fpga import pnr
from hwprune.targets import get_target

from test_cli_rtl import export_tiny

pytest.importorskip("da4ml", reason="--backend rtl needs da4ml (the fpga extra)")


def needs(part):
    reason = pnr.unavailable_reason(get_target(part))
    return pytest.mark.skipif(bool(reason), reason=reason or "installed")


@pytest.fixture(scope="module")
def tiny_rtl(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("pnr") / "tiny", clock_mhz=48.0, vectors=8)


@needs("ice40up5k")
def test_tiny_design_placed_and_routed_on_ice40(cli, tiny_rtl):
    code, out, err = cli("resources", tiny_rtl, "--place-and-route", "ice40up5k", "--json")
    assert code == 0, err
    r = json.loads(out)["place_and_route"]
    summary = json.loads((tiny_rtl / "rtl" / "rtl.json").read_text())
    assert r["part"] == "ice40up5k" and r["fits"] and r["lut"] > 0 and r["fmax_mhz"] > 0
    # the serial wrapper's flip-flops come on top of the module's registers
    assert r["wrapper_ff"] == summary["input_width"] + summary["output_width"]
    assert r["ff"] > r["wrapper_ff"] and r["latency_cycles"] == summary["latency_cycles"]
    assert r["estimate"]["lut"] > 0 and r["lut_error"] == pytest.approx(r["lut"] / r["estimate"]["lut"] - 1)
    assert r["xilinx"]["lut6"] > 0


@needs("lfe5u85f")
def test_tiny_design_on_ecp5_out_of_context_in_text(cli, tiny_rtl):
    code, out, err = cli("resources", tiny_rtl, "--place-and-route", "lfe5u85f")
    assert code == 0, err
    assert "placed and routed on lfe5u85f" in out and "out of context" in out and "Fmax" in out


def test_unknown_and_amd_parts_exit_2(cli, tiny_rtl):
    code, out, err = cli("resources", tiny_rtl, "--place-and-route", "xc9nope")
    assert code == 2 and out == "" and "unknown target 'xc9nope'" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("resources", tiny_rtl, "--place-and-route", "xcvu9p")
    assert code == 2 and "not a Lattice or Gowin part" in err


@needs("ice40up5k")
def test_a_design_too_big_for_the_part_is_exit_1_with_figures(cli, tiny_rtl, tmp_path):
    from hwprune.paths import targets_dir

    small = tmp_path / "tiny5.toml"
    small.write_text((targets_dir() / "ice40up5k.toml").read_text().replace('name = "ice40up5k"', 'name = "tiny5"')
                     .replace("lut = 5280", "lut = 5"))
    code, out, err = cli("resources", tiny_rtl, "--place-and-route", small)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "does not fit tiny5 (iCE40UP5K-SG48I): after synthesis it needs LUT" in err and "of 5;" in err


@needs("lfe5u85f")
def test_route_timeout_reports_the_placed_design_marked_not_routed(cli, tiny_rtl):
    """--route-timeout 0 stops nextpnr as its router starts: the cells placed are those the
    routed run reports, the Fmax is nextpnr's estimate after placement, and nothing says routed."""
    from hwprune.cli.resources import render_pnr

    code, out, err = cli("resources", tiny_rtl, "--place-and-route", "lfe5u85f", "--json")
    assert code == 0, err
    routed = json.loads(out)["place_and_route"]
    code, out, err = cli("resources", tiny_rtl, "--place-and-route", "lfe5u85f", "--route-timeout", "0", "--json")
    assert code == 0, err
    placed = json.loads(out)["place_and_route"]
    assert routed["routed"] is True and placed["routed"] is False
    for key in ("lut", "lut_logic", "ff", "dsp", "bram", "fits"):
        assert placed[key] == routed[key], key
    assert placed["place_and_route"]["utilization"] == routed["place_and_route"]["utilization"]
    assert placed["fmax_mhz"] is None and placed["meets_clock"] is None and placed["latency_ns_at_fmax"] is None
    assert placed["fmax_mhz_placed"] > 0 and placed["route_stopped_after_s"] < 5
    text = "\n".join(render_pnr(placed))
    assert "placed (NOT routed: routing stopped after" in text and "estimated after placement" in text
    assert "placed and routed" not in text and "(met)" not in text


def test_route_timeout_refused_where_it_cannot_report(cli, tiny_rtl):
    code, out, err = cli("resources", tiny_rtl, "--route-timeout", "10")
    assert code == 2 and out == "" and "--route-timeout needs --place-and-route" in err
    code, out, err = cli("resources", tiny_rtl, "--place-and-route", "lfe5u85f", "--route-timeout", "-1")
    assert code == 2 and out == "" and "--route-timeout must be seconds in [0," in err


@needs("gw1nr9")
def test_route_timeout_refused_on_gowin_whose_log_counts_before_placement(cli, tiny_rtl):
    code, out, err = cli("resources", tiny_rtl, "--place-and-route", "gw1nr9", "--route-timeout", "0")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "log counts the cells before placement" in err
