//! # thrum-backup
//!
//! A backup engine for [thrum](https://github.com/leonletto/thrum) workspaces: the JSONL
//! message log on the `a-sync` branch, the SQLite `messages.db`, and the `.thrum/` config,
//! identity and context files. It takes complete, verifiable snapshots, archives older ones
//! as zips, rotates archives by Grandfather-Father-Son rules, and restores as one
//! transaction that either completes or leaves the workspace as it was.
//!
//! The library never prints: long operations report through [`Progress`], and every
//! operation returns a serializable report.
//!
//! ```no_run
//! use std::path::Path;
//! use thrum_backup::{Context, create, progress};
//!
//! let ctx = Context::open(Path::new("."), None)?;
//! let report = create::create(&ctx, &Default::default(), &progress::Silent, &Default::default())?;
//! println!("{} events backed up", report.manifest.counts.events);
//! # Ok::<(), thrum_backup::Error>(())
//! ```

// The library never prints (the CLI owns the terminal) and never panics on bad input.
#![warn(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

pub mod archive;
pub(crate) mod archiving;
pub mod backup_dir;
pub mod config;
pub mod context;
pub mod create;
pub mod daemon;
pub mod database;
pub mod duration;
mod error;
pub mod fsx;
pub mod gitsync;
pub(crate) mod health;
pub(crate) mod hook;
pub(crate) mod identity;
pub mod inspect;
pub(crate) mod journal;
pub(crate) mod jsonedit;
pub(crate) mod jsonl;
pub mod layout;
pub(crate) mod locate;
pub mod lock;
pub mod manifest;
pub mod pattern;
pub mod plugin;
pub(crate) mod process;
pub mod progress;
pub mod prune;
pub(crate) mod recovery;
pub mod replica;
pub mod restore;
pub mod retention;
pub(crate) mod shrink;
pub(crate) mod snapshot;
pub(crate) mod sources;
pub mod status;
pub mod thrumd;
pub mod verify;
mod zipout;

#[cfg(test)]
mod module_graph;

pub use context::Context;
pub use error::{Error, IoContext, Result};
pub use health::Protection;
pub use hook::HookReport;
pub use locate::{LocateError, Workspace};
pub use progress::{Cancel, Progress};
pub use snapshot::Grown;
