//! `bench`: measure the engine against the tools a user would pick instead, on the same data in
//! the same run, and report medians, CPU time, peak RSS, sizes and ratios. It never asserts a
//! timing; it reports.
//!
//! Every command is timed in its own `thrum-backup __measure` wrapper process, whose only child
//! is the command, so `getrusage(RUSAGE_CHILDREN)` gives exactly that command's CPU time and
//! peak RSS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::sample::{SampleWorkspace, Scale};
use thrum_backup::config::{PluginLimits, WasmPlugin};
use thrum_backup::fsx;
use thrum_backup::plugin::wasm;
use thrum_backup::{Error, IoContext, Result};

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Size factor: 1.0 is ~500 MB (500k messages, 200 agents).
    pub scale: f64,
    /// Runs per measurement (the median is reported).
    pub runs: usize,
    /// An empty work directory.
    pub dir: PathBuf,
    /// The `thrum-backup` binary to measure.
    pub exe: PathBuf,
}

/// One command's resource use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Wall time, seconds.
    pub wall: f64,
    /// User CPU, seconds.
    pub user: f64,
    /// System CPU, seconds.
    pub sys: f64,
    /// Peak resident set, KiB.
    pub max_rss_kib: u64,
    /// Exit status.
    pub status: i32,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// `ours` or `baseline`.
    pub kind: &'static str,
    /// Median wall time, seconds.
    pub wall: f64,
    /// CPU (user + sys) of the median run, seconds.
    pub cpu: f64,
    /// Peak RSS of the median run, MiB.
    pub rss_mib: f64,
    /// Output size, bytes, when there is an output.
    pub output_bytes: Option<u64>,
    /// Every run's wall time.
    pub runs: Vec<f64>,
    /// Why it was not measured (a tool not installed).
    pub skipped: Option<String>,
}

/// A ratio between two rows (`ours / baseline`).
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Ours.
    pub ours: String,
    /// The baseline.
    pub baseline: String,
    /// What is compared.
    pub of: Compared,
    /// The ratio.
    pub ratio: f64,
}

/// What a [`Ratio`] compares (`"wall"` or `"output"` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compared {
    /// Wall time.
    Wall,
    /// Output size.
    Output,
}

/// Info-ZIP `zip -r -6` of the workspace as the measured steady `create` archived it.
const SAME_STATE_WORKSPACE: &str = "zip -r -6, workspace as archived";
/// Info-ZIP `zip -r -6` of the snapshot the measured steady `create` archived.
const SAME_STATE_SNAPSHOT: &str = "zip -r -6, snapshot as archived";

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Scale factor.
    pub scale: f64,
    /// Bytes of thrum data in the generated workspace.
    pub workspace_bytes: u64,
    /// Files in it.
    pub workspace_files: u64,
    /// Logical CPUs.
    pub cpus: usize,
    /// Measurements.
    pub rows: Vec<Row>,
    /// Ratios to baselines.
    pub ratios: Vec<Ratio>,
}

/// Run `cmd` under the `__measure` wrapper and parse its usage.
fn measure(exe: &Path, cwd: &Path, cmd: &[String]) -> Result<Usage> {
    let out = Command::new(exe)
        .arg("__measure")
        .arg("--")
        .args(cmd)
        .current_dir(cwd)
        .output()
        .at("run", exe)?;
    let usage: Usage = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::Invalid(format!(
            "bench: cannot read the measurement of {cmd:?}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    })?;
    if usage.status != 0 {
        return Err(Error::Invalid(format!(
            "bench: {cmd:?} failed with status {}",
            usage.status
        )));
    }
    Ok(usage)
}

/// The wrapper: run `cmd`, wait, and report its usage (called by `thrum-backup __measure`).
pub fn measure_child(cmd: &[String]) -> Result<Usage> {
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| Error::Invalid("__measure needs a command".into()))?;
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .at("run", Path::new(program))?;
    let wall = start.elapsed().as_secs_f64();
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map_err(|e| Error::Invalid(format!("getrusage: {e}")))?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(Usage {
        wall,
        user: secs(u.user_time()),
        sys: secs(u.system_time()),
        max_rss_kib: u.max_rss().max(0) as u64,
        status: status.code().unwrap_or(-1),
    })
}

fn median_row(name: &str, kind: &'static str, runs: Vec<Usage>, output: Option<u64>) -> Row {
    let mut sorted: Vec<(f64, usize)> = runs.iter().enumerate().map(|(i, u)| (u.wall, i)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mid = &runs[sorted[sorted.len() / 2].1];
    Row {
        name: name.into(),
        kind,
        wall: mid.wall,
        cpu: mid.user + mid.sys,
        rss_mib: mid.max_rss_kib as f64 / 1024.0,
        output_bytes: output,
        runs: runs.iter().map(|u| u.wall).collect(),
        skipped: None,
    }
}

fn skipped(name: &str, why: &str) -> Row {
    Row {
        name: name.into(),
        kind: "baseline",
        wall: f64::NAN,
        cpu: f64::NAN,
        rss_mib: f64::NAN,
        output_bytes: None,
        runs: Vec::new(),
        skipped: Some(why.into()),
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

fn dir_size(dir: &Path) -> Result<(u64, u64)> {
    let files = fsx::walk_files(dir)?;
    let bytes = files
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    Ok((files.len() as u64, bytes))
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

/// Run the benchmark; `say` receives a line per step.
pub fn run(opts: &BenchOptions, say: &mut dyn FnMut(&str)) -> Result<BenchReport> {
    let runs = opts.runs.max(1);
    let dir = &opts.dir;
    let exe = &opts.exe;
    let messages = ((500_000.0 * opts.scale) as usize).max(1000);
    let agents = 200.min(messages / 10).max(2);
    say(&format!(
        "generating a workspace: {messages} messages from {agents} agents ..."
    ));
    let mut ws = SampleWorkspace::generate(
        dir,
        "bench-ws",
        Scale {
            agents,
            messages: 0,
        },
    )?;
    let mut left = messages;
    while left > 0 {
        let n = left.min(50_000);
        ws.add_messages(n)?;
        left -= n;
    }
    make_beads(&ws.root.join(".beads"), opts.scale)?;
    let root = ws.root.clone();
    let sync_rel = ".git/thrum-sync/a-sync";
    let (f1, b1) = dir_size(&ws.sync_dir)?;
    let (f2, b2) = dir_size(&root.join(".thrum"))?;
    let (workspace_files, workspace_bytes) = (f1 + f2, b1 + b2);
    say(&format!(
        "workspace: {workspace_files} files, {:.1} MB",
        workspace_bytes as f64 / 1e6
    ));
    let scratch = dir.join("scratch");
    let mut rows = Vec::new();
    let mut run_n = |name: &str,
                     kind: &'static str,
                     prep: &mut dyn FnMut() -> Result<()>,
                     cmd: Vec<String>,
                     output: &dyn Fn() -> Option<u64>|
     -> Result<Row> {
        let mut usages = Vec::new();
        let mut out = None;
        for _ in 0..runs {
            prep()?;
            usages.push(measure(exe, &root, &cmd)?);
            out = output();
        }
        let row = median_row(name, kind, usages, out);
        say(&format!("{:<34} {:>8.3} s", row.name, row.wall));
        Ok(row)
    };
    let reset = |p: &Path| -> Result<()> {
        fsx::remove_any(p)?;
        fsx::create_dir_all(p)
    };

    // Baselines.
    rows.push(run_n(
        "cp -r",
        "baseline",
        &mut || reset(&scratch),
        s(&["cp", "-r", sync_rel, ".thrum", &scratch.to_string_lossy()]),
        &|| None,
    )?);
    let read_cmd = vec![
        "sh".into(),
        "-c".into(),
        format!("find {sync_rel} .thrum -type f -exec cat {{}} + > /dev/null"),
    ];
    rows.push(run_n(
        "read every file once",
        "baseline",
        &mut || Ok(()),
        read_cmd,
        &|| None,
    )?);
    let zip6 = dir.join("baseline-6.zip");
    let zip1 = dir.join("baseline-1.zip");
    if on_path("zip") {
        rows.push(run_n(
            "zip -r -6 (Info-ZIP)",
            "baseline",
            &mut || fsx::remove_any(&zip6),
            s(&[
                "zip",
                "-qr",
                "-6",
                &zip6.to_string_lossy(),
                sync_rel,
                ".thrum",
            ]),
            &|| std::fs::metadata(&zip6).ok().map(|m| m.len()),
        )?);
        rows.push(run_n(
            "zip -r -1 (Info-ZIP)",
            "baseline",
            &mut || fsx::remove_any(&zip1),
            s(&[
                "zip",
                "-qr",
                "-1",
                &zip1.to_string_lossy(),
                sync_rel,
                ".thrum",
            ]),
            &|| std::fs::metadata(&zip1).ok().map(|m| m.len()),
        )?);
    } else {
        rows.push(skipped("zip -r -6 (Info-ZIP)", "zip is not installed"));
    }
    if on_path("unzip") && zip6.is_file() {
        rows.push(run_n(
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
        )?);
    } else {
        rows.push(skipped("unzip", "unzip or zip is not installed"));
    }
    let db_copy = dir.join("baseline.db");
    if on_path("sqlite3") {
        rows.push(run_n(
            "sqlite3 .backup",
            "baseline",
            &mut || fsx::remove_any(&db_copy),
            vec![
                "sqlite3".into(),
                ws.db_path.to_string_lossy().into_owned(),
                format!(".backup {}", db_copy.display()),
            ],
            &|| std::fs::metadata(&db_copy).ok().map(|m| m.len()),
        )?);
    } else {
        rows.push(skipped("sqlite3 .backup", "sqlite3 is not installed"));
    }

    // Ours.
    let exe_s = exe.to_string_lossy().into_owned();
    let ours = |dir: &Path, args: &[&str]| -> Vec<String> {
        let mut v = vec![
            exe_s.clone(),
            "--repo".into(),
            root.to_string_lossy().into_owned(),
            "--dir".into(),
            dir.to_string_lossy().into_owned(),
        ];
        v.extend(args.iter().map(|a| (*a).to_owned()));
        v
    };
    let b_first = dir.join("backups-first");
    // The newest archive: the one the measured create wrote.
    let archive_size = |b: &Path| -> Option<u64> {
        std::fs::read_dir(b.join("bench-ws/archives"))
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".zip"))
            .max_by_key(|e| e.file_name())
            .and_then(|e| e.metadata().ok())
            .map(|m| m.len())
    };
    rows.push(run_n(
        "create (first, no earlier snapshot)",
        "ours",
        &mut || reset(&b_first),
        ours(
            &b_first,
            &["create", "--no-prune", "--no-hook", "--no-plugins"],
        ),
        &|| {
            dir_size(&b_first.join("bench-ws/current"))
                .ok()
                .map(|x| x.1)
        },
    )?);
    let b_steady = dir.join("backups-steady");
    let mut ws_for_append = ws;
    let per_run = (messages / 100).max(1);
    let seed_cmd = ours(
        &b_steady,
        &["create", "--no-prune", "--no-hook", "--no-plugins"],
    );
    // Steady state: the snapshot being archived differs from the archive before it by what
    // was appended between two backups (~1%), as with backups taken at a regular interval.
    // The workspace grows by every append, so the archive a run writes holds more than the
    // workspace the zip baselines above compressed: before the last run's archived snapshot
    // is appended to, Info-ZIP compresses that same state (workspace and snapshot), so sizes
    // are compared on the same data.
    let mut prepared = 0;
    let mut same_state: Vec<Row> = Vec::new();
    let mut prep_steady = || -> Result<()> {
        reset(&b_steady)?;
        measure(exe, &root, &seed_cmd)?;
        ws_for_append.add_messages(per_run)?;
        measure(exe, &root, &seed_cmd)?;
        prepared += 1;
        if prepared == runs && on_path("zip") {
            let ws_zip = dir.join("same-state-workspace.zip");
            let snap_zip = dir.join("same-state-snapshot.zip");
            let snap_parent = b_steady.join("bench-ws");
            for (name, cwd, out, what) in [
                (
                    SAME_STATE_WORKSPACE,
                    &root,
                    &ws_zip,
                    vec![sync_rel, ".thrum"],
                ),
                (
                    SAME_STATE_SNAPSHOT,
                    &snap_parent,
                    &snap_zip,
                    vec!["current"],
                ),
            ] {
                fsx::remove_any(out)?;
                let mut cmd = s(&["zip", "-qr", "-6", &out.to_string_lossy()]);
                cmd.extend(what.iter().map(|p| (*p).to_owned()));
                let usage = measure(exe, cwd, &cmd)?;
                let size = std::fs::metadata(out).ok().map(|m| m.len());
                same_state.push(median_row(name, "baseline", vec![usage], size));
                fsx::remove_any(out)?;
            }
        }
        ws_for_append.add_messages(per_run)
    };
    rows.push(run_n(
        "create (steady: archive + 1% appended)",
        "ours",
        &mut prep_steady,
        ours(
            &b_steady,
            &["create", "--no-prune", "--no-hook", "--no-plugins"],
        ),
        &|| archive_size(&b_steady),
    )?);
    rows.extend(same_state);
    // restic and borg with their defaults (restic: zstd auto; borg: lz4), each into a
    // private repository: a first run, then a second after the same ~1% append as ours.
    for tool in [Dedup::Restic, Dedup::Borg] {
        let name = tool.name();
        if !on_path(name) {
            rows.push(skipped(
                &format!("{name} (first, second run)"),
                &format!("{name} is not installed"),
            ));
            continue;
        }
        let home = dir.join(format!("{name}-home"));
        let repo = dir.join(format!("{name}-repo"));
        let init = tool.init(&home, &repo);
        let backup = tool.backup(&home, &repo, &[sync_rel, ".thrum"]);
        let fresh = || -> Result<()> {
            fsx::remove_any(&repo)?;
            reset(&home)?;
            measure(exe, &root, &init).map(|_| ())
        };
        let size = || dir_size(&repo).ok().map(|x| x.1);
        rows.push(run_n(
            &tool.first(),
            "baseline",
            &mut || fresh(),
            backup.clone(),
            &size,
        )?);
        rows.push(run_n(
            &tool.second(),
            "baseline",
            &mut || {
                fresh()?;
                measure(exe, &root, &backup)?;
                ws_for_append.add_messages(per_run)
            },
            backup.clone(),
            &size,
        )?);
    }
    rows.push(run_n(
        "verify (current/)",
        "ours",
        &mut || Ok(()),
        ours(&b_steady, &["verify"]),
        &|| None,
    )?);
    rows.push(run_n(
        "restore (current/ into the workspace)",
        "ours",
        &mut || Ok(()),
        ours(&b_steady, &["restore", "--yes"]),
        &|| None,
    )?);
    let b_prune = dir.join("backups-prune");
    let archives = b_prune.join("bench-ws/archives");
    fsx::create_dir_all(&archives)?;
    let start: chrono::DateTime<chrono::Utc> = "2020-01-01T00:00:00Z"
        .parse()
        .map_err(|_| Error::Invalid("time".into()))?;
    // One small real archive (retention counts only archives with a manifest), linked under
    // 10 000 names. Without chunk indexes each is opened to read its manifest: the slow case.
    let one = dir.join("one-archive.zip");
    thrum_backup::archive::write_dir(
        &small_snapshot(dir)?,
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
    rows.push(run_n(
        "prune --dry-run over 10 000 archives",
        "ours",
        &mut || Ok(()),
        ours(&b_prune, &["prune", "--dry-run"]),
        &|| None,
    )?);

    // Plugins: start cold (compile) and warm (cached), in this process.
    let plugin_rows = plugin_start(&root, runs)?;
    for r in &plugin_rows {
        say(&format!("{:<34} {:>8.3} s", r.name, r.wall));
    }
    rows.extend(plugin_rows);

    let find = |n: &str| {
        rows.iter()
            .find(|r| r.name == n && r.skipped.is_none())
            .map(|r| r.wall)
    };
    let mut ratios = Vec::new();
    for (a, b) in [
        ("create (first, no earlier snapshot)", "cp -r"),
        (
            "create (first, no earlier snapshot)",
            "zip -r -6 (Info-ZIP)",
        ),
        (
            "create (steady: archive + 1% appended)",
            "zip -r -6 (Info-ZIP)",
        ),
        (
            "create (steady: archive + 1% appended)",
            "zip -r -1 (Info-ZIP)",
        ),
        (
            "create (first, no earlier snapshot)",
            &Dedup::Restic.first(),
        ),
        (
            "create (steady: archive + 1% appended)",
            &Dedup::Restic.second(),
        ),
        (
            "create (steady: archive + 1% appended)",
            &Dedup::Borg.second(),
        ),
        ("verify (current/)", "read every file once"),
        ("restore (current/ into the workspace)", "unzip"),
        ("beads preset backup", "plain copy of .beads"),
        ("beads preset backup", "plain copy of .beads, fsynced"),
    ] {
        if let (Some(x), Some(y)) = (find(a), find(b)) {
            ratios.push(Ratio {
                ours: a.into(),
                baseline: b.into(),
                of: Compared::Wall,
                ratio: x / y,
            });
        }
    }
    // Output size, on the same data: the steady archive against Info-ZIP's zip of the
    // workspace in the state it holds (what a user would keep instead) and of the snapshot
    // itself (the same bytes: compression alone).
    let size = |n: &str| {
        rows.iter()
            .find(|r| r.name == n && r.skipped.is_none())
            .and_then(|r| r.output_bytes)
    };
    let steady = "create (steady: archive + 1% appended)";
    for b in [SAME_STATE_WORKSPACE, SAME_STATE_SNAPSHOT] {
        if let (Some(x), Some(y)) = (size(steady), size(b)) {
            ratios.push(Ratio {
                ours: steady.into(),
                baseline: b.into(),
                of: Compared::Output,
                ratio: x as f64 / y as f64,
            });
        }
    }
    Ok(BenchReport {
        scale: opts.scale,
        workspace_bytes,
        workspace_files,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rows,
        ratios,
    })
}

/// The deduplicating backup tools a user might pick instead.
#[derive(Debug, Clone, Copy)]
enum Dedup {
    Restic,
    Borg,
}

impl Dedup {
    fn name(self) -> &'static str {
        match self {
            Dedup::Restic => "restic",
            Dedup::Borg => "borg",
        }
    }

    fn first(self) -> String {
        format!("{} (first run)", self.name())
    }

    fn second(self) -> String {
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

/// A `.beads/backup` of realistic JSONL at `scale` (the beads preset's input).
fn make_beads(dir: &Path, scale: f64) -> Result<()> {
    let backup = dir.join("backup");
    fsx::create_dir_all(&backup)?;
    let n = ((20_000.0 * scale) as usize).max(100);
    let mut issues = String::new();
    for i in 0..n {
        issues.push_str(&format!(
            "{{\"id\":\"bd-{i}\",\"title\":\"Fix the parser for case {i}\",\"status\":\"open\",\"priority\":{},\"description\":\"When the daemon restarts the sync worktree may lag; retry with backoff and check the schema migration for edge case {i}.\"}}\n",
            i % 4
        ));
    }
    fsx::write_atomic(&backup.join("issues.jsonl"), issues.as_bytes())?;
    fsx::write_atomic(
        &backup.join("backup_state.json"),
        format!("{{\"counts\":{{\"issues\":{n}}}}}").as_bytes(),
    )
}

fn plugin_start(root: &Path, runs: usize) -> Result<Vec<Row>> {
    let setting = wasm::Setting::new(root, "bench-ws", None);
    let bytes = thrum_backup::plugin::presets::component("beads")
        .ok_or_else(|| Error::Invalid("no beads preset".into()))?;
    let cache = tempfile::tempdir().at("create", Path::new("cache"))?;
    let start_once = |dir: Option<PathBuf>| -> Result<f64> {
        let t = Instant::now();
        let loaded =
            wasm::load_with_cache(bytes, dir).map_err(|e| Error::Invalid(e.to_string()))?;
        wasm::describe(&loaded, &setting).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(t.elapsed().as_secs_f64())
    };
    // The engine itself is created once per process: not part of a plugin's start.
    start_once(None)?;
    let mut cold = Vec::new();
    for _ in 0..runs {
        cold.push(start_once(None)?);
    }
    start_once(Some(cache.path().to_path_buf()))?; // fills the cache
    let mut warm = Vec::new();
    for _ in 0..runs.max(5) {
        warm.push(start_once(Some(cache.path().to_path_buf()))?);
    }
    let plugin = WasmPlugin {
        name: "beads".into(),
        component: "preset:beads".into(),
        sha256: None,
        grants: vec![
            thrum_backup::config::Grant::Read(".beads".into()),
            thrum_backup::config::Grant::Write(".beads".into()),
        ],
        limits: PluginLimits::default(),
        config: serde_json::json!({}),
        bundle: None,
        allow_dangerous: false,
    };
    let preset_once = |i: usize| -> Result<f64> {
        let out = root.join(format!(".bench-plugin-out-{i}"));
        fsx::create_dir_all(&out)?;
        let t = Instant::now();
        let (report, _) = wasm::backup_report(&plugin, &setting, &out);
        let took = t.elapsed().as_secs_f64();
        if !report.status.is_ok() {
            return Err(Error::Invalid(format!(
                "beads preset failed in the bench: {:?}",
                report.error
            )));
        }
        fsx::remove_any(&out)?;
        Ok(took)
    };
    // Not timed: a call with the user's component cache empty (a new machine, a new build of
    // the preset) compiles the component first; the cold start has its own row above.
    preset_once(runs)?;
    let mut through = Vec::new();
    let mut copy = Vec::new();
    let mut durable = Vec::new();
    for i in 0..runs {
        through.push(preset_once(i)?);
        // A plain copy, then one made durable as the preset's output is (each file fsynced).
        for (synced, times) in [(false, &mut copy), (true, &mut durable)] {
            let dst = root.join(format!(".bench-copy-{i}"));
            let t = Instant::now();
            for f in fsx::walk_files(&root.join(".beads"))? {
                let to = dst.join(&f);
                fsx::create_dir_all(to.parent().unwrap_or(&dst))?;
                std::fs::copy(root.join(".beads").join(&f), &to).at("copy", &to)?;
                if synced {
                    std::fs::File::open(&to)
                        .and_then(|f| f.sync_all())
                        .at("sync", &to)?;
                }
            }
            times.push(t.elapsed().as_secs_f64());
            fsx::remove_any(&dst)?;
        }
    }
    let row = |name: &str, kind: &'static str, v: Vec<f64>| {
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        Row {
            name: name.into(),
            kind,
            wall: sorted[sorted.len() / 2],
            cpu: f64::NAN,
            rss_mib: f64::NAN,
            output_bytes: None,
            runs: v,
            skipped: None,
        }
    };
    Ok(vec![
        row("plugin start, cold (compile)", "ours", cold),
        row("plugin start, warm (cached component)", "ours", warm),
        row("beads preset backup", "ours", through),
        row("plain copy of .beads", "baseline", copy),
        row("plain copy of .beads, fsynced", "baseline", durable),
    ])
}
