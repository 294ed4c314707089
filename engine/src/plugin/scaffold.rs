//! `plugin new NAME [--lang rust|python|js]`: a plugin project that builds with one command.
//!
//! Each project carries its own copy of the WIT contract (this engine's version) and, for Rust,
//! of the SDK, so it needs nothing but its language's package registry: `cargo build
//! --release`, `componentize-py … componentize app`, or `npm install && npm run build`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsx;

const SDK_LIB: &str = include_str!("../../../plugin-sdk/src/lib.rs");
const SDK_JSONL: &str = include_str!("../../../plugin-sdk/src/jsonl.rs");
const SDK_TOML: &str = include_str!("../../../plugin-sdk/Cargo.toml");
const WIT: &str = include_str!("../../../wit/v0.1.0/backup.wit");
const PY_APP: &str = include_str!("../../../plugin-sdk/templates/python/app.py");
const JS_PLUGIN: &str = include_str!("../../../plugin-sdk/templates/js/plugin.js");
const JS_PACKAGE: &str = include_str!("../../../plugin-sdk/templates/js/package.json");
const JS_WORLD: &str = include_str!("../../../plugin-sdk/templates/js/wit/world.wit");
const WASI_IO: &str = include_str!("../../../plugin-sdk/templates/js/wit/deps/wasi-io/package.wit");
const WASI_CLOCKS: &str =
    include_str!("../../../plugin-sdk/templates/js/wit/deps/wasi-clocks/package.wit");
const WASI_FS: &str =
    include_str!("../../../plugin-sdk/templates/js/wit/deps/wasi-filesystem/package.wit");
const WASI_LICENSE: &str =
    include_str!("../../../plugin-sdk/templates/js/wit/deps/WASI-LICENSE.md");

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// A Rust crate using the SDK (`cargo build --release`).
    Rust,
    /// A Python module built with componentize-py.
    Python,
    /// A JavaScript module built with componentize-js.
    Js,
}

impl Lang {
    /// How to build the project, from its folder.
    pub fn build_command(self) -> &'static str {
        match self {
            Lang::Rust => "cargo build --release",
            Lang::Python => "componentize-py -d wit -w plugin componentize app -o <module>.wasm",
            Lang::Js => "npm install && npm run build",
        }
    }
}

/// The component file a project's build produces, relative to its folder.
pub fn output(name: &str, lang: Lang) -> String {
    let module = name.replace('-', "_");
    match lang {
        Lang::Rust => format!("target/wasm32-wasip2/release/{module}.wasm"),
        Lang::Python | Lang::Js => format!("{module}.wasm"),
    }
}

/// Create the plugin project `name` in `dir` (which must not exist or be empty). Returns the
/// files written.
pub fn create(dir: &Path, name: &str, lang: Lang) -> Result<Vec<String>> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(Error::Invalid(format!(
            "invalid plugin name {name:?}: use lower-case letters, digits, '-' and '_', starting with a letter"
        )));
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::Invalid(format!(
            "{} exists and is not empty",
            dir.display()
        )));
    }
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{module}}", &name.replace('-', "_"))
    };
    let files: Vec<(&str, String)> = match lang {
        Lang::Rust => vec![
            ("Cargo.toml", cargo_toml(name)),
            (
                ".cargo/config.toml",
                "[build]\ntarget = \"wasm32-wasip2\"\n".into(),
            ),
            (".gitignore", "/target\n".into()),
            ("src/lib.rs", lib_rs(name)),
            ("README.md", readme(name, lang)),
            ("sdk/Cargo.toml", SDK_TOML.into()),
            ("sdk/src/lib.rs", SDK_LIB.into()),
            ("sdk/src/jsonl.rs", SDK_JSONL.into()),
            // Where the SDK looks for it, as in this repository.
            ("wit/v0.1.0/backup.wit", WIT.into()),
        ],
        Lang::Python => vec![
            ("app.py", fill(PY_APP)),
            (".gitignore", "__pycache__/\nwit_world/\n*.wasm\n".into()),
            ("README.md", readme(name, lang)),
            ("wit/backup.wit", WIT.into()),
        ],
        Lang::Js => vec![
            ("plugin.js", fill(JS_PLUGIN)),
            ("package.json", fill(JS_PACKAGE)),
            (".gitignore", "node_modules/\n*.wasm\n".into()),
            ("README.md", readme(name, lang)),
            ("wit/world.wit", JS_WORLD.into()),
            ("wit/deps/thrum-backup/backup.wit", WIT.into()),
            ("wit/deps/wasi-io/package.wit", WASI_IO.into()),
            ("wit/deps/wasi-clocks/package.wit", WASI_CLOCKS.into()),
            ("wit/deps/wasi-filesystem/package.wit", WASI_FS.into()),
            ("wit/deps/WASI-LICENSE.md", WASI_LICENSE.into()),
        ],
    };
    for (rel, content) in &files {
        fsx::write_atomic(&dir.join(rel), content.as_bytes())?;
    }
    Ok(files.into_iter().map(|(f, _)| f.to_owned()).collect())
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
thrum-backup-plugin-sdk = {{ path = "sdk" }}

# A standalone workspace: builds on its own, wherever it lives.
[workspace]

[profile.release]
opt-level = "s"
lto = true
strip = true
panic = "abort"
"#
    )
}

fn lib_rs(name: &str) -> String {
    format!(
        r#"//! {name}: a thrum-backup plugin.
//!
//! Backs up the repository's `notes/` folder (edit `describe` and `backup` for your data).
//! Files are kept under their repository-relative paths, so the SDK's default `restore`
//! puts them back where they came from.

use thrum_backup_plugin_sdk::{{self as sdk, Context, Grant, Info, Plugin, PluginError, Summary}};

struct MyPlugin;

impl Plugin for MyPlugin {{
    fn describe() -> Info {{
        sdk::info(
            "{name}",
            env!("CARGO_PKG_VERSION"),
            "Backs up notes/",
            vec![Grant::Read("notes".into()), Grant::Write("notes".into())],
        )
    }}

    fn backup(_ctx: &Context) -> Result<Summary, PluginError> {{
        let mut summary = Summary::default();
        for file in sdk::walk("/repo/notes")? {{
            if file.extension().is_some_and(|e| e == "jsonl") {{
                // Checks every line while it copies: what is checked is what is kept.
                summary.add(sdk::copy_jsonl_to_output(&file)?.0);
            }} else {{
                summary.add(sdk::copy_to_output(&file)?);
            }}
        }}
        Ok(summary)
    }}
}}

sdk::register_plugin!(MyPlugin);
"#
    )
}

fn readme(name: &str, lang: Lang) -> String {
    let out = output(name, lang);
    let (what, setup) = match lang {
        Lang::Rust => ("Rust", "rustup target add wasm32-wasip2   # once"),
        Lang::Python => (
            "Python",
            "python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1   # once\n\
             .venv/bin/componentize-py -d wit -w plugin bindings .   # optional: wit_world/ for your editor",
        ),
        Lang::Js => ("JavaScript", "# needs Node.js 20+ and npm"),
    };
    let build = match lang {
        Lang::Python => {
            format!(".venv/bin/componentize-py -d wit -w plugin componentize app -o {out}")
        }
        other => other.build_command().to_owned(),
    };
    format!(
        "# {name}\n\nA thrum-backup plugin written in {what}. The contract is `wit/` (thrum:backup@0.1.0);\n\
         the authoring guide is plugin-sdk/README.md in the thrum-backup repository.\n\n\
         ```sh\n{setup}\n{build}\n\
         thrum-backup plugin pack {out} -o {name}-0.1.0.tbp        # add --sign KEYFILE to sign it\n\
         cd /path/to/thrum-repo && thrum-backup plugin install /path/to/{name}-0.1.0.tbp\n```\n"
    )
}
