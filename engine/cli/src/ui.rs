//! Output: text or JSON on stdout, progress bars and errors on stderr.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use thrum_backup::Progress;

use crate::cli::Global;

/// Exit code when verification finds problems.
pub const EXIT_PROBLEMS: u8 = 3;
/// Exit code when the backup directory is locked.
pub const EXIT_LOCKED: u8 = 4;
/// `create` backed up, but the workspace lost data since the previous snapshot (the shrink
/// guard): the last good archive from before it is kept until `prune --accept-shrink`.
pub const EXIT_SHRANK: u8 = 5;
/// A replica failed: `create` backed up locally, but at least one replica did not take the
/// snapshot; a replica command could not reach or use its repository.
pub const EXIT_REPLICA: u8 = 6;
/// Interrupted by SIGINT, SIGTERM or SIGHUP; what the command had done was undone.
pub const EXIT_INTERRUPTED: u8 = 130;

pub struct Ui {
    pub json: bool,
    pub quiet: bool,
    bars: bool,
}

impl Ui {
    pub fn new(g: &Global) -> Self {
        Self {
            json: g.json,
            quiet: g.quiet,
            bars: !g.json && !g.quiet && std::io::stderr().is_terminal(),
        }
    }

    /// Print a line of text (not in JSON or quiet mode).
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.json && !self.quiet {
            out(text.as_ref());
        }
    }

    /// Print a warning on stderr (not in quiet mode).
    pub fn warn(&self, text: impl AsRef<str>) {
        if !self.quiet {
            err(&format!("warning: {}", text.as_ref()));
        }
    }

    /// Print `value` as JSON when --json is on; returns whether it did.
    pub fn emit<T: Serialize>(&self, value: &T) -> bool {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => out(&s),
                Err(e) => err(&format!("error: cannot encode JSON: {e}")),
            }
        }
        self.json
    }

    /// One JSON object on one line (JSON Lines), for commands that report more than once.
    pub fn emit_line<T: Serialize>(&self, value: &T) -> bool {
        if self.json {
            match serde_json::to_string(value) {
                Ok(s) => out(&s),
                Err(e) => err(&format!("error: cannot encode JSON: {e}")),
            }
        }
        self.json
    }

    pub fn progress(&self) -> Bars {
        Bars {
            enabled: self.bars,
            bar: Mutex::new(None),
            quiet: self.quiet,
        }
    }

    /// Report a failure and map it to an exit code.
    pub fn fail(&self, e: &anyhow::Error) -> ExitCode {
        let code = match e.downcast_ref::<thrum_backup::Error>() {
            // Only another command holding the lock: worth retrying. A backup directory that
            // cannot be opened (a file, unwritable) is a plain failure.
            Some(thrum_backup::Error::Lock(thrum_backup::lock::LockError::Busy { .. })) => {
                EXIT_LOCKED
            }
            // Interrupted by a signal, and undone: the shell's convention for SIGINT.
            Some(thrum_backup::Error::Cancelled) => EXIT_INTERRUPTED,
            Some(thrum_backup::Error::Replica { .. }) => EXIT_REPLICA,
            _ => 1,
        };
        if is_broken_pipe(e) {
            return ExitCode::SUCCESS;
        }
        let text = message(e);
        if self.json {
            let v = serde_json::json!({"error": text});
            out(&v.to_string());
        }
        err(&format!("error: {text}"));
        ExitCode::from(code)
    }
}

/// The error and its causes on one line, each cause once: library errors already print their
/// source in their own message, so a cause the text already holds is not repeated.
pub fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn out(s: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(stdout, "{s}");
}

fn err(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}

/// indicatif progress bars behind the library's [`Progress`] trait.
pub struct Bars {
    enabled: bool,
    quiet: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn phase(&self, name: &str, total: Option<u64>) {
        if !self.enabled {
            return;
        }
        let mut slot = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.take() {
            old.finish_and_clear();
        }
        let bar = match total {
            Some(t) if t > 0 => {
                let b = ProgressBar::new(t);
                b.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b
            }
            _ => {
                let b = ProgressBar::new_spinner();
                b.enable_steady_tick(std::time::Duration::from_millis(120));
                b
            }
        };
        bar.set_message(name.to_owned());
        *slot = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            b.inc(bytes);
        }
    }

    fn note(&self, message: &str) {
        if self.quiet {
            return;
        }
        match self.bar.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(b) => b.println(format!("note: {message}")),
            None => err(&format!("note: {message}")),
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Bytes as a short human string.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
