#!/usr/bin/env python3
"""Medians (and ranges) per binary of what bench/alternate.sh collected from
bench/consumer.py: bench/medians.py OUT. One row per figure, one column per label."""
import re
import statistics
import sys

FIGURES = [
    ("end to end, records/s", r"^end to end: .* = ([\d,]+) records/s", "{:,.0f}"),
    ("consumer CPU, us/record (end to end)", r"^end to end: .*= ([\d.]+) us/record", "{:.1f}"),
    ("of which in the kernel, us/record", r"^of which in the kernel .*= ([\d.]+) us/record",
     "{:.1f}"),
    ("first record at analytics, s", r"^first record at analytics ([\d.]+) s", "{:.2f}"),
    ("steady state, records/s", r"^steady state: \d+ records in [\d.]+ s = ([\d,]+)", "{:,.0f}"),
    ("Redis CPU, us/record (steady)", r"^steady state: .* redis ([\d.]+) us", "{:.1f}"),
    ("analytics CPU, us/record (steady)", r"^steady state: .* analytics ([\d.]+) us", "{:.1f}"),
    ("kafka broker CPU, us/record (steady)", r"^steady state: .* kafka broker ([\d.]+) us",
     "{:.1f}"),
    ("peak RSS of a consumer, MiB", r"^peak RSS of a consumer: ([\d.]+) MiB", "{:.0f}"),
    ("join state, bytes per record", r", ([\d,]+) bytes each", "{:.0f}"),
    ("ids received more than once", r"^analytics: .* (\d+) ids received more than once",
     "{:.0f}"),
    ("callgrind, instructions per message",
     r"^callgrind, \d+ messages: ([\d,]+) instructions", "{:,.0f}"),
]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = {}  # label -> list of runs, each a list of lines
    label = None
    for line in open(sys.argv[1]):
        m = re.match(r"^== run \d+ (\S+) ", line)
        if m:
            label = m.group(1)
            runs.setdefault(label, []).append([])
        elif label and not line.startswith("=="):
            runs[label][-1].append(line.rstrip("\n"))
    labels = list(runs)
    print("| | " + " | ".join(f"{lb} ({len(runs[lb])} runs)" for lb in labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for name, pattern, fmt in FIGURES:
        cells, any_value = [], False
        for lb in labels:
            values = []
            for run in runs[lb]:
                for line in run:
                    m = re.search(pattern, line)
                    if m and m.group(1):
                        values.append(float(m.group(1).replace(",", "")))
                        break
            if not values:
                cells.append("")
                continue
            any_value = True
            med = fmt.format(statistics.median(values))
            rng = (f" ({fmt.format(min(values))}–{fmt.format(max(values))})"
                   if len(values) > 1 and min(values) != max(values) else "")
            missing = len(runs[lb]) - len(values)
            cells.append(med + rng + (f", in {len(values)} of {len(runs[lb])} runs"
                                      if missing else ""))
        if any_value:
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
