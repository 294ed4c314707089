//! rustic's progress reports, relayed to ours: rustic wants a `'static` handle it may call
//! from any of its threads; ours is borrowed for one call. So the repository is opened with a
//! [`Relay`] that sends what rustic reports down a channel while a call runs (and drops it
//! otherwise), and [`Relay::run`] forwards it to the caller's [`Progress`] on the calling
//! thread while the call works on a thread of its own.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rustic_core::{ProgressBars, ProgressType, RusticProgress};

use crate::progress::Progress;

enum Event {
    Phase(String, u64),
    Advance(u64),
}

/// What rustic is given as its progress bars.
#[derive(Debug, Clone, Default)]
pub(super) struct Relay(Arc<Mutex<Option<mpsc::Sender<Event>>>>);

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("progress event")
    }
}

impl Relay {
    fn send(&self, e: Event) {
        if let Ok(guard) = self.0.lock()
            && let Some(tx) = guard.as_ref()
        {
            let _ = tx.send(e);
        }
    }

    /// Run `f` on a thread of its own, forwarding rustic's byte counts to `progress`
    /// meanwhile. A panic of `f` is passed on.
    pub(super) fn run<T: Send>(&self, progress: &dyn Progress, f: impl FnOnce() -> T + Send) -> T {
        let (tx, rx) = mpsc::channel();
        if let Ok(mut g) = self.0.lock() {
            *g = Some(tx);
        }
        let out = std::thread::scope(|s| {
            let worker = s.spawn(f);
            loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Event::Phase(name, len)) => progress.phase(&name, Some(len)),
                    Ok(Event::Advance(n)) => progress.advance(n),
                    Err(mpsc::RecvTimeoutError::Timeout) if !worker.is_finished() => {}
                    Err(_) => break,
                }
                if worker.is_finished() {
                    break;
                }
            }
            worker.join()
        });
        if let Ok(mut g) = self.0.lock() {
            *g = None;
        }
        out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl ProgressBars for Relay {
    fn progress(&self, kind: ProgressType, prefix: &str) -> rustic_core::Progress {
        rustic_core::Progress::new(Bar {
            relay: self.clone(),
            prefix: prefix.trim().trim_end_matches("...").to_owned(),
            bytes: matches!(kind, ProgressType::Bytes),
        })
    }
}

/// One of rustic's bars: only byte counts are relayed (counters and spinners say little).
#[derive(Debug)]
struct Bar {
    relay: Relay,
    prefix: String,
    bytes: bool,
}

impl RusticProgress for Bar {
    fn is_hidden(&self) -> bool {
        !self.bytes
    }
    fn set_length(&self, len: u64) {
        if self.bytes {
            self.relay.send(Event::Phase(self.prefix.clone(), len));
        }
    }
    fn set_title(&self, _title: &str) {}
    fn inc(&self, n: u64) {
        if self.bytes {
            self.relay.send(Event::Advance(n));
        }
    }
    fn finish(&self) {}
}
