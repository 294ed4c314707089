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
