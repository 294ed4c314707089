//! `bench`: measure the engine against the tools a user would pick instead, on the same data in
//! the same run, and report medians, CPU time, peak RSS, sizes and ratios. It never asserts a
//! timing; it reports.
//!
//! Every command is timed in its own `thrum-backup __measure` wrapper process, whose only child
//! is the command, so `getrusage(RUSAGE_CHILDREN)` gives exactly that command's CPU time and
//! peak RSS.

mod measure;
mod plugins;
mod rows;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::sample::{SampleWorkspace, Scale};
use thrum_backup::Result;

pub use measure::measure_child;
use rows::{Bench, Dedup};

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

/// Run the benchmark; `say` receives a line per step.
pub fn run(opts: &BenchOptions, say: &mut dyn FnMut(&str)) -> Result<BenchReport> {
    let messages = ((500_000.0 * opts.scale) as usize).max(1000);
    let agents = 200.min(messages / 10).max(2);
    say(&format!(
        "generating a workspace: {messages} messages from {agents} agents ..."
    ));
    let mut ws = SampleWorkspace::generate(
        &opts.dir,
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
    plugins::make_beads(&ws.root.join(".beads"), opts.scale)?;
    let (f1, b1) = measure::dir_size(&ws.sync_dir)?;
    let (f2, b2) = measure::dir_size(&ws.root.join(".thrum"))?;
    let (workspace_files, workspace_bytes) = (f1 + f2, b1 + b2);
    say(&format!(
        "workspace: {workspace_files} files, {:.1} MB",
        workspace_bytes as f64 / 1e6
    ));
    let root = ws.root.clone();
    let mut bench = Bench {
        runs: opts.runs.max(1),
        exe: &opts.exe,
        root: root.clone(),
        dir: &opts.dir,
        say,
        rows: Vec::new(),
    };
    bench.baselines(&ws.db_path)?;
    bench.first_create()?;
    // Each run of the steady create, restic's and borg's appends ~1% to the workspace.
    let per_run = (messages / 100).max(1);
    bench.steady_create(&mut ws, per_run)?;
    for tool in [Dedup::Restic, Dedup::Borg] {
        bench.dedup(tool, &mut ws, per_run)?;
    }
    bench.verify_and_restore()?;
    bench.inspect()?;
    bench.prune()?;
    // Plugins: start cold (compile) and warm (cached), in this process.
    let plugin_rows = plugins::plugin_start(&root, bench.runs)?;
    for r in &plugin_rows {
        (bench.say)(&format!("{:<34} {:>8.3} s", r.name, r.wall));
    }
    bench.rows.extend(plugin_rows);
    let rows = bench.rows;
    Ok(BenchReport {
        scale: opts.scale,
        workspace_bytes,
        workspace_files,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ratios: ratios(&rows),
        rows,
    })
}

/// Our rows against their baselines: wall time, and output size on the same data.
fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let find = |n: &str| rows.iter().find(|r| r.name == n && r.skipped.is_none());
    let first = "create (first, no earlier snapshot)";
    let steady = "create (steady: archive + 1% appended)";
    let mut ratios = Vec::new();
    for (a, b) in [
        (first, "cp -r".to_owned()),
        (first, "zip -r -6 (Info-ZIP)".into()),
        (steady, "zip -r -6 (Info-ZIP)".into()),
        (steady, "zip -r -1 (Info-ZIP)".into()),
        (first, Dedup::Restic.first()),
        (steady, Dedup::Restic.second()),
        (steady, Dedup::Borg.second()),
        ("verify (current/)", "read every file once".into()),
        ("restore (current/ into the workspace)", "unzip".into()),
        ("ls an archive", "unzip -l".into()),
        ("dump one file from an archive", "unzip -p one file".into()),
        (
            "diff two consecutive archives",
            "unzip -p both archives".into(),
        ),
        ("beads preset backup", "plain copy of .beads".into()),
        (
            "beads preset backup",
            "plain copy of .beads, fsynced".into(),
        ),
    ] {
        if let (Some(x), Some(y)) = (find(a), find(&b)) {
            ratios.push(Ratio {
                ours: a.into(),
                baseline: b,
                of: Compared::Wall,
                ratio: x.wall / y.wall,
            });
        }
    }
    // A restore puts back the files and the database: what a user of zip archives and SQLite
    // would run instead is both (issue 20's baseline).
    let restore = "restore (current/ into the workspace)";
    if let (Some(x), Some(u), Some(b)) = (find(restore), find("unzip"), find("sqlite3 .backup")) {
        ratios.push(Ratio {
            ours: restore.into(),
            baseline: "unzip + sqlite3 .backup".into(),
            of: Compared::Wall,
            ratio: x.wall / (u.wall + b.wall),
        });
    }
    // Output size, on the same data: the steady archive against Info-ZIP's zip of the
    // workspace in the state it holds (what a user would keep instead) and of the snapshot
    // itself (the same bytes: compression alone).
    for b in [SAME_STATE_WORKSPACE, SAME_STATE_SNAPSHOT] {
        let size = |n: &str| find(n).and_then(|r| r.output_bytes);
        if let (Some(x), Some(y)) = (size(steady), size(b)) {
            ratios.push(Ratio {
                ours: steady.into(),
                baseline: b.into(),
                of: Compared::Output,
                ratio: x as f64 / y as f64,
            });
        }
    }
    ratios
}
