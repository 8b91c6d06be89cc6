"""Writes docs/assets/connectivity.svg: a connectivity as a graph and as its matrix.

Run: `.venv/bin/python docs/_scripts/connectivity_figure.py`. The picture is drawn
from the same 4 x 3 matrix the Getting started page builds, so the two agree; a docs
test checks that the committed SVG is what this script writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MASK = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]])
INPUTS = ["x0", "x1", "x2", "x3"]
OUTPUTS = ["h0", "h1", "h2"]
OUT = Path(__file__).resolve().parents[1] / "assets" / "connectivity.svg"


def svg() -> str:
    n_in, n_out = MASK.shape
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 250" '
        'width="640" height="250" font-family="DejaVu Sans, Arial, sans-serif" '
        'font-size="15" role="img" aria-label="A 4 x 3 connectivity drawn as a '
        'graph and as its (num_inputs, num_outputs) matrix">',
        '<rect width="640" height="250" fill="white"/>',
        '<text x="40" y="22" font-weight="bold">inputs</text>',
        '<text x="225" y="22" font-weight="bold">outputs</text>',
    ]
    y_in = [55 + 50 * i for i in range(n_in)]
    y_out = [80 + 50 * j for j in range(n_out)]
    for i in range(n_in):
        for j in range(n_out):
            if MASK[i, j]:
                parts.append(
                    f'<line x1="75" y1="{y_in[i]}" x2="235" y2="{y_out[j]}" '
                    'stroke="#3f51b5" stroke-width="2.5"/>'
                )
    for i, name in enumerate(INPUTS):
        parts.append(
            f'<circle cx="60" cy="{y_in[i]}" r="15" fill="#e8eaf6" stroke="#1a237e"/>'
        )
        parts.append(
            f'<text x="60" y="{y_in[i] + 5}" text-anchor="middle">{name}</text>'
        )
    for j, name in enumerate(OUTPUTS):
        parts.append(
            f'<circle cx="250" cy="{y_out[j]}" r="15" fill="#fff3e0" stroke="#e65100"/>'
        )
        parts.append(
            f'<text x="250" y="{y_out[j] + 5}" text-anchor="middle">{name}</text>'
        )
    # The matrix: rows are inputs, columns outputs (the Dense kernel's orientation).
    x0, y0, cell = 410, 45, 40
    parts.append(
        f'<text x="{x0 + cell * n_out / 2}" y="22" text-anchor="middle" '
        'font-weight="bold">connectivity (4, 3)</text>'
    )
    for j, name in enumerate(OUTPUTS):
        parts.append(
            f'<text x="{x0 + cell * j + cell / 2}" y="{y0 - 6}" '
            f'text-anchor="middle">{name}</text>'
        )
    for i, name in enumerate(INPUTS):
        parts.append(
            f'<text x="{x0 - 10}" y="{y0 + cell * i + 26}" '
            f'text-anchor="end">{name}</text>'
        )
        for j in range(n_out):
            on = bool(MASK[i, j])
            parts.append(
                f'<rect x="{x0 + cell * j}" y="{y0 + cell * i}" '
                f'width="{cell}" height="{cell}" '
                f'fill="{"#3f51b5" if on else "white"}" stroke="#9e9e9e"/>'
            )
            parts.append(
                f'<text x="{x0 + cell * j + cell / 2}" y="{y0 + cell * i + 26}" '
                f'text-anchor="middle" fill="{"white" if on else "#757575"}">'
                f"{int(on)}</text>"
            )
    parts.append(
        f'<text x="{x0 + cell * n_out / 2}" y="{y0 + cell * n_in + 22}" '
        'text-anchor="middle" font-size="13">row i = input, column j = output</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    OUT.write_text(svg(), encoding="utf-8")
    print(f"wrote {OUT}")
