"""Run every ``bench/bench_*.py`` script in turn (``--quick`` is passed through).

Each benchmark is a standalone script with a ``main()``; running them as subprocesses keeps
their thread settings and memory apart. Exits non-zero if any of them failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    args = parser.parse_args(argv)
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    failed = []
    for script in scripts:
        command = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        print(f"\n=== {script.name} ===", flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(script.name)
    print(f"\n{len(scripts) - len(failed)}/{len(scripts)} benchmarks ran", flush=True)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
