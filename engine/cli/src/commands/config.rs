use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::context;
use crate::cli::Global;
use crate::ui::Ui;

pub fn run(g: &Global, ui: &Ui) -> Result<ExitCode> {
    let ctx = context(g)?;
    let b = &ctx.config.backup;
    for w in &ctx.config.warnings {
        ui.warn(format!("{}: {w}", ctx.config.path().display()));
    }
    let value = as_json(&ctx);
    if ui.emit(&value) {
        return Ok(ExitCode::SUCCESS);
    }
    print_paths(ui, &ctx);
    print_settings(ui, b);
    Ok(ExitCode::SUCCESS)
}

/// The settings in force and where each came from, as `--json` gives them.
fn as_json(ctx: &thrum_backup::Context) -> serde_json::Value {
    let b = &ctx.config.backup;
    let r = b.retention();
    json!({
        "config_file": ctx.config.path(),
        "repo_root": ctx.workspace.repo_root,
        "repo_name": ctx.workspace.repo_name,
        "thrum_dir": ctx.workspace.thrum_dir,
        "sync_dir": ctx.workspace.sync_dir,
        "sync_dir_exists": ctx.workspace.sync_dir.is_dir(),
        "local_only": ctx.config.local_only,
        "database": ctx.workspace.db_path,
        "dir": {"value": ctx.backup.root().parent(), "source": ctx.dir_source},
        "schedule": {"value": b.schedule, "default": b.schedule.is_none()},
        "retention": {
            "daily": {"value": r.daily, "default": b.daily.is_none()},
            "weekly": {"value": r.weekly, "default": b.weekly.is_none()},
            "monthly": {"value": r.monthly, "default": b.monthly.is_none()},
            "last": {"value": r.last, "default": b.last.is_none()},
        },
        "plugins": b.plugins,
        "post_backup": b.post_backup,
        "replicas": b.replicas,
        "warnings": ctx.config.warnings,
    })
}

/// Where the workspace's parts and the backups are.
fn print_paths(ui: &Ui, ctx: &thrum_backup::Context) {
    ui.line(format!("Config file:  {}", ctx.config.path().display()));
    ui.line(format!(
        "Repository:   {} ({})",
        ctx.workspace.repo_root.display(),
        ctx.workspace.repo_name
    ));
    ui.line(format!(
        "Thrum dir:    {}",
        ctx.workspace.thrum_dir.display()
    ));
    ui.line(format!(
        "Message log:  {}{}",
        if ctx.config.local_only {
            ctx.workspace.thrum_dir.display().to_string()
        } else {
            ctx.workspace.sync_dir.display().to_string()
        },
        if ctx.config.local_only {
            "  (local-only mode)"
        } else if ctx.workspace.sync_dir.is_dir() {
            ""
        } else {
            "  (missing)"
        }
    ));
    ui.line(format!("Database:     {}", ctx.workspace.db_path.display()));
    ui.line(format!(
        "backup.dir:   {}{}",
        ctx.backup
            .root()
            .parent()
            .unwrap_or(ctx.backup.root())
            .display(),
        match ctx.dir_source {
            "default" => "  (default)",
            "--dir" => "  (from --dir)",
            _ => "",
        }
    ));
}

/// The `backup` settings, defaults marked.
fn print_settings(ui: &Ui, b: &thrum_backup::config::BackupConfig) {
    let r = b.retention();
    let mark = |is_default: bool| if is_default { "  (default)" } else { "" };
    let tier = |n: i64| match n {
        -1 => "forever".to_owned(),
        0 => "off".to_owned(),
        n => n.to_string(),
    };
    ui.line(format!(
        "schedule:     {}{}",
        b.schedule.as_deref().unwrap_or("off"),
        mark(b.schedule.is_none())
    ));
    ui.line("retention:");
    ui.line(format!(
        "  daily:      {}{}",
        tier(r.daily),
        mark(b.daily.is_none())
    ));
    ui.line(format!(
        "  weekly:     {}{}",
        tier(r.weekly),
        mark(b.weekly.is_none())
    ));
    ui.line(format!(
        "  monthly:    {}{}",
        tier(r.monthly),
        mark(b.monthly.is_none())
    ));
    ui.line(format!(
        "  last:       {}{}",
        tier(r.last),
        mark(b.last.is_none())
    ));
    if b.plugins.is_empty() {
        ui.line("plugins:      none");
    } else {
        ui.line("plugins:");
        for p in &b.plugins {
            match p {
                thrum_backup::config::PluginEntry::Shell(s) => ui.line(format!(
                    "  {} (shell): {:?}, include {:?}",
                    s.name, s.command, s.include
                )),
                thrum_backup::config::PluginEntry::Wasm(w) => ui.line(format!(
                    "  {} (wasm): {}, grants {}",
                    w.name,
                    w.component,
                    w.grants
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    }
    ui.line(format!(
        "post_backup:  {}",
        b.post_backup.as_deref().unwrap_or("none")
    ));
    if b.replicas.is_empty() {
        ui.line("replicas:     none (thrum-backup replica add)");
    }
    for r in &b.replicas {
        let password = match (&r.password_file, &r.password_command) {
            (Some(f), _) => format!("password file {f}"),
            (None, Some(c)) => format!("password command {c:?}"),
            (None, None) => {
                "password from THRUM_BACKUP_PASSWORD(_FILE) or RESTIC_PASSWORD(_FILE)".to_owned()
            }
        };
        let retention = r.retention.map_or_else(
            || "the local retention".to_owned(),
            |p| {
                format!(
                    "daily {} weekly {} monthly {} last {}",
                    p.daily, p.weekly, p.monthly, p.last
                )
            },
        );
        ui.line(format!(
            "replica {}:  {}  ({password}; {retention}; timeout {} s)",
            r.name,
            r.repository,
            r.timeout().as_secs()
        ));
    }
}
