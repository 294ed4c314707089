//! The `thrum-backup` command: a thin shell over the `thrum_backup` library, and the parts of
//! the product that are not the engine: the benchmark (`bench`), the demo (`demo`) and the
//! sample workspaces both run on (`sample`, which the end-to-end suite includes too).

mod bench;
mod cli;
mod commands;
mod demo;
#[allow(
    dead_code,
    reason = "the end-to-end suite compiles this file too, and uses parts the binary does not"
)]
mod sample;
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
