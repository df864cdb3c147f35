"""pytest plugin used by tools/mutate.py inside its scratch copy (``-p mutation_plugin``).

It does three things, driven by environment variables the tool sets:

MUTATION_RECORD  a file to write one JSON line per test phase that did not pass or skip
                 (nodeid, phase, exception type, whether it is an assertion) and, at the
                 end, a summary line (exit status, counts, durations of every test, and
                 where the mutated package was imported from).
MUTATION_ORDER   a JSON file {nodeid: seconds} from the control run: tests run fastest
                 first, so that a mutant is usually killed by a cheap test. Tests that
                 share a module- or class-scoped fixture stay together (the fixture would
                 otherwise be rebuilt each time the order came back to them).
MUTATION_PACKAGE the mutated package, whose ``__file__`` is reported so that the tool can
                 check it imported the scratch copy and not an installed one.

Stopping: the run stops at the first failing test whose exception is an assertion
(``AssertionError`` and subclasses such as ``ConformanceError``, or pytest's own
``Failed`` from ``pytest.fail`` / ``pytest.raises``'s "DID NOT RAISE"): that is a kill and
the rest cannot change it. Any other exception is recorded and the run goes on, so that
a crash in one test does not hide an assertion in a later one (with ``-x`` the first
crash would end the run): a mutant is a crash only when every failing test crashed.
(A cap on the number of crashes was tried and dropped: a mutant of the input checks
makes hundreds of tests raise before the error-message tests assert on it.)
"""
import json
import os
import sys
import time

import pytest

_RECORD = os.environ.get("MUTATION_RECORD")
_ORDER = os.environ.get("MUTATION_ORDER")
_PACKAGE = os.environ.get("MUTATION_PACKAGE")
_state = {"durations": {}, "failed": 0, "assertion_failures": 0, "passed": 0, "skipped": 0,
          "collect_errors": 0, "start": time.perf_counter()}


def _write(entry):
    if _RECORD:
        with open(_RECORD, "a") as f:
            f.write(json.dumps(entry) + "\n")


def _is_assertion(excinfo):
    return excinfo.errisinstance(AssertionError) or excinfo.errisinstance(pytest.fail.Exception)


def _shared_fixture_group(item):
    """(module, fixture names) of the module/class-scoped fixtures an item uses, or None."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    names = sorted(name for name, defs in info.name2fixturedefs.items()
                   if defs and defs[-1].scope in ("module", "class", "package"))
    return (item.nodeid.split("::")[0], tuple(names)) if names else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    if not _ORDER or not os.path.exists(_ORDER):
        return
    with open(_ORDER) as f:
        seconds = json.load(f)
    unknown = max(seconds.values(), default=1.0)  # a test the control did not run: last
    units, where = [], {}
    for item in items:
        group = _shared_fixture_group(item)
        if group is None:
            units.append([item])
        elif group in where:
            units[where[group]].append(item)
        else:
            where[group] = len(units)
            units.append([item])
    cost = [sum(seconds.get(i.nodeid, unknown) for i in unit) for unit in units]
    order = sorted(range(len(units)), key=lambda k: (cost[k], k))
    items[:] = [item for k in order for item in units[k]]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    _state["durations"][item.nodeid] = _state["durations"].get(item.nodeid, 0.0) + report.duration
    if report.when == "call" and report.passed:
        _state["passed"] += 1
    if report.skipped:
        _state["skipped"] += report.when != "teardown"
        return
    if not report.failed:
        return
    excinfo = call.excinfo
    assertion = excinfo is not None and report.when == "call" and _is_assertion(excinfo)
    _state["failed"] += 1
    _state["assertion_failures"] += assertion
    message = str(excinfo.value).strip().splitlines() if excinfo is not None else []
    _write({"kind": "failure", "nodeid": item.nodeid, "phase": report.when,
            "exception": f"{excinfo.type.__module__}.{excinfo.type.__qualname__}" if excinfo is not None else "?",
            "assertion": assertion, "message": message[0][:300] if message else ""})
    if assertion:
        item.session.shouldfail = "a test failed with an assertion: the mutant is killed"


def pytest_collectreport(report):
    if report.failed:
        _state["collect_errors"] += 1
        _write({"kind": "collect_error", "nodeid": report.nodeid,
                "message": str(report.longrepr).strip().splitlines()[-1][:300]})


def pytest_sessionfinish(session, exitstatus):
    module = sys.modules.get(_PACKAGE) if _PACKAGE else None
    _write({"kind": "summary", "exitstatus": int(exitstatus), "passed": _state["passed"],
            "failed": _state["failed"], "assertion_failures": _state["assertion_failures"],
            "skipped": _state["skipped"], "collect_errors": _state["collect_errors"],
            "seconds": time.perf_counter() - _state["start"],
            "package_file": getattr(module, "__file__", None),
            "durations": _state["durations"]})
