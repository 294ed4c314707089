//! Plugins: extra data sources backed up into `plugins/<name>/` of a snapshot.
//!
//! Today the engine runs thrum's shell form (`{"name", "command", "include"}`); a failing
//! plugin never fails the backup: its partial output is dropped and its error reported.

pub mod presets;
pub mod scaffold;
pub mod shell;
pub mod wasm;
