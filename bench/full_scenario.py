"""Benchmark: the full scenario at size (default 200 subscriptions, chaos on), with its figures.

Runs `python -m harness sandbox --scenario full` as a subprocess and prints, from its summary.json, the run's
size (subscriptions, customer actions, operations, ledger entries), the faults injected, how long each
phase took, and whether every invariant held. The machine's load average is printed beside the figures,
because the run shares its cores with whatever else runs. The issue's CI size is the integration test's 8.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    """Run the scenario and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscriptions", type=int, default=200)
    parser.add_argument("--events", type=int, default=None, help="customer actions (default 3 per subscription)")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--backend", choices=("auto", "embedded", "scaled"), default="auto")
    parser.add_argument("--no-chaos", action="store_true")
    parser.add_argument("--chaos-intensity", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=3600)
    arguments = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-full-scenario-"))
    command = [
        sys.executable,
        "-m",
        "harness",
        "sandbox",
        "--scenario",
        "full",
        "--subscriptions",
        str(arguments.subscriptions),
        "--seed",
        str(arguments.seed),
        "--backend",
        arguments.backend,
        "--data-dir",
        str(data_dir),
        "--chaos-intensity",
        str(arguments.chaos_intensity),
        "--no-chaos" if arguments.no_chaos else "--chaos",
    ]
    if arguments.events is not None:
        command += ["--events", str(arguments.events)]
    load_before = os.getloadavg()
    began = time.monotonic()
    completed = subprocess.run(command, timeout=arguments.timeout, check=False, capture_output=True, text=True)
    elapsed = time.monotonic() - began
    load_after = os.getloadavg()
    summary_path = data_dir / "summary.json"
    if not summary_path.exists():
        print(completed.stdout[-4000:], completed.stderr[-4000:])
        raise SystemExit(f"no summary written (exit {completed.returncode})")
    summary = json.loads(summary_path.read_text())
    workload = summary["workload"]
    actions = sum(workload.get("actions_sent", {}).values())
    print(f"backend               : {summary['options']['backend']}, chaos {summary['options']['chaos']}")
    print(f"subscriptions         : {sum(summary['subscriptions'].values())} {summary['subscriptions']}")
    print(f"customer actions      : {actions} {workload.get('actions_sent', {})}")
    print(f"operations            : {sum(summary['operations'].values())} {summary['operations']}")
    print(f"ledger entries        : {sum(summary['ledger'].values())} {summary['ledger']}")
    print(f"reconciliation        : {summary['reconciliation']}")
    faults = summary["faults_injected"]
    print(f"faults injected       : {sum(faults.values())} {faults}")
    print(f"phase durations (s)   : {workload.get('phase_seconds', {})}")
    print(f"wall time             : {elapsed:.0f} s (exit {completed.returncode})")
    print(f"load average          : before {load_before[0]:.1f}, after {load_after[0]:.1f} (2-core machine)")
    held = [item["name"] for item in summary["invariants"] if item["passed"]]
    broken = [item for item in summary["invariants"] if not item["passed"]]
    print(f"invariants held       : {len(held)}/{len(summary['invariants'])}")
    for item in broken:
        print(f"  FAILED {item['name']}: {item['problems'][:3]}")
    if summary["error"]:
        print(f"stopped early         : {summary['error']}")
    print(f"summary               : {summary_path}")


if __name__ == "__main__":
    main()
