"""What does the font chain (rare characters, 難字) cost a printout? A 500-row
printout rendered with the chain, beside the same printout with the chain's
markup and runs switched off, in one process; then the same printout whose
names hold rare characters (the fallback fonts subset into the PDF).

    .venv/bin/python bench/font_chain_bench.py [--rows 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from flask import Flask
    from test_printout import ENTRY, make_snapshot

    from app.services import printout
    from app.services.pdf import fonts

    app = Flask(__name__)
    plain = make_snapshot(rows=args.rows)
    rare = make_snapshot(rows=args.rows)
    rare["sections"][0]["rows"] = [[f"王䶵明{i}", "陳𠀋華", "1/2", "䅈山村𤧛興路", None] for i in range(args.rows)]

    def timed(snapshot) -> tuple[float, int]:
        times, size = [], 0
        for _ in range(args.repeat):
            started = time.perf_counter()
            size = len(printout.render_pdf(ENTRY, snapshot))
            times.append(time.perf_counter() - started)
        return statistics.median(times), size

    with app.app_context():
        printout.render_pdf(ENTRY, make_snapshot(rows=1))  # fonts registered, chain loaded
        with_chain, _ = timed(plain)
        markup, runs = fonts.FontChain.markup, fonts.FontChain.runs
        fonts.FontChain.markup = lambda self, text: text
        fonts.FontChain.runs = lambda self, text: [(self.primary, text)]
        try:
            without, _ = timed(plain)
        finally:
            fonts.FontChain.markup, fonts.FontChain.runs = markup, runs
        rare_time, rare_size = timed(rare)
    print(f"{args.rows}-row printout, common characters: {with_chain:.3f} s with the font chain, "
          f"{without:.3f} s without ({with_chain / without:.2f}x)")  # fmt: skip
    print(f"{args.rows}-row printout, rare characters in every row: {rare_time:.3f} s "
          f"({rare_time / with_chain:.2f}x the common one), {rare_size / 1024:.0f} KiB")  # fmt: skip


if __name__ == "__main__":
    main()
