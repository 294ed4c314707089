//! Built-in plugin presets, in thrum's shell form.

use crate::config::ShellPlugin;

/// Names of the presets, for `--help` and errors.
pub const NAMES: [&str; 2] = ["beads", "beads-rust"];

/// The preset `name`, if there is one.
///
/// - `beads` is thrum's: `bd backup --force`, collecting `.beads/backup/*`.
/// - `beads-rust` fixes thrum's, which calls a `beads` binary that does not exist: the tool
///   is `br` (crate `beads_rust`); `br sync --flush-only` refreshes `.beads/issues.jsonl`,
///   which is collected with the tool's config and metadata.
pub fn preset(name: &str) -> Option<ShellPlugin> {
    match name {
        "beads" => Some(ShellPlugin {
            name: "beads".into(),
            command: "bd backup --force".into(),
            include: vec![".beads/backup/*".into()],
        }),
        "beads-rust" => Some(ShellPlugin {
            name: "beads-rust".into(),
            command: "br sync --flush-only".into(),
            include: vec![
                ".beads/issues.jsonl".into(),
                ".beads/config.yaml".into(),
                ".beads/metadata.json".into(),
            ],
        }),
        _ => None,
    }
}
