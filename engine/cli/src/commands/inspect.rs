//! `ls`, `dump`, and the CLI's own `completions` and `man`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::CommandFactory;
use thrum_backup::inspect::{self, Snapshot};

use super::context;
use crate::cli::{Cli, DiffArgs, DumpArgs, FindArgs, Global, LsArgs};
use crate::ui::{EXIT_PROBLEMS, Ui, bytes};

pub fn ls(g: &Global, a: LsArgs, ui: &Ui) -> Result<ExitCode> {
    let ctx = context(g)?;
    let snap = Snapshot::resolve(&ctx, a.archive.as_deref())?;
    let listing = inspect::ls(&snap, &a.paths)?;
    if ui.emit(&listing) {
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    for f in &listing.files {
        let line = if a.long {
            format!(
                "{:>12}  {:<19}  {:<20}  {}{}",
                f.size,
                f.modified.as_deref().unwrap_or("-"),
                f.checksum
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), |c| c.chars().take(20).collect()),
                f.path,
                if f.secret { "  (secret)" } else { "" }
            )
        } else {
            format!("{:>12}  {}", f.size, f.path)
        };
        if writeln!(out, "{line}").is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    drop(out);
    ui.line(format!(
        "{} file(s), {} in {}{}",
        listing.files.len(),
        bytes(listing.bytes),
        listing.snapshot,
        listing
            .time
            .map(|t| format!(" (taken {})", t.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default()
    ));
    Ok(ExitCode::SUCCESS)
}

pub fn dump(g: &Global, a: DumpArgs, ui: &Ui) -> Result<ExitCode> {
    let ctx = context(g)?;
    let snap = Snapshot::resolve(&ctx, Some(&a.archive))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let dumped = inspect::dump(&snap, &a.path, &mut out)?;
    out.flush().context("cannot write to stdout")?;
    drop(out);
    if let Some(m) = &dumped.mismatch {
        ui.warn(m);
        return Ok(ExitCode::from(EXIT_PROBLEMS));
    }
    if !dumped.checked {
        ui.warn(format!(
            "{}: the manifest has no checksum for {} (a snapshot thrum made): only the zip's CRC was checked",
            snap.label(),
            a.path
        ));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    // Generated into memory first: clap_complete panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "thrum-backup", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

pub fn man(out: Option<&Path>, ui: &Ui) -> Result<ExitCode> {
    let cmd = Cli::command();
    match out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            match std::io::stdout().lock().write_all(&page) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(e).context("cannot write to stdout");
                }
                _ => {}
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the pages into {}", dir.display()))?;
            ui.line(format!(
                "Wrote thrum-backup.1 and a page per command into {}",
                dir.display()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn diff(g: &Global, a: DiffArgs, ui: &Ui) -> Result<ExitCode> {
    let ctx = context(g)?;
    let first = Snapshot::resolve(&ctx, Some(&a.a))?;
    let second = Snapshot::resolve(&ctx, a.b.as_deref())?;
    let d = inspect::diff(&first, &second)?;
    if ui.emit(&d) {
        return Ok(ExitCode::SUCCESS);
    }
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format(" (%Y-%m-%d %H:%M:%S UTC)").to_string())
            .unwrap_or_default()
    };
    ui.line(format!(
        "From {}{} to {}{}:",
        d.a,
        when(d.a_time),
        d.b,
        when(d.b_time)
    ));
    ui.line(format!(
        "  files: {} added, {} removed, {} changed, {} unchanged",
        d.added.len(),
        d.removed.len(),
        d.changed.len(),
        d.unchanged
    ));
    for (mark, list) in [("+", &d.added), ("-", &d.removed), ("~", &d.changed)] {
        for c in list {
            ui.line(format!("    {mark} {}", c.path));
        }
    }
    if let Some(e) = &d.events {
        ui.line(format!(
            "  events: {} new, {} gone, {} changed",
            e.added, e.removed, e.changed
        ));
    }
    for m in &d.messages {
        ui.line(format!(
            "  {}: {} messages new, {} gone, {} changed",
            m.path, m.added, m.removed, m.changed
        ));
    }
    for t in &d.tables {
        ui.line(format!(
            "  table {}: {} rows added, {} removed",
            t.table, t.added, t.removed
        ));
    }
    for (what, list) in [
        ("identities added", &d.identities_added),
        ("identities removed", &d.identities_removed),
        ("context added", &d.context_added),
        ("context removed", &d.context_removed),
    ] {
        if !list.is_empty() {
            ui.line(format!("  {what}: {}", list.join(", ")));
        }
    }
    for (p, n) in &d.plugins {
        ui.line(format!("  plugin {p}: {n} files changed"));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn find(g: &Global, a: FindArgs, ui: &Ui) -> Result<ExitCode> {
    let ctx = context(g)?;
    let query = match (a.message, a.agent) {
        (Some(id), _) => inspect::Query::Message(id),
        (None, Some(name)) => inspect::Query::Agent(name),
        (None, None) => inspect::Query::Paths(a.patterns),
    };
    let found = inspect::find(&ctx, &query)?;
    for (name, why) in &found.skipped {
        ui.warn(format!("{name}: not searched: {why}"));
    }
    if ui.emit(&found) {
        return Ok(ExitCode::SUCCESS);
    }
    if found.holding.is_empty() {
        ui.line(format!(
            "{}: in none of the {} snapshots.",
            found.query, found.searched
        ));
        return Ok(ExitCode::from(1));
    }
    for h in &found.holding {
        ui.line(format!(
            "{}{}: {}",
            h.snapshot,
            h.time
                .map(|t| t.format(" (%Y-%m-%d %H:%M:%S UTC)").to_string())
                .unwrap_or_default(),
            h.files.join(", ")
        ));
    }
    ui.line(format!(
        "{}: in {} of {} snapshots; first seen in {}, last in {}{}",
        found.query,
        found.holding.len(),
        found.searched,
        found.first_seen.as_deref().unwrap_or("-"),
        found.last_seen.as_deref().unwrap_or("-"),
        found
            .gone_since
            .as_deref()
            .map(|g| format!("; gone since {g}"))
            .unwrap_or_default()
    ));
    Ok(ExitCode::SUCCESS)
}
