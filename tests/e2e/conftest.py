import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from container import Container


def pytest_addoption(parser):
    parser.addoption("--stage", required=True, help="the output of `make install DESTDIR=... PREFIX=/usr`")
    parser.addoption("--deb", required=True, help="the package `make deb` built")
    parser.addoption("--bench", required=True, help="the release sensd-bench, for the real-logind latency figures")
    parser.addoption("--example", required=True, help="the SENSClient example agent (Examples/SeatRelease), built statically")


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


# The last commit of the first release, v0.1.0: the package an upgrade starts from.
RELEASED = {"0.1.0": "b1f9cef"}


@pytest.fixture(scope="session")
def released_deb():
    """The 0.1.0 package, built from its commit with its own Makefile, once, and cached beside the root file
    systems (a release build takes a few minutes)."""
    from container import CACHE
    version, commit = "0.1.0", RELEASED["0.1.0"]
    deb = CACHE / f"sensd_{version}_{commit}.deb"
    if deb.exists():
        return deb
    repo = Path(__file__).resolve().parents[2]
    work = Path(tempfile.mkdtemp(prefix="sensd-0.1.0-"))
    try:
        print(f"building the sensd {version} package from {commit}", flush=True)
        archive = subprocess.run(["git", "-C", str(repo), "archive", commit], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        subprocess.run(["make", "deb"], cwd=work, check=True, stdout=subprocess.DEVNULL)
        built = next(work.glob(f"sensd_{version}_*.deb"))
        CACHE.mkdir(parents=True, exist_ok=True)
        shutil.copy(built, deb.with_suffix(".partial"))
        deb.with_suffix(".partial").rename(deb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return deb


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
