//! One file per command; each turns arguments into a library call and prints the report.

mod archives;
mod bench;
mod config;
mod create;
mod daemon;
mod demo;
mod inspect;
mod plugin;
mod prune;
mod replica;
mod restore;
mod schedule;
mod status;
mod verify;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use thrum_backup::Context;

use crate::cli::{Cli, Command, Global};
use crate::ui::Ui;

pub fn run(args: Cli, ui: &Ui) -> Result<ExitCode> {
    let g = &args.global;
    match args.command {
        Command::Create(a) => create::run(g, a, ui),
        Command::Status => status::run(g, ui),
        Command::Config => config::run(g, ui),
        Command::Restore(a) => restore::run(g, a, ui),
        Command::Prune(a) => prune::run(g, a, ui),
        Command::Verify(a) => verify::run(g, a, ui),
        Command::Archives => archives::run(g, ui),
        Command::Schedule(a) => schedule::run(g, a, ui),
        Command::Daemon(a) => daemon::run(g, a, ui),
        Command::Plugin(c) => plugin::run(g, c, ui),
        Command::Replica(c) => replica::run(g, c, ui),
        Command::Ls(a) => inspect::ls(g, a, ui),
        Command::Dump(a) => inspect::dump(g, a, ui),
        Command::Diff(a) => inspect::diff(g, a, ui),
        Command::Find(a) => inspect::find(g, a, ui),
        Command::Completions { shell } => inspect::completions(shell),
        Command::Man { out } => inspect::man(out.as_deref(), ui),
        Command::Demo(a) => demo::run(a, ui),
        Command::Bench(a) => bench::run(a, ui),
        Command::Measure { cmd } => bench::measure(&cmd, ui),
    }
}

/// Locate the workspace and its backup directory.
fn context(g: &Global) -> Result<Context> {
    Ok(Context::open(&g.repo, g.dir.as_deref())?)
}

/// A cancel flag raised by SIGINT, SIGTERM or SIGHUP: the operation stops at its next safe
/// point and undoes what it did (a restore rolls back, a create drops its stage). A second
/// signal exits at once; the next command's recovery then finishes the undoing.
fn interruptible() -> Result<thrum_backup::Cancel> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let cancel = thrum_backup::Cancel::new();
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, cancel.flag())?;
        signal_hook::flag::register(sig, cancel.flag())?;
    }
    Ok(cancel)
}

fn lock_timeout(g: &Global) -> Duration {
    Duration::from_secs(g.lock_timeout)
}

fn db_wait(g: &Global) -> Duration {
    Duration::from_secs(g.db_wait)
}

fn print_recovered(ui: &Ui, actions: &[String]) {
    for a in actions {
        ui.warn(format!("recovered: {a}"));
    }
}
