#!/usr/bin/env python3
"""The scaling curve of docs/performance.md, in one command.

    python3 benches/scaling.py [SIZES...]

Builds ztp and the estate generator in release mode, generates an estate of
each size (benches/support/generate.rs), and times `ztp build DIR -o -`,
`ztp check DIR` and `ztp fmt --check DIR` on it: the best wall time of three
runs, and the peak resident memory of that run (from wait4). It writes
docs/scaling.csv and draws docs/scaling.svg (time and peak memory against
workloads) from it. Standard library only.
"""

import csv
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
SIZES = [100, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000]
RUNS = 3


def run(argv):
    """Runs argv with output discarded; returns (seconds, peak KiB, exit code)."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    took = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    return took, usage.ru_maxrss, child.returncode


def best(argv):
    runs = [run(argv) for _ in range(RUNS)]
    if any(code != 0 for _, _, code in runs):
        sys.exit(f"{' '.join(argv)} failed")
    return min(runs)


def objects(ztp, estate):
    out = subprocess.run([ztp, "build", estate, "-o", "-"], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith("kind: "))


def measure(sizes):
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "ztp", "--example", "generate"],
                   cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ztp = os.path.join(target, "release", "ztp")
    generate = os.path.join(target, "release", "examples", "generate")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            estate = os.path.join(tmp, f"estate-{n}")
            subprocess.run([generate, str(n), estate], check=True, stdout=subprocess.DEVNULL)
            build_s, build_kib, _ = best([ztp, "build", estate, "-o", "-"])
            check_s, check_kib, _ = best([ztp, "check", estate])
            fmt_s, _, _ = best([ztp, "fmt", "--check", estate])
            row = {
                "workloads": n,
                "objects": objects(ztp, estate),
                "build_s": round(build_s, 3),
                "build_mib": round(build_kib / 1024, 1),
                "check_s": round(check_s, 3),
                "check_mib": round(check_kib / 1024, 1),
                "fmt_check_s": round(fmt_s, 3),
            }
            print(row, flush=True)
            rows.append(row)
    return rows


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def read_csv(path):
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def panel(x0, title, unit, xs, series, width=380, height=260):
    """One chart: lines of (label, colour, ys) against xs, linear axes from 0."""
    left, right, top, bottom = 56, 12, 28, 40
    w, h = width - left - right, height - top - bottom
    xmax = max(xs)
    ymax = max(max(ys) for _, _, ys in series) * 1.1 or 1
    sx = lambda x: x0 + left + w * x / xmax
    sy = lambda y: top + h - h * y / ymax
    out = [f'<text x="{x0 + left + w / 2}" y="16" text-anchor="middle" font-weight="bold">{title}</text>']
    out.append(f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(xmax)}" y2="{sy(0)}" stroke="#333"/>')
    out.append(f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(0)}" y2="{top}" stroke="#333"/>')
    for i in range(5):
        y = ymax * i / 4
        out.append(f'<line x1="{sx(0)}" y1="{sy(y):.1f}" x2="{sx(xmax)}" y2="{sy(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{sx(0) - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
    for i in range(5):
        x = xmax * i / 4
        out.append(f'<text x="{sx(x):.1f}" y="{sy(0) + 16}" text-anchor="middle">{x:,.0f}</text>')
    out.append(f'<text x="{x0 + left + w / 2}" y="{height - 4}" text-anchor="middle">workloads</text>')
    out.append(f'<text x="{x0 + 12}" y="{top + h / 2}" text-anchor="middle" '
               f'transform="rotate(-90 {x0 + 12} {top + h / 2})">{unit}</text>')
    for k, (label, colour, ys) in enumerate(series):
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in zip(xs, ys):
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
        ly = top + 8 + 16 * k
        out.append(f'<rect x="{sx(0) + 10}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{sx(0) + 24}" y="{ly + 1}">{label}</text>')
    return out


def write_svg(rows, path):
    xs = [r["workloads"] for r in rows]
    body = panel(0, "Time (best of 3)", "seconds", xs, [
        ("build -o -", "#1f77b4", [r["build_s"] for r in rows]),
        ("check", "#ff7f0e", [r["check_s"] for r in rows]),
        ("fmt --check", "#2ca02c", [r["fmt_check_s"] for r in rows]),
    ])
    body += panel(400, "Peak memory", "MiB", xs, [
        ("build -o -", "#1f77b4", [r["build_mib"] for r in rows]),
        ("check", "#ff7f0e", [r["check_mib"] for r in rows]),
    ])
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="780" height="260" '
           'font-family="sans-serif" font-size="11">', '<rect width="780" height="260" fill="white"/>']
    svg += body
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")


def main():
    args = sys.argv[1:]
    csv_path, svg_path = os.path.join(DOCS, "scaling.csv"), os.path.join(DOCS, "scaling.svg")
    if args == ["--plot-only"]:
        write_svg(read_csv(csv_path), svg_path)
        return
    sizes = [int(a) for a in args] or SIZES
    rows = measure(sizes)
    write_csv(rows, csv_path)
    write_svg(read_csv(csv_path), svg_path)
    print(f"wrote {os.path.relpath(csv_path, ROOT)} and {os.path.relpath(svg_path, ROOT)}")


if __name__ == "__main__":
    main()
