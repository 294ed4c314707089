use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use thrum_backup::config::ShellPlugin;
use thrum_backup::plugin::presets;

use super::context;
use crate::cli::{Global, PluginAddArgs, PluginCommand};
use crate::ui::Ui;

pub fn run(g: &Global, c: PluginCommand, ui: &Ui) -> Result<ExitCode> {
    let mut ctx = context(g)?;
    match c {
        PluginCommand::Add(a) => add(&mut ctx, a, ui),
        PluginCommand::List => {
            let plugins = &ctx.config.backup.plugins;
            if ui.emit(&plugins.iter().map(|p| serde_json::json!({
                "name": p.name, "kind": "shell", "command": p.command, "include": p.include
            })).collect::<Vec<_>>()) {
                return Ok(ExitCode::SUCCESS);
            }
            if plugins.is_empty() {
                ui.line("No plugins configured (add one with `thrum-backup plugin add`).");
            }
            for p in plugins {
                ui.line(format!(
                    "{}  shell  command: {:?}  include: {}",
                    p.name,
                    p.command,
                    p.include.join(" ")
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Remove { name } => {
            if !ctx.config.remove_plugin(&name)? {
                bail!("no plugin named {name:?} (see `thrum-backup plugin list`)");
            }
            if !ui.emit(&serde_json::json!({"removed": name})) {
                ui.line(format!("Removed plugin {name}."));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn add(ctx: &mut thrum_backup::Context, a: PluginAddArgs, ui: &Ui) -> Result<ExitCode> {
    let plugin = match a.preset.as_deref() {
        Some(p) => {
            let mut plugin = presets::preset(p).ok_or_else(|| {
                anyhow!(
                    "unknown preset {p:?} (known: {})",
                    presets::NAMES.join(", ")
                )
            })?;
            if let Some(name) = a.name {
                plugin.name = name;
            }
            plugin
        }
        None => {
            let name = a
                .name
                .ok_or_else(|| anyhow!("--name is required without --preset"))?;
            if a.command.trim().is_empty() && a.include.is_empty() {
                bail!("a plugin needs --command, --include, or both");
            }
            ShellPlugin {
                name,
                command: a.command,
                include: a.include,
            }
        }
    };
    ctx.config.add_plugin(&plugin)?;
    if !ui.emit(&plugin) {
        ui.line(format!(
            "Added plugin {} (shell): command {:?}, include {}",
            plugin.name,
            plugin.command,
            plugin.include.join(" ")
        ));
    }
    Ok(ExitCode::SUCCESS)
}
