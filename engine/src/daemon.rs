//! `daemon`: scheduled backups in the foreground, as thrum's scheduler runs them: the first
//! after one interval, then one per interval. A raised [`Cancel`] (SIGINT/SIGTERM in the CLI)
//! stops it cleanly: a backup in progress is abandoned at its next safe point, which leaves
//! the previous snapshot in place and nothing half-written.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::create::{self, CreateOptions, CreateReport};
use crate::error::{Error, Result};
use crate::progress::{Cancel, Progress};

/// Run until cancelled. `on_result` receives each backup's outcome; a failed backup is
/// reported and the schedule goes on. The context is re-read before every run, so config
/// changes (a new schedule, plugins) take effect without a restart.
pub fn run(
    repo: &Path,
    dir_override: Option<&Path>,
    interval_override: Option<Duration>,
    opts: &CreateOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
    mut on_result: impl FnMut(&Result<CreateReport>),
) -> Result<()> {
    let first = Context::open(repo, dir_override)?;
    let mut interval = interval_override
        .or_else(|| first.config.backup.schedule_interval())
        .ok_or_else(|| {
            Error::NotFound(
                "no backup schedule is set: run `thrum-backup schedule 24h`, or pass --interval"
                    .into(),
            )
        })?;
    loop {
        if !sleep(interval, cancel) {
            return Ok(());
        }
        let result = Context::open(repo, dir_override).and_then(|ctx| {
            if interval_override.is_none()
                && let Some(i) = ctx.config.backup.schedule_interval()
            {
                interval = i;
            }
            create::create(&ctx, opts, progress, cancel)
        });
        if matches!(result, Err(Error::Cancelled)) {
            return Ok(());
        }
        on_result(&result);
    }
}

/// Sleep `d` unless cancelled first; `false` when cancelled.
fn sleep(d: Duration, cancel: &Cancel) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if cancel.is_cancelled() {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    !cancel.is_cancelled()
}
