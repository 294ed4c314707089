"""inventory: a thrum-backup plugin written in Python.

It writes `inventory.csv` into each snapshot: one row per file under the repository's `.thrum/`
folder (path, size, lines, sha256), so a later reader can see what the workspace held without
unpacking anything. `verify` re-reads the CSV and checks every row; `restore` has nothing to put
back (the report is for people), so it only says so.

Build (from this folder, see README.md):
    componentize-py -d ../../../wit/v0.1.0 -w plugin componentize app -o inventory.wasm
"""

import csv
import hashlib
import io
import json
import os

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

ROOT = "/repo/.thrum"
REPORT = "inventory.csv"
HEADER = ["path", "bytes", "lines", "sha256"]


def fail(code, message):
    return Err(types.PluginError(code=code, message=message))


def walk(root, skip):
    """Every regular file under root, sorted, as (relative path, absolute path)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        rel_folder = os.path.relpath(folder, root)
        if rel_folder != "." and rel_folder.split(os.sep)[0] in skip:
            dirs[:] = []
            continue
        for name in sorted(files):
            full = os.path.join(folder, name)
            rel = os.path.normpath(os.path.join(rel_folder, name))
            if os.path.isfile(full):
                found.append((rel, full))
    return found


def measure(path):
    digest = hashlib.sha256()
    size = 0
    lines = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    return size, lines, digest.hexdigest()


class Exporter(exports.Exporter):
    def describe(self):
        return types.Info(
            name="inventory",
            version="0.1.0",
            description="CSV inventory of .thrum/ (path, bytes, lines, sha256); written in Python",
            grants=[types.Grant_Read(".thrum")],
            config_help='{"skip": ["backup", "var"]}: top-level folders of .thrum/ to leave out (default: ["backup"])',
        )

    def backup(self, ctx):
        try:
            config = json.loads(ctx.config or "{}")
        except ValueError as e:
            raise fail(types.ErrorCode.INVALID_CONFIG, f"config is not JSON: {e}")
        skip = config.get("skip", ["backup"])
        if not isinstance(skip, list) or not all(isinstance(s, str) for s in skip):
            raise fail(types.ErrorCode.INVALID_CONFIG, '"skip" must be a list of folder names')
        if not os.path.isdir(ROOT):
            raise fail(types.ErrorCode.MISSING_INPUT, ".thrum/ is not there (grant read:.thrum)")
        files = walk(ROOT, set(skip))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(HEADER)
        total = 0
        for i, (rel, full) in enumerate(files):
            size, lines, digest = measure(full)
            total += size
            writer.writerow([rel, size, lines, digest])
            host.progress(i + 1, len(files))
        data = text.getvalue().encode("utf-8")
        out = host.create_file(REPORT)
        out.write(data)
        out.finish()
        host.log(host.Level.INFO, f"inventory: {len(files)} files, {total} bytes")
        return types.Summary(
            files=1,
            bytes=len(data),
            notes=[f"{len(files)} files, {total} bytes in .thrum/"],
            warnings=[],
        )

    def restore(self, ctx):
        return types.Summary(files=0, bytes=0, notes=["a report: nothing to put back"], warnings=[])

    def verify(self, ctx):
        path = os.path.join("/backup", REPORT)
        try:
            with open(path, "r", encoding="utf-8", newline="") as f:
                rows = list(csv.reader(f))
        except OSError as e:
            raise fail(types.ErrorCode.MISSING_INPUT, f"{REPORT}: {e}")
        except UnicodeDecodeError as e:
            raise fail(types.ErrorCode.INVALID_DATA, f"{REPORT} is not UTF-8: {e}")
        if not rows or rows[0] != HEADER:
            raise fail(types.ErrorCode.INVALID_DATA, f"{REPORT}: header is not {','.join(HEADER)}")
        for n, row in enumerate(rows[1:], start=2):
            ok = (
                len(row) == 4
                and row[1].isdigit()
                and row[2].isdigit()
                and len(row[3]) == 64
                and all(c in "0123456789abcdef" for c in row[3])
            )
            if not ok:
                raise fail(types.ErrorCode.INVALID_DATA, f"{REPORT} line {n} is malformed: {row!r}")
        size = os.path.getsize(path)
        return types.Summary(files=1, bytes=size, notes=[f"{len(rows) - 1} rows"], warnings=[])
