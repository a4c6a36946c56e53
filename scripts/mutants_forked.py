"""Run named mutants of a chunk one forked pytest process each, as mutmut does.

mutmut's own runner hung on this box (its forked test processes waited on a lock at
0 % CPU, from ``wait_for__mutmut_7`` on); this one imports the test stack once and
forks a fresh child per mutant, so a hung mutant is stopped by its alarm and the rest
go on. Use it after ``scripts/mutation.sh CHUNK`` has made the chunk's mutants:

    python scripts/mutants_forked.py batch NAMES_FILE [--timeout 600]

NAMES_FILE holds one mutant per line, e.g. from ``mutmut results --all true``. Each
line of output is ``NAME: killed|survived|timeout (exit code)``; the tests are the
chunk's fast lane, read from the chunk's pyproject.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("chunk", help="journal | batch | token_cache | trainer | dedup")
    parser.add_argument("names", type=Path, help="a file of mutant names, one a line")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a mutant")
    args = parser.parse_args()
    names = [
        line.strip() for line in args.names.read_text().splitlines() if line.strip()
    ]
    work = ROOT / "build" / "mutation" / args.chunk
    settings = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"]
    pytest_args = [
        "-x",
        "-p",
        "no:randomly",
        *settings["pytest_add_cli_args"],
        *settings["pytest_add_cli_args_test_selection"],
    ]
    # mutmut's trampolines pick the mutant named by MUTANT_UNDER_TEST in each call.
    os.chdir(work / "mutants")
    sys.path[:0] = [str(work / "mutants" / "src"), str(work / "mutants")]
    os.environ.pop("MUTANT_UNDER_TEST", None)
    import pytest  # after the path: the mutated package is the one imported

    for name in names:
        child = os.fork()
        if child == 0:
            os.environ["MUTANT_UNDER_TEST"] = name
            signal.alarm(args.timeout)
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            os._exit(int(pytest.main(pytest_args)))
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        verdict = (
            "survived"
            if code == 0
            else "timeout"
            if code == -signal.SIGALRM
            else "killed"
        )
        print(f"{name}: {verdict} ({code})", flush=True)


if __name__ == "__main__":
    main()
