"""Markdown tables of a `dnh benchmark --json` report, for docs/BENCHMARKS.md.

    dnh benchmark --model runs/bpr-export/encoder.xml --data runs/bpr --json > bench.json
    python bench/benchmark_md.py bench.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _ms(value: float) -> str:
    return f"{value:.4f}" if value < 1 else f"{value:.2f}"


def rows_table(report: dict[str, Any]) -> list[str]:
    lines = ["| threads | batch | configuration | Count | Duration ms | Median | Average | Min | Max "
             "| Throughput FPS | x eager |", "|" + "---|" * 11]
    eager = {(r["threads"], r["batch"]): r["throughput_fps"]
             for r in report["rows"] if r["engine"] == "pytorch"}
    for r in report["rows"]:
        lat = r["latency_ms"]
        base = eager.get((r["threads"], r["batch"]))
        ratio = f"{r['throughput_fps'] / base:.2f}" if base else "-"
        label = r["label"] + (f" ({r['requests']} req)" if r["mode"] == "async" else "")
        figures = " | ".join(_ms(lat[name]) for name in ("median", "average", "min", "max"))
        lines.append(f"| {r['threads']} | {r['batch']} | {label} | {r['count']:,} | {r['duration_ms']:.0f} | "
                     f"{figures} | {r['throughput_fps']:,.0f} | {ratio} |")
    return lines


def summary_table(report: dict[str, Any]) -> list[str]:
    lines = ["| threads | engine | best throughput FPS (batch, configuration) | batch-1 latency median ms "
             "| OpenVINO throughput / this | this latency / OpenVINO |", "|" + "---|" * 6]
    for threads, by in report["by_threads"].items():
        for key in ("openvino", "pytorch", "torch_compile", "onnxruntime"):
            s = by.get(key)
            if s is None:
                continue
            at = s["throughput_at"]
            where = f"{at['batch']}, " + " ".join(filter(None, [(at["hint"] or "").lower(), at["mode"]]))
            tput = by["ratios"].get(f"openvino_over_{key}_throughput", "-")
            lat = by["ratios"].get(f"{key}_over_openvino_latency", "-")
            lines.append(f"| {threads} | {key} | {s['throughput_fps']:,.0f} ({where.strip()}) | "
                         f"{_ms(s['latency_ms']['median'])} | {tput} | {lat} |")
    return lines


def e2e_table(report: dict[str, Any]) -> list[str]:
    lines = ["| backend | threads | codes | k | queries | median ms | p99 ms | hash median | search median |",
             "|" + "---|" * 9]
    for r in report["end_to_end"]:
        lines.append(f"| {r['backend']} | {r['threads']} | {r['db_codes']:,} | {r['k']} | {r['queries']} | "
                     f"{_ms(r['latency_ms']['median'])} | {_ms(r['latency_ms']['p99'])} | "
                     f"{_ms(r['hash_ms']['median'])} | {_ms(r['search_ms']['median'])} |")
    return lines


def agreement_table(report: dict[str, Any]) -> list[str]:
    lines = [f"| engine (against {report['agreement_reference']}) | bits agreeing | flipped bits "
             "| codes differing | max abs diff |", "|" + "---|" * 5]
    for label, a in report["agreement"].items():
        lines.append(f"| {label} | {100 * a['bits']:.3f}% | {a['flipped_bits']} | {a['codes_differing']} | "
                     f"{a['max_abs_diff']:.1e} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="a `dnh benchmark --json` output file")
    report = json.loads(parser.parse_args().report.read_text())
    for table in (summary_table, rows_table, agreement_table, e2e_table):
        print("\n".join(table(report)) + "\n")
    print(f"precision: {report['precision']}\nnotes: {report['notes']}\nmachine: {report['machine']}")


if __name__ == "__main__":
    main()
