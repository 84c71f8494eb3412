"""python -m bench: several benchmarks run one after the other, each in an interpreter of its own."""

from __future__ import annotations

import sys

import bench.__main__ as bench_main


def test_several_benchmarks_each_get_a_fresh_interpreter_and_a_failure_is_counted(monkeypatch, capsys) -> None:
    calls = []
    codes = {"analytics": 0, "bridge_call": 1, "cycle": -9}  # ok, its own checks failed, killed
    monkeypatch.setattr(bench_main.subprocess, "call", lambda argv: calls.append(argv) or codes[argv[-1]])
    assert bench_main.main(["analytics", "bridge_call", "cycle"]) == 1
    assert calls == [[sys.executable, "-m", "bench", name] for name in ("analytics", "bridge_call", "cycle")]
    out = capsys.readouterr().out
    assert "bench cycle failed: its process exited with -9" in out and "bridge_call failed" not in out
    calls.clear()
    codes["bridge_call"] = codes["cycle"] = 0
    assert bench_main.main(["analytics", "bridge_call"]) == 0 and len(calls) == 2


def test_a_benchmark_called_without_arguments_reads_none_from_the_command_line(monkeypatch) -> None:
    """python -m bench NAME calls NAME's main(): its own parser must not read NAME off sys.argv."""
    import bench.bridge_call as bridge_call
    import bench.risk_demo as risk_demo

    monkeypatch.setattr(sys, "argv", ["bench", "bridge_call", "--calls"])
    for module in (bridge_call, risk_demo):
        parsed = []

        def spy(self, args=None, namespace=None, parsed=parsed):
            parsed.append(args)
            raise SystemExit(0)  # stop before the benchmark runs

        monkeypatch.setattr(module.argparse.ArgumentParser, "parse_args", spy)
        try:
            module.main()
        except SystemExit:
            pass
        assert parsed == [[]]


def test_the_bridge_call_bench_measures_every_kind_against_a_server_process_and_judges_last_error(capsys) -> None:
    import bench.bridge_call as bridge_call

    code = bridge_call.main(["--calls", "5", "--batches", "2"])
    out = capsys.readouterr().out
    figures = {line[:22].strip(): float(line[22:].split()[0]) for line in out.splitlines() if line.startswith(
        ("bare TCP", "bridge "))}
    assert list(figures) == ["bare TCP round trip", "bridge sim_clock", "bridge last_error", "bridge 12 bars",
                             "bridge 121 bars"]
    assert "medians of 10 calls each" in out
    assert all(us > 0 for us in figures.values())
    assert ("target: bridge call <= 3x bare TCP: met" in out) == (code == 0)
