"""Bench: ingest + clean throughput (MB/s of raw input) and peak RSS on the full
financial corpus of ./pipeline.toml (its financial corpora and clean settings).

Usage: bench_data.py DAPT_BINARY WORK_DIR
"""

import json
import resource
import subprocess
import sys
import time
import tomllib
from pathlib import Path

dapt, work = sys.argv[1], Path(sys.argv[2]).resolve()
work.mkdir(parents=True, exist_ok=True)
config = tomllib.loads(Path("pipeline.toml").read_text())
data_root = (Path("pipeline.toml").parent / config["pipeline"]["data_root"]).resolve()
financial = {n: c for n, c in config["corpora"].items() if c["domain"] == "financial"}
clean = {k: v for k, v in config["stages"]["clean"].items() if k not in ("kind", "inputs")}
clean.setdefault("overrides", {})


def toml_value(v):
    return json.dumps(v)  # JSON scalars, arrays and strings are valid TOML values


lines = ["[pipeline]", 'name = "bench-data"', f'workdir = "{work}/work"', f'data_root = "{data_root}"', "jobs = 2", ""]
for name, corpus in financial.items():
    lines.append(f"[corpora.{name}]")
    lines += [f"{k} = {toml_value(v)}" for k, v in corpus.items()]
    lines.append("")
lines += ["[stages.ingest]", 'kind = "ingest"', f"corpora = {toml_value(list(financial))}", ""]
lines += ["[stages.clean]", 'kind = "clean"', 'inputs = ["ingest"]']
lines += [f"{k} = {toml_value(v)}" for k, v in clean.items() if k != "overrides"]
for corpus, table in clean["overrides"].items():
    lines.append(f"[stages.clean.overrides.{corpus}]")
    lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
pipeline = work / "bench-data.toml"
pipeline.write_text("\n".join(lines) + "\n")

subprocess.run([dapt, "clean", "-c", str(pipeline)], check=True, stdout=subprocess.DEVNULL)
start = time.time()
subprocess.run([dapt, "run", "-c", str(pipeline)], check=True, stdout=subprocess.DEVNULL)
wall = time.time() - start
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

ingest = json.loads((work / "work/stages/ingest/manifest.json").read_text())
cleaned = json.loads((work / "work/stages/clean/manifest.json").read_text())
mb = ingest["counts"]["bytes"] / 1e6
print(f"ingest+clean, financial corpus: {mb:.1f} MB raw, {ingest['counts']['documents']} documents -> "
      f"{cleaned['counts']['kept']} kept")
print(f"  ingest {ingest['seconds']:.1f} s ({mb / ingest['seconds']:.1f} MB/s), "
      f"clean {cleaned['seconds']:.1f} s; together {mb / (ingest['seconds'] + cleaned['seconds']):.1f} MB/s "
      f"(wall {wall:.1f} s, 2 jobs); peak RSS {peak_mb:.0f} MB")
