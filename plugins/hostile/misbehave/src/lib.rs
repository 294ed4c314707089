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
            // Blocking host calls: the deadline only stops running WebAssembly.
            "sleep" => std::thread::sleep(std::time::Duration::from_secs(60)),
            "fifo" => {
                let text = std::fs::read("/repo/notes/fifo")
                    .map_err(|e| sdk::error(sdk::ErrorCode::HostCall, format!("fifo: {e}")))?;
                sdk::log(&format!("read {}", text.len()));
            }
            // The environment of a program it runs: nothing of the engine's.
            "printenv" => {
                let out = sdk::exec("printenv", &[], 5000)?;
                let mut f = sdk::OutputFile::create("env.txt")?;
                f.write_all(&out.stdout)?;
                f.finish()?;
            }
            // A descendant that leaves the process group and holds stderr open.
            "setsid" => {
                sdk::exec(
                    "setsid",
                    &["sh", "-c", "exec 2>&1; sleep 4; touch notes/survived"],
                    1000,
                )?;
            }
            "many-files" => {
                for i in 0..100_000 {
                    let mut f = sdk::OutputFile::create(&format!("f/{i}"))?;
                    f.write_all(b"x")?;
                    f.finish()?;
                }
            }
            "open-files" => {
                let mut open = Vec::new();
                for i in 0..20_000 {
                    open.push(sdk::OutputFile::create(&format!("open/{i}"))?);
                }
                sdk::log(&format!("held {}", open.len()));
            }
            "many-grants" => {}
            "stack" => {
                fn deeper(n: u64) -> u64 {
                    if n == 0 {
                        0
                    } else {
                        1 + deeper(std::hint::black_box(n - 1))
                    }
                }
                sdk::log(&format!("{}", deeper(std::hint::black_box(u64::MAX))));
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

    /// `{"restore": ["path", ...]}` in its config: put those files back (each holding its own
    /// name), as a plugin whose write grant covers them may; else the SDK's default.
    fn restore(ctx: &Context) -> Result<Summary, PluginError> {
        let config = sdk::config(ctx)?;
        let Some(paths) = config.get("restore").and_then(|v| v.as_array()) else {
            let mut summary = Summary::default();
            for file in sdk::walk("/backup")? {
                let rel = file.strip_prefix("/backup").unwrap_or(&file);
                summary.add(sdk::copy_file(&file, &rel.to_string_lossy())?);
            }
            return Ok(summary);
        };
        let mut files = 0;
        for p in paths.iter().filter_map(|p| p.as_str()) {
            let mut f = sdk::OutputFile::create(p)?;
            f.write_all(p.as_bytes())?;
            f.finish()?;
            files += 1;
        }
        Ok(Summary {
            files,
            ..Summary::default()
        })
    }
}

sdk::register_plugin!(Misbehave);
