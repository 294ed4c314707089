//! Off-site replicas: every snapshot, deduplicated and encrypted, in a restic-format
//! repository (a local path, SFTP, S3, a REST server) — through `rustic_core` and
//! `rustic_backend`, so that restic and rustic read what we write and nothing here has a
//! chunker, a pack format or crypto of its own.
//!
//! A snapshot is pushed as its folder (`current/`, or an archive extracted into private space
//! and checked on the way), under the stable path `/thrum-backup/<repo name>`, with its own
//! time and these tags: `thrum-backup`, `snapshot:<id>` (the manifest's snapshot id, which is
//! how `sync` knows what a replica already holds), `kind:<current|archive|pre-restore>` and
//! `workspace:<tag>`. The manifest travels inside, so a fetched snapshot is checked exactly as
//! a local one is before a restore uses it.
//!
//! Every call that reaches the repository first has to open it within the entry's timeout
//! (`timeout_secs`): an unreachable host costs that long, not the backend's retries.

mod address;
mod relay;
pub mod state;
mod sync;

pub use address::{Backend, backend};
pub use state::ReplicaState;
pub use sync::{Local, SyncReport, local_snapshots, sync};

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustic_backend::BackendOptions;
use rustic_core::jiff::{Timestamp, Zoned, tz::TimeZone};
use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, CredentialOptions, Credentials, KeepOptions,
    KeyOptions, LocalDestination, LsOptions, OpenStatus, PathList, PruneOptions, Repository,
    RepositoryOptions, SnapshotOptions, StringList,
};
use serde::Serialize;

use crate::config::{PASSWORD_ENV, PasswordFrom, ReplicaEntry, Retention};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::progress::Progress;

/// The tag every snapshot we push carries.
pub const TAG: &str = "thrum-backup";
/// The first component of every snapshot's path.
pub const ROOT: &str = "/thrum-backup";

/// What a snapshot on a replica was, locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `current/` when it was pushed.
    Current,
    /// An archive of `archives/`.
    Archive,
    /// A snapshot of live data saved before a restore (never removed by retention).
    PreRestore,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Current => "current",
            Kind::Archive => "archive",
            Kind::PreRestore => "pre-restore",
        }
    }
}

/// An opened replica.
pub struct Replica {
    /// Its entry.
    pub entry: ReplicaEntry,
    /// `None` only if indexing failed midway (then every later call says so).
    repo: Option<Repository<OpenStatus>>,
    /// rustic's progress, relayed to ours during a push or a fetch.
    relay: relay::Relay,
}

/// One of our snapshots on a replica.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteSnapshot {
    /// The replica's snapshot id (what restic shows, shortened to 8 hex digits).
    pub id: String,
    /// The full id.
    pub full_id: String,
    /// When the snapshot was taken.
    pub time: DateTime<Utc>,
    /// The manifest's snapshot id.
    pub snapshot: Option<String>,
    /// `current`, `archive` or `pre-restore`, when pushed.
    pub kind: Option<String>,
    /// The path it is stored under.
    pub path: String,
    /// Files, from the snapshot's summary.
    pub files: u64,
    /// Bytes, from the snapshot's summary.
    pub bytes: u64,
    /// All tags.
    pub tags: Vec<String>,
}

/// What a push did.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    /// The replica's snapshot id (8 hex digits).
    pub id: String,
    /// Files in the snapshot.
    pub files: u64,
    /// Files new or changed since the replica's previous snapshot.
    pub files_changed: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Bytes added to the repository (after deduplication and compression).
    pub bytes_added: u64,
}

/// A keep/remove decision of the replica's retention.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteDecision {
    /// The snapshot.
    pub snapshot: RemoteSnapshot,
    /// Kept?
    pub keep: bool,
    /// Why (rustic's reasons: `daily`, `weekly`, `monthly`, `last`, `tags`, `newest`).
    pub reasons: Vec<String>,
}

/// What a check found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Whether the data of every pack was read and verified too.
    pub read_data: bool,
    /// Errors (the repository is damaged).
    pub errors: Vec<String>,
    /// Warnings (e.g. unused packs left by an interrupted push; harmless).
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// No errors?
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The error of replica `name`, on one line.
pub fn error(name: &str, message: impl std::fmt::Display) -> Error {
    Error::Replica {
        name: name.to_owned(),
        message: one_line(&message.to_string()),
    }
}

/// rustic's multi-line error text on one line, without its backtrace section.
fn one_line(text: &str) -> String {
    let text = text.find("Backtrace:").map_or(text, |i| &text[..i]);
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run `f`, turning a panic inside rustic_core into an error of replica `name`. rustic_core
/// 0.13 can panic on damaged repository data (its tree-reading threads race the index's
/// release after a read error): a damaged replica must be reported, never abort the command.
fn guarded<T>(name: &str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown");
            let text: String = text.chars().take(200).collect();
            Err(error(
                name,
                format!("rustic stopped while {what} (damaged data in the repository?): {text}"),
            ))
        }
    }
}

/// Run `f` on a thread of its own; give up after `timeout` (the thread is left to finish or
/// fail on its own: nothing waits for it).
fn within<T: Send + 'static>(
    name: &str,
    timeout: Duration,
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("replica {name}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| error(name, format!("cannot start a thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(error(
            name,
            format!(
                "no answer within {} s while {what} (unreachable? raise timeout_secs in its entry)",
                timeout.as_secs()
            ),
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(error(name, format!("failed while {what}")))
        }
    }
}

/// The password of `entry`: its file (relative to `base`), its command, or the environment.
fn credentials(entry: &ReplicaEntry, base: &Path) -> Result<Credentials> {
    let name = &entry.name;
    let mut opts = CredentialOptions::default();
    if let Some(f) = &entry.password_file {
        opts = opts.password_file(base.join(f));
    } else if let Some(c) = &entry.password_command {
        let cmd = c
            .parse::<rustic_core::CommandInput>()
            .map_err(|e| error(name, format!("password_command {c:?}: {e}")))?;
        opts = opts.password_command(cmd);
    } else {
        for (var, from) in PASSWORD_ENV {
            if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                opts = match from {
                    PasswordFrom::Value => opts.password(v.to_string_lossy().into_owned()),
                    PasswordFrom::File => opts.password_file(PathBuf::from(v)),
                };
                break;
            }
        }
    }
    opts.credentials()
        .map_err(|e| error(name, e))?
        .ok_or_else(|| {
            error(
                name,
                "no password: give the entry a password_file or password_command, or set \
                 THRUM_BACKUP_PASSWORD (or _FILE) or RESTIC_PASSWORD (or _FILE)",
            )
        })
}

impl Replica {
    /// Open the repository of `entry` (`create`: initialise it when there is none). Relative
    /// password files are read from `base` (`.thrum/`).
    pub fn open(entry: &ReplicaEntry, base: &Path, create: bool) -> Result<Self> {
        let name = entry.name.clone();
        let creds = credentials(entry, base)?;
        let mut b = backend(&entry.repository, &entry.options).map_err(|e| error(&name, e))?;
        if b.repository.starts_with("rest:") {
            // Each request of the REST backend waits 10 minutes by default: bound it by the
            // entry's timeout too, unless the entry sets its own.
            b.options
                .entry("timeout".into())
                .or_insert_with(|| format!("{}s", entry.timeout().as_secs()));
        }
        let backends = BackendOptions::default()
            .repository(b.repository)
            .options(b.options)
            .to_backends()
            .map_err(|e| error(&name, e))?;
        let repository = entry.repository.clone();
        let label = name.clone();
        let relay = relay::Relay::default();
        let bars = relay.clone();
        let repo = within(
            &label,
            entry.timeout(),
            "opening the repository",
            move || {
                let opts = RepositoryOptions::default().no_cache(true);
                let repo = Repository::new_with_progress(&opts, &backends, bars)
                    .map_err(|e| error(&name, e))?;
                let has_config = repo.config_id().map_err(|e| error(&name, e))?.is_some();
                if has_config {
                    repo.open(&creds).map_err(|e| {
                        let text = e.to_string();
                        if text.to_lowercase().contains("password") || text.contains("key") {
                            error(
                                &name,
                                format!("{repository}: wrong password (no key of the repository opens with it)"),
                            )
                        } else {
                            error(&name, e)
                        }
                    })
                } else if create {
                    repo.init(&creds, &KeyOptions::default(), &ConfigOptions::default())
                        .map_err(|e| error(&name, e))
                } else {
                    Err(error(
                        &name,
                        format!(
                            "{repository}: no restic repository there (no config file); \
                             `thrum-backup replica add NAME REPOSITORY --init` creates one"
                        ),
                    ))
                }
            },
        )?;
        Ok(Self {
            entry: entry.clone(),
            repo: Some(repo),
            relay,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        error(&self.entry.name, e)
    }

    fn repo(&self) -> Result<&Repository<OpenStatus>> {
        self.repo
            .as_ref()
            .ok_or_else(|| self.err("the repository could not be indexed"))
    }

    /// Run `f` on the repository with its index loaded (rustic's typestate consumes the open
    /// repository to index it; it is put back afterwards).
    /// rustic reports its progress in bytes to `progress` meanwhile.
    fn indexed<T: Send, S: rustic_core::IndexedTree + Send>(
        &mut self,
        progress: &dyn Progress,
        index: impl FnOnce(Repository<OpenStatus>) -> rustic_core::RusticResult<Repository<S>> + Send,
        f: impl FnOnce(&Repository<S>) -> Result<T> + Send,
    ) -> Result<T> {
        let repo = self
            .repo
            .take()
            .ok_or_else(|| self.err("the repository could not be indexed"))?;
        let name = self.entry.name.clone();
        let (repo, out) = self.relay.clone().run(progress, move || {
            let indexed = match index(repo) {
                Ok(i) => i,
                Err(e) => return (None, Err(error(&name, e))),
            };
            let out = f(&indexed);
            (Some(indexed.drop_index()), out)
        });
        self.repo = repo;
        out
    }

    /// Our snapshots on the replica (tagged `thrum-backup`), oldest first.
    pub fn snapshots(&self) -> Result<Vec<RemoteSnapshot>> {
        Ok(self.ours()?.iter().map(remote).collect())
    }

    fn ours(&self) -> Result<Vec<SnapshotFile>> {
        let mut all: Vec<SnapshotFile> = self
            .repo()?
            .get_all_snapshots()
            .map_err(|e| self.err(e))?
            .into_iter()
            .filter(|s| s.tags.contains(TAG))
            .collect();
        all.sort_by_key(|s| s.time.timestamp());
        Ok(all)
    }

    /// Push the snapshot in `dir` (described by `manifest`) as one restic snapshot.
    pub fn push(
        &mut self,
        dir: &Path,
        manifest: &Manifest,
        kind: Kind,
        progress: &dyn Progress,
    ) -> Result<Pushed> {
        let id = snapshot_key(manifest);
        let mut tags = vec![
            TAG.to_owned(),
            format!("snapshot:{id}"),
            format!("kind:{}", kind.as_str()),
        ];
        if let Some(w) = &manifest.workspace {
            tags.push(format!("workspace:{}", w.tag()));
        }
        let time = zoned(manifest.timestamp).map_err(|e| self.err(e))?;
        let mut snap_opts = SnapshotOptions::default().time(time);
        for t in &tags {
            snap_opts = snap_opts.add_tags(t).map_err(|e| self.err(e))?;
        }
        let snap = snap_opts.to_snapshot().map_err(|e| self.err(e))?;
        let as_path = PathBuf::from(format!("{ROOT}/{}", path_name(&manifest.repo_name)));
        let opts = BackupOptions::default().as_path(as_path);
        let source = PathList::from_string(&dir.to_string_lossy())
            .map_err(|e| self.err(e))?
            .sanitize()
            .map_err(|e| self.err(e))?;
        let name = self.entry.name.clone();
        let snap = self.indexed(progress, Repository::to_indexed_ids, |repo| {
            repo.backup(&opts, &source, snap)
                .map_err(|e| error(&name, e))
        })?;
        let s = snap.summary.clone().unwrap_or_default();
        Ok(Pushed {
            id: short(&snap.id.to_string()),
            files: s.total_files_processed,
            files_changed: s.files_new + s.files_changed,
            bytes: s.total_bytes_processed,
            bytes_added: s.data_added_packed,
        })
    }

    /// The repository's structure checked; with `read_data`, every pack read and verified.
    pub fn check(&self, read_data: bool) -> Result<CheckReport> {
        let repo = self.repo()?;
        let name = &self.entry.name;
        // rustic's check can panic on damaged trees (see `guarded`), at random: a panicked
        // check is tried again, and a third panic is reported as damage.
        let mut attempt = 0;
        let results = loop {
            attempt += 1;
            let r = guarded(name, "checking the repository", || {
                repo.check(CheckOptions::default().read_data(read_data))
                    .map_err(|e| self.err(e))
            });
            match r {
                Ok(r) => break r,
                Err(Error::Replica { message, .. }) if message.starts_with("rustic stopped") => {
                    if attempt == 3 {
                        return Ok(CheckReport {
                            read_data,
                            errors: vec![message],
                            warnings: Vec::new(),
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let mut report = CheckReport {
            read_data,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        for (level, e) in results.0 {
            let text = one_line(&e.to_string());
            if format!("{level:?}").to_lowercase().contains("warn") {
                report.warnings.push(text);
            } else {
                report.errors.push(text);
            }
        }
        Ok(report)
    }

    /// The replica's retention: `policy` applied by rustic's keep rules to our snapshots of
    /// each path; pre-restore snapshots and the newest snapshot are always kept.
    pub fn retention(&self, policy: &Retention) -> Result<Vec<RemoteDecision>> {
        let ours = self.ours()?;
        let tier = |n: i64| -> Option<i32> {
            match n {
                0 => None,
                n if n < 0 => Some(-1),
                n => Some(i32::try_from(n).unwrap_or(i32::MAX)),
            }
        };
        let keep = KeepOptions::default()
            .keep_daily(tier(policy.daily))
            .keep_weekly(tier(policy.weekly))
            .keep_monthly(tier(policy.monthly))
            .keep_last(tier(policy.last))
            .keep_tags(vec![
                "kind:pre-restore"
                    .parse::<StringList>()
                    .map_err(|e| self.err(e))?,
            ]);
        let nothing_set = [policy.daily, policy.weekly, policy.monthly, policy.last]
            .iter()
            .all(|&n| n == 0);
        let now = Zoned::now();
        let mut groups: std::collections::BTreeMap<String, Vec<SnapshotFile>> =
            std::collections::BTreeMap::new();
        for s in ours {
            groups.entry(s.paths.to_string()).or_default().push(s);
        }
        let mut out = Vec::new();
        for (_, snaps) in groups {
            if nothing_set {
                out.extend(snaps.iter().map(|s| RemoteDecision {
                    snapshot: remote(s),
                    keep: true,
                    reasons: vec!["no retention tier set".into()],
                }));
                continue;
            }
            let decided = keep.apply(snaps, &now).map_err(|e| self.err(e))?;
            let newest = decided
                .iter()
                .max_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time))
                .map(|d| d.snapshot.id);
            for d in decided {
                let mut reasons = d.reasons;
                let mut keep = d.keep;
                if !keep && Some(d.snapshot.id) == newest {
                    keep = true;
                    reasons.push("newest".into());
                }
                out.push(RemoteDecision {
                    snapshot: remote(&d.snapshot),
                    keep,
                    reasons,
                });
            }
        }
        out.sort_by_key(|d| d.snapshot.time);
        Ok(out)
    }

    /// Forget the snapshots `decisions` remove, then prune what no snapshot uses any more.
    pub fn forget_and_prune(&self, decisions: &[RemoteDecision]) -> Result<usize> {
        let ids: Vec<_> = self
            .ours()?
            .into_iter()
            .filter(|s| {
                decisions
                    .iter()
                    .any(|d| !d.keep && d.snapshot.full_id == s.id.to_string())
            })
            .map(|s| s.id)
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let repo = self.repo()?;
        repo.delete_snapshots(&ids).map_err(|e| self.err(e))?;
        let opts = PruneOptions::default();
        let plan = repo.prune_plan(&opts).map_err(|e| self.err(e))?;
        repo.prune(&opts, plan).map_err(|e| self.err(e))?;
        Ok(ids.len())
    }

    /// Fetch snapshot `which` (a replica id or prefix, or our `snapshot:` id; `None`: the
    /// newest) into `dest`, an empty private directory. Its files are not checked here: the
    /// caller checks them against the manifest they carry.
    pub fn fetch(
        &mut self,
        which: Option<&str>,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<RemoteSnapshot> {
        let ours = self.ours()?;
        let snap = match which {
            // The newest backup: safety snapshots taken before a restore are not backups
            // one means by "the newest"; of two at one instant, `current/` is the newer.
            None => ours
                .iter()
                .filter(|s| !s.tags.contains("kind:pre-restore"))
                .max_by_key(|s| (s.time.timestamp(), s.tags.contains("kind:current")))
                .cloned()
                .ok_or_else(|| {
                    self.err(format!(
                        "{}: no thrum-backup snapshot in this repository",
                        self.entry.repository
                    ))
                })?,
            Some(w) => ours
                .iter()
                .find(|s| {
                    s.id.to_string().starts_with(w) || s.tags.contains(&format!("snapshot:{w}"))
                })
                .cloned()
                .ok_or_else(|| {
                    self.err(format!(
                        "no snapshot {w:?} (see `thrum-backup replica snapshots {}`)",
                        self.entry.name
                    ))
                })?,
        };
        let name = self.entry.name.clone();
        let err = |e: Box<rustic_core::RusticError>| error(&name, e);
        let path = snap.paths.iter().next().cloned().unwrap_or_default();
        let label = self.entry.name.clone();
        guarded(&label, "reading the snapshot", || {
            self.indexed(progress, Repository::to_indexed, |repo| {
                let node = repo
                    .node_from_snapshot_and_path(&snap, &path)
                    .map_err(err)?;
                let ls = repo.ls(&node, &LsOptions::default()).map_err(err)?;
                let dest_s = dest.to_string_lossy();
                let d = LocalDestination::new(&dest_s, true, !node.is_dir()).map_err(err)?;
                let opts = rustic_core::RestoreOptions::default();
                let plan = repo
                    .prepare_restore(&opts, ls.clone(), &d, false)
                    .map_err(err)?;
                repo.restore(plan, &opts, ls, &d).map_err(err)
            })
        })?;
        Ok(remote(&snap))
    }

    /// The repository's size in bytes (its packs), as the index knows it.
    pub fn size(&self) -> Result<u64> {
        let infos = self.repo()?.infos_files().map_err(|e| self.err(e))?;
        Ok(infos.repo.iter().map(|i| i.size).sum())
    }
}

/// The key of a local snapshot on a replica: the manifest's snapshot id, or (thrum's own
/// snapshots have none) its time.
pub fn snapshot_key(m: &Manifest) -> String {
    m.snapshot_id
        .clone()
        .unwrap_or_else(|| m.timestamp.format("%Y%m%dT%H%M%S%.6fZ").to_string())
}

fn remote(s: &SnapshotFile) -> RemoteSnapshot {
    let tag = |prefix: &str| {
        s.tags
            .iter()
            .find_map(|t| t.strip_prefix(prefix).map(str::to_owned))
    };
    let summary = s.summary.clone().unwrap_or_default();
    let full = s.id.to_string();
    RemoteSnapshot {
        id: short(&full),
        full_id: full,
        time: DateTime::from_timestamp(
            s.time.timestamp().as_second(),
            u32::try_from(s.time.timestamp().subsec_nanosecond()).unwrap_or(0),
        )
        .unwrap_or_default(),
        snapshot: tag("snapshot:"),
        kind: tag("kind:"),
        path: s.paths.to_string(),
        files: summary.total_files_processed,
        bytes: summary.total_bytes_processed,
        tags: s.tags.iter().cloned().collect(),
    }
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

fn zoned(t: DateTime<Utc>) -> std::result::Result<Zoned, String> {
    let ts = Timestamp::new(
        t.timestamp(),
        i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    )
    .map_err(|e| e.to_string())?;
    Ok(ts.to_zoned(TimeZone::UTC))
}

/// A repository name as one path component.
fn path_name(repo_name: &str) -> String {
    let s: String = repo_name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        "workspace".into()
    } else {
        s
    }
}

/// What pushing the new snapshot did to one replica.
#[derive(Debug, Clone, Serialize)]
pub struct PushOutcome {
    /// The replica.
    pub name: String,
    /// What the push did, when it succeeded.
    pub pushed: Option<Pushed>,
    /// Snapshots the replica's retention removed afterwards.
    pub forgotten: usize,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Push `current/` of `dir` to every replica of `entries` and apply each one's retention
/// (`prune`; `default_policy` unless the entry has its own), recording each outcome in
/// `replicas.json`. A replica that fails is reported, never an error: the local backup
/// stands.
pub fn push_all(
    entries: &[ReplicaEntry],
    base: &Path,
    dir: &crate::backup_dir::BackupDir,
    manifest: &Manifest,
    prune: Option<&Retention>,
    progress: &dyn Progress,
) -> Vec<PushOutcome> {
    entries
        .iter()
        .map(|entry| {
            let result = Replica::open(entry, base, false).and_then(|mut r| {
                let pushed = r.push(&dir.current(), manifest, Kind::Current, progress)?;
                let forgotten = match prune {
                    Some(default) => {
                        let policy = entry.retention.as_ref().unwrap_or(default);
                        let decisions = r.retention(policy)?;
                        r.forget_and_prune(&decisions)?
                    }
                    None => 0,
                };
                Ok((pushed, forgotten))
            });
            let outcome = match result {
                Ok((pushed, forgotten)) => PushOutcome {
                    name: entry.name.clone(),
                    pushed: Some(pushed),
                    forgotten,
                    error: None,
                },
                Err(e) => PushOutcome {
                    name: entry.name.clone(),
                    pushed: None,
                    forgotten: 0,
                    error: Some(e.to_string()),
                },
            };
            let _ = state::record(
                dir.root(),
                &entry.name,
                match (&outcome.pushed, &outcome.error) {
                    (Some(p), _) => Ok(Some(&p.id)),
                    (None, e) => Err(e.as_deref().unwrap_or("failed")),
                },
            );
            outcome
        })
        .collect()
}

/// What retention did (or would do) on one replica.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionOutcome {
    /// The replica.
    pub name: String,
    /// The policy applied.
    pub policy: Option<Retention>,
    /// Each of our snapshots, kept or removed, with rustic's reasons.
    pub decisions: Vec<RemoteDecision>,
    /// Snapshots removed (0 in a dry run).
    pub removed: usize,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Apply (or, `dry_run`, only decide) each replica's retention: its own policy, or
/// `default_policy`.
pub fn retention_all(
    entries: &[ReplicaEntry],
    base: &Path,
    default_policy: &Retention,
    dry_run: bool,
) -> Vec<RetentionOutcome> {
    entries
        .iter()
        .map(|entry| {
            let policy = *entry.retention.as_ref().unwrap_or(default_policy);
            let result = Replica::open(entry, base, false).and_then(|r| {
                let decisions = r.retention(&policy)?;
                let removed = if dry_run {
                    0
                } else {
                    r.forget_and_prune(&decisions)?
                };
                Ok((decisions, removed))
            });
            match result {
                Ok((decisions, removed)) => RetentionOutcome {
                    name: entry.name.clone(),
                    policy: Some(policy),
                    decisions,
                    removed,
                    error: None,
                },
                Err(e) => RetentionOutcome {
                    name: entry.name.clone(),
                    policy: Some(policy),
                    decisions: Vec::new(),
                    removed: 0,
                    error: Some(e.to_string()),
                },
            }
        })
        .collect()
}

/// The replica a command names: an entry of `entries` by name, or else — a text with `:` or
/// `/` — a repository address used as it is, its password from the environment.
pub fn resolve(entries: &[ReplicaEntry], name_or_address: &str) -> Result<ReplicaEntry> {
    if let Some(e) = entries.iter().find(|e| e.name == name_or_address) {
        return Ok(e.clone());
    }
    if crate::config::is_repository_address(name_or_address) {
        return Ok(ReplicaEntry::new(name_or_address, name_or_address));
    }
    let known: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    Err(Error::NotFound(format!(
        "no replica named {name_or_address:?} in backup.replicas ({}); give a repository address to use one that is not configured",
        if known.is_empty() {
            "there are none".to_owned()
        } else {
            format!("there are: {}", known.join(", "))
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A progress that records what it is told.
    #[derive(Default)]
    struct Recorded {
        phases: Mutex<Vec<String>>,
        bytes: std::sync::atomic::AtomicU64,
    }

    impl Progress for Recorded {
        fn phase(&self, name: &str, _total: Option<u64>) {
            self.phases.lock().unwrap().push(name.to_owned());
        }
        fn advance(&self, bytes: u64) {
            self.bytes
                .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn a_local_repository_round_trip_with_rustics_progress_relayed() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("snapshot");
        std::fs::create_dir_all(src.join("config")).unwrap();
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(src.join("events.jsonl"), &data).unwrap();
        std::fs::write(src.join("config/config.json"), b"{}").unwrap();
        let manifest = Manifest::from_slice(
            br#"{"version":1,"timestamp":"2026-01-02T03:04:05Z","snapshot_id":"s1","repo_name":"proj"}"#,
        )
        .unwrap();
        std::fs::write(src.join("pw"), "secret\n").unwrap();
        let mut entry = ReplicaEntry::new("t", tmp.path().join("repo").to_string_lossy());
        entry.password_file = Some(src.join("pw").to_string_lossy().into_owned());

        // Not a repository yet: refused without `create`, made with it.
        assert!(Replica::open(&entry, tmp.path(), false).is_err());
        let mut r = Replica::open(&entry, tmp.path(), true).unwrap();
        let progress = Recorded::default();
        let pushed = r.push(&src, &manifest, Kind::Current, &progress).unwrap();
        assert_eq!(pushed.files, 3);
        assert!(progress.bytes.load(std::sync::atomic::Ordering::Relaxed) >= data.len() as u64);
        assert!(!progress.phases.lock().unwrap().is_empty());

        let snaps = r.snapshots().unwrap();
        assert_eq!(snaps.len(), 1);
        assert_eq!(snaps[0].snapshot.as_deref(), Some("s1"));
        assert_eq!(snaps[0].path, "/thrum-backup/proj");
        assert_eq!(snaps[0].time.to_rfc3339(), "2026-01-02T03:04:05+00:00");

        let back = tmp.path().join("back");
        std::fs::create_dir_all(&back).unwrap();
        r.fetch(Some("s1"), &back, &crate::progress::Silent)
            .unwrap();
        assert_eq!(std::fs::read(back.join("events.jsonl")).unwrap(), data);
        assert!(r.check(true).unwrap().ok());

        // A wrong password is named as such.
        std::fs::write(src.join("pw"), "wrong\n").unwrap();
        let e = Replica::open(&entry, tmp.path(), false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("replica t") && e.contains("wrong password"),
            "{e}"
        );
    }
}
