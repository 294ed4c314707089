use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;
use thrum_backup::config::{Grant, PluginEntry};
use thrum_backup::plugin::{bundle, manage, scaffold, wasm};

use super::context;
use crate::cli::{
    Global, PluginAddArgs, PluginCommand, PluginInstallArgs, PluginNewArgs, PluginPackArgs,
};
use crate::ui::Ui;

pub fn run(g: &Global, c: PluginCommand, ui: &Ui) -> Result<ExitCode> {
    // These work outside any workspace.
    let c = match c {
        PluginCommand::New(a) => return new(a, ui),
        PluginCommand::Pack(a) => return pack(a, ui),
        PluginCommand::Keygen { out } => return keygen(&out, ui),
        other => other,
    };
    let mut ctx = context(g)?;
    match c {
        PluginCommand::Add(a) => add(&mut ctx, a, ui),
        PluginCommand::List => list(&ctx, ui),
        PluginCommand::Remove { name } => remove(&mut ctx, &name, ui),
        PluginCommand::Install(a) => install(&mut ctx, a, ui),
        PluginCommand::Verify => verify(&ctx, ui),
        PluginCommand::Trust { key, name } => trust(&mut ctx, &key, &name, ui),
        PluginCommand::Untrust { key } => untrust(&mut ctx, &key, ui),
        PluginCommand::New(_) | PluginCommand::Pack(_) | PluginCommand::Keygen { .. } => {
            unreachable!("handled above")
        }
    }
}

fn pack(a: PluginPackArgs, ui: &Ui) -> Result<ExitCode> {
    let component = std::fs::read(&a.component)
        .with_context(|| format!("cannot read {}", a.component.display()))?;
    let overrides = match &a.manifest {
        None => bundle::PackManifest::default(),
        Some(p) => {
            let text = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_slice(&text).with_context(|| {
                format!(
                    "{}: not a bundle manifest (keys: name, version, description, grants, config)",
                    p.display()
                )
            })?
        }
    };
    let readme = a
        .readme
        .as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    let key = a
        .sign
        .as_ref()
        .map(|p| bundle::SecretKey::read(p))
        .transpose()?;
    let (bytes, manifest) = bundle::pack(&component, &overrides, readme.as_deref(), key.as_ref())
        .with_context(|| format!("cannot pack {}", a.component.display()))?;
    thrum_backup::fsx::write_atomic(&a.out, &bytes)?;
    let signed_by = key.as_ref().map(|k| k.public().to_string());
    if !ui.emit(&serde_json::json!({
        "bundle": a.out, "bytes": bytes.len(), "manifest": manifest, "signed_by": signed_by,
    })) {
        ui.line(format!(
            "Packed {} {} into {} ({})",
            manifest.name,
            manifest.version,
            a.out.display(),
            crate::ui::bytes(bytes.len() as u64)
        ));
        ui.line(format!(
            "  grants: {}",
            if manifest.grants.is_empty() {
                "none".to_owned()
            } else {
                manifest.grants.join(", ")
            }
        ));
        match signed_by {
            Some(k) => ui.line(format!("  signed by {k}")),
            None => ui.line(
                "  unsigned (installers will need --allow-unsigned; sign with --sign KEYFILE)",
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(out: &Path, ui: &Ui) -> Result<ExitCode> {
    let key = bundle::keygen(out)?;
    let public = key.public().to_string();
    if !ui.emit(&serde_json::json!({"key_file": out, "public_key": public})) {
        ui.line(format!(
            "Wrote the signing key {} (keep it secret).",
            out.display()
        ));
        ui.line(format!("Public key: {public}"));
        ui.line(format!(
            "Teammates trust it with: thrum-backup plugin trust {public} --name <you>"
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn trust(ctx: &mut thrum_backup::Context, key: &str, name: &str, ui: &Ui) -> Result<ExitCode> {
    bundle::PublicKey::parse(key)?;
    let new = ctx.config.trust_key(key, name)?;
    if !ui.emit(&serde_json::json!({"trusted": key.to_ascii_lowercase(), "name": name, "new": new}))
    {
        ui.line(format!(
            "{} {}{} (in {}).",
            if new {
                "Trusting"
            } else {
                "Already trusted; renamed"
            },
            key,
            if name.is_empty() {
                String::new()
            } else {
                format!(" as {name}")
            },
            ctx.config.path().display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn untrust(ctx: &mut thrum_backup::Context, key: &str, ui: &Ui) -> Result<ExitCode> {
    let removed = ctx.config.untrust_key(key)?;
    if removed.is_empty() {
        bail!("{key:?} is not a trusted key or name (see backup.trusted_keys in config.json)");
    }
    if !ui.emit(&serde_json::json!({"untrusted": removed})) {
        for k in &removed {
            ui.line(format!("No longer trusting {} {}.", k.key, k.name));
        }
        let signed: Vec<&str> = ctx
            .config
            .backup
            .plugins
            .iter()
            .filter_map(|p| match p {
                PluginEntry::Wasm(w)
                    if w.bundle
                        .as_ref()
                        .and_then(|b| b.signed_by.as_ref())
                        .is_some_and(|s| removed.iter().any(|k| k.key == *s)) =>
                {
                    Some(w.name.as_str())
                }
                _ => None,
            })
            .collect();
        if !signed.is_empty() {
            ui.line(format!(
                "Installed plugins signed by it stay installed (pinned): {}; `plugin verify` will warn.",
                signed.join(", ")
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn install(ctx: &mut thrum_backup::Context, a: PluginInstallArgs, ui: &Ui) -> Result<ExitCode> {
    let b = bundle::Bundle::open(&a.bundle).map_err(|e| anyhow!("{e}; nothing was installed"))?;
    let signer = b.signer(&ctx.config);
    match (&signer, a.allow_unsigned) {
        (bundle::Signer::Trusted { .. }, _) | (_, true) => {}
        (bundle::Signer::Unsigned, false) => bail!(
            "{} is not signed; nothing was installed. Install it anyway with --allow-unsigned if you trust where it came from",
            a.bundle.display()
        ),
        (bundle::Signer::Untrusted { key }, false) => bail!(
            "{} is signed by {key}, which this repository does not trust; nothing was installed. \
             Trust the key first (`thrum-backup plugin trust {key} --name WHO`) or pass --allow-unsigned",
            a.bundle.display()
        ),
    }
    let previous = ctx
        .config
        .backup
        .plugins
        .iter()
        .find(|p| p.name() == b.manifest.name)
        .cloned();
    let grants = b.grants().to_vec();
    let mut err = std::io::stderr().lock();
    if !ui.quiet {
        writeln!(err, "Bundle {}", a.bundle.display())?;
        match &signer {
            bundle::Signer::Trusted { key, name } => writeln!(
                err,
                "  signed by {} ({}), trusted",
                if name.is_empty() { "(unnamed)" } else { name },
                bundle::short_key(key)
            )?,
            bundle::Signer::Untrusted { key } => {
                writeln!(
                    err,
                    "  signed by {key}, NOT trusted here (--allow-unsigned)"
                )?;
            }
            bundle::Signer::Unsigned => writeln!(err, "  UNSIGNED (--allow-unsigned)")?,
        }
        show_replacement(&mut err, previous.as_ref(), &b.manifest, &grants)?;
    }
    drop(err);
    let allow_dangerous = confirm(ui, &b.description, &grants, a.yes, a.allow_dangerous)?;
    let entry = bundle::install(
        &ctx.workspace.repo_root,
        &mut ctx.config,
        &b,
        grants,
        allow_dangerous,
    )?;
    if !ui.emit(&serde_json::json!({
        "installed": entry.name, "version": b.manifest.version, "component": entry.component,
        "sha256": entry.sha256, "grants": entry.grants, "signer": signer,
    })) {
        ui.line(format!(
            "Installed {} {} into {} (grants: {}). Commit .thrum/ so the team runs the same plugin.",
            entry.name,
            b.manifest.version,
            Path::new(&entry.component).parent().unwrap_or(Path::new("")).display(),
            grants_text(&entry.grants)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(ctx: &thrum_backup::Context, ui: &Ui) -> Result<ExitCode> {
    let checks = bundle::verify_installed(&ctx.workspace.repo_root, &ctx.config);
    let bad = checks.iter().any(|c| c.status == "refused");
    if !ui.emit(&serde_json::json!({"ok": !bad, "plugins": checks})) {
        if checks.is_empty() {
            ui.line("No plugins configured.");
        }
        for c in &checks {
            let tag = match c.status {
                "ok" => "OK  ",
                "warning" => "WARN",
                _ => "FAIL",
            };
            ui.line(format!("{tag} {}: {}", c.name, c.detail));
        }
    }
    Ok(if bad {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn add(ctx: &mut thrum_backup::Context, a: PluginAddArgs, ui: &Ui) -> Result<ExitCode> {
    let extra: Vec<Grant> = a
        .grant
        .iter()
        .map(|g| Grant::parse(g).map_err(|m| anyhow!("--grant {m}")))
        .collect::<Result<_>>()?;
    let config = match &a.config {
        None => Value::Object(Default::default()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => bail!("--config must be a JSON object"),
            Err(e) => bail!("--config is not JSON: {e}"),
        },
    };
    let component = match (&a.preset, &a.wasm) {
        (Some(preset), _) => Some(manage::Component::Preset(preset.clone())),
        (None, Some(file)) => Some(manage::Component::File(file.clone())),
        (None, None) => None,
    };
    let entry = match component {
        Some(component) => {
            let candidate =
                manage::Candidate::new(&ctx.workspace, component, a.name.clone(), extra)?;
            let allow_dangerous = confirm(
                ui,
                &candidate.description,
                &candidate.grants,
                a.yes,
                a.allow_dangerous,
            )?;
            candidate.add(
                &ctx.workspace,
                &mut ctx.config,
                config,
                allow_dangerous,
                a.replace,
            )?
        }
        None => {
            let name = a
                .name
                .as_deref()
                .ok_or_else(|| anyhow!("--name is required without --preset or --wasm"))?;
            manage::add_shell(&mut ctx.config, name, &a.command, &a.include, a.replace)?
        }
    };
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
/// Show the grants and ask (unless `yes`). A dangerous grant ([`Grant::danger`]) is shown with
/// its warning and refused unless `allow_dangerous`; returns whether there was one.
fn confirm(
    ui: &Ui,
    d: &wasm::Description,
    grants: &[Grant],
    yes: bool,
    allow_dangerous: bool,
) -> Result<bool> {
    let dangers: Vec<String> = grants.iter().filter_map(Grant::danger).collect();
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
                Grant::Exec(p) => format!(
                    "run the program {p} (no shell; it trusts {p}'s own options and arguments)"
                ),
            };
            writeln!(err, "    {:<24} {what}", g.to_string())?;
        }
        for danger in &dangers {
            writeln!(
                err,
                "  WARNING, this grant amounts to running code: {danger}"
            )?;
        }
        if grants.is_empty() {
            writeln!(err, "    (none: it sees nothing of the repository)")?;
        }
        if !d.config_help.is_empty() {
            writeln!(err, "  config: {}", d.config_help)?;
        }
    }
    if !dangers.is_empty() && !allow_dangerous {
        bail!(
            "{}: refused; nothing changed. Pass --allow-dangerous as well if you mean it",
            dangers.join("; ")
        );
    }
    if yes {
        return Ok(!dangers.is_empty());
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
    Ok(!dangers.is_empty())
}

fn list(ctx: &thrum_backup::Context, ui: &Ui) -> Result<ExitCode> {
    let listed = manage::list(&ctx.workspace, &ctx.config);
    let rows: Vec<Value> = listed
        .iter()
        .map(|l| serde_json::to_value(l).unwrap_or(Value::Null))
        .collect();
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
            let origin = match (&r["bundle"], r["bundle"]["signer"].as_str()) {
                (Value::Null, _) => String::new(),
                (_, Some(signer)) => format!("  (bundle, signed by {signer})"),
                (_, None) => "  (bundle, unsigned)".to_owned(),
            };
            ui.line(format!(
                "{}  wasm {}  {}{origin}  grants: {}  [{}]",
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
    if !manage::remove(&ctx.workspace, &mut ctx.config, name)? {
        bail!("no plugin named {name:?} (see `thrum-backup plugin list`)");
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
    let lang = match a.lang.as_str() {
        "python" => scaffold::Lang::Python,
        "js" => scaffold::Lang::Js,
        _ => scaffold::Lang::Rust,
    };
    let files = scaffold::create(&dir, &a.name, lang)?;
    let output = scaffold::output(&a.name, lang);
    if !ui.emit(&serde_json::json!({"path": dir, "files": files, "output": output})) {
        ui.line(format!(
            "Created the {} plugin {} in {}",
            a.lang,
            a.name,
            dir.display()
        ));
        let build = match lang {
            scaffold::Lang::Python => format!(
                "componentize-py -d wit -w plugin componentize app -o {output}   (pip install componentize-py)"
            ),
            other => other.build_command().to_owned(),
        };
        ui.line(format!("Build it:   cd {} && {build}", dir.display()));
        ui.line(format!(
            "Pack it:    thrum-backup plugin pack {}/{output} -o {}-0.1.0.tbp",
            dir.display(),
            a.name
        ));
        ui.line(format!(
            "Install it: thrum-backup plugin install {}-0.1.0.tbp   (in the repository)",
            a.name
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// What installing `new` changes of the plugin of the same name, `previous`: its version and
/// its grants. A shell plugin of that name is in the way.
fn show_replacement(
    err: &mut impl Write,
    previous: Option<&PluginEntry>,
    new: &bundle::BundleManifest,
    grants: &[Grant],
) -> Result<()> {
    match previous {
        Some(PluginEntry::Wasm(old)) => {
            let old_version = old
                .bundle
                .as_ref()
                .map_or("(not from a bundle)", |r| r.version.as_str());
            writeln!(
                err,
                "  replaces the installed {} {old_version} with {}",
                old.name, new.version
            )?;
            let added: Vec<String> = grants
                .iter()
                .filter(|g| !old.grants.contains(g))
                .map(ToString::to_string)
                .collect();
            let dropped: Vec<String> = old
                .grants
                .iter()
                .filter(|g| !grants.contains(g))
                .map(ToString::to_string)
                .collect();
            if added.is_empty() && dropped.is_empty() {
                writeln!(err, "  grants unchanged")?;
            } else {
                if !added.is_empty() {
                    writeln!(err, "  NEW grants it asks for: {}", added.join(", "))?;
                }
                if !dropped.is_empty() {
                    writeln!(err, "  grants it no longer needs: {}", dropped.join(", "))?;
                }
            }
        }
        Some(PluginEntry::Shell(_)) => bail!(
            "a shell plugin named {:?} exists; remove it first (`thrum-backup plugin remove {0}`)",
            new.name
        ),
        None => {}
    }
    Ok(())
}
