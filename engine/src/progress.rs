//! Progress reporting: the library never prints; the CLI implements [`Progress`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Receives progress of long operations. Every method has a do-nothing default.
pub trait Progress: Send + Sync {
    /// A new phase begins (`"copying message logs"`), with its total bytes if known.
    fn phase(&self, _name: &str, _total_bytes: Option<u64>) {}
    /// `bytes` more of the current phase are done.
    fn advance(&self, _bytes: u64) {}
    /// A note worth showing the user (a warning, a skipped item).
    fn note(&self, _message: &str) {}
    /// The operation is over.
    fn finish(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {}

/// A flag that asks a running operation to stop at its next safe point.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared flag (for signal handlers).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }

    /// Raise the flag.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the flag is raised.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once the flag is raised.
    pub fn check(&self) -> crate::Result<()> {
        if self.is_cancelled() {
            Err(crate::Error::Cancelled)
        } else {
            Ok(())
        }
    }
}
