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
