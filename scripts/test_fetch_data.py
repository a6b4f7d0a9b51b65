#!/usr/bin/env python3
"""Tests scripts/fetch_data.py (`just data` without a mirror) offline, in about 10 s.

A threaded HTTP server on 127.0.0.1 (with Range support) plays the public hosts: it
answers the URL paths of data/sources.tsv with the corpus mirror's files, and builds the
two converted sources on the fly from the mirror: the EDGAR 10-K zip (from the extracted
JSON files) and GitHub's zip of the 20 Newsgroups repo (the JSONL split back into one
file a post, SOURCES.md section 11 inverted: `text.encode("latin-1")`). The downloader
runs as `just data` would, with DAPT_DATA_BASE_URL pointing at the server and --only
choosing a small subset. Scenarios: a clean download; a rerun that downloads nothing; a
connection dropped mid-file (resumed with Range), also a .part left by an earlier run;
bytes corrupted once (downloaded again); bytes always corrupted (the run fails naming
the file, URL and both hashes, and keeps the other files).

The mirror: $DAPT_TEST_MIRROR, else $DAPT_DATA_MIRROR, else ../shared/data (relative to
the repository). Without it the test is skipped (exit 0) with a message.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FETCH = REPO / "scripts" / "fetch_data.py"
sys.path.insert(0, str(REPO / "scripts"))
sys.dont_write_bytecode = True  # no __pycache__ in scripts/
import fetch_data  # noqa: E402  (only its table reader)

ONLY = [
    "financial/financial_phrasebank_v1.0",  # 6 raw files
    "general/tinyshakespeare",  # 1 raw file, 1.1 MB
    "general/wikitext-2/README",
    "financial/edgar_crawler_10k_sample",  # 62 members of a zip published in the repo
    "general/bbc_news/README.TXT",  # GitHub's zip of a commit, strip=1
    "general/bbc_news/sport/199.txt",
    "general/20newsgroups_bydate",  # 7,532 posts from GitHub's zip, packed into one JSONL
]
SHAKESPEARE = "general/tinyshakespeare/input.txt"
ALLAGREE = "financial/financial_phrasebank_v1.0/Sentences_AllAgree.txt"
LICENSE = "financial/financial_phrasebank_v1.0/License.txt"
EDGAR = "financial/edgar_crawler_10k_sample/10-K/"
DECOY = "not-in-the-manifest/README.md"  # every served zip holds it; it must not be extracted


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def corrupt(body: bytes) -> bytes:
    b = bytearray(body)
    for i in (len(b) // 3, len(b) // 2, 2 * len(b) // 3):
        b[i] ^= 0x5A
    return bytes(b)


class Mirror:
    """URL path (as the server sees it: /HOST/PATH) -> body, built from the mirror."""

    def __init__(self, root: Path, units: list[fetch_data.Unit]):
        self.root = root
        self.units = {self.route(u.url): u for u in units}
        self.cache: dict[str, bytes] = {}
        self.lock = threading.Lock()

    @staticmethod
    def route(url: str) -> str:
        p = urllib.parse.urlsplit(url)
        return f"/{p.netloc}{p.path}"

    def body(self, path: str) -> bytes | None:
        u = self.units.get(path)
        if u is None:
            return None
        with self.lock:
            if path not in self.cache:
                self.cache[path] = (self.root / u.dest).read_bytes() if u.kind == "file" else self.zip(u)
            return self.cache[path]

    def zip(self, u: fetch_data.Unit) -> bytes:
        top = "".join(f"top{i}-{'0' * 40}/" for i in range(u.strip))  # like NAME-COMMIT/
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for member, dest in u.members:
                z.writestr(top + member, (self.root / dest).read_bytes())
            for p in u.packs:
                assert p.fmt == "20ng-jsonl"
                posts = {}
                with open(self.root / p.dest, encoding="utf-8", newline="") as f:
                    for line in f:
                        o = json.loads(line)
                        assert list(o) == ["id", "label", "text"] and o["id"].split("/")[1] == o["label"]
                        posts[o["id"]] = o["text"].encode("latin-1")  # SOURCES.md section 11, inverted
                for member, rid in p.records:
                    z.writestr(top + member, posts.pop(rid))
                assert not posts, "records of the JSONL without a row in sources.tsv"
            z.writestr(top + DECOY, b"not a corpus file\n")
        return buf.getvalue()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mirror: Mirror):
        super().__init__(("127.0.0.1", 0), Handler)
        self.mirror = mirror
        self.faults: dict[str, list[str]] = {}  # path -> faults for the next requests, in order
        self.always_corrupt: set[str] = set()
        self.log: list[tuple[str, str | None, int, str | None]] = []  # path, Range, status, fault
        self.lock = threading.Lock()

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is fine
            super().handle_error(request, client_address)

    def next_fault(self, path: str) -> str | None:
        with self.lock:
            if path in self.always_corrupt:
                return "corrupt"
            q = self.faults.get(path)
            return q.pop(0) if q else None


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        srv = self.server
        body = srv.mirror.body(self.path)
        rng = self.headers.get("Range")
        if body is None:
            srv.log.append((self.path, rng, 404, None))
            self.send_error(404)
            return
        fault = srv.next_fault(self.path)
        if fault == "corrupt":
            body = corrupt(body)
        start = 0
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            assert m, rng
            start = int(m.group(1))
            if start >= len(body):
                srv.log.append((self.path, rng, 416, fault))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        status = 206 if rng else 200
        chunk = body[start:]
        srv.log.append((self.path, rng, status, fault))
        self.send_response(status)
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if fault == "drop":
            self.wfile.write(chunk[: len(chunk) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(chunk)


class Test:
    def __init__(self, mirror_root: Path):
        self.mirror_root = mirror_root
        self.manifest = fetch_data.read_manifest(REPO / "data" / "MANIFEST.sha256")
        self.units = fetch_data.read_sources(REPO / "data" / "sources.tsv")
        self.server = Server(Mirror(mirror_root, self.units))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url_of = {}
        for u in self.units:
            for t in u.targets():
                self.url_of[t] = u.url
        self.selected = [m for m in self.manifest if any(m == p or m.startswith(p + "/") for p in ONLY)]
        self.tmp = Path(tempfile.mkdtemp(prefix="dapt-fetch-test-"))

    def path_of(self, dest: str) -> str:
        return Mirror.route(self.url_of[dest])

    def run(self, title: str, dest: Path, only=ONLY) -> tuple[int, str, list]:
        print(f"\n=== {title}", flush=True)
        n0 = len(self.server.log)
        cmd = [sys.executable, str(FETCH), str(dest), "--only", ",".join(only), "--retry-delay", "0.05"]
        env = dict(os.environ, DAPT_DATA_BASE_URL=self.base, no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
        print(f"$ DAPT_DATA_BASE_URL={self.base} python3 scripts/fetch_data.py {dest.name} --only {','.join(only)} --retry-delay 0.05")
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        print(p.stdout.rstrip("\n"))
        print(f"(exit code {p.returncode})", flush=True)
        return p.returncode, p.stdout, self.server.log[n0:]

    def verified(self, dest: Path, files) -> None:
        for f in files:
            got = sha((dest / f).read_bytes())
            assert got == self.manifest[f], f"{f}: {got} != {self.manifest[f]}"

    def tree(self, dest: Path) -> set[str]:
        return {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}

    def main(self) -> None:
        mirror_manifest = (self.mirror_root / "MANIFEST.sha256").read_bytes()
        assert (REPO / "data" / "MANIFEST.sha256").read_bytes() == mirror_manifest, \
            "data/MANIFEST.sha256 differs from the mirror's MANIFEST.sha256"
        fetch_data.check_coverage(self.units, self.manifest, REPO / "data" / "sources.tsv")
        print(f"{len(self.selected)} of {len(self.manifest)} manifest files selected; server {self.base}")

        # 1. clean download
        d = self.tmp / "raw"
        rc, out, log = self.run("1. clean download into an empty folder", d)
        assert rc == 0, "clean download failed"
        self.verified(d, self.selected)
        assert self.tree(d) == set(self.selected), sorted(self.tree(d) ^ set(self.selected))[:5]
        assert f"{len(self.selected)} file(s) verified" in out and f"({len(self.selected)} downloaded)" in out
        assert all(status == 200 and fault is None for _, _, status, fault in log)

        # 2. rerun: nothing fetched
        rc, out, log = self.run("2. rerun: everything is present and verified", d)
        assert rc == 0 and "(0 downloaded)" in out and log == [], (rc, log)

        # 3. connection dropped mid-file once, then a .part left by an earlier run
        (d / SHAKESPEARE).unlink()
        (d / ALLAGREE).unlink()
        size = len((self.mirror_root / SHAKESPEARE).read_bytes())
        self.server.faults[self.path_of(SHAKESPEARE)] = ["drop"]
        rc, out, log = self.run("3. the server drops the connection halfway through input.txt once", d)
        assert rc == 0 and "(2 downloaded)" in out
        self.verified(d, self.selected)
        reqs = [(r, s, f) for p, r, s, f in log if p == self.path_of(SHAKESPEARE)]
        assert reqs == [(None, 200, "drop"), (f"bytes={size // 2}-", 206, None)], reqs
        assert "resuming at byte" in out

        (d / SHAKESPEARE).unlink()
        (d / (SHAKESPEARE + ".part")).write_bytes((self.mirror_root / SHAKESPEARE).read_bytes()[:100_000])
        rc, out, log = self.run("3b. a .part left by an interrupted run is resumed", d)
        assert rc == 0 and "(1 downloaded)" in out
        self.verified(d, self.selected)
        assert [(r, s) for p, r, s, f in log] == [("bytes=100000-", 206)], log
        assert not (d / (SHAKESPEARE + ".part")).exists()

        # 4. corrupted bytes once: a raw file and the EDGAR zip
        (d / ALLAGREE).unlink()
        edgar = [m for m in self.selected if m.startswith(EDGAR)]
        for m in edgar:
            (d / m).unlink()
        self.server.faults[self.path_of(ALLAGREE)] = ["corrupt"]
        self.server.faults[self.path_of(edgar[0])] = ["corrupt"]
        rc, out, log = self.run("4. the server corrupts Sentences_AllAgree.txt and the 10-K zip once", d)
        assert rc == 0 and f"({1 + len(edgar)} downloaded)" in out
        self.verified(d, self.selected)
        for f in (ALLAGREE, edgar[0]):
            reqs = [(r, s, fl) for p, r, s, fl in log if p == self.path_of(f)]
            assert reqs == [(None, 200, "corrupt"), (None, 200, None)], reqs
        assert out.count("sha256 mismatch") >= 2
        assert self.tree(d) == set(self.selected)

        # 5. always corrupted: the run fails, names file, URL and hashes; the rest is kept
        d5 = self.tmp / "raw5"
        self.server.always_corrupt.add(self.path_of(LICENSE))
        rc, out, log = self.run("5. the server always corrupts License.txt (fresh folder)", d5)
        bad_hash = sha(corrupt((self.mirror_root / LICENSE).read_bytes()))
        assert rc != 0
        url = self.base + self.path_of(LICENSE)
        assert f"error: {LICENSE} does not match MANIFEST.sha256 after 2 downloads" in out, out
        assert f"url:      {url}" in out and f"expected: {self.manifest[LICENSE]}" in out
        assert f"got:      {bad_hash}" in out
        others = [m for m in self.selected if m != LICENSE]
        self.verified(d5, others)
        assert self.tree(d5) == set(others), sorted(self.tree(d5) ^ set(others))
        assert len([1 for p, *_ in log if p == self.path_of(LICENSE)]) == 2

        self.server.always_corrupt.clear()
        rc, out, log = self.run("5b. the server is fixed: the rerun fetches only License.txt", d5)
        assert rc == 0 and "(1 downloaded)" in out and len(log) == 1
        self.verified(d5, self.selected)

        self.server.shutdown()
        shutil.rmtree(self.tmp)


def main() -> int:
    env = os.environ.get("DAPT_TEST_MIRROR") or os.environ.get("DAPT_DATA_MIRROR") or "../shared/data"
    root = Path(env) if Path(env).is_absolute() else REPO / env
    if not (root / "MANIFEST.sha256").is_file():
        print(f"SKIP test_fetch_data: no corpus mirror at {root} (set DAPT_TEST_MIRROR)")
        return 0
    t0 = time.monotonic()
    Test(root).main()
    print(f"\nok: test_fetch_data passed in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
