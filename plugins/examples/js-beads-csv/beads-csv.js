// beads-csv: a thrum-backup plugin written in JavaScript.
//
// It writes `issues.csv` into each snapshot: one row per beads issue (id, title, status,
// priority, type, assignee, created, closed), read from `.beads/issues.jsonl` (br, and bd's
// export) or `.beads/backup/issues.jsonl` (`bd backup`), so the state of the tracker at backup
// time opens in any spreadsheet. `verify` re-parses the CSV; `restore` has nothing to put back.
//
// Build (see README.md): npm ci && npm run build

import { createFile, log, progress } from 'thrum:backup/host@0.1.0';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

const SOURCES = ['issues.jsonl', 'backup/issues.jsonl'];
const REPORT = 'issues.csv';
const COLUMNS = ['id', 'title', 'status', 'priority', 'issue_type', 'assignee', 'created_at', 'closed_at'];

// A `plugin-error` for the host: thrown from an export, it becomes the call's `err`.
function fail(code, message) {
  return { code, message };
}

function summary(files, bytes, notes, warnings = []) {
  return { files: BigInt(files), bytes: BigInt(bytes), notes, warnings };
}

function preopen(guestPath) {
  for (const [dir, path] of getDirectories()) {
    if (path === guestPath) return dir;
  }
  return null;
}

// Read a whole file below a preopened directory; null if it is not there.
function readFile(dir, name) {
  let fd;
  try {
    fd = dir.openAt({}, name, {}, { read: true });
  } catch (e) {
    if (e.payload === 'no-entry') return null;
    throw fail('host-call', `cannot open ${name}: ${e.payload ?? e}`);
  }
  const chunks = [];
  let offset = 0n;
  for (;;) {
    const [buf, end] = fd.read(1n << 16n, offset);
    chunks.push(buf);
    offset += BigInt(buf.length);
    if (end || buf.length === 0) break;
  }
  const all = new Uint8Array(Number(offset));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder('utf-8', { fatal: true }).decode(all);
}

function csvField(value) {
  const s = value === null || value === undefined ? '' : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

// RFC 4180 rows; throws on an unterminated quote.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else {
      field += c;
    }
  }
  if (quoted) throw new Error('unterminated quoted field');
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

export const exporter = {
  describe() {
    return {
      name: 'beads-csv',
      version: '0.1.0',
      description: 'CSV of the beads issues (id, title, status, ...); written in JavaScript',
      grants: [{ tag: 'read', val: '.beads' }],
      configHelp: '{} (no settings)',
    };
  },

  backup(ctx) {
    const beads = preopen('/repo/.beads');
    if (beads === null) throw fail('missing-input', '.beads/ is not there (grant read:.beads)');
    let text = null;
    let source = null;
    for (const name of SOURCES) {
      text = readFile(beads, name);
      if (text !== null) {
        source = name;
        break;
      }
    }
    if (text === null) throw fail('missing-input', `no ${SOURCES.join(' or ')} in .beads/`);
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    const out = [COLUMNS.join(',')];
    const counts = {};
    lines.forEach((line, i) => {
      let issue;
      try {
        issue = JSON.parse(line);
      } catch (e) {
        throw fail('invalid-data', `.beads/${source} line ${i + 1}: ${e.message}`);
      }
      if (typeof issue !== 'object' || issue === null || typeof issue.id !== 'string') {
        throw fail('invalid-data', `.beads/${source} line ${i + 1}: not an issue (no "id")`);
      }
      out.push(COLUMNS.map((c) => csvField(issue[c])).join(','));
      counts[issue.status] = (counts[issue.status] ?? 0) + 1;
      progress(BigInt(i + 1), BigInt(lines.length));
    });
    const bytes = new TextEncoder().encode(out.join('\n') + '\n');
    const file = createFile(REPORT);
    file.write(bytes);
    file.finish();
    const byStatus = Object.entries(counts)
      .sort()
      .map(([s, n]) => `${n} ${s}`)
      .join(', ');
    log('info', `beads-csv: ${lines.length} issues from .beads/${source}`);
    return summary(1, bytes.length, [`${lines.length} issues (${byStatus || 'none'})`]);
  },

  restore(ctx) {
    return summary(0, 0, ['a report: nothing to put back']);
  },

  verify(ctx) {
    const backup = preopen('/backup');
    const text = backup === null ? null : readFile(backup, REPORT);
    if (text === null) throw fail('missing-input', `${REPORT} is missing`);
    let rows;
    try {
      rows = parseCsv(text);
    } catch (e) {
      throw fail('invalid-data', `${REPORT}: ${e.message}`);
    }
    if (rows.length === 0 || rows[0].join(',') !== COLUMNS.join(',')) {
      throw fail('invalid-data', `${REPORT}: the header is not ${COLUMNS.join(',')}`);
    }
    const ids = new Set();
    rows.slice(1).forEach((row, i) => {
      if (row.length !== COLUMNS.length || row[0] === '' || ids.has(row[0])) {
        throw fail('invalid-data', `${REPORT} row ${i + 2} is malformed or repeats an id`);
      }
      ids.add(row[0]);
    });
    return summary(1, text.length, [`${ids.size} issues`]);
  },
};
