//! The `thrum-backup` command: a thin shell over the `thrum_backup` library.

mod cli;
mod commands;
mod ui;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let ui = ui::Ui::new(&args.global);
    match commands::run(args, &ui) {
        Ok(code) => code,
        Err(err) => ui.fail(&err),
    }
}
