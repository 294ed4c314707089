//! A hostile plugin for the engine's tests: `{"do": "..."}` in its config picks the attack.
//! Every attack must fail this plugin alone, with its reason, while the backup completes.

use std::io::Write;

use thrum_backup_plugin_sdk::{self as sdk, Context, Grant, Info, Plugin, PluginError, Summary};

struct Misbehave;

impl Plugin for Misbehave {
    fn describe() -> Info {
        sdk::info(
            "misbehave",
            "0.1.0",
            "test plugin",
            vec![Grant::Read("notes".into())],
        )
    }

    fn backup(ctx: &Context) -> Result<Summary, PluginError> {
        let config = sdk::config(ctx)?;
        let what = config.get("do").and_then(|v| v.as_str()).unwrap_or("");
        match what {
            "read-passwd" => {
                let text = std::fs::read_to_string("/etc/passwd").map_err(|e| {
                    sdk::error(sdk::ErrorCode::HostCall, format!("/etc/passwd: {e}"))
                })?;
                let mut f = sdk::OutputFile::create("passwd")?;
                f.write_all(text.as_bytes())?;
                f.finish()?;
            }
            "read-parent" => {
                let up = |p: &'static str| {
                    move |e: std::io::Error| {
                        sdk::error(sdk::ErrorCode::HostCall, format!("{p}: {e}"))
                    }
                };
                let listing = std::fs::read_dir("/repo/notes/../..")
                    .map_err(up("/repo/notes/../.."))?
                    .count();
                std::fs::read("/repo/../secret.txt").map_err(up("/repo/../secret.txt"))?;
                sdk::log(&format!("escaped: {listing}"));
            }
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    if x == 42 {
                        break;
                    }
                }
            }
            "hog" => {
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                for _ in 0..4096 {
                    blocks.push(vec![1u8; 1 << 20]);
                }
                sdk::log(&format!("allocated {}", blocks.len()));
            }
            "flood" => {
                let mut f = sdk::OutputFile::create("flood.bin")?;
                let chunk = vec![0xABu8; 1 << 20];
                for _ in 0..10 * 1024 {
                    f.write_all(&chunk)?;
                }
                f.finish()?;
            }
            "panic" => panic!("the plugin panicked on purpose"),
            "exec" => {
                // `printf` with an argv list: a `;` or `$(...)` in it is not interpreted.
                let out = sdk::exec(
                    "printf",
                    &["%s-%s", "hello", "world; $(touch /tmp/pwned)"],
                    5000,
                )?;
                let mut f = sdk::OutputFile::create("exec.txt")?;
                f.write_all(&out.stdout)?;
                f.finish()?;
            }
            "exec-shell" => {
                sdk::exec("sh", &["-c", "echo escaped"], 5000)?;
            }
            "bad-path" => {
                sdk::OutputFile::create("../../escaped.txt")?;
            }
            "absolute-path" => {
                sdk::OutputFile::create("/etc/evil")?;
            }
            _ => {
                let mut f = sdk::OutputFile::create("ok.txt")?;
                f.write_all(b"fine\n")?;
                return Ok(Summary {
                    files: 1,
                    bytes: f.finish()?,
                    notes: vec![],
                    warnings: vec![],
                });
            }
        }
        Ok(Summary::default())
    }
}

sdk::register_plugin!(Misbehave);
