//! Finding a plugin's component: a preset built into this program, or a file inside the
//! repository (never outside it, never through a link out), checked against its pin.

use std::path::{Path, PathBuf};

use super::PluginFailure;
use crate::config::WasmPlugin;

/// The component bytes of a plugin entry: an embedded preset, or a pinned file in the repo.
pub fn component_bytes(plugin: &WasmPlugin, repo_root: &Path) -> Result<Vec<u8>, PluginFailure> {
    if let Some(name) = plugin.component.strip_prefix("preset:") {
        return crate::plugin::presets::component(name)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                PluginFailure::Invalid(format!(
                    "unknown preset {name:?} (known: {})",
                    crate::plugin::presets::NAMES.join(", ")
                ))
            });
    }
    let path = component_path(&plugin.component, repo_root)?;
    let bytes = std::fs::read(&path)
        .map_err(|e| PluginFailure::Invalid(format!("cannot read {}: {e}", path.display())))?;
    let actual = crate::fsx::sha256_hex(&bytes);
    match &plugin.sha256 {
        Some(pin) if *pin == actual => Ok(bytes),
        Some(pin) => Err(PluginFailure::Invalid(format!(
            "{} does not match its sha256 pin (expected {pin}, found {actual}): refused; \
             if you changed it on purpose, add it again with `thrum-backup plugin add --wasm`",
            path.display()
        ))),
        None => Err(PluginFailure::Invalid(format!(
            "{} has no sha256 pin: refused",
            path.display()
        ))),
    }
}

/// Resolve a component path: relative to the repository, and inside it.
pub fn component_path(component: &str, repo_root: &Path) -> Result<PathBuf, PluginFailure> {
    let p = Path::new(component);
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        repo_root.join(p)
    };
    let real = full
        .canonicalize()
        .map_err(|e| PluginFailure::Invalid(format!("component {}: {e}", full.display())))?;
    let root = repo_root
        .canonicalize()
        .unwrap_or_else(|_| repo_root.to_path_buf());
    if !real.starts_with(&root) {
        return Err(PluginFailure::Invalid(format!(
            "component {} is outside the repository: keep plugins in .thrum/plugins/ so the team shares them",
            full.display()
        )));
    }
    Ok(real)
}
