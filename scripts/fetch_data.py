#!/usr/bin/env python3
"""Downloads the dapt corpora from their public homes into DEST (default data/raw).

    python3 scripts/fetch_data.py [DEST] [--only PREFIX,...] [--manifest FILE] [--sources FILE]
                                  [--jobs N] [--retries N] [--retry-delay SECONDS]

`just data` runs this (through scripts/fetch-data.sh) when DAPT_DATA_MIRROR is not set.
Python 3.11 standard library only.

- What and where: data/sources.tsv (see its header) gives, for every file of
  data/MANIFEST.sha256, a URL pinned to a commit (raw.githubusercontent.com, or GitHub's
  zip of a commit). Two datasets are not plain copies, as the mirror's SOURCES.md says:
  the EDGAR 10-K JSON files are the members of a zip published in the repo (only the
  members the manifest lists are kept), and the 20 Newsgroups test half is packed into one
  JSONL exactly as SOURCES.md section 11 describes (see `pack_20ng_jsonl`).
- Checked: every file is compared with MANIFEST.sha256 before it takes its real name
  (written as NAME.tmp, then renamed). A file already present with the right hash is not
  fetched again.
- Resumable: a download goes to NAME.part (archives: DEST/.download/*.part); a dropped
  connection, a timeout, HTTP 429 or 5xx is retried (--retries times, backing off from
  --retry-delay seconds), resuming with an HTTP Range request from the bytes already
  there, also in a later run.
- A download whose hash does not match is deleted and downloaded again once; if it is
  still wrong, the run reports the file, the URL, the expected and the actual sha256, goes
  on with the other downloads, and exits non-zero at the end. Files already verified stay.
- --only: a comma-separated list of manifest paths or folder prefixes (e.g.
  `general/tinyshakespeare,financial/edgar_crawler_10k_sample`) to fetch only those.
  MANIFEST.sha256 is copied into DEST only when everything was fetched.
- Environment, for tests only: DAPT_DATA_BASE_URL=http://127.0.0.1:PORT turns every
  `https://HOST/PATH` of the sources table into `http://127.0.0.1:PORT/HOST/PATH`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHUNK = 1 << 20
USER_AGENT = "dapt-fetch-data/1 (python urllib)"
RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}

_print_lock = threading.Lock()


def say(msg: str) -> None:
    with _print_lock:
        print(msg, flush=True)


# ---------------------------------------------------------------------------
# The manifest and the sources table


def read_manifest(path: Path) -> dict[str, str]:
    """`sha256sum` format: HASH, two spaces (or space and `*`), PATH."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not m:
            raise SystemExit(f"error: {path}:{n}: not a sha256sum line: {line!r}")
        out[m.group(2)] = m.group(1)
    return out


@dataclass
class Pack:
    dest: str
    fmt: str
    records: list[tuple[str, str]] = field(default_factory=list)  # (member, record id)


@dataclass
class Unit:
    """One download: a file (yields `dest`) or a zip (yields its members and packs)."""

    kind: str  # "file" or "zip"
    url: str
    dest: str = ""  # kind "file"
    strip: int = 0  # kind "zip"
    members: list[tuple[str, str]] = field(default_factory=list)  # (member, dest)
    packs: list[Pack] = field(default_factory=list)

    def targets(self) -> list[str]:
        if self.kind == "file":
            return [self.dest]
        return [d for _, d in self.members] + [p.dest for p in self.packs]


PACK_FORMATS = {"20ng-jsonl"}


def read_sources(path: Path) -> list[Unit]:
    units: list[Unit] = []
    pack: Pack | None = None

    def bad(n: int, why: str) -> SystemExit:
        return SystemExit(f"error: {path}:{n}: {why}")

    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        kind = f[0]
        if kind == "file" and len(f) == 3:
            units.append(Unit("file", f[1], dest=f[2]))
            pack = None
        elif kind == "zip" and len(f) == 3 and re.fullmatch(r"strip=\d+", f[2]):
            units.append(Unit("zip", f[1], strip=int(f[2][6:])))
            pack = None
        elif kind == "member" and len(f) == 3:
            if not units or units[-1].kind != "zip":
                raise bad(n, "a member row must follow a zip row")
            units[-1].members.append((f[1], f[2]))
        elif kind == "pack" and len(f) == 3:
            if not units or units[-1].kind != "zip":
                raise bad(n, "a pack row must follow a zip row")
            if f[2] not in PACK_FORMATS:
                raise bad(n, f"unknown pack format {f[2]!r}")
            pack = Pack(f[1], f[2])
            units[-1].packs.append(pack)
        elif kind == "record" and len(f) == 3:
            if pack is None:
                raise bad(n, "a record row must follow a pack row")
            pack.records.append((f[1], f[2]))
        else:
            raise bad(n, f"cannot read this row: {line!r}")
    return units


def check_coverage(units: list[Unit], manifest: dict[str, str], sources: Path) -> None:
    seen: dict[str, str] = {}
    for u in units:
        for t in u.targets():
            if t not in manifest:
                raise SystemExit(f"error: {sources}: {t} (from {u.url}) is not in the manifest")
            if t in seen:
                raise SystemExit(f"error: {sources}: {t} comes from two sources")
            seen[t] = u.url
    missing = [p for p in manifest if p not in seen]
    if missing:
        raise SystemExit(
            f"error: {sources} gives no source for {len(missing)} manifest file(s), e.g. {missing[0]}"
        )


# ---------------------------------------------------------------------------
# Conversions


def pack_20ng_jsonl(records: list[tuple[str, bytes]]) -> bytes:
    """SOURCES.md section 11: one JSON object a post, keys id, label, text in this order;
    id = the file's path in the tarball (`20news-bydate-test/GROUP/NUMBER`), label = GROUP,
    text = the file's bytes decoded as Latin-1; sorted by group name, then by the numeric
    file name; `json.dumps(obj, ensure_ascii=False)`, UTF-8, `\\n` after every record."""
    rows = []
    for rid, data in records:
        _, label, name = rid.split("/")
        rows.append((label, int(name), rid, data))
    rows.sort(key=lambda r: (r[0], r[1]))
    out = bytearray()
    for label, _, rid, data in rows:
        obj = {"id": rid, "label": label, "text": data.decode("latin-1")}
        out += (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
    return bytes(out)


# ---------------------------------------------------------------------------
# Downloading


class DownloadError(Exception):
    """The URL could not be downloaded (after the retries). `network`: no HTTP answer
    (unreachable host, connection failures), which stops the other downloads too."""

    def __init__(self, msg: str, network: bool = False):
        super().__init__(msg)
        self.network = network


class Mismatch(Exception):
    """A downloaded file does not match the manifest: (dest, expected, got) triples."""

    def __init__(self, bad: list[tuple[str, str, str]], installed: int = 0):
        super().__init__(f"{len(bad)} mismatch(es)")
        self.bad = bad
        self.installed = installed  # the good files of the same download, already in place


def effective_url(url: str) -> str:
    base = os.environ.get("DAPT_DATA_BASE_URL", "").rstrip("/")
    if not base:
        return url
    p = urllib.parse.urlsplit(url)
    return f"{base}/{p.netloc}{p.path}" + (f"?{p.query}" if p.query else "")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


class Fetcher:
    def __init__(self, dest: Path, manifest: dict[str, str], retries: int, delay: float):
        self.dest = dest
        self.manifest = manifest
        self.retries = retries
        self.delay = delay
        self.stop = threading.Event()  # set when the network failed for good

    # -- HTTP with resume -------------------------------------------------

    def download(self, url: str, part: Path, name: str) -> None:
        """Fills `part` with the body of `url`, resuming what is already there."""
        real = effective_url(url)
        failures = 0
        while True:
            part.parent.mkdir(parents=True, exist_ok=True)
            have = part.stat().st_size if part.exists() else 0
            if have and not failures:
                say(f"  {name}: resuming a partial download at byte {have}")
            headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
            if have:
                headers["Range"] = f"bytes={have}-"
            wait = None
            try:
                with urllib.request.urlopen(urllib.request.Request(real, headers=headers), timeout=60) as r:
                    if have and r.status == 206:
                        m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", r.headers.get("Content-Range", ""))
                        if not m or int(m.group(1)) != have:
                            part.unlink()  # an answer we cannot splice: start again
                            raise ConnectionError(f"unexpected Content-Range {r.headers.get('Content-Range')!r}")
                        mode = "ab"
                    else:
                        mode, have = "wb", 0  # 200: the server sends the whole file
                    length = r.headers.get("Content-Length")
                    total = have + int(length) if length is not None else None
                    got = have
                    with open(part, mode) as f:
                        while chunk := r.read(CHUNK):
                            f.write(chunk)
                            got += len(chunk)
                    if total is not None and got != total:
                        raise ConnectionError(f"connection closed at byte {got} of {total}")
                    return
            except urllib.error.HTTPError as e:
                if e.code == 416 and have:
                    # Range not satisfiable: the .part may already hold the whole file.
                    m = re.fullmatch(r"bytes \*/(\d+)", e.headers.get("Content-Range", "") or "")
                    if m and int(m.group(1)) == have:
                        return
                    part.unlink()
                    reason = "the partial download does not fit the file on the server; starting again"
                elif e.code in RETRYABLE_HTTP:
                    reason = f"HTTP {e.code} {e.reason}"
                    ra = e.headers.get("Retry-After", "") if e.headers else ""
                    if ra.isdigit():
                        wait = min(int(ra), 300)
                else:
                    raise DownloadError(f"{real}: HTTP {e.code} {e.reason}") from None
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, OSError) as e:
                reason = getattr(e, "reason", None) or e
                reason = f"{type(e).__name__}: {reason}"
            failures += 1
            if failures > self.retries:
                raise DownloadError(f"{real}: {reason} (gave up after {failures} tries)", network=True)
            have = part.stat().st_size if part.exists() else 0
            if wait is None:
                wait = min(self.delay * 2 ** (failures - 1), 60)
            resume = f"resuming at byte {have}" if have else "retrying"
            say(f"  {name}: {reason}; {resume} in {wait:g} s (try {failures + 1} of {self.retries + 1})")
            if self.stop.wait(wait):
                raise DownloadError(f"{real}: {reason} (stopped: another download failed for good)")

    # -- install ----------------------------------------------------------

    def install(self, dest: str, data: bytes | None = None, src: Path | None = None) -> None:
        target = self.dest / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        if src is not None:
            os.replace(src, target)
            return
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)

    def fetch_file(self, u: Unit) -> int:
        part = self.dest / (u.dest + ".part")
        self.download(u.url, part, u.dest)
        got = sha256_file(part)
        want = self.manifest[u.dest]
        if got != want:
            part.unlink()
            raise Mismatch([(u.dest, want, got)])
        size = part.stat().st_size
        self.install(u.dest, src=part)
        say(f"  got {u.dest} ({human(size)})")
        return 1

    def fetch_zip(self, u: Unit, needed: set[str]) -> int:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", urllib.parse.urlsplit(u.url).path.strip("/"))
        part = self.dest / ".download" / (name + ".part")
        self.download(u.url, part, name)
        size = part.stat().st_size
        bad: list[tuple[str, str, str]] = []
        done = 0
        try:
            z = zipfile.ZipFile(part)
        except (zipfile.BadZipFile, OSError) as e:
            part.unlink()
            raise Mismatch([(d, self.manifest[d], f"not a readable zip archive ({e})") for d in sorted(needed)])
        with z:
            index: dict[str, zipfile.ZipInfo] = {}
            for info in z.infolist():
                parts = info.filename.split("/")
                if info.is_dir() or len(parts) <= u.strip:
                    continue
                index["/".join(parts[u.strip :])] = info

            def read(member: str) -> bytes | str:
                if member not in index:
                    return "missing from the archive"
                try:
                    return z.read(index[member])
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
                    return f"unreadable ({e})"

            for member, dest in u.members:
                if dest not in needed:
                    continue
                data = read(member)
                got = data if isinstance(data, str) else hashlib.sha256(data).hexdigest()
                if got != self.manifest[dest]:
                    bad.append((dest, self.manifest[dest], got))
                    continue
                self.install(dest, data)
                done += 1
            for p in u.packs:
                if p.dest not in needed:
                    continue
                records = []
                for member, rid in p.records:
                    data = read(member)
                    if isinstance(data, str):
                        bad.append((p.dest, self.manifest[p.dest], f"record {member}: {data}"))
                        break
                    records.append((rid, data))
                else:
                    blob = pack_20ng_jsonl(records)
                    got = hashlib.sha256(blob).hexdigest()
                    if got != self.manifest[p.dest]:
                        bad.append((p.dest, self.manifest[p.dest], got))
                        continue
                    self.install(p.dest, blob)
                    done += 1
        if bad:
            part.unlink()
            raise Mismatch(bad, done)
        part.unlink()
        say(f"  got {done} file(s) from {name} ({human(size)})")
        return done

    def fetch_unit(self, u: Unit, needed: set[str]) -> tuple[int, list[str]] | None:
        """Returns (files installed, error messages), or None when not tried (stopped).
        A download that does not match is downloaded again once."""
        if self.stop.is_set():
            return None
        installed = 0
        for attempt in (1, 2):
            try:
                if u.kind == "file":
                    installed += self.fetch_file(u)
                else:
                    installed += self.fetch_zip(u, needed)
                return installed, []
            except DownloadError as e:
                if e.network:
                    self.stop.set()
                return installed, [f"error: cannot download {', '.join(sorted(needed)[:3])}"
                                   f"{' …' if len(needed) > 3 else ''}\n  {e}"]
            except Mismatch as e:
                installed += e.installed
                if attempt == 1:
                    needed = {d for d, _, _ in e.bad}  # what is still wrong
                    for dest, want, got in e.bad[:3]:
                        say(f"  {dest}: sha256 mismatch (expected {want}, got {got}); downloading it again")
                    if len(e.bad) > 3:
                        say(f"  … and {len(e.bad) - 3} more from the same download")
                    continue
                errors = [
                    f"error: {dest} does not match MANIFEST.sha256 after 2 downloads\n"
                    f"  url:      {effective_url(u.url)}\n"
                    f"  expected: {want}\n"
                    f"  got:      {got}"
                    for dest, want, got in e.bad[:5]
                ]
                if len(e.bad) > 5:
                    errors.append(f"error: … and {len(e.bad) - 5} more file(s) from {effective_url(u.url)}")
                return installed, errors
        raise AssertionError("unreachable")


# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dest", nargs="?", default="data/raw", help="where the corpora go (default data/raw)")
    ap.add_argument("--manifest", type=Path, default=REPO / "data" / "MANIFEST.sha256")
    ap.add_argument("--sources", type=Path, default=REPO / "data" / "sources.tsv")
    ap.add_argument("--only", default="", help="comma-separated manifest paths or folder prefixes")
    ap.add_argument("--jobs", type=int, default=4, help="parallel downloads (default 4)")
    ap.add_argument("--retries", type=int, default=5, help="retries of a failed connection (default 5)")
    ap.add_argument("--retry-delay", type=float, default=2.0, help="first back-off in seconds (default 2)")
    args = ap.parse_args(argv)

    dest = Path(args.dest)
    manifest = read_manifest(args.manifest)
    units = read_sources(args.sources)
    check_coverage(units, manifest, args.sources)

    selected = list(manifest)
    if args.only:
        prefixes = [p.strip().rstrip("/") for p in args.only.split(",") if p.strip()]
        for p in prefixes:
            if not any(m == p or m.startswith(p + "/") for m in manifest):
                raise SystemExit(f"error: --only {p}: no file of the manifest is at or under it")
        selected = [m for m in manifest if any(m == p or m.startswith(p + "/") for p in prefixes)]

    dest.mkdir(parents=True, exist_ok=True)
    present = {m for m in selected if (dest / m).is_file() and sha256_file(dest / m) == manifest[m]}
    missing = set(selected) - present
    todo = [(u, set(u.targets()) & missing) for u in units if set(u.targets()) & missing]
    say(
        f"data: {len(selected)} file(s) selected of {len(manifest)} in {args.manifest.name}; "
        f"{len(present)} already verified in {dest}; {len(missing)} to fetch in {len(todo)} download(s)"
    )

    installed = 0
    errors: list[str] = []
    skipped = 0
    if todo:
        fetcher = Fetcher(dest, manifest, args.retries, args.retry_delay)
        pool = concurrent.futures.ThreadPoolExecutor(max(1, args.jobs))
        try:
            futures = [pool.submit(fetcher.fetch_unit, u, need) for u, need in todo]
            for fut in futures:
                res = fut.result()
                if res is None:
                    skipped += 1
                    continue
                installed += res[0]
                errors += res[1]
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            say(f"data: interrupted after {installed}+ file(s); run it again to resume (partial downloads stay as .part)")
            os._exit(130)
        pool.shutdown()

    try:
        (dest / ".download").rmdir()  # only if empty: a partial archive stays for the next run
    except OSError:
        pass

    # Final check of everything selected (cheap next to the download).
    bad = [m for m in selected if not (dest / m).is_file() or sha256_file(dest / m) != manifest[m]]
    if errors or bad:
        for e in errors:
            say(e)
        if skipped:
            say(f"error: stopped {skipped} other download(s) after the network failed for good")
        ok = len(selected) - len(bad)
        say(
            f"error: {len(bad)} file(s) missing or wrong in {dest} ({installed} downloaded this run; "
            f"the {ok} verified file(s) are in place); run 'just data' again to retry"
        )
        return 1
    if not args.only:
        shutil.copyfile(args.manifest, dest / "MANIFEST.sha256")
    say(f"data: {len(selected)} file(s) verified in {dest} ({installed} downloaded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
