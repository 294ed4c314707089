//! Built-in plugin presets: components compiled from `plugins/` by the build script and
//! embedded in the binary, so they need no file and no network.

use crate::config::{PluginEntry, PluginLimits, WasmPlugin};

/// Where this build compiled the components of `plugins/`: the presets embedded here, and the
/// examples and hostile components the end-to-end suite runs.
pub const COMPONENTS_DIR: &str = env!("THRUM_BACKUP_COMPONENTS");

/// Names of the presets, for `--help` and errors.
pub const NAMES: [&str; 2] = ["beads", "beads-rust"];

/// The embedded component of preset `name`.
pub fn component(name: &str) -> Option<&'static [u8]> {
    match name {
        "beads" => Some(include_bytes!(concat!(
            env!("THRUM_BACKUP_COMPONENTS"),
            "/beads.wasm"
        ))),
        "beads-rust" => Some(include_bytes!(concat!(
            env!("THRUM_BACKUP_COMPONENTS"),
            "/beads_rust.wasm"
        ))),
        _ => None,
    }
}

/// The config entry `plugin add --preset NAME` writes, with the grants the preset asks for.
pub fn entry(name: &str, grants: Vec<crate::config::Grant>) -> Option<PluginEntry> {
    component(name)?;
    Some(PluginEntry::Wasm(WasmPlugin {
        name: name.to_owned(),
        component: format!("preset:{name}"),
        sha256: None,
        grants,
        limits: PluginLimits::default(),
        config: serde_json::Value::Object(serde_json::Map::new()),
        bundle: None,
        allow_dangerous: false,
    }))
}
