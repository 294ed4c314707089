//! `replica add|list|remove|snapshots|check|sync`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde::Serialize;
use thrum_backup::config::ReplicaEntry;
use thrum_backup::replica::{self, Replica, ReplicaState};
use thrum_backup::{Context, Progress};

use super::{context, lock_timeout};
use crate::cli::{Global, ReplicaAddArgs, ReplicaCommand};
use crate::ui::{EXIT_PROBLEMS, EXIT_REPLICA, Ui, bytes};

pub fn run(g: &Global, c: ReplicaCommand, ui: &Ui) -> Result<ExitCode> {
    let mut ctx = context(g)?;
    match c {
        ReplicaCommand::Add(a) => add(&mut ctx, a, ui),
        ReplicaCommand::List => list(&ctx, ui),
        ReplicaCommand::Remove { name } => remove(&mut ctx, &name, ui),
        ReplicaCommand::Snapshots { name } => snapshots(&ctx, &name, ui),
        ReplicaCommand::Check { name, read_data } => check(&ctx, &name, read_data, ui),
        ReplicaCommand::Sync { name } => sync(g, &ctx, name.as_deref(), ui),
    }
}

/// A configured replica by name, or a repository address used as it is.
fn entry(ctx: &Context, name: &str) -> Result<ReplicaEntry> {
    Ok(replica::resolve(&ctx.config.backup.replicas, name)?)
}

fn open(ctx: &Context, e: &ReplicaEntry) -> thrum_backup::Result<Replica> {
    Replica::open(e, &ctx.workspace.thrum_dir, false)
}

fn add(ctx: &mut Context, a: ReplicaAddArgs, ui: &Ui) -> Result<ExitCode> {
    thrum_backup::config::check_replica_name(&a.name).map_err(anyhow::Error::msg)?;
    if ctx.config.replica(&a.name).is_some() {
        bail!(
            "a replica named {:?} already exists (`thrum-backup replica remove {}` first)",
            a.name,
            a.name
        );
    }
    let mut e = ReplicaEntry::new(&a.name, &a.repository);
    if let Some(f) = &a.password_file {
        let abs = std::path::absolute(f)?;
        if !abs.is_file() {
            bail!("password file {} does not exist", abs.display());
        }
        e.password_file = Some(abs.display().to_string());
    }
    e.password_command = a.password_command.clone();
    for o in &a.options {
        let Some((k, v)) = o.split_once('=') else {
            bail!("--option {o:?}: expected KEY=VALUE");
        };
        e.options.insert(k.trim().to_owned(), v.to_owned());
    }
    e.timeout_secs = a.timeout;
    let r = Replica::open(&e, &ctx.workspace.thrum_dir, a.init)?;
    let count = r.snapshots()?.len();
    ctx.config.add_replica(&e)?;
    #[derive(Serialize)]
    struct Added<'a> {
        added: &'a ReplicaEntry,
        snapshots: usize,
    }
    if ui.emit(&Added {
        added: &e,
        snapshots: count,
    }) {
        return Ok(ExitCode::SUCCESS);
    }
    ui.line(format!(
        "Added replica {} ({}): {} snapshot(s) of thrum-backup there. `create` pushes every new backup to it; `thrum-backup replica sync {}` pushes the existing ones.",
        e.name, e.repository, count, e.name
    ));
    Ok(ExitCode::SUCCESS)
}

fn remove(ctx: &mut Context, name: &str, ui: &Ui) -> Result<ExitCode> {
    if !ctx.config.remove_replica(name)? {
        bail!("no replica named {name:?} in backup.replicas");
    }
    if !ui.emit(&serde_json::json!({"removed": name})) {
        ui.line(format!(
            "Removed replica {name} from config.json; its repository and snapshots are untouched."
        ));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Listed {
    name: String,
    repository: String,
    #[serde(flatten)]
    state: ReplicaState,
    snapshots: Option<usize>,
    size: Option<u64>,
    error: Option<String>,
}

fn list(ctx: &Context, ui: &Ui) -> Result<ExitCode> {
    let states = replica::state::load(ctx.backup.root());
    let mut out = Vec::new();
    for e in &ctx.config.backup.replicas {
        let live = open(ctx, e).and_then(|r| Ok((r.snapshots()?.len(), r.size()?)));
        let (snapshots, size, error) = match live {
            Ok((n, s)) => (Some(n), Some(s), None),
            Err(err) => (None, None, Some(err.to_string())),
        };
        out.push(Listed {
            name: e.name.clone(),
            repository: e.repository.clone(),
            state: states.get(&e.name).cloned().unwrap_or_default(),
            snapshots,
            size,
            error,
        });
    }
    if ui.emit(&out) {
        return Ok(ExitCode::SUCCESS);
    }
    if out.is_empty() {
        ui.line("No replicas. Add one with `thrum-backup replica add NAME REPOSITORY --init`.");
    }
    for l in &out {
        ui.line(format!("{}  {}", l.name, l.repository));
        match (&l.snapshots, &l.size) {
            (Some(n), Some(s)) => ui.line(format!("  snapshots: {n}   size: {}", bytes(*s))),
            _ => ui.line(format!(
                "  unreachable now: {}",
                l.error.as_deref().unwrap_or("?")
            )),
        }
        match &l.state.last_success {
            Some(t) => ui.line(format!(
                "  last push: {}{}",
                t.format("%Y-%m-%d %H:%M:%S UTC"),
                l.state
                    .last_snapshot
                    .as_ref()
                    .map(|s| format!(" (snapshot {s})"))
                    .unwrap_or_default()
            )),
            None => ui.line("  last push: never"),
        }
        if let Some((t, m)) = &l.state.last_error {
            ui.line(format!(
                "  last error: {} {m}",
                t.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn snapshots(ctx: &Context, name: &str, ui: &Ui) -> Result<ExitCode> {
    let e = entry(ctx, name)?;
    let snaps = open(ctx, &e)?.snapshots()?;
    if ui.emit(&snaps) {
        return Ok(ExitCode::SUCCESS);
    }
    if snaps.is_empty() {
        ui.line(format!(
            "No thrum-backup snapshots in {} yet (`thrum-backup replica sync {name}`).",
            e.repository
        ));
    }
    for s in &snaps {
        ui.line(format!(
            "{}  {}  {:<11}  {:>6} files  {:>10}  {}",
            s.id,
            s.time.format("%Y-%m-%d %H:%M:%S"),
            s.kind.as_deref().unwrap_or("-"),
            s.files,
            bytes(s.bytes),
            s.path
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn check(ctx: &Context, name: &str, read_data: bool, ui: &Ui) -> Result<ExitCode> {
    let e = entry(ctx, name)?;
    let progress = ui.progress();
    progress.phase(
        &format!(
            "checking replica {name}{}",
            if read_data { " (reading all data)" } else { "" }
        ),
        None,
    );
    let report = open(ctx, &e)?.check(read_data)?;
    progress.finish();
    let code = if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEMS)
    };
    if ui.emit(&report) {
        return Ok(code);
    }
    for w in &report.warnings {
        ui.warn(w);
    }
    for err in &report.errors {
        ui.line(format!("DAMAGED: {err}"));
    }
    if report.ok() {
        ui.line(format!(
            "Replica {name}: repository sound{}.",
            if read_data {
                ", every pack read and verified"
            } else {
                " (structure and index; --read-data also reads every pack)"
            }
        ));
    } else {
        ui.line(format!(
            "Replica {name}: {} problem(s) found. Its snapshots that use damaged packs cannot be restored; `thrum-backup replica sync {name}` after a repair pushes what is missing.",
            report.errors.len()
        ));
    }
    Ok(code)
}

fn sync(g: &Global, ctx: &Context, name: Option<&str>, ui: &Ui) -> Result<ExitCode> {
    let entries: Vec<ReplicaEntry> = match name {
        Some(n) => vec![entry(ctx, n)?],
        None => ctx.config.backup.replicas.clone(),
    };
    if entries.is_empty() {
        bail!("no replicas in backup.replicas (add one with `thrum-backup replica add`)");
    }
    if !ctx.backup.exists() {
        bail!(
            "no backups in {} to push (run `thrum-backup create` first)",
            ctx.backup.root().display()
        );
    }
    let cancel = super::interruptible()?;
    // Under the backup directory's lock: prune cannot remove an archive being pushed.
    let _lock = ctx.backup.lock(lock_timeout(g))?;
    let progress = ui.progress();
    let mut reports = BTreeMap::new();
    let mut failed = false;
    for e in &entries {
        let result =
            open(ctx, e).and_then(|mut r| replica::sync(&mut r, &ctx.backup, &progress, &cancel));
        let failure = result.as_ref().err().map(ToString::to_string);
        let _ = replica::state::record(
            ctx.backup.root(),
            &e.name,
            match (&result, &failure) {
                (Ok(r), _) => Ok(r.pushed.last().map(|(_, p)| p.id.as_str())),
                (Err(_), f) => Err(f.as_deref().unwrap_or("failed")),
            },
        );
        match result {
            Ok(r) => {
                reports.insert(e.name.clone(), serde_json::to_value(&r)?);
                if !ui.json {
                    for (label, p) in &r.pushed {
                        ui.line(format!(
                            "{}: pushed {label} as {} ({} files, {} added)",
                            e.name,
                            p.id,
                            p.files,
                            bytes(p.bytes_added)
                        ));
                    }
                    for (label, why) in &r.skipped {
                        ui.warn(format!("{}: skipped {label}: {why}", e.name));
                    }
                    ui.line(format!(
                        "{}: {} pushed, {} already there.",
                        e.name,
                        r.pushed.len(),
                        r.already
                    ));
                }
            }
            Err(thrum_backup::Error::Cancelled) => {
                return Err(thrum_backup::Error::Cancelled.into());
            }
            Err(err) => {
                failed = true;
                ui.warn(err.to_string());
                reports.insert(
                    e.name.clone(),
                    serde_json::json!({"error": err.to_string()}),
                );
            }
        }
    }
    progress.finish();
    ui.emit(&reports);
    Ok(if failed {
        ExitCode::from(EXIT_REPLICA)
    } else {
        ExitCode::SUCCESS
    })
}
