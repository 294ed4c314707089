//! Plugins: extra data sources backed up into `plugins/<name>/` of a snapshot.
//!
//! Two kinds: sandboxed WebAssembly components ([`wasm`], with built-in [`presets`]) and
//! thrum's shell form ([`shell`]). A failing plugin never fails the backup: its partial output
//! is dropped and its error reported.

pub mod bundle;
pub mod presets;
pub mod runner;
pub mod scaffold;
pub mod shell;
pub mod wasm;

// The SDK (a guest crate, outside this workspace) checks JSON Lines with the parser the engine
// uses too (`crate::jsonl`). It is plain Rust, so the host's tests hold it against serde_json.
#[cfg(test)]
use crate::jsonl::rules as sdk_jsonl;
#[cfg(test)]
mod sdk_jsonl_tests;
