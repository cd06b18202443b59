"""The benchmark's real-logind measurement (bench/real_logind.py) run small, so that it cannot rot: a burst
of real su sessions, a bare sd-bus client and a sensd subscriber side by side. Asserts that both saw every
session; the added latency is recorded, never asserted (BENCHMARKS.md has the full run)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import real_logind  # noqa: E402


def test_real_su_burst_reaches_the_floor_and_a_sensd_subscriber_for_every_session(container, record, request):
    bench = Path(request.config.getoption("--bench"))
    assert bench.exists(), f"no sensd-bench at {bench}"
    result = real_logind.measure(container, bench, 40, tag="e2e-latency")
    assert result["sessions"] == 40
    record["real_logind_su_burst_added_latency_ms"] = result["added_over_floor_ms"]
