"""Benchmark options: ``--bench-size {smoke,quick,large,full}`` picks the configs (see
harness.SIZES); the machine's roofline peaks are stored in the JSON's machine_info, so a
saved run can be rendered later against the machine that produced it."""
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
    from netparity import roofline
    small = config.getoption("--bench-size") == "smoke"
    machine_info["roofline"] = (roofline.measure_peaks(n=256, mbytes=8, repeats=2) if small
                                else roofline.measure_peaks())


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
