"""The CPU ceiling: the peak's arithmetic from the ISA table, and the measured figures' shape
(small matmuls, a tiny training rate)."""

import pytest

from harness.experiments import cpucheck


def test_zen_cores_without_native_bf16_peak_at_32_fp32_flops_per_cycle_and_no_bf16():
    cpu = {"vendor": "AuthenticAMD", "torch_capability": "AVX2", "cores": 2, "nominal_mhz": 2450.0,
           "native_bf16": False}
    peak = cpucheck.theoretical_peak(cpu)
    assert peak == {"fp32": pytest.approx(2 * 2.45 * 32), "bf16": None, "flops_per_cycle_fp32": 32}
    native = cpucheck.theoretical_peak(dict(cpu, torch_capability="AVX512", native_bf16=True))
    assert native["bf16"] == pytest.approx(2 * native["fp32"])  # Zen 4: same fp32 pipes, bf16 x2


def test_an_unknown_isa_gives_no_peak_rather_than_a_guess():
    cpu = {"vendor": "SomeVendor", "torch_capability": "NEON", "cores": 4, "nominal_mhz": 3000.0,
           "native_bf16": False}
    assert cpucheck.theoretical_peak(cpu)["fp32"] is None


def test_cpuinfo_reads_the_first_processor(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
                    "cpu MHz\t\t: 2445.402\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\n")
    info = cpucheck.cpuinfo(str(path))
    assert info["model"] == "AMD EPYC" and info["mhz"] == 2445.402 and "avx2" in info["flags"]
    assert cpucheck.cpuinfo(str(tmp_path / "absent")) == {}


def test_measured_figures_are_positive_and_training_counts_its_flops():
    assert cpucheck.matmul_gflops("float32", side=64, repeats=2) > 0
    row = cpucheck.training_gflops("small_cnn", 8, 16, batch_size=8, steps=2)
    assert row["training_flops_per_image"] > 0 and row["images_per_second"] > 0
    assert row["gflops"] == pytest.approx(row["images_per_second"] * row["training_flops_per_image"] / 1e9, rel=0.01)
