//! Builds the guest components in `plugins/` for `wasm32-wasip2` and puts them in
//! `$OUT_DIR/components/`, so that the presets are embedded in the binary (`cargo build` alone
//! yields working presets, always built from the current sources) and the tests find the
//! example and hostile components. The nested build has its own target directory and the
//! plugins workspace's own lockfile (the pattern of wasmtime's test-programs).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const COMPONENTS: [&str; 7] = [
    "beads",
    "beads_rust",
    "jsonl_stats",
    "misbehave",
    "greedy",
    "future",
    "grants",
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    let plugins = root.join("plugins");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    for watched in [
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "plugins/.cargo",
        "plugins/beads",
        "plugins/beads-rust",
        "plugins/examples",
        "plugins/hostile",
        "plugin-sdk/src",
        "plugin-sdk/Cargo.toml",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let target_dir = out.join("plugins-target");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("rust-toolchain.toml").display()
    );
    // Guests are built with the toolchain pinned in rust-toolchain.toml, whatever toolchain
    // builds the host (a nightly for fuzzing, say): the embedded presets are the same bytes
    // either way, and only the pinned toolchain needs the wasm32-wasip2 target. `rustup run`
    // names the toolchain explicitly: a plain `cargo` on PATH may be the outer toolchain's own.
    let pinned = std::fs::read_to_string(root.join("rust-toolchain.toml"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let v = l.trim().strip_prefix("channel")?;
                Some(
                    v.trim_start_matches([' ', '='])
                        .trim()
                        .trim_matches('"')
                        .to_owned(),
                )
            })
        });
    let under_rustup = env::var_os("RUSTUP_TOOLCHAIN").is_some();
    let mut cmd = match pinned.filter(|_| under_rustup) {
        Some(channel) => {
            let mut c = Command::new("rustup");
            c.args(["run", &channel, "cargo"]);
            for var in ["RUSTC", "RUSTDOC", "CARGO", "RUSTUP_TOOLCHAIN"] {
                c.env_remove(var);
            }
            c
        }
        None => Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into())),
    };
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
        ])
        .env("CARGO_TARGET_DIR", &target_dir);
    // Flags meant for the host build must not leak into the guests'.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_LTO",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo for the plugin components");
    if !status.success() {
        panic!(
            "building the plugin components in {} failed. Is the wasm32-wasip2 target installed? \
             Run: rustup target add wasm32-wasip2",
            plugins.display()
        );
    }
    let dest = out.join("components");
    std::fs::create_dir_all(&dest).expect("create components dir");
    for name in COMPONENTS {
        let built = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{name}.wasm"));
        std::fs::copy(&built, dest.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("{}: {e}", built.display()));
    }
    println!("cargo:rustc-env=THRUM_BACKUP_COMPONENTS={}", dest.display());
}
