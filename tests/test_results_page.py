"""The README's results table and the results page are what the benchmarks' files say."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_and_results_page_match_the_benchmark_files() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "results_page.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    readme = (ROOT / "README.md").read_text()
    assert "| front trained to convergence" in readme and "[finals.md](benchmarks/results/finals.md)" in readme
