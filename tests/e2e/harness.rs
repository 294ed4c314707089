//! Shared fixtures: a generated thrum workspace, a backup directory, and the binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::sample::{self, SampleWorkspace, Scale};
use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_thrum-backup");

/// The manifest of a small archive this engine made (retention counts only archives with a
/// manifest; the engine field says it is not one thrum made).
pub const SMALL_MANIFEST: &[u8] = br#"{"version":1,"timestamp":"2026-01-01T00:00:00Z","engine":{"name":"thrum-backup","version":"0.1.0"},"counts":{"events":1}}"#;

pub struct Fx {
    pub tmp: TempDir,
    pub ws: SampleWorkspace,
    pub backups: PathBuf,
}

impl Fx {
    /// A sample workspace named `proj` with a sync worktree and a WAL database.
    pub fn new() -> Self {
        Self::with_scale(Scale::SMALL)
    }

    pub fn with_scale(scale: Scale) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ws = SampleWorkspace::generate(tmp.path(), "proj", scale).expect("sample workspace");
        let backups = tmp.path().join("backups");
        Self { tmp, ws, backups }
    }

    pub fn root(&self) -> &Path {
        &self.ws.root
    }

    pub fn thrum(&self) -> PathBuf {
        self.ws.root.join(".thrum")
    }

    /// `<backups>/proj`.
    pub fn repo_dir(&self) -> PathBuf {
        self.backups.join("proj")
    }

    pub fn current(&self) -> PathBuf {
        self.repo_dir().join("current")
    }

    pub fn archives(&self) -> PathBuf {
        self.repo_dir().join("archives")
    }

    /// The binary with `--repo` and `--dir` set.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--repo")
            .arg(self.root())
            .arg("--dir")
            .arg(&self.backups);
        c.env_remove("THRUM_BACKUP_FAULT_RESTORE_AFTER");
        c.env("THRUM_BACKUP_CACHE_DIR", self.tmp.path().join("cache"));
        c
    }

    /// Run with `--json`, expect success, parse stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.cmd().arg("--json").args(args).output().expect("run");
        assert!(
            out.status.success(),
            "thrum-backup {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "bad JSON from {args:?}: {e}\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn create(&self) -> Value {
        self.json(&["create"])
    }

    /// All of thrum's data in the workspace: message log, config files, and the database rows.
    pub fn state(&self) -> State {
        State::of(&self.ws.sync_dir, &self.thrum())
    }

    /// Delete all of thrum's data from the workspace (as a disk loss would): the streams, the
    /// legacy log, config, identities, context, the journal, archived messages, secrets, the
    /// database and everything else in `var/`.
    pub fn wipe(&self) {
        for name in [
            "events.jsonl",
            "messages",
            "messages-v2",
            "receipts",
            "state",
        ] {
            thrum_backup::fsx::remove_any(&self.ws.sync_dir.join(name)).expect("wipe");
        }
        for name in [
            "config.json",
            "identities",
            "context",
            "events.jsonl",
            "legacy_ingested",
            "archive",
            ".env",
            "var",
            "role_templates",
        ] {
            thrum_backup::fsx::remove_any(&self.thrum().join(name)).expect("wipe");
        }
    }

    pub fn archive_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.archives())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

#[derive(PartialEq, Eq)]
pub struct State {
    /// Every file of thrum's data: its content and its mode.
    pub files: BTreeMap<String, (Vec<u8>, u32)>,
    pub rows: Vec<String>,
}

impl State {
    /// The data of the workspace whose sync worktree is `sync` and thrum dir `thrum`.
    pub fn of(sync: &Path, thrum: &Path) -> Self {
        let db = thrum.join("var/messages.db");
        State {
            files: thrum_files(sync, thrum),
            rows: if db.exists() {
                sample::dump_database(&db).expect("dump")
            } else {
                Vec::new()
            },
        }
    }
}

/// Compact: each file's size, mode and a hash, and the rows that differ from nothing (a test
/// failure shows what changed without pages of bytes).
impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "State {{")?;
        for (name, (data, mode)) in &self.files {
            let hash = blake3::hash(data).to_hex();
            writeln!(
                f,
                "  {name}: {} bytes, {mode:o}, {}",
                data.len(),
                &hash[..12]
            )?;
        }
        let rows = blake3::hash(self.rows.join("\n").as_bytes()).to_hex();
        writeln!(f, "  {} rows, {}", self.rows.len(), &rows[..12])?;
        write!(f, "}}")
    }
}

/// Files of the thrum dir that are not thrum's data (written out here rather than taken from
/// the engine's layout table, so that the tests check the table): the database (compared by
/// rows), our backups and plugins, what thrum makes again, its runtime files.
const NOT_DATA: &[&str] = &[
    "backup/",
    "plugins/",
    "var/messages.db",
    "var/thrum.pid",
    "var/ws.port",
    "var/thrum.lock",
    "var/daemon.log",
    "strategies/",
    "llms.txt",
    "schema_version",
];

fn thrum_files(sync: &Path, thrum: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    for (label, base) in [("sync", sync), ("thrum", thrum)] {
        for rel in thrum_backup::fsx::walk_files(base).expect("walk") {
            // git's link of the sync worktree is git's, not thrum's data.
            if rel == ".git" || (label == "thrum" && NOT_DATA.iter().any(|p| rel.starts_with(p))) {
                continue;
            }
            let path = base.join(&rel);
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
            out.insert(
                format!("{label}/{rel}"),
                (std::fs::read(&path).expect("read"), mode),
            );
        }
    }
    out
}

/// Every file below `root` with its content (for "nothing changed" checks).
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    thrum_backup::fsx::walk_files(root)
        .expect("walk")
        .into_iter()
        .filter(|rel| !rel.ends_with(".lock"))
        .map(|rel| {
            let data = std::fs::read(root.join(&rel)).expect("read");
            (rel, data)
        })
        .collect()
}

/// Build a zip at `path` from (name, data) entries with the `zip` crate (Deflate), creating
/// its folder.
pub fn build_zip<N: AsRef<str>, D: AsRef<[u8]>>(path: &Path, entries: &[(N, D)]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, data) in entries {
        zip.start_file(name.as_ref(), zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, data.as_ref()).unwrap();
    }
    zip.finish().unwrap();
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
