// {{name}}: a thrum-backup plugin written in JavaScript.
//
// It backs up the repository folder `notes/` into its snapshot folder, checks the copy on
// `verify`, and puts the files back on `restore`. Change SOURCE (and the grants, which name
// it) to back up another folder; see README.md for the whole contract.
//
// Build: npm install && npm run build

import { createFile, progress } from 'thrum:backup/host@0.1.0';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

const SOURCE = 'notes';
const CHUNK = 1n << 16n;

// Thrown from an export, a `plugin-error` record becomes the call's `err`.
function fail(code, message) {
  return { code, message };
}

function preopen(guestPath) {
  for (const [dir, path] of getDirectories()) {
    if (path === guestPath) return dir;
  }
  return null;
}

// Every regular file below `dir`, as [relative path, descriptor of its folder, name], sorted.
function filesUnder(dir, prefix = '') {
  const entries = [];
  const stream = dir.readDirectory();
  for (let e = stream.readDirectoryEntry(); e !== undefined; e = stream.readDirectoryEntry()) {
    entries.push(e);
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const found = [];
  for (const e of entries) {
    if (e.type === 'regular-file') {
      found.push([prefix + e.name, dir, e.name]);
    } else if (e.type === 'directory') {
      const sub = dir.openAt({}, e.name, { directory: true }, { read: true });
      found.push(...filesUnder(sub, `${prefix}${e.name}/`));
    }
  }
  return found;
}

// Stream one file into the host's output file `dest`; returns its size.
function copy(dir, name, dest) {
  const fd = dir.openAt({}, name, {}, { read: true });
  const out = createFile(dest);
  let offset = 0n;
  for (;;) {
    const [buf, end] = fd.read(CHUNK, offset);
    if (buf.length > 0) out.write(buf);
    offset += BigInt(buf.length);
    if (end || buf.length === 0) break;
  }
  return out.finish();
}

function summary(files, bytes, notes = []) {
  return { files: BigInt(files), bytes: BigInt(bytes), notes, warnings: [] };
}

export const exporter = {
  describe() {
    return {
      name: '{{name}}',
      version: '0.1.0',
      description: `Backs up ${SOURCE}/ (written in JavaScript)`,
      grants: [
        { tag: 'read', val: SOURCE },
        { tag: 'write', val: SOURCE },
      ],
      configHelp: '{} (no settings)',
    };
  },

  backup(ctx) {
    const root = preopen(`/repo/${SOURCE}`);
    if (root === null) throw fail('missing-input', `${SOURCE}/ is not there`);
    const files = filesUnder(root);
    let total = 0n;
    files.forEach(([rel, dir, name], i) => {
      total += copy(dir, name, `${SOURCE}/${rel}`);
      progress(BigInt(i + 1), BigInt(files.length));
    });
    return summary(files.length, total, [`${files.length} files`]);
  },

  restore(ctx) {
    const backup = preopen('/backup');
    const files = backup === null ? [] : filesUnder(backup);
    let total = 0n;
    // Files were kept under their repository-relative paths: put each back there.
    for (const [rel, dir, name] of files) total += copy(dir, name, rel);
    return summary(files.length, total);
  },

  verify(ctx) {
    const backup = preopen('/backup');
    const files = backup === null ? [] : filesUnder(backup);
    let total = 0n;
    for (const [, dir, name] of files) total += dir.statAt({}, name).size;
    return summary(files.length, total);
  },
};
