//! End-to-end tests: the real `thrum-backup` binary on real git repositories with thrum's
//! layout, a real WAL SQLite database, real zips. No mocks.

mod harness;

mod bad_days;
mod bundles;
mod cli;
mod crash;
mod create;
mod hostile;
mod plugins;
mod reliability;
mod restore;
mod retention;
mod sandbox;
mod v0106;
mod wasm;
