//! The measured rows, step by step: the baselines (cp, a read, Info-ZIP, unzip, sqlite3),
//! our first and steady creates, restic's and borg's first and second runs, verify, restore
//! and prune.

use std::path::{Path, PathBuf};

use super::measure::{dir_size, measure, median_row, on_path, s, skipped};
use super::{Row, SAME_STATE_SNAPSHOT, SAME_STATE_WORKSPACE};
use crate::sample::SampleWorkspace;
use thrum_backup::fsx;
use thrum_backup::{Error, IoContext, Result};

/// The sync worktree, relative to the workspace.
const SYNC_REL: &str = ".git/thrum-sync/a-sync";

/// A benchmark in progress: where it runs, and the rows so far.
pub(super) struct Bench<'a> {
    /// Runs per measurement.
    pub runs: usize,
    /// The `thrum-backup` binary measured.
    pub exe: &'a Path,
    /// The sample workspace.
    pub root: PathBuf,
    /// The work directory.
    pub dir: &'a Path,
    /// Where each row is said.
    pub say: &'a mut dyn FnMut(&str),
    pub rows: Vec<Row>,
}

/// Remove `p` and make it an empty folder.
fn reset(p: &Path) -> Result<()> {
    fsx::remove_any(p)?;
    fsx::create_dir_all(p)
}

impl Bench<'_> {
    /// Measure `cmd` `runs` times (each after `prep`) and add the median as a row.
    fn row(
        &mut self,
        name: &str,
        kind: &'static str,
        prep: &mut dyn FnMut() -> Result<()>,
        cmd: Vec<String>,
        output: &dyn Fn() -> Option<u64>,
    ) -> Result<()> {
        let mut usages = Vec::new();
        let mut out = None;
        for _ in 0..self.runs {
            prep()?;
            usages.push(measure(self.exe, &self.root, &cmd)?);
            out = output();
        }
        let row = median_row(name, kind, usages, out);
        (self.say)(&format!("{:<34} {:>8.3} s", row.name, row.wall));
        self.rows.push(row);
        Ok(())
    }

    /// `thrum-backup --repo ROOT --dir DIR ARGS…`.
    fn ours(&self, dir: &Path, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            self.exe.to_string_lossy().into_owned(),
            "--repo".into(),
            self.root.to_string_lossy().into_owned(),
            "--dir".into(),
            dir.to_string_lossy().into_owned(),
        ];
        v.extend(args.iter().map(|a| (*a).to_owned()));
        v
    }

    /// What a user could run instead of us, and plain reads and copies of the same data.
    pub fn baselines(&mut self, db_path: &Path) -> Result<()> {
        let scratch = self.dir.join("scratch");
        self.row(
            "cp -r",
            "baseline",
            &mut || reset(&scratch),
            s(&["cp", "-r", SYNC_REL, ".thrum", &scratch.to_string_lossy()]),
            &|| None,
        )?;
        let read_cmd = vec![
            "sh".into(),
            "-c".into(),
            format!("find {SYNC_REL} .thrum -type f -exec cat {{}} + > /dev/null"),
        ];
        self.row(
            "read every file once",
            "baseline",
            &mut || Ok(()),
            read_cmd,
            &|| None,
        )?;
        let zip6 = self.dir.join("baseline-6.zip");
        if on_path("zip") {
            for level in ["6", "1"] {
                let out = self.dir.join(format!("baseline-{level}.zip"));
                self.row(
                    &format!("zip -r -{level} (Info-ZIP)"),
                    "baseline",
                    &mut || fsx::remove_any(&out),
                    s(&[
                        "zip",
                        "-qr",
                        &format!("-{level}"),
                        &out.to_string_lossy(),
                        SYNC_REL,
                        ".thrum",
                    ]),
                    &|| std::fs::metadata(&out).ok().map(|m| m.len()),
                )?;
            }
        } else {
            self.rows
                .push(skipped("zip -r -6 (Info-ZIP)", "zip is not installed"));
        }
        if on_path("unzip") && zip6.is_file() {
            self.row(
                "unzip",
                "baseline",
                &mut || reset(&scratch),
                s(&[
                    "unzip",
                    "-q",
                    "-o",
                    &zip6.to_string_lossy(),
                    "-d",
                    &scratch.to_string_lossy(),
                ]),
                &|| None,
            )?;
        } else {
            self.rows
                .push(skipped("unzip", "unzip or zip is not installed"));
        }
        let db_copy = self.dir.join("baseline.db");
        if on_path("sqlite3") {
            self.row(
                "sqlite3 .backup",
                "baseline",
                &mut || fsx::remove_any(&db_copy),
                vec![
                    "sqlite3".into(),
                    db_path.to_string_lossy().into_owned(),
                    format!(".backup {}", db_copy.display()),
                ],
                &|| std::fs::metadata(&db_copy).ok().map(|m| m.len()),
            )?;
        } else {
            self.rows
                .push(skipped("sqlite3 .backup", "sqlite3 is not installed"));
        }
        Ok(())
    }

    /// Our first create, into an empty backup directory.
    pub fn first_create(&mut self) -> Result<()> {
        let b_first = self.dir.join("backups-first");
        let cmd = self.ours(
            &b_first,
            &["create", "--no-prune", "--no-hook", "--no-plugins"],
        );
        self.row(
            "create (first, no earlier snapshot)",
            "ours",
            &mut || reset(&b_first),
            cmd,
            &|| {
                dir_size(&b_first.join("bench-ws/current"))
                    .ok()
                    .map(|x| x.1)
            },
        )
    }

    /// Our steady create: the snapshot being archived differs from the archive before it by
    /// what was appended between two backups (`per_run` messages, ~1%), as with backups taken
    /// at a regular interval. The workspace grows by every append, so the archive a run
    /// writes holds more than the workspace the zip baselines compressed: before the last
    /// run's archived snapshot is appended to, Info-ZIP compresses that same state (workspace
    /// and snapshot), so sizes are compared on the same data.
    pub fn steady_create(&mut self, ws: &mut SampleWorkspace, per_run: usize) -> Result<()> {
        let b_steady = self.dir.join("backups-steady");
        let seed_cmd = self.ours(
            &b_steady,
            &["create", "--no-prune", "--no-hook", "--no-plugins"],
        );
        let (exe, root, dir, runs) = (self.exe, self.root.clone(), self.dir, self.runs);
        let mut prepared = 0;
        let mut same_state: Vec<Row> = Vec::new();
        let mut prep_steady = || -> Result<()> {
            reset(&b_steady)?;
            measure(exe, &root, &seed_cmd)?;
            ws.add_messages(per_run)?;
            measure(exe, &root, &seed_cmd)?;
            prepared += 1;
            if prepared == runs && on_path("zip") {
                same_state = zip_same_state(exe, dir, &root, &b_steady.join("bench-ws"))?;
            }
            ws.add_messages(per_run)
        };
        self.row(
            "create (steady: archive + 1% appended)",
            "ours",
            &mut prep_steady,
            seed_cmd.clone(),
            &|| archive_size(&b_steady),
        )?;
        self.rows.extend(same_state);
        Ok(())
    }

    /// restic or borg with its defaults (restic: zstd auto; borg: lz4) into a private
    /// repository: a first run, then a second after the same ~1% append as ours.
    pub fn dedup(&mut self, tool: Dedup, ws: &mut SampleWorkspace, per_run: usize) -> Result<()> {
        let name = tool.name();
        if !on_path(name) {
            self.rows.push(skipped(
                &format!("{name} (first, second run)"),
                &format!("{name} is not installed"),
            ));
            return Ok(());
        }
        let home = self.dir.join(format!("{name}-home"));
        let repo = self.dir.join(format!("{name}-repo"));
        let init = tool.init(&home, &repo);
        let backup = tool.backup(&home, &repo, &[SYNC_REL, ".thrum"]);
        let (exe, root) = (self.exe, self.root.clone());
        let fresh = || -> Result<()> {
            fsx::remove_any(&repo)?;
            reset(&home)?;
            measure(exe, &root, &init).map(|_| ())
        };
        let size = || dir_size(&repo).ok().map(|x| x.1);
        self.row(
            &tool.first(),
            "baseline",
            &mut || fresh(),
            backup.clone(),
            &size,
        )?;
        self.row(
            &tool.second(),
            "baseline",
            &mut || {
                fresh()?;
                measure(exe, &root, &backup)?;
                ws.add_messages(per_run)
            },
            backup.clone(),
            &size,
        )
    }

    /// `verify` and `restore` of the steady create's snapshot.
    pub fn verify_and_restore(&mut self) -> Result<()> {
        let b_steady = self.dir.join("backups-steady");
        let verify = self.ours(&b_steady, &["verify"]);
        self.row("verify (current/)", "ours", &mut || Ok(()), verify, &|| {
            None
        })?;
        let restore = self.ours(&b_steady, &["restore", "--yes"]);
        self.row(
            "restore (current/ into the workspace)",
            "ours",
            &mut || Ok(()),
            restore,
            &|| None,
        )
    }

    /// The inspection commands on the steady create's two newest archives, each beside what
    /// Info-ZIP's unzip does with the same zip: `ls` (the central directory), `dump` of the
    /// event log (streamed and checked), `diff` of two consecutive archives (against reading
    /// both whole), and a partial restore of one identity from an archive.
    pub fn inspect(&mut self) -> Result<()> {
        let b_steady = self.dir.join("backups-steady");
        let archives = b_steady.join("bench-ws/archives");
        let mut names: Vec<String> = std::fs::read_dir(&archives)
            .at("read", &archives)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".zip") && !n.starts_with("pre-restore"))
            .collect();
        names.sort();
        let [.., older, newest] = names.as_slice() else {
            self.rows
                .push(skipped("ls an archive", "fewer than two archives"));
            return Ok(());
        };
        let (older, newest) = (archives.join(older), archives.join(newest));
        let (o, n) = (older.to_string_lossy(), newest.to_string_lossy());
        let unzip = on_path("unzip");
        let sh = |c: String| vec!["sh".to_owned(), "-c".to_owned(), c];
        let ls = self.ours(&b_steady, &["ls", &n]);
        self.row("ls an archive", "ours", &mut || Ok(()), ls, &|| None)?;
        let dump = self.ours(&b_steady, &["dump", &n, "events.jsonl"]);
        self.row(
            "dump one file from an archive",
            "ours",
            &mut || Ok(()),
            dump,
            &|| None,
        )?;
        let diff = self.ours(&b_steady, &["diff", &o, &n]);
        self.row(
            "diff two consecutive archives",
            "ours",
            &mut || Ok(()),
            diff,
            &|| None,
        )?;
        let ids = self.root.join(".thrum/identities");
        let mut id_names: Vec<String> = std::fs::read_dir(&ids)
            .at("read", &ids)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        id_names.sort();
        if let Some(id) = id_names.first() {
            let one = format!("config/identities/{id}");
            let restore = self.ours(&b_steady, &["restore", &n, "--yes", "--include", &one]);
            self.row(
                "restore one file from an archive",
                "ours",
                &mut || Ok(()),
                restore,
                &|| None,
            )?;
        }
        if unzip {
            self.row(
                "unzip -l",
                "baseline",
                &mut || Ok(()),
                sh(format!("unzip -l '{n}' > /dev/null")),
                &|| None,
            )?;
            self.row(
                "unzip -p one file",
                "baseline",
                &mut || Ok(()),
                sh(format!("unzip -p '{n}' events.jsonl > /dev/null")),
                &|| None,
            )?;
            self.row(
                "unzip -p both archives",
                "baseline",
                &mut || Ok(()),
                sh(format!(
                    "unzip -p '{o}' > /dev/null && unzip -p '{n}' > /dev/null"
                )),
                &|| None,
            )?;
        } else {
            self.rows
                .push(skipped("unzip -l", "unzip is not installed"));
        }
        Ok(())
    }

    /// `prune --dry-run` over 10 000 archives: one small real archive (retention counts only
    /// archives with a manifest), linked under 10 000 names. Without chunk indexes each is
    /// opened to read its manifest: the slow case.
    pub fn prune(&mut self) -> Result<()> {
        let b_prune = self.dir.join("backups-prune");
        let archives = b_prune.join("bench-ws/archives");
        fsx::create_dir_all(&archives)?;
        let start: chrono::DateTime<chrono::Utc> = "2020-01-01T00:00:00Z"
            .parse()
            .map_err(|_| Error::Invalid("time".into()))?;
        let one = self.dir.join("one-archive.zip");
        thrum_backup::archive::write_dir(
            &small_snapshot(self.dir)?,
            &one,
            6,
            &thrum_backup::progress::Silent,
            &Default::default(),
        )?;
        for i in 0..10_000i64 {
            let name =
                thrum_backup::retention::ArchiveName::format(start + chrono::Duration::hours(i), 0);
            std::fs::hard_link(&one, archives.join(name)).at("link", &archives)?;
        }
        let cmd = self.ours(&b_prune, &["prune", "--dry-run"]);
        self.row(
            "prune --dry-run over 10 000 archives",
            "ours",
            &mut || Ok(()),
            cmd,
            &|| None,
        )
    }
}

/// Info-ZIP's `zip -r -6` of the workspace and of the snapshot in the state the steady create
/// archives (timed once each, the zips then removed).
fn zip_same_state(exe: &Path, dir: &Path, root: &Path, snap_parent: &Path) -> Result<Vec<Row>> {
    let ws_zip = dir.join("same-state-workspace.zip");
    let snap_zip = dir.join("same-state-snapshot.zip");
    let mut rows = Vec::new();
    for (name, cwd, out, what) in [
        (
            SAME_STATE_WORKSPACE,
            root,
            &ws_zip,
            vec![SYNC_REL, ".thrum"],
        ),
        (SAME_STATE_SNAPSHOT, snap_parent, &snap_zip, vec!["current"]),
    ] {
        fsx::remove_any(out)?;
        let mut cmd = s(&["zip", "-qr", "-6", &out.to_string_lossy()]);
        cmd.extend(what.iter().map(|p| (*p).to_owned()));
        let usage = measure(exe, cwd, &cmd)?;
        let size = std::fs::metadata(out).ok().map(|m| m.len());
        rows.push(median_row(name, "baseline", vec![usage], size));
        fsx::remove_any(out)?;
    }
    Ok(rows)
}

/// The size of the newest archive of a backup directory: the one the measured create wrote.
fn archive_size(b: &Path) -> Option<u64> {
    std::fs::read_dir(b.join("bench-ws/archives"))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".zip"))
        .max_by_key(|e| e.file_name())
        .and_then(|e| e.metadata().ok())
        .map(|m| m.len())
}

/// A snapshot folder of one tiny log and its manifest, for the archives of the prune row.
fn small_snapshot(dir: &Path) -> Result<PathBuf> {
    let snap = dir.join("one-snapshot");
    fsx::create_dir_all(&snap)?;
    fsx::write_atomic(&snap.join("events.jsonl"), b"{}\n")?;
    let mut m = thrum_backup::manifest::Manifest::from_slice(
        br#"{"version": 1, "timestamp": "2020-01-01T00:00:00Z"}"#,
    )
    .map_err(Error::Invalid)?;
    m.engine = Some(thrum_backup::manifest::EngineInfo::current());
    fsx::write_atomic(&snap.join(thrum_backup::manifest::FILE_NAME), &m.to_vec())?;
    Ok(snap)
}

/// The deduplicating backup tools a user might pick instead.
#[derive(Debug, Clone, Copy)]
pub(super) enum Dedup {
    Restic,
    Borg,
}

impl Dedup {
    pub fn name(self) -> &'static str {
        match self {
            Dedup::Restic => "restic",
            Dedup::Borg => "borg",
        }
    }

    pub fn first(self) -> String {
        format!("{} (first run)", self.name())
    }

    pub fn second(self) -> String {
        format!("{} (second run, 1% appended)", self.name())
    }

    /// The tool run through `env` with its repository, cache and password in `home`.
    fn command(self, home: &Path, repo: &Path, args: &[&str]) -> Vec<String> {
        let h = home.display();
        let mut v: Vec<String> = vec!["env".into()];
        match self {
            Dedup::Restic => v.extend([
                format!("RESTIC_REPOSITORY={}", repo.display()),
                "RESTIC_PASSWORD=bench".into(),
                format!("RESTIC_CACHE_DIR={h}/cache"),
                "restic".into(),
                "--quiet".into(),
            ]),
            Dedup::Borg => v.extend([
                format!("BORG_REPO={}", repo.display()),
                format!("BORG_BASE_DIR={h}"),
                "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes".into(),
                "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes".into(),
                "borg".into(),
            ]),
        }
        v.extend(args.iter().map(|a| (*a).to_owned()));
        v
    }

    fn init(self, home: &Path, repo: &Path) -> Vec<String> {
        match self {
            Dedup::Restic => self.command(home, repo, &["init"]),
            Dedup::Borg => self.command(home, repo, &["init", "--encryption=none"]),
        }
    }

    fn backup(self, home: &Path, repo: &Path, paths: &[&str]) -> Vec<String> {
        let mut args = match self {
            Dedup::Restic => vec!["backup"],
            Dedup::Borg => vec!["create", "::{now:%Y-%m-%dT%H:%M:%S.%f}"],
        };
        args.extend_from_slice(paths);
        self.command(home, repo, &args)
    }
}
