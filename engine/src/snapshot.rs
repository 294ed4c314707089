//! Building a snapshot in a staging directory: every file is written once, hashed and
//! counted while it is written, and the manifest goes in last. A staging directory without
//! `manifest.json` is unfinished by definition.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use crate::database::{self, LOCAL_TABLES};
use crate::error::{IoContext, Result};
use crate::fsx::{self, FileDigest};
use crate::locate::Workspace;
use crate::manifest::{self, Counts, DatabaseInfo, EngineInfo, FileEntry, Manifest};
use crate::progress::{Cancel, Progress};

/// Path of the database copy inside a snapshot.
pub const DB_PATH: &str = "db/messages.db";

/// A snapshot being written.
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    files: BTreeMap<String, FileEntry>,
}

impl Staging {
    /// Start writing into the empty directory `root`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            files: BTreeMap::new(),
        }
    }

    /// The staging directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn record(&mut self, rel: &str, d: &FileDigest) {
        self.files.insert(
            rel.to_owned(),
            FileEntry {
                path: rel.to_owned(),
                size: d.size,
                sha256: d.sha256.clone(),
            },
        );
    }

    /// Copy `src` to `rel` in the snapshot.
    pub fn copy_in(&mut self, src: &Path, rel: &str) -> Result<FileDigest> {
        let d = fsx::copy_new(src, &self.root.join(rel))?;
        self.record(rel, &d);
        Ok(d)
    }

    /// Write `rel` from a closure.
    pub fn write(
        &mut self,
        rel: &str,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<FileDigest> {
        let d = fsx::write_new_with(&self.root.join(rel), fill)?;
        self.record(rel, &d);
        Ok(d)
    }

    /// Record a file something else wrote at `rel` (the database copy).
    pub fn adopt(&mut self, rel: &str) -> Result<FileDigest> {
        let d = fsx::digest_file(&self.root.join(rel))?;
        self.record(rel, &d);
        Ok(d)
    }

    /// Drop everything under `prefix/` (a failed plugin's partial output).
    pub fn discard(&mut self, prefix: &str) -> Result<()> {
        fsx::remove_any(&self.root.join(prefix))?;
        let p = format!("{prefix}/");
        self.files.retain(|k, _| !k.starts_with(&p));
        Ok(())
    }

    /// Files and bytes recorded under `prefix/`.
    pub fn totals_under(&self, prefix: &str) -> (u64, u64) {
        let p = format!("{prefix}/");
        self.files
            .values()
            .filter(|f| f.path.starts_with(&p))
            .fold((0, 0), |(n, b), f| (n + 1, b + f.size))
    }

    /// Write the manifest (with the file list) and flush the directory. The snapshot is
    /// complete once this returns.
    pub fn finish(self, mut manifest: Manifest) -> Result<Manifest> {
        manifest.files = self.files.into_values().collect();
        let path = self.root.join(manifest::FILE_NAME);
        fsx::write_atomic(&path, &manifest.to_vec())?;
        Ok(manifest)
    }
}

/// What [`capture_workspace`] collected.
#[derive(Debug, Default)]
pub struct Captured {
    /// thrum's counts (plugins filled in later).
    pub counts: Counts,
    /// The database copy.
    pub database: Option<DatabaseInfo>,
    /// Local-table rows.
    pub local_tables: BTreeMap<String, u64>,
    /// Things worth telling the user.
    pub notes: Vec<String>,
}

/// Copy thrum's data from the workspace into `staging`: the message log, the database (a
/// consistent copy plus thrum's local-table JSONL), config, identities and context.
pub fn capture_workspace(
    ws: &Workspace,
    local_only: bool,
    staging: &mut Staging,
    db_wait: Duration,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Captured> {
    let mut cap = Captured::default();
    let log_dir = ws.log_dir(local_only);
    let mut sources: Vec<(PathBuf, String)> = Vec::new();
    if let Some(log) = &log_dir {
        push_if_file(&mut sources, log.join("events.jsonl"), "events.jsonl");
        for name in list_files(&log.join("messages"), ".jsonl")? {
            sources.push((log.join("messages").join(&name), format!("messages/{name}")));
        }
        for rel in fsx::walk_files(&log.join("messages-v2"))? {
            sources.push((
                log.join("messages-v2").join(&rel),
                format!("messages-v2/{rel}"),
            ));
        }
    } else {
        cap.notes.push(
            "no sync worktree yet: no message log to back up (normal before the first sync)".into(),
        );
    }
    let t = &ws.thrum_dir;
    push_if_file(&mut sources, t.join("config.json"), "config/config.json");
    for name in list_files(&t.join("identities"), ".json")? {
        sources.push((
            t.join("identities").join(&name),
            format!("config/identities/{name}"),
        ));
    }
    for name in list_files(&t.join("context"), ".md")? {
        sources.push((
            t.join("context").join(&name),
            format!("config/context/{name}"),
        ));
    }
    let db_size = std::fs::metadata(&ws.db_path).map(|m| m.len()).unwrap_or(0);
    let total: u64 = sources
        .iter()
        .filter_map(|(p, _)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum::<u64>()
        + db_size;
    progress.phase("copying the workspace", Some(total));
    let root = staging.root().to_path_buf();
    // The database and the files are independent: they are copied side by side.
    let (copied, db) = std::thread::scope(|s| {
        let db = ws
            .db_path
            .is_file()
            .then(|| s.spawn(|| capture_database(&ws.db_path, &root, db_wait, progress, cancel)));
        let mut copied = Vec::with_capacity(sources.len());
        for (src, rel) in &sources {
            if let Err(e) = cancel.check() {
                return (Err(e), db.map(join_db));
            }
            match fsx::copy_new(src, &root.join(rel)) {
                Ok(d) => {
                    progress.advance(d.size);
                    copied.push((rel, d));
                }
                Err(e) => return (Err(e), db.map(join_db)),
            }
        }
        (Ok(copied), db.map(join_db))
    });
    for (rel, d) in copied? {
        staging.record(rel, &d);
        if rel == "events.jsonl" {
            cap.counts.events = d.lines;
        } else if rel.starts_with("messages/") {
            cap.counts.message_files += 1;
        } else if rel.starts_with("config/") {
            cap.counts.config_files += 1;
        }
    }
    if let Some(db) = db {
        let db = db?;
        staging.record(DB_PATH, &db.digest);
        for (table, rows, digest) in db.local {
            staging.record(&format!("local/{table}.jsonl"), &digest);
            cap.local_tables.insert(table.to_owned(), rows);
        }
        cap.notes.extend(db.notes);
        cap.counts.local_tables = cap.local_tables.len() as u64;
        cap.database = Some(DatabaseInfo {
            path: DB_PATH.into(),
            tables: db.tables,
        });
    }
    cancel.check()?;
    Ok(cap)
}

/// The database part of a snapshot: the copy's digest, its row counts and the local tables
/// exported as JSONL.
struct DbCapture {
    digest: FileDigest,
    tables: BTreeMap<String, u64>,
    local: Vec<(&'static str, u64, FileDigest)>,
    notes: Vec<String>,
}

fn join_db(h: std::thread::ScopedJoinHandle<'_, Result<DbCapture>>) -> Result<DbCapture> {
    h.join()
        .unwrap_or_else(|_| Err(crate::Error::Invalid("the database thread panicked".into())))
}

/// Copy the database into `root` as one consistent snapshot, then check it, hash it and
/// export thrum's local tables side by side: all three only read the copy.
fn capture_database(
    db_path: &Path,
    root: &Path,
    db_wait: Duration,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<DbCapture> {
    let dst = root.join(DB_PATH);
    fsx::create_dir_all(dst.parent().unwrap_or(root))?;
    let size = std::fs::metadata(db_path).map(|m| m.len()).unwrap_or(0);
    database::copy_unchecked(db_path, &dst, db_wait)?;
    progress.advance(size);
    cancel.check()?;
    let present = database::table_names(&dst)?;
    std::thread::scope(|s| {
        let checked = s.spawn(|| database::check_copy(&dst, db_path));
        let digest = s.spawn(|| fsx::digest_file(&dst));
        let mut local = Vec::new();
        let mut notes = Vec::new();
        let mut exported = Ok(());
        for table in LOCAL_TABLES {
            if let Err(e) = cancel.check() {
                exported = Err(e);
                break;
            }
            if !present.iter().any(|t| t == table) {
                notes.push(format!("messages.db has no table {table}: not exported"));
                continue;
            }
            match export_local(&dst, root, table) {
                Ok((rows, d)) => local.push((table, rows, d)),
                Err(e) => {
                    exported = Err(e);
                    break;
                }
            }
        }
        let panicked = || crate::Error::Invalid("a database thread panicked".into());
        // The integrity check's verdict comes first: a corrupt database is the real news.
        let tables = checked.join().map_err(|_| panicked())??;
        let digest = digest.join().map_err(|_| panicked())??;
        exported?;
        Ok(DbCapture {
            digest,
            tables,
            local,
            notes,
        })
    })
}

/// Export `table` of the database copy `db` to `local/<table>.jsonl` below `root`.
fn export_local(db: &Path, root: &Path, table: &str) -> Result<(u64, FileDigest)> {
    let mut rows = 0;
    let mut failure = None;
    let path = root.join(format!("local/{table}.jsonl"));
    let digest = fsx::write_new_with(&path, |w| match database::export_table(db, table, w) {
        Ok(n) => {
            rows = n;
            Ok(())
        }
        Err(e) => {
            let msg = e.to_string();
            failure = Some(e);
            Err(std::io::Error::other(msg))
        }
    })
    .map_err(|e| failure.take().map_or(e, Into::into))?;
    Ok((rows, digest))
}

/// A manifest for a snapshot of `repo_name` taken now.
pub fn new_manifest(repo_name: &str, captured: Captured, local_only: bool) -> Manifest {
    let id: u128 = rand::random();
    Manifest {
        version: 1,
        timestamp: Utc::now(),
        thrum_version: format!("thrum-backup {}", env!("CARGO_PKG_VERSION")),
        repo_name: repo_name.to_owned(),
        counts: captured.counts,
        engine: Some(EngineInfo::current()),
        snapshot_id: Some(format!("{id:032x}")),
        local_only,
        files: Vec::new(),
        database: captured.database,
        local_tables: captured.local_tables,
        plugin_results: Vec::new(),
    }
}

fn push_if_file(out: &mut Vec<(PathBuf, String)>, path: PathBuf, rel: &str) {
    if path.is_file() {
        out.push((path, rel.to_owned()));
    }
}

/// Names of the regular files in `dir` ending in `suffix`, sorted; none if `dir` is absent.
pub fn list_files(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).at("read directory", dir),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.at("read directory", dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(suffix) && entry.file_type().at("inspect", &entry.path())?.is_file() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}
