"""Bench: dapt's dedup stage against datatrove's MinHash deduplication.

Both get the same corpus: the financial training documents (read from a dapt ingest
stage's shards) replicated 8x, with light random word edits in half of the copies,
so there are exact and near duplicates of known ground truth. Same shingles (5-word),
bands (14) and rows (8). Prints docs/s for both, their ratio, and how many planted
duplicates each removed: per group of eight copies, up to seven removals count, whichever
copy a tool keeps as the representative.

Usage: bench_dedup.py DAPT_BINARY INGEST_DOCS_DIR WORK_DIR
"""

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

# The bounded dedup stage's memory_mb, and the pipeline's jobs.
MEMORY_MB, JOBS = 64, 2


def main():
    dapt, docs_dir, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)

    originals = []
    for shard in sorted(docs_dir.glob("*.parquet")):
        table = pq.read_table(shard, columns=["text", "split"])
        for text, split in zip(table.column("text").to_pylist(), table.column("split").to_pylist()):
            if split == "train" and len(text.split()) >= 20:
                originals.append(text)


    def edit(text):
        words = text.split()
        for _ in range(max(1, len(words) // 100)):  # ~1% of words replaced
            words[rng.randrange(len(words))] = f"edit{rng.randrange(10**6)}"
        return " ".join(words)


    # One file per copy, so datatrove can spread its reading stages over both workers.
    planted = set()
    group_of = {}
    n = 0
    for copy in range(8):
        with (work / f"corpus-{copy}.jsonl").open("w") as out:
            for text in originals:
                group_of[str(n)] = n % len(originals)
                if copy > 0:
                    planted.add(str(n))
                    if copy % 2 == 0:
                        text = edit(text)
                out.write(json.dumps({"id": str(n), "text": text}) + "\n")
                n += 1
    total = n
    size = sum(f.stat().st_size for f in work.glob("corpus-*.jsonl"))
    print(f"corpus: {len(originals)} originals x 8 = {total} docs, {len(planted)} planted duplicates, "
          f"{size / 1e6:.1f} MB")

    # --- dapt: as configured (LSH candidates verified on their signatures), and with
    # verification off, datatrove's rule (every LSH candidate pair is a duplicate) ---------
    pipeline = work / "dapt.toml"
    pipeline.write_text(f"""
    [pipeline]
    name = "bench-dedup"
    workdir = "{work}/dapt-work"
    data_root = "{work}"
    jobs = {JOBS}

    [corpora.bench]
    domain = "financial"
    reader = "jsonl"
    paths = ["corpus-*.jsonl"]
    id_field = "id"
    split = "train"

    [stages.ingest]
    kind = "ingest"
    corpora = ["bench"]
    shard_mb = 8

    [stages.dedup]
    kind = "dedup"
    inputs = ["ingest"]

    [stages.dedup_unverified]
    kind = "dedup"
    inputs = ["ingest"]
    verify = 0.0

    [stages.dedup_bounded]
    kind = "dedup"
    inputs = ["ingest"]
    memory_mb = {MEMORY_MB}
    """)
    subprocess.run([dapt, "run", "ingest", "-c", str(pipeline)], check=True, stdout=subprocess.DEVNULL)
    dapt_runs = {stage: run_dapt_dedup(dapt, pipeline, work, stage)
                 for stage in ("dedup", "dedup_unverified", "dedup_bounded")}
    assert dapt_runs["dedup_bounded"][1] == dapt_runs["dedup"][1], "out-of-core dedup removed other documents"

    # --- datatrove ----------------------------------------------------------------------
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets,
                                                  MinhashDedupCluster, MinhashDedupFilter)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    base = work / "datatrove"
    config = MinhashConfig(hash_config=HashConfig(precision=64), n_grams=5, num_buckets=14, hashes_per_bucket=8)
    tasks = 2
    start = time.time()
    signatures = LocalPipelineExecutor(pipeline=[
        JsonlReader(str(work), glob_pattern="corpus-*.jsonl", id_key="id"),
        MinhashDedupSignature(output_folder=f"{base}/signatures", config=config)],
        tasks=tasks, workers=tasks, logging_dir=f"{base}/logs/signatures")
    buckets = LocalPipelineExecutor(pipeline=[
        MinhashDedupBuckets(input_folder=f"{base}/signatures", output_folder=f"{base}/buckets", config=config)],
        tasks=config.num_buckets, workers=tasks, logging_dir=f"{base}/logs/buckets", depends=signatures)
    cluster = LocalPipelineExecutor(pipeline=[
        MinhashDedupCluster(input_folder=f"{base}/buckets", output_folder=f"{base}/remove_ids", config=config)],
        tasks=1, logging_dir=f"{base}/logs/clusters", depends=buckets)
    final = LocalPipelineExecutor(pipeline=[
        JsonlReader(str(work), glob_pattern="corpus-*.jsonl", id_key="id"),
        MinhashDedupFilter(input_folder=f"{base}/remove_ids",
                           exclusion_writer=JsonlWriter(f"{base}/removed", compression=None)),
        JsonlWriter(f"{base}/kept", compression=None)],
        tasks=tasks, workers=tasks, logging_dir=f"{base}/logs/filter", depends=cluster)
    final.run()
    datatrove_seconds = time.time() - start
    dt_removed = set()
    for f in (base / "removed").glob("*"):
        for line in f.open():
            dt_removed.add(json.loads(line)["id"])
    dt_found = planted_found(dt_removed, group_of)

    for stage, (seconds, removed, rss) in dapt_runs.items():
        print(f"dapt {stage:<17} {total / seconds:10.0f} docs/s ({seconds:.1f} s), removed {len(removed)}, "
              f"planted found {planted_found(removed, group_of)}/{len(planted)}, peak RSS {rss:.0f} MB")
    print(f"datatrove              {total / datatrove_seconds:10.0f} docs/s ({datatrove_seconds:.1f} s), "
          f"removed {len(dt_removed)}, planted found {dt_found}/{len(planted)}")
    dapt_seconds = dapt_runs["dedup"][0]
    print(f"dapt / datatrove throughput: {datatrove_seconds / dapt_seconds:.1f}x (goal >= 10x)")
    # The bounded stage's documented peak: memory_mb + jobs x 128 MB of shard I/O + 40 MB.
    bound = MEMORY_MB + JOBS * 128 + 40
    bounded_rss = dapt_runs["dedup_bounded"][2]
    print(f"dapt dedup_bounded peak RSS {bounded_rss:.0f} MB, bound {bound} MB "
          f"(memory_mb {MEMORY_MB}, {JOBS} jobs); in memory {dapt_runs['dedup'][2]:.0f} MB")
    assert bounded_rss <= bound, f"dedup_bounded peak RSS {bounded_rss:.0f} MB exceeds its bound {bound} MB"


def run_dapt_dedup(dapt, pipeline, work, stage):
    """Runs one dedup stage; returns its seconds and peak RSS (from its manifest) and the removed ids."""
    subprocess.run([dapt, "run", stage, "-c", str(pipeline)], check=True, stdout=subprocess.DEVNULL)
    manifest = json.loads((work / f"dapt-work/stages/{stage}/manifest.json").read_text())
    removed = set()
    for shard in (work / f"dapt-work/stages/{stage}/out/rejected").glob("*.parquet"):
        removed.update(i.split("/")[-1] for i in pq.read_table(shard, columns=["id"]).column("id").to_pylist())
    return manifest["seconds"], removed, manifest["peak_rss_mb"]


def planted_found(removed, group_of):
    """Planted duplicates removed: in each group of 8 copies, at most 7 removals count."""
    per_group = {}
    for doc in removed:
        group = group_of[doc]
        per_group[group] = per_group.get(group, 0) + 1
    return sum(min(count, 7) for count in per_group.values())


# datatrove's multiprocessing workers import this module again: run only as a script.
if __name__ == "__main__":
    main()
