"""Draws a line chart (SVG, standard library only) from a Markdown table a benchmark printed.

    python3 scripts/chart.py TABLE.md OUT.svg --x N --y "median ms" --series tool \
        [--table-with HEADER_TEXT] [--only REGEX] [--group REGEX] [--title TEXT] [--ylabel TEXT] [--log-x] [--log-y]

Reads the first Markdown table in TABLE.md whose header row has every named column (a column
matches its exact name or a name it starts: "median ms" finds "median ms (3 runs)"), and
HEADER_TEXT, when given); one line per distinct value of the series column (rows whose series
does not match --only are left out; --group names a line by the part of the series value its
regex matches, so "floor: 1 STS + 5 Batch" rows can share one line; without --series, one line). Numbers may carry thousands
separators and bold marks. The benchmark scripts call it on their own results; BENCHMARKS.md
shows what they drew.
"""

import argparse
import math
import re
import sys
from xml.sax.saxutils import escape

COLOURS = ["#1b6ac9", "#d1495b", "#2e933c", "#edae49", "#6a4c93", "#00798c", "#8d6346"]


def tables(text):
    rows = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            yield rows
            rows = []


def number(cell):
    m = re.search(r"-?[0-9][0-9,]*(\.[0-9]+)?", cell.replace("**", ""))
    return float(m.group(0).replace(",", "")) if m else None


def column(head, name):
    """Index of the column called `name`, or of the first whose name starts with it."""
    for i, h in enumerate(head):
        if h == name:
            return i
    return next((i for i, h in enumerate(head) if h.startswith(name)), None)


def pick(text, cols, header_text):
    for rows in tables(text):
        head = rows[0]
        if all(column(head, c) is not None for c in cols) and (
                header_text is None or header_text in " | ".join(head)):
            body = [r for r in rows[2:] if len(r) == len(head)]
            return head, body
    sys.exit("chart.py: no table with columns %s" % ", ".join(cols))


def scale(lo, hi, log):
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    if hi == lo:
        hi = lo + 1
    return lambda v: ((math.log10(v) if log else v) - lo) / (hi - lo)


def ticks(lo, hi, log):
    if log:
        return [10 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    step = 10 ** math.floor(math.log10(max(hi - lo, 1e-9)))
    if (hi - lo) / step < 4:
        step /= 2
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 2)]


def label(v):
    return format(v, ",g")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("table")
    ap.add_argument("out")
    ap.add_argument("--x", required=True)
    ap.add_argument("--y", required=True, action="append", help="repeat for one line per column")
    ap.add_argument("--series")
    ap.add_argument("--table-with")
    ap.add_argument("--only")
    ap.add_argument("--group")
    ap.add_argument("--title", default="")
    ap.add_argument("--ylabel")
    ap.add_argument("--log-x", action="store_true")
    ap.add_argument("--log-y", action="store_true")
    a = ap.parse_args()

    cols = [a.x] + a.y + ([a.series] if a.series else [])
    head, body = pick(open(a.table).read(), cols, a.table_with)
    ix = column(head, a.x)
    lines = {}
    for r in body:
        for ycol in a.y:
            name = r[column(head, a.series)] if a.series else ycol
            if a.only and not re.search(a.only, name):
                continue
            if a.group and re.match(a.group, name):
                name = re.match(a.group, name).group(0).strip()
            x, y = number(r[ix]), number(r[column(head, ycol)])
            if x is None or y is None or (a.log_x and x <= 0) or (a.log_y and y <= 0):
                continue
            lines.setdefault(name, []).append((x, y))
    if not lines:
        sys.exit("chart.py: no rows to draw")
    xs = [x for pts in lines.values() for x, _ in pts]
    ys = [y for pts in lines.values() for _, y in pts]
    xlo, xhi = min(xs), max(xs)
    ylo, yhi = (min(ys), max(ys)) if a.log_y else (0, max(ys))
    xt, yt = ticks(xlo, xhi, a.log_x), ticks(ylo, yhi, a.log_y)
    xlo, xhi = min(xt + [xlo]), max(xt + [xhi])
    ylo, yhi = min(yt + [ylo]), max(yt + [yhi])
    fx, fy = scale(xlo, xhi, a.log_x), scale(ylo, yhi, a.log_y)
    W, H, L, R, T, B = 760, 420, 70, 230, 40, 50
    px = lambda v: L + fx(v) * (W - L - R)
    py = lambda v: H - B - fy(v) * (H - T - B)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>' % (L, escape(a.title))]
    for t in xt:
        if xlo <= t <= xhi:
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (px(t), T, px(t), H - B))
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (px(t), H - B + 16, label(t)))
    for t in yt:
        if ylo <= t <= yhi:
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, py(t), W - R, py(t)))
            out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (L - 6, py(t) + 4, label(t)))
    out.append('<text x="%d" y="%d" text-anchor="middle">%s%s</text>'
               % ((L + W - R) // 2, H - 12, escape(a.x), " (log)" if a.log_x else ""))
    out.append('<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">%s%s</text>'
               % ((T + H - B) // 2, (T + H - B) // 2, escape(a.ylabel or a.y[0]), " (log)" if a.log_y else ""))
    for i, (name, pts) in enumerate(lines.items()):
        c = COLOURS[i % len(COLOURS)]
        pts.sort()
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                   % (c, " ".join("%.1f,%.1f" % (px(x), py(y)) for x, y in pts)))
        out += ['<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (px(x), py(y), c) for x, y in pts]
        ly = T + 14 + 18 * i
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>'
                   % (W - R + 12, ly - 4, W - R + 32, ly - 4, c))
        out.append('<text x="%d" y="%d">%s</text>' % (W - R + 38, ly, escape(name)))
    out.append("</svg>")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
