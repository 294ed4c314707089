//! Plugins: extra data sources backed up into `plugins/<name>/` of a snapshot.
//!
//! Two kinds: sandboxed WebAssembly components ([`wasm`], with built-in [`presets`]) and
//! thrum's shell form ([`shell`]). A failing plugin never fails the backup: its partial output
//! is dropped and its error reported.

pub mod bundle;
pub mod presets;
pub mod scaffold;
pub mod shell;
pub mod wasm;

// The SDK (a guest crate, outside this workspace) checks JSON Lines with its own parser. It is
// plain Rust, so the host's tests compile that very file and hold it against serde_json.
#[cfg(test)]
#[path = "../../plugin-sdk/src/jsonl.rs"]
mod sdk_jsonl;
#[cfg(test)]
mod sdk_jsonl_tests;
