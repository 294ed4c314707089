//! End-to-end tests: the real `thrum-backup` binary on real git repositories with thrum's
//! layout, a real WAL SQLite database, real zips. No mocks.

mod harness;
// The sample workspaces are the binary's (its demo and benchmark run on them): the suite
// compiles the same file, so the library ships no test code.
#[allow(dead_code, reason = "the suite uses only part of the generator")]
#[path = "../../engine/cli/src/sample.rs"]
mod sample;

mod bad_days;
mod bundles;
mod cli;
mod crash;
mod create;
mod hostile;
mod inspect;
mod plugins;
mod reliability;
mod replicas;
mod restore;
mod retention;
mod sandbox;
mod servers;
mod v0106;
mod wasm;
