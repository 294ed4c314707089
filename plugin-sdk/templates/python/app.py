"""{{name}}: a thrum-backup plugin written in Python.

It backs up the repository folder `notes/` into its snapshot folder, checks the copy on
`verify`, and puts the files back on `restore`. Change SOURCE (and the grants, which name it)
to back up another folder; see README.md for the whole contract.

Build:  componentize-py -d wit -w plugin componentize app -o {{module}}.wasm
"""

import os

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

SOURCE = "notes"
CHUNK = 1 << 16


def fail(code, message):
    return Err(types.PluginError(code=code, message=message))


def files_under(root):
    """Every regular file below root as (relative path, absolute path), sorted."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(folder, name)
            if os.path.isfile(full):
                found.append((os.path.relpath(full, root), full))
    return found


def copy(src, dest):
    """Stream the file src into the host's output file dest; return its size."""
    out = host.create_file(dest)
    with open(src, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            out.write(chunk)
    return out.finish()


class Exporter(exports.Exporter):
    def describe(self):
        return types.Info(
            name="{{name}}",
            version="0.1.0",
            description=f"Backs up {SOURCE}/ (written in Python)",
            grants=[types.Grant_Read(SOURCE), types.Grant_Write(SOURCE)],
            config_help="{} (no settings)",
        )

    def backup(self, ctx):
        root = f"/repo/{SOURCE}"
        if not os.path.isdir(root):
            raise fail(types.ErrorCode.MISSING_INPUT, f"{SOURCE}/ is not there")
        files = files_under(root)
        total = 0
        for i, (rel, full) in enumerate(files):
            total += copy(full, f"{SOURCE}/{rel}")
            host.progress(i + 1, len(files))
        return types.Summary(files=len(files), bytes=total, notes=[f"{len(files)} files"], warnings=[])

    def restore(self, ctx):
        files = files_under("/backup")
        # Files were kept under their repository-relative paths: put each back there.
        total = sum(copy(full, rel) for rel, full in files)
        return types.Summary(files=len(files), bytes=total, notes=[], warnings=[])

    def verify(self, ctx):
        files = files_under("/backup")
        total = sum(os.path.getsize(full) for _, full in files)
        return types.Summary(files=len(files), bytes=total, notes=[], warnings=[])
