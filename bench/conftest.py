"""Benchmark options: ``--bench-size {smoke,quick,large,full}`` picks the configs (see
harness.SIZES); the machine's roofline peaks, the compute floor's rates and the run's
provenance are stored in the JSON's machine_info, so a saved run can be rendered later
against the machine that produced it, saying where and when it ran."""
import os
import shutil
import tempfile

import pytest

from harness import CONFIGS, SIZES


def pytest_addoption(parser):
    parser.addoption("--bench-size", choices=list(SIZES), default="quick",
                     help="smoke: one tiny config, 2 rounds (CI); quick: planar + medium; "
                          "large: >= 20 000 examples or 784 features; full: every config")


@pytest.fixture(scope="session")
def bench_size(request):
    return request.config.getoption("--bench-size")


def pytest_generate_tests(metafunc):
    names = SIZES[metafunc.config.getoption("--bench-size")]
    if "cfg" in metafunc.fixturenames:
        metafunc.parametrize("cfg", [CONFIGS[n] for n in names], ids=names)
    if "article_cfg" in metafunc.fixturenames:  # the article's 2-layer planar network only
        names = [n for n in names if CONFIGS[n].article]
        metafunc.parametrize("article_cfg", [CONFIGS[n] for n in names], ids=names)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Stored with the results: the roofline's peaks, the compute floor's rates
    (netparity.floor) and the provenance every table and plot shows (size, versions,
    cores, how loaded the machine was)."""
    from netparity import floor, roofline
    small = config.getoption("--bench-size") == "smoke"
    machine_info["roofline"] = (roofline.measure_peaks(n=256, mbytes=8, repeats=2) if small
                                else roofline.measure_peaks())
    machine_info["floor"] = floor.measure_rates(repeats=2 if small else 5)
    if not small:  # the whole-loop path's gap to the floor, from the backends that measure it
        machine_info["floor_gap"] = floor_gaps()
    machine_info["provenance"] = provenance(config)


def floor_gaps():
    """{backend: its bench module's floor_gap()} for the registered backends that have one."""
    import importlib
    from netparity.backends import REGISTRY, available_backends
    out = {}
    for name in available_backends():
        spec = REGISTRY[name]
        mod = importlib.import_module(spec.bench) if spec.bench else None
        if mod is not None and hasattr(mod, "floor_gap"):
            out[name] = mod.floor_gap()
    return out


def provenance(config):
    """Where and how the run was made (the end-of-run load is added when it ends)."""
    from netparity.fingerprint import fingerprint
    return {"size": config.getoption("--bench-size"), "fingerprint": fingerprint(),
            "cores": os.cpu_count(), "nice": os.nice(0),
            "load_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def pytest_benchmark_update_json(config, benchmarks, output_json):
    prov = output_json.get("machine_info", {}).get("provenance")
    if prov is not None and hasattr(os, "getloadavg"):
        prov["load_end"] = list(os.getloadavg())


DEFAULT_STORAGE = "file://./.benchmarks"


def pytest_configure(config):
    """pytest-benchmark creates its storage folder (default ./.benchmarks) at start-up
    even when nothing is saved: unless runs are saved or compared (--benchmark-save,
    --benchmark-autosave, --benchmark-compare) or a storage is named, it goes to a
    temporary folder, so running the suite from the checkout writes nothing into it.
    (This hook runs before pytest-benchmark's, which is trylast.)"""
    opt = config.option
    if getattr(opt, "benchmark_storage", None) != DEFAULT_STORAGE:
        return
    if opt.benchmark_save or opt.benchmark_autosave or opt.benchmark_compare:
        return
    config._netparity_storage = tempfile.mkdtemp(prefix="netparity-bench-storage-")
    opt.benchmark_storage = "file://" + config._netparity_storage


def pytest_unconfigure(config):
    folder = getattr(config, "_netparity_storage", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
