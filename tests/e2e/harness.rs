//! Shared fixtures: a generated thrum workspace, a backup directory, and the binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;
use thrum_backup::sample::{self, SampleWorkspace, Scale};

pub const BIN: &str = env!("CARGO_BIN_EXE_thrum-backup");

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
        State {
            files: thrum_files(&self.ws.sync_dir, &self.thrum()),
            rows: if self.ws.db_path.exists() {
                sample::dump_database(&self.ws.db_path).expect("dump")
            } else {
                Vec::new()
            },
        }
    }

    /// Delete all of thrum's data from the workspace (as a disk loss would).
    pub fn wipe(&self) {
        for p in [
            self.ws.sync_dir.join("events.jsonl"),
            self.ws.sync_dir.join("messages"),
            self.thrum().join("config.json"),
            self.thrum().join("identities"),
            self.thrum().join("context"),
            self.thrum().join("var"),
        ] {
            thrum_backup::fsx::remove_any(&p).expect("wipe");
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

#[derive(Debug, PartialEq, Eq)]
pub struct State {
    pub files: BTreeMap<String, Vec<u8>>,
    pub rows: Vec<String>,
}

fn thrum_files(sync: &Path, thrum: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (label, base) in [("sync", sync), ("thrum", thrum)] {
        for rel in thrum_backup::fsx::walk_files(base).expect("walk") {
            // Not thrum's data: the database (compared by rows), git metadata, our backups.
            if rel.starts_with("var/") || rel.starts_with("backup/") || rel == ".git" {
                continue;
            }
            out.insert(
                format!("{label}/{rel}"),
                std::fs::read(base.join(&rel)).expect("read"),
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

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
