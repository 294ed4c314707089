use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use thrum_backup::config::{Grant, PluginEntry, PluginLimits, ShellPlugin, WasmPlugin};
use thrum_backup::plugin::{presets, scaffold, wasm};

use super::context;
use crate::cli::{Global, PluginAddArgs, PluginCommand, PluginNewArgs};
use crate::ui::Ui;

pub fn run(g: &Global, c: PluginCommand, ui: &Ui) -> Result<ExitCode> {
    if let PluginCommand::New(a) = c {
        return new(a, ui);
    }
    let mut ctx = context(g)?;
    match c {
        PluginCommand::Add(a) => add(&mut ctx, a, ui),
        PluginCommand::List => list(&ctx, ui),
        PluginCommand::Remove { name } => remove(&mut ctx, &name, ui),
        PluginCommand::New(_) => unreachable!("handled above"),
    }
}

fn setting(ctx: &thrum_backup::Context) -> wasm::Setting<'_> {
    wasm::Setting {
        repo_root: &ctx.workspace.repo_root,
        repo_name: &ctx.workspace.repo_name,
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

fn add(ctx: &mut thrum_backup::Context, a: PluginAddArgs, ui: &Ui) -> Result<ExitCode> {
    let extra: Vec<Grant> = a
        .grant
        .iter()
        .map(|g| Grant::parse(g).map_err(|m| anyhow!("--grant {m}")))
        .collect::<Result<_>>()?;
    let config = match &a.config {
        None => serde_json::Value::Object(Default::default()),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) => bail!("--config must be a JSON object"),
            Err(e) => bail!("--config is not JSON: {e}"),
        },
    };
    let entry = if let Some(preset) = &a.preset {
        let bytes = presets::component(preset).ok_or_else(|| anyhow!("unknown preset {preset}"))?;
        let loaded = wasm::load(bytes)?;
        let d = wasm::describe(&loaded, &setting(ctx))?;
        let mut grants = d.grants.clone();
        grants.extend(extra);
        grants.dedup();
        confirm(ui, &d, &grants, a.yes)?;
        PluginEntry::Wasm(WasmPlugin {
            name: a.name.clone().unwrap_or(d.name),
            component: format!("preset:{preset}"),
            sha256: None,
            grants,
            limits: PluginLimits::default(),
            config,
        })
    } else if let Some(file) = &a.wasm {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let loaded =
            wasm::load(&bytes).with_context(|| format!("{} was refused", file.display()))?;
        let d = wasm::describe(&loaded, &setting(ctx))
            .with_context(|| format!("{} was refused", file.display()))?;
        let name = a.name.clone().unwrap_or_else(|| d.name.clone());
        let mut grants = d.grants.clone();
        grants.extend(extra);
        grants.dedup();
        confirm(ui, &d, &grants, a.yes)?;
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let component = place_component(ctx, file, &name, &bytes)?;
        PluginEntry::Wasm(WasmPlugin {
            name,
            component,
            sha256: Some(sha),
            grants,
            limits: PluginLimits::default(),
            config,
        })
    } else {
        let name = a
            .name
            .clone()
            .ok_or_else(|| anyhow!("--name is required without --preset or --wasm"))?;
        if a.command.trim().is_empty() && a.include.is_empty() {
            bail!("a shell plugin needs --command, --include, or both");
        }
        PluginEntry::Shell(ShellPlugin {
            name,
            command: a.command.clone(),
            include: a.include.clone(),
        })
    };
    ctx.config.add_plugin(&entry, a.replace)?;
    if !ui.emit(&entry) {
        match &entry {
            PluginEntry::Shell(p) => ui.line(format!(
                "Added plugin {} (shell): command {:?}, include {}",
                p.name,
                p.command,
                p.include.join(" ")
            )),
            PluginEntry::Wasm(p) => ui.line(format!(
                "Added plugin {} (wasm, {}), grants: {}",
                p.name,
                p.component,
                grants_text(&p.grants)
            )),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn grants_text(g: &[Grant]) -> String {
    if g.is_empty() {
        "none".into()
    } else {
        g.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Show what the component is and asks for; ask to confirm unless `yes`.
fn confirm(ui: &Ui, d: &wasm::Description, grants: &[Grant], yes: bool) -> Result<()> {
    let mut err = std::io::stderr().lock();
    if !ui.quiet {
        writeln!(
            err,
            "Plugin {} {} (contract thrum:backup@{})",
            d.name, d.version, d.contract
        )?;
        writeln!(err, "  {}", d.description)?;
        writeln!(err, "  grants it will get:")?;
        for g in grants {
            let what = match g {
                Grant::Read(p) => format!("read the repository's {p}/ (read-only)"),
                Grant::Write(p) => format!("put files back under {p}/ on restore"),
                Grant::Exec(p) => format!("run the program {p} (no shell)"),
            };
            writeln!(err, "    {:<24} {what}", g.to_string())?;
        }
        if grants.is_empty() {
            writeln!(err, "    (none: it sees nothing of the repository)")?;
        }
        if !d.config_help.is_empty() {
            writeln!(err, "  config: {}", d.config_help)?;
        }
    }
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("adding a plugin grants it access: pass --yes to confirm the grants above");
    }
    write!(err, "Grant these and add the plugin? [y/N] ")?;
    err.flush()?;
    drop(err);
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("not added; nothing changed");
    }
    Ok(())
}

/// Keep the component inside the repository (so it is committed and shared): a file outside
/// goes to `.thrum/plugins/<name>/plugin.wasm`. Returns the repo-relative path.
fn place_component(
    ctx: &thrum_backup::Context,
    file: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<String> {
    let root = ctx.workspace.repo_root.canonicalize()?;
    let real = file.canonicalize()?;
    if let Ok(rel) = real.strip_prefix(&root) {
        return Ok(rel.to_string_lossy().into_owned());
    }
    let dest = ctx
        .workspace
        .thrum_dir
        .join("plugins")
        .join(name)
        .join("plugin.wasm");
    thrum_backup::fsx::write_atomic(&dest, bytes)?;
    let dest = dest.canonicalize()?;
    Ok(dest
        .strip_prefix(&root)
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_else(|_| dest.display().to_string()))
}

fn list(ctx: &thrum_backup::Context, ui: &Ui) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for p in &ctx.config.backup.plugins {
        let row = match p {
            PluginEntry::Shell(s) => serde_json::json!({
                "name": s.name, "kind": "shell", "command": s.command, "include": s.include,
            }),
            PluginEntry::Wasm(w) => {
                let described = wasm::component_bytes(w, &ctx.workspace.repo_root)
                    .and_then(|b| wasm::load(&b))
                    .and_then(|l| wasm::describe(&l, &setting(ctx)));
                let (version, status) = match &described {
                    Ok(d) => {
                        let missing = wasm::missing_grants(&d.grants, &w.grants);
                        (
                            d.version.clone(),
                            if missing.is_empty() {
                                "ok".to_owned()
                            } else {
                                format!("needs {}", missing.join(", "))
                            },
                        )
                    }
                    Err(e) => (String::new(), format!("refused: {e}")),
                };
                serde_json::json!({
                    "name": w.name, "kind": "wasm", "component": w.component, "version": version,
                    "grants": w.grants, "sha256": w.sha256, "status": status,
                })
            }
        };
        rows.push(row);
    }
    if ui.emit(&rows) {
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        ui.line("No plugins configured (add one with `thrum-backup plugin add`).");
    }
    for r in &rows {
        if r["kind"] == "shell" {
            ui.line(format!(
                "{}  shell  command: {}  include: {}",
                r["name"].as_str().unwrap_or(""),
                r["command"],
                r["include"]
            ));
        } else {
            let grants: Vec<String> =
                serde_json::from_value(r["grants"].clone()).unwrap_or_default();
            ui.line(format!(
                "{}  wasm {}  {}  grants: {}  [{}]",
                r["name"].as_str().unwrap_or(""),
                r["version"].as_str().unwrap_or(""),
                r["component"].as_str().unwrap_or(""),
                if grants.is_empty() {
                    "none".into()
                } else {
                    grants.join(", ")
                },
                r["status"].as_str().unwrap_or("")
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(ctx: &mut thrum_backup::Context, name: &str, ui: &Ui) -> Result<ExitCode> {
    let entry = ctx
        .config
        .backup
        .plugins
        .iter()
        .find(|p| p.name() == name)
        .cloned();
    if !ctx.config.remove_plugin(name)? {
        bail!("no plugin named {name:?} (see `thrum-backup plugin list`)");
    }
    if let Some(PluginEntry::Wasm(w)) = entry {
        let own = Path::new(".thrum/plugins").join(name);
        if Path::new(&w.component).starts_with(&own) {
            thrum_backup::fsx::remove_any(&ctx.workspace.repo_root.join(&own))?;
        }
    }
    if !ui.emit(&serde_json::json!({"removed": name})) {
        ui.line(format!("Removed plugin {name}."));
    }
    Ok(ExitCode::SUCCESS)
}

fn new(a: PluginNewArgs, ui: &Ui) -> Result<ExitCode> {
    let dir = a
        .path
        .clone()
        .unwrap_or_else(|| Path::new(&a.name).to_path_buf());
    let files = scaffold::create(&dir, &a.name)?;
    if !ui.emit(&serde_json::json!({"path": dir, "files": files})) {
        ui.line(format!(
            "Created plugin crate {} in {}",
            a.name,
            dir.display()
        ));
        ui.line(format!(
            "Build it:   cd {} && cargo build --release",
            dir.display()
        ));
        ui.line(format!(
            "Add it:     thrum-backup plugin add --wasm {}/target/wasm32-wasip2/release/{}.wasm",
            dir.display(),
            a.name.replace('-', "_")
        ));
    }
    Ok(ExitCode::SUCCESS)
}
