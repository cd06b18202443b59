import json
import os
from pathlib import Path

import pytest

from container import Container


def pytest_addoption(parser):
    parser.addoption("--stage", required=True, help="the output of `make install DESTDIR=... PREFIX=/usr`")
    parser.addoption("--deb", required=True, help="the package `make deb` built")
    parser.addoption("--bench", required=True, help="the release sensd-bench, for the real-logind latency figures")


def pytest_configure(config):
    if os.geteuid() != 0:
        # CI runs as root; this tier must run there, never skip. Elsewhere, say plainly why it cannot.
        raise pytest.UsageError("the end-to-end tier boots a container and needs root")


@pytest.fixture(scope="module")
def container(request):
    stage = Path(request.config.getoption("--stage"))
    assert (stage / "usr/sbin/sensd").exists(), f"{stage} holds no installed sensd"
    c = Container(stage).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def bare_container(request):
    """A container with nothing of ours installed: for installing the package as a user would."""
    deb = Path(request.config.getoption("--deb"))
    assert deb.exists(), f"no package at {deb}"
    c = Container(None).start()
    c.deb = deb
    yield c
    c.stop()


RESULTS = Path(__file__).resolve().parents[2] / ".build-e2e" / f"results-{os.environ.get('SENSD_E2E_SUITE', 'bookworm')}.json"


FIGURES = {}


@pytest.fixture(scope="session")
def record():
    """Figures measured during the run, shown in the summary and kept in .build-e2e/results-SUITE.json."""
    return FIGURES


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(FIGURES, indent=2) + "\n")
    terminalreporter.section("end-to-end figures")
    for key, value in FIGURES.items():
        terminalreporter.line(f"{key}: {value}")
