"""Run the benchmarks and print their figures."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import bench


def _available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    import confcheck

    parser = confcheck.OneLineParser(prog="python -m bench", description="Run the benchmarks and print their figures.",
                                     epilog=f"benchmarks: {', '.join(_available())}")
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    names = parser.parse_args(argv).names or _available()
    unknown = [n for n in names if n not in _available()]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; known: {', '.join(_available())}")
    if len(names) > 1:
        return _each_in_its_own_process(names)
    failed = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "main"):
            continue
        sys.stdout.write(f"\n=== bench {name} ===\n")
        sys.stdout.flush()
        try:
            if module.main():  # a non-zero return: the benchmark's own checks failed
                failed += 1
                sys.stdout.write(f"bench {name} reported failure\n")
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            failed += 1
            sys.stdout.write(f"bench {name} failed: {type(exc).__name__}: {exc}\n")
    return 1 if failed else 0


def _each_in_its_own_process(names: list[str]) -> int:
    """Several benchmarks: each in a fresh interpreter, one after the other. Why: one process for all
    let a benchmark's leftovers skew the next one's figures - after the analytics bench (a million
    trades seeded and read, a PostgreSQL cluster run) the bridge-call bench measured 144 us a call
    instead of ~17 us in a process of its own. A child that dies counts as a failed benchmark."""
    failed = 0
    for name in names:
        sys.stdout.flush()
        code = subprocess.call([sys.executable, "-m", "bench", name])
        if code:
            failed += 1
            if code < 0 or code > 1:  # 1: the benchmark said so itself (its own line above)
                sys.stdout.write(f"bench {name} failed: its process exited with {code}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
