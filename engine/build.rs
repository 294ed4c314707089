//! Builds the guest components in `plugins/` for `wasm32-wasip2` and puts them in
//! `$OUT_DIR/components/`, so that the presets are embedded in the binary (`cargo build` alone
//! yields working presets, always built from the current sources) and the tests find the
//! example and hostile components. The nested build has its own target directory and the
//! plugins workspace's own lockfile (the pattern of wasmtime's test-programs).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const COMPONENTS: [&str; 6] = [
    "beads",
    "beads_rust",
    "jsonl_stats",
    "misbehave",
    "greedy",
    "future",
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
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
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
