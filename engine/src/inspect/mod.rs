//! Looking inside snapshots without restoring them: `ls` (the files of a snapshot, from its
//! manifest and, for an archive, the zip's central directory — no data is read), `dump` (one
//! file streamed out, checked against the manifest's checksum as it streams), [`diff`] (two
//! snapshots compared, files and what they mean to thrum) and [`find`] (which snapshots hold a
//! file, a message or an agent).
//!
//! A snapshot is `current` (or nothing), or an archive as `restore` names one: a file name in
//! `archives/` (thrum's archives and pre-restore ones included) or a path.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::archive::{CheckedArchive, Limits};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::fsx::{self, HashingWriter};
use crate::manifest::{self, Manifest};
use crate::pattern::Pattern;

mod diff;
mod find;

pub use diff::{Diff, FileChange, LogChange, TableChange, diff};
pub use find::{Found, Holding, Query, find};

/// A snapshot to look into.
#[derive(Debug, Clone)]
pub enum Snapshot {
    /// `current/`.
    Current(PathBuf),
    /// An archive.
    Archive(PathBuf),
}

impl Snapshot {
    /// `current` (or `None`), or an archive name or path.
    pub fn resolve(ctx: &Context, arg: Option<&str>) -> Result<Self> {
        match arg {
            None | Some("current") | Some("current/") => {
                let current = ctx.backup.current();
                if manifest::read_dir(&current)?.is_none() {
                    return Err(Error::NotFound(format!(
                        "no complete snapshot in {} (run `thrum-backup create`, or name an archive: `thrum-backup archives`)",
                        current.display()
                    )));
                }
                Ok(Self::Current(current))
            }
            Some(a) => Ok(Self::Archive(ctx.backup.resolve_archive(Path::new(a))?)),
        }
    }

    /// How reports name it.
    pub fn label(&self) -> String {
        match self {
            Self::Current(_) => "current".into(),
            Self::Archive(p) => p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        }
    }
}

/// One file of a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// The path inside the snapshot (what `dump` and patterns name).
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// `blake3:<hex>` or `sha256:<hex>`, from the manifest (thrum's archives have none).
    pub checksum: Option<String>,
    /// Modification time: the file's in `current/`, the central directory's in an archive.
    pub modified: Option<String>,
    /// A secret of thrum's (kept private).
    pub secret: bool,
}

/// What `ls` found.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// `current` or the archive's name.
    pub snapshot: String,
    /// When the snapshot was taken (from its manifest).
    pub time: Option<DateTime<Utc>>,
    /// The files that matched, by path.
    pub files: Vec<Listed>,
    /// Their total size.
    pub bytes: u64,
}

/// The files of `snap` whose path matches one of `patterns` (all when empty): a pattern is a
/// path of the snapshot, a folder of it (everything below), or a glob (`messages/*.jsonl`).
/// A pattern that matches nothing is an error naming it.
pub fn ls(snap: &Snapshot, patterns: &[String]) -> Result<Listing> {
    let (manifest, mut files) = match snap {
        Snapshot::Current(dir) => list_dir(dir)?,
        Snapshot::Archive(path) => list_archive(path)?,
    };
    let matchers = Pattern::all(patterns)?;
    if !matchers.is_empty() {
        for m in &matchers {
            if !files.iter().any(|f| m.matches(&f.path)) {
                return Err(Error::NotFound(format!(
                    "{}: nothing matches {:?} (see `thrum-backup ls {}`)",
                    snap.label(),
                    m.text(),
                    snap.label()
                )));
            }
        }
        files.retain(|f| matchers.iter().any(|m| m.matches(&f.path)));
    }
    Ok(Listing {
        snapshot: snap.label(),
        time: manifest.map(|m| m.timestamp),
        bytes: files.iter().map(|f| f.size).sum(),
        files,
    })
}

fn checksums(m: Option<&Manifest>) -> BTreeMap<String, (String, bool)> {
    m.iter()
        .flat_map(|m| m.files.iter())
        .map(|f| {
            (
                f.path.clone(),
                (
                    format!("{}:{}", f.checksum.algorithm().name(), f.checksum.hex()),
                    f.secret,
                ),
            )
        })
        .collect()
}

fn list_dir(dir: &Path) -> Result<(Option<Manifest>, Vec<Listed>)> {
    let m = manifest::read_dir(dir)?;
    let sums = checksums(m.as_ref());
    let mut out = Vec::new();
    for path in fsx::walk_files(dir)? {
        let meta = std::fs::metadata(dir.join(&path)).map_err(|e| Error::Io {
            action: "inspect",
            path: dir.join(&path),
            source: e,
        })?;
        let modified = meta.modified().ok().map(|t| {
            DateTime::<Utc>::from(t)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        });
        let (checksum, secret) = sums
            .get(&path)
            .map_or((None, false), |(c, s)| (Some(c.clone()), *s));
        out.push(Listed {
            path,
            size: meta.len(),
            checksum,
            modified,
            secret,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((m, out))
}

fn list_archive(path: &Path) -> Result<(Option<Manifest>, Vec<Listed>)> {
    let mut archive = CheckedArchive::open(path, &Limits::default())?;
    let m = archive.manifest()?;
    let sums = checksums(m.as_ref());
    let mut out: Vec<Listed> = archive
        .entries()
        .iter()
        .map(|e| {
            let (checksum, secret) = sums
                .get(&e.path)
                .map_or((None, false), |(c, s)| (Some(c.clone()), *s));
            Listed {
                path: e.path.clone(),
                size: e.size,
                checksum,
                modified: e.modified.clone(),
                secret,
            }
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((m, out))
}

/// What `dump` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Dumped {
    /// Bytes written.
    pub bytes: u64,
    /// Whether the manifest had a checksum to check the bytes against (thrum's archives
    /// have none: the zip's CRC was checked instead).
    pub checked: bool,
    /// Why the bytes written are not what the manifest describes, when they are not.
    pub mismatch: Option<String>,
}

/// Stream the file `path` of `snap` into `out`, hashing as it goes; a checksum that does not
/// match the manifest's is reported in [`Dumped::mismatch`] (after the bytes: they were
/// already written).
pub fn dump(snap: &Snapshot, path: &str, out: &mut dyn Write) -> Result<Dumped> {
    let path = path.trim_start_matches("./");
    let (manifest, is_dir) = match snap {
        Snapshot::Current(dir) => (
            manifest::read_dir(dir)?,
            dir.join(path).is_dir() && !path.is_empty(),
        ),
        Snapshot::Archive(p) => {
            let mut a = CheckedArchive::open(p, &Limits::default())?;
            let prefix = format!("{path}/");
            let dir = a.entries().iter().any(|e| e.path.starts_with(&prefix));
            (a.manifest()?, dir)
        }
    };
    if is_dir {
        return Err(Error::Invalid(format!(
            "{}: {path} is a folder: dump writes one file (`thrum-backup ls {} {path}` lists it)",
            snap.label(),
            snap.label()
        )));
    }
    let expected = manifest
        .as_ref()
        .and_then(|m| m.files.iter().find(|f| f.path == path))
        .map(|f| f.checksum.clone());
    let algorithm = expected
        .as_ref()
        .map_or(fsx::Algorithm::Blake3, fsx::Checksum::algorithm);
    let mut hashing = HashingWriter::with(out, algorithm);
    let missing = || {
        Error::NotFound(format!(
            "{}: no file {path:?} (see `thrum-backup ls {}`)",
            snap.label(),
            snap.label()
        ))
    };
    match snap {
        Snapshot::Current(dir) => {
            if path.is_empty() || path.split('/').any(|c| c == "..") {
                return Err(missing());
            }
            let file = dir.join(path);
            let mut f = std::fs::File::open(&file).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    missing()
                } else {
                    Error::Io {
                        action: "open",
                        path: file.clone(),
                        source: e,
                    }
                }
            })?;
            std::io::copy(&mut f, &mut hashing).map_err(|e| Error::Io {
                action: "read",
                path: file.clone(),
                source: e,
            })?;
        }
        Snapshot::Archive(p) => {
            let mut a = CheckedArchive::open(p, &Limits::default())?;
            if a.stream_entry(path, &mut hashing)?.is_none() {
                return Err(missing());
            }
        }
    }
    let (_, digest) = hashing.finish();
    let mismatch = expected
        .as_ref()
        .filter(|want| digest.checksum != **want)
        .map(|want| {
            format!(
                "{}: {path} does not match its manifest: its {} is {}, the manifest says {} (the bytes written are damaged)",
                snap.label(),
                want.algorithm().name(),
                digest.checksum.hex(),
                want.hex()
            )
        });
    Ok(Dumped {
        bytes: digest.size,
        checked: expected.is_some(),
        mismatch,
    })
}

/// Reads files of one snapshot (an archive is opened once), a line at a time: `diff` and
/// `find` read every changed log, hundreds of megabytes in a large workspace, and hold none
/// of it whole.
pub(crate) struct Reader {
    snap: Snapshot,
    archive: Option<CheckedArchive>,
}

impl Reader {
    pub(crate) fn open(snap: &Snapshot) -> Result<Self> {
        let archive = match snap {
            Snapshot::Current(_) => None,
            Snapshot::Archive(p) => Some(CheckedArchive::open(p, &Limits::default())?),
        };
        Ok(Self {
            snap: snap.clone(),
            archive,
        })
    }

    /// Call `line` with each line of the file `path` of the snapshot, without its `\n`, as
    /// the file is read (an archive's entry is checked against its CRC at its end, so an
    /// error can come after some lines). `false` when the snapshot has no such file.
    pub(crate) fn for_each_line(
        &mut self,
        path: &str,
        line: &mut dyn FnMut(&[u8]),
    ) -> Result<bool> {
        let mut lines = Lines {
            carry: crate::jsonl::LineCarry::default(),
            line,
        };
        match (&self.snap, &mut self.archive) {
            (Snapshot::Current(dir), _) => {
                let file = dir.join(path);
                let mut f = match std::fs::File::open(&file) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                    Err(e) => {
                        return Err(Error::Io {
                            action: "open",
                            path: file,
                            source: e,
                        });
                    }
                };
                std::io::copy(&mut f, &mut lines).map_err(|e| Error::Io {
                    action: "read",
                    path: file,
                    source: e,
                })?;
            }
            (_, Some(a)) => {
                if a.stream_entry(path, &mut lines)?.is_none() {
                    return Ok(false);
                }
            }
            (Snapshot::Archive(_), None) => return Ok(false),
        }
        lines.finish();
        Ok(true)
    }
}

/// Cuts the bytes written to it into lines for [`Reader::for_each_line`], with
/// [`crate::jsonl::LineCarry`]: only a line not yet ended is held, and a longer one than
/// [`crate::jsonl::MAX_LINE`] is an error.
struct Lines<'f> {
    carry: crate::jsonl::LineCarry,
    line: &'f mut dyn FnMut(&[u8]),
}

impl Lines<'_> {
    /// The last line, when the file does not end with `\n`.
    fn finish(self) {
        let last = self.carry.finish();
        if !last.is_empty() {
            (self.line)(&last);
        }
    }
}

impl Write for Lines<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = &mut self.line;
        self.carry
            .feed(buf, |whole| {
                // `whole` ends with its last line's `\n`.
                whole[..whole.len() - 1]
                    .split(|&b| b == b'\n')
                    .for_each(&mut *line);
            })
            .map_err(|e| std::io::Error::other(format!("a {e}")))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every snapshot of the backup directory, oldest first: the archives (thrum's and pre-restore
/// ones included), then `current/`. Archives that cannot be opened are returned apart, with
/// why.
pub fn all_snapshots(ctx: &Context) -> Result<(Vec<Snapshot>, crate::backup_dir::Skipped)> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for a in ctx.backup.list_archives()? {
        let path = ctx.backup.archives().join(&a.name);
        match CheckedArchive::open(&path, &Limits::default()) {
            Ok(_) => out.push(Snapshot::Archive(path)),
            Err(e) => skipped.push((a.name, e.to_string())),
        }
    }
    if manifest::read_dir(&ctx.backup.current())?.is_some() {
        out.push(Snapshot::Current(ctx.backup.current()));
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever sizes the bytes arrive in, the lines are the file's, the last one included
    /// when the file does not end with a newline.
    #[test]
    fn lines_are_cut_the_same_whatever_the_writes() {
        let text = b"{\"a\":1}\n\nlong line with no end yet ... \n\xff\xfe not utf-8\nlast";
        let want: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        for size in [1, 2, 3, 7, 16, text.len()] {
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut push = |l: &[u8]| got.push(l.to_vec());
            let mut lines = Lines {
                carry: crate::jsonl::LineCarry::default(),
                line: &mut push,
            };
            for piece in text.chunks(size) {
                lines.write_all(piece).unwrap();
            }
            lines.finish();
            assert_eq!(got, want, "written {size} bytes at a time");
        }
        // A line longer than any thrum writes is refused, not held.
        let mut ignore = |_: &[u8]| {};
        let mut lines = Lines {
            carry: crate::jsonl::LineCarry::default(),
            line: &mut ignore,
        };
        let mib = vec![b'x'; 1 << 20];
        let refused = (0..=crate::jsonl::MAX_LINE >> 20)
            .find_map(|_| lines.write_all(&mib).err())
            .expect("refused");
        assert_eq!(refused.to_string(), "a line is longer than 64 MiB");
        // What `LineCarry` holds meanwhile is bounded: `jsonl::tests`.
    }
}
