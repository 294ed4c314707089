//! Plugin bundles end to end: pack, sign, trust, install, verify, and the team story (repo A
//! installs and commits, a clone B runs the same bytes with the same grants and refuses a
//! tampered component). Also every way a bundle is refused with nothing installed, and the
//! example plugins written in Python and JavaScript, built from source by their own
//! toolchains.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use assert_cmd::Command;
use serde_json::Value;
use zip::write::SimpleFileOptions;

use crate::harness::{BIN, stderr};
use crate::wasm::component;

/// A plain git repository with a thrum workspace: config, an identity, a context file,
/// `notes/*.jsonl` (for jsonl-stats) and `.beads/issues.jsonl` (for beads-csv), committed.
struct Repo {
    root: PathBuf,
    backups: PathBuf,
    cache: PathBuf,
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
}

impl Repo {
    fn new(base: &Path, name: &str) -> Self {
        let root = base.join(name);
        std::fs::create_dir_all(root.join(".thrum/identities")).unwrap();
        std::fs::create_dir_all(root.join(".thrum/context")).unwrap();
        std::fs::create_dir_all(root.join("notes")).unwrap();
        std::fs::create_dir_all(root.join(".beads")).unwrap();
        std::fs::write(root.join(".thrum/config.json"), "{}\n").unwrap();
        std::fs::write(
            root.join(".thrum/identities/alice.json"),
            r#"{"agent_id":"alice"}"#,
        )
        .unwrap();
        std::fs::write(root.join(".thrum/context/alice.md"), "# alice\nworking\n").unwrap();
        std::fs::write(root.join("notes/a.jsonl"), "{\"n\":1}\n{\"n\":2}\n").unwrap();
        let issues: String = (1..=25)
            .map(|i| {
                format!(
                    "{{\"id\":\"bd-{i}\",\"title\":\"issue {i}, with \\\"quotes\\\"\",\"status\":\"{}\",\"priority\":{}}}\n",
                    if i % 3 == 0 { "closed" } else { "open" },
                    i % 4
                )
            })
            .collect();
        std::fs::write(root.join(".beads/issues.jsonl"), issues).unwrap();
        git(&root, &["init", "-q", "-b", "main"]);
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-qm", "workspace"]);
        Self::at(base, root)
    }

    fn at(base: &Path, root: PathBuf) -> Self {
        let name = root.file_name().unwrap().to_string_lossy().into_owned();
        Self {
            backups: base.join(format!("backups-{name}")),
            cache: base.join("cache"),
            root,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--repo")
            .arg(&self.root)
            .arg("--dir")
            .arg(&self.backups)
            .env("THRUM_BACKUP_CACHE_DIR", &self.cache);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn ok_json(&self, args: &[&str]) -> Value {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn config(&self) -> Vec<u8> {
        std::fs::read(self.root.join(".thrum/config.json")).unwrap()
    }

    fn config_json(&self) -> Value {
        serde_json::from_slice(&self.config()).unwrap()
    }
}

/// Run the binary outside any repository (pack, keygen).
fn tool(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("THRUM_BACKUP_CACHE_DIR", cwd.join("cache"))
        .output()
        .unwrap()
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{name}.key"));
    let out = tool(
        &["--json", "plugin", "keygen", "-o", key.to_str().unwrap()],
        dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (key, v["public_key"].as_str().unwrap().to_owned())
}

fn pack(dir: &Path, wasm: &Path, key: Option<&Path>, out_name: &str) -> PathBuf {
    let out = dir.join(out_name);
    let mut args = vec![
        "plugin".to_owned(),
        "pack".into(),
        wasm.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    if let Some(k) = key {
        args.extend(["--sign".into(), k.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = tool(&args, dir);
    assert!(o.status.success(), "pack: {}", stderr(&o));
    out
}

/// The entries of a zip, in order.
fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (String::from_utf8_lossy(f.name_raw()).into_owned(), data)
        })
        .collect()
}

fn write_zip(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, data) in entries {
        zip.start_file(name.as_str(), SimpleFileOptions::default())
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Rewrite a bundle's entries with `edit`.
fn rewrite(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) {
    let mut e = entries(src);
    edit(&mut e);
    write_zip(dst, &e);
}

fn entry<'a>(e: &'a mut [(String, Vec<u8>)], name: &str) -> &'a mut Vec<u8> {
    &mut e.iter_mut().find(|(n, _)| n == name).unwrap().1
}

fn edit_manifest(e: &mut [(String, Vec<u8>)], f: impl FnOnce(&mut Value)) {
    let m = entry(e, "manifest.json");
    let mut v: Value = serde_json::from_slice(m).unwrap();
    f(&mut v);
    *m = serde_json::to_vec_pretty(&v).unwrap();
}

/// Replace every occurrence of `from` by `to` (same length) in the file's raw bytes.
fn patch_raw(path: &Path, from: &[u8], to: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut hits = 0;
    for i in 0..bytes.len().saturating_sub(from.len() - 1) {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            hits += 1;
        }
    }
    assert!(hits > 0, "pattern not found");
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_signed_bundle_installs_runs_and_verifies_and_is_removed_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "a");
    let (key, public) = keygen(tmp.path(), "alice");
    let tbp = pack(
        tmp.path(),
        &component("jsonl_stats"),
        Some(&key),
        "stats.tbp",
    );

    // Not trusted yet: refused, nothing changed.
    let before = repo.config();
    let out = repo.run(&["plugin", "install", tbp.to_str().unwrap(), "--yes"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not trust"), "{}", stderr(&out));
    assert_eq!(repo.config(), before);
    assert!(!repo.root.join(".thrum/plugins").exists());

    repo.ok_json(&["plugin", "trust", &public, "--name", "alice"]);
    let installed = repo.ok_json(&["plugin", "install", tbp.to_str().unwrap(), "--yes"]);
    assert_eq!(installed["installed"], "jsonl-stats");
    assert_eq!(installed["signer"]["status"], "trusted");
    assert_eq!(installed["signer"]["name"], "alice");
    let dir = repo.root.join(".thrum/plugins/jsonl-stats");
    let on_disk = std::fs::read(dir.join("plugin.wasm")).unwrap();
    assert_eq!(on_disk, std::fs::read(component("jsonl_stats")).unwrap());
    assert!(dir.join("manifest.json").is_file() && dir.join("signature.json").is_file());
    let cfg = repo.config_json();
    let entry = &cfg["backup"]["plugins"][0];
    assert_eq!(entry["sha256"], sha256(&on_disk));
    assert_eq!(entry["grants"], serde_json::json!(["read:notes"]));
    assert_eq!(entry["bundle"]["signed_by"], public.as_str());

    let list = repo.ok_json(&["plugin", "list"]);
    assert_eq!(list[0]["bundle"]["version"], "0.1.0", "{list}");
    assert_eq!(list[0]["bundle"]["signer"], "alice", "{list}");
    assert_eq!(list[0]["status"], "ok", "{list}");

    let v = repo.ok_json(&["plugin", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["plugins"][0]["status"], "ok");
    assert!(
        v["plugins"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("signed by alice")
    );

    let r = repo.ok_json(&["create"]);
    let results = r["manifest"]["plugin_results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "ok", "{r}");
    let report = std::fs::read_to_string(
        repo.backups
            .join("a/current/plugins/jsonl-stats/report.csv"),
    )
    .unwrap();
    assert!(report.contains("a.jsonl,2,"), "{report}");

    // Untrusting the key keeps the plugin (pinned) but verify warns.
    repo.ok_json(&["plugin", "untrust", "alice"]);
    let v = repo.ok_json(&["plugin", "verify"]);
    assert_eq!(v["plugins"][0]["status"], "warning", "{v}");
    assert!(
        v["plugins"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("no longer trusted")
    );

    repo.ok_json(&["plugin", "remove", "jsonl-stats"]);
    assert!(!dir.exists());
    assert_eq!(
        repo.config_json()["backup"]["plugins"],
        serde_json::json!([])
    );
}

#[test]
fn a_reinstall_shows_what_changed_in_grants_and_asks_again() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "a");
    let tbp = pack(tmp.path(), &component("jsonl_stats"), None, "stats.tbp");
    let first = repo.run(&[
        "plugin",
        "install",
        tbp.to_str().unwrap(),
        "--yes",
        "--allow-unsigned",
    ]);
    assert!(first.status.success(), "{}", stderr(&first));
    // The user had taken the grant away; the bundle asks for it again.
    let cfg_path = repo.root.join(".thrum/config.json");
    let mut cfg = repo.config_json();
    cfg["backup"]["plugins"][0]["grants"] = serde_json::json!(["read:.beads"]);
    cfg["backup"]["plugins"][0]["config"] = serde_json::json!({"kept": true});
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let before = repo.config();

    // Without --yes and without a terminal: shown, not confirmed, nothing changed.
    let out = repo.run(&[
        "plugin",
        "install",
        tbp.to_str().unwrap(),
        "--allow-unsigned",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("NEW grants it asks for: read:notes"), "{err}");
    assert!(
        err.contains("grants it no longer needs: read:.beads"),
        "{err}"
    );
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(repo.config(), before);

    let out = repo.run(&[
        "plugin",
        "install",
        tbp.to_str().unwrap(),
        "--allow-unsigned",
        "--yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = repo.config_json();
    assert_eq!(
        cfg["backup"]["plugins"][0]["grants"],
        serde_json::json!(["read:notes"])
    );
    assert_eq!(
        cfg["backup"]["plugins"][0]["config"],
        serde_json::json!({"kept": true})
    );
    assert_eq!(cfg["backup"]["plugins"].as_array().unwrap().len(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(repo.root.join(".thrum/plugins"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("jsonl-stats")]);
}

#[test]
fn pack_refuses_a_manifest_that_disagrees_with_the_component() {
    let tmp = tempfile::tempdir().unwrap();
    for (manifest, expect) in [
        (
            r#"{"grants": ["read:notes", "read:.git"]}"#,
            "differ from the component's",
        ),
        (r#"{"name": "other"}"#, "component says"),
        (r#"{"version": "9.9.9"}"#, "component says"),
        (r#"{"config": [1]}"#, "JSON object"),
        (r#"{"grant": []}"#, "not a bundle manifest"),
    ] {
        let m = tmp.path().join("plugin.json");
        std::fs::write(&m, manifest).unwrap();
        let out = tool(
            &[
                "plugin",
                "pack",
                component("jsonl_stats").to_str().unwrap(),
                "--manifest",
                m.to_str().unwrap(),
                "-o",
                "x.tbp",
            ],
            tmp.path(),
        );
        assert!(!out.status.success(), "{manifest}");
        assert!(
            stderr(&out).contains(expect),
            "{manifest}: {}",
            stderr(&out)
        );
        assert!(!tmp.path().join("x.tbp").exists());
    }
    // Agreeing overrides are fine; description and config are the author's.
    std::fs::write(
        tmp.path().join("plugin.json"),
        r#"{"name": "jsonl-stats", "grants": ["read:notes"], "description": "Stats", "config": {"a": 1}}"#,
    )
    .unwrap();
    std::fs::write(tmp.path().join("README.md"), "# Stats\n").unwrap();
    let out = tool(
        &[
            "--json",
            "plugin",
            "pack",
            component("jsonl_stats").to_str().unwrap(),
            "--manifest",
            "plugin.json",
            "--readme",
            "README.md",
            "-o",
            "x.tbp",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"]["description"], "Stats");
    assert_eq!(v["manifest"]["config"], serde_json::json!({"a": 1}));
    let names: Vec<String> = entries(&tmp.path().join("x.tbp"))
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(names, ["manifest.json", "plugin.wasm", "README.md"]);
}

/// Makes a bad bundle at the third path from the good (signed) and unsigned ones.
type Make = Box<dyn Fn(&Path, &Path, &Path)>;

struct Bad {
    name: &'static str,
    make: Make,
    expect: &'static str,
    allow_unsigned: bool,
}

#[test]
fn hostile_bundles_are_refused_and_nothing_is_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, alice_pub) = keygen(tmp.path(), "alice");
    let (mallory, _) = keygen(tmp.path(), "mallory");
    let good = pack(
        tmp.path(),
        &component("jsonl_stats"),
        Some(&alice),
        "good.tbp",
    );
    let by_mallory = pack(
        tmp.path(),
        &component("jsonl_stats"),
        Some(&mallory),
        "m.tbp",
    );
    let unsigned = pack(tmp.path(), &component("jsonl_stats"), None, "u.tbp");
    let greedy = std::fs::read(component("greedy")).unwrap();

    let cases: Vec<Bad> = vec![
        Bad {
            name: "a flipped byte in the component",
            make: Box::new(|good, _, dst| {
                rewrite(good, dst, |e| entry(e, "plugin.wasm")[1000] ^= 1);
            }),
            expect: "does not match its checksum",
            allow_unsigned: false,
        },
        Bad {
            name: "a flipped byte in the compressed data",
            make: Box::new(|good, _, dst| {
                let mut b = std::fs::read(good).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x55;
                std::fs::write(dst, b).unwrap();
            }),
            expect: "refused",
            allow_unsigned: false,
        },
        Bad {
            name: "a flipped byte in the signed manifest",
            make: Box::new(|good, _, dst| {
                rewrite(good, dst, |e| {
                    edit_manifest(e, |m| m["description"] = "tampered".into());
                });
            }),
            expect: "signature does not match",
            allow_unsigned: true,
        },
        Bad {
            name: "a swapped component",
            make: {
                let greedy = greedy.clone();
                Box::new(move |good, _, dst| {
                    rewrite(good, dst, |e| *entry(e, "plugin.wasm") = greedy.clone());
                })
            },
            expect: "altered or swapped",
            allow_unsigned: true,
        },
        Bad {
            name: "a swapped component with its checksum updated (unsigned)",
            make: {
                let greedy = greedy.clone();
                Box::new(move |_, unsigned, dst| {
                    rewrite(unsigned, dst, |e| {
                        *entry(e, "plugin.wasm") = greedy.clone();
                        let sha = sha256(&greedy);
                        edit_manifest(e, |m| m["files"]["plugin.wasm"] = sha.into());
                    });
                })
            },
            expect: "disagrees with the component",
            allow_unsigned: true,
        },
        Bad {
            name: "manifest grants that differ from the component's",
            make: Box::new(|_, unsigned, dst| {
                rewrite(unsigned, dst, |e| {
                    edit_manifest(e, |m| {
                        m["grants"] = serde_json::json!(["read:notes", "read:.git"])
                    });
                });
            }),
            expect: "grants",
            allow_unsigned: true,
        },
        Bad {
            name: "zip-slip entry name",
            make: Box::new(|_, unsigned, dst| {
                rewrite(unsigned, dst, |e| {
                    e.push(("../../evil.sh".into(), b"rm -rf ~".to_vec()))
                });
            }),
            expect: "escapes",
            allow_unsigned: true,
        },
        Bad {
            name: "an unexpected entry",
            make: Box::new(|_, unsigned, dst| {
                rewrite(unsigned, dst, |e| {
                    e.push(("run.sh".into(), b"echo".to_vec()))
                });
            }),
            expect: "unexpected entry",
            allow_unsigned: true,
        },
        Bad {
            name: "duplicate entries",
            make: Box::new(|_, unsigned, dst| {
                rewrite(unsigned, dst, |e| {
                    let c = entry(e, "plugin.wasm").clone();
                    e.push(("plugin.wasX".into(), c));
                });
                patch_raw(dst, b"plugin.wasX", b"plugin.wasm");
            }),
            expect: "duplicate",
            allow_unsigned: true,
        },
        Bad {
            name: "a symlink entry",
            make: Box::new(|_, unsigned, dst| {
                let e = entries(unsigned);
                let mut zip = zip::ZipWriter::new(std::fs::File::create(dst).unwrap());
                for (name, data) in &e {
                    if name == "README.md" {
                        continue;
                    }
                    zip.start_file(name.as_str(), SimpleFileOptions::default())
                        .unwrap();
                    zip.write_all(data).unwrap();
                }
                zip.add_symlink("README.md", "/etc/passwd", SimpleFileOptions::default())
                    .unwrap();
                zip.finish().unwrap();
            }),
            expect: "symbolic links",
            allow_unsigned: true,
        },
        Bad {
            name: "a manifest listing a file that is not there",
            make: Box::new(|_, unsigned, dst| {
                rewrite(unsigned, dst, |e| {
                    edit_manifest(e, |m| m["files"]["README.md"] = "00".repeat(32).into());
                });
            }),
            expect: "manifest.json lists",
            allow_unsigned: true,
        },
        Bad {
            name: "not a zip",
            make: Box::new(|_, _, dst| std::fs::write(dst, b"#!/bin/sh\necho hi\n").unwrap()),
            expect: "not a valid zip",
            allow_unsigned: true,
        },
        Bad {
            name: "over the size cap",
            make: Box::new(|_, _, dst| {
                let f = std::fs::File::create(dst).unwrap();
                f.set_len(200 << 20).unwrap(); // sparse: costs no disk
            }),
            expect: "size cap",
            allow_unsigned: true,
        },
        Bad {
            name: "unsigned, without --allow-unsigned",
            make: Box::new(|_, unsigned, dst| {
                std::fs::copy(unsigned, dst).unwrap();
            }),
            expect: "is not signed",
            allow_unsigned: false,
        },
    ];

    let repo = Repo::new(tmp.path(), "a");
    repo.ok_json(&["plugin", "trust", &alice_pub, "--name", "alice"]);
    let before = repo.config();
    let mut failures = Vec::new();
    let mut run_case = |name: &str, path: &Path, expect: &str, allow: bool| {
        let mut args = vec!["plugin", "install", path.to_str().unwrap(), "--yes"];
        if allow {
            args.push("--allow-unsigned");
        }
        let out = repo.run(&args);
        let err = stderr(&out);
        if out.status.success() {
            failures.push(format!("{name}: was installed"));
        } else if !err.contains(expect) || !err.contains("nothing was installed") {
            failures.push(format!("{name}: expected {expect:?}, got: {err}"));
        }
        if repo.config() != before {
            failures.push(format!("{name}: config.json changed"));
        }
        if repo.root.join(".thrum/plugins").exists() {
            failures.push(format!("{name}: .thrum/plugins was created"));
        }
    };
    for (i, case) in cases.iter().enumerate() {
        let path = tmp.path().join(format!("bad-{i}.tbp"));
        (case.make)(&good, &unsigned, &path);
        run_case(case.name, &path, case.expect, case.allow_unsigned);
    }
    run_case(
        "signed by an untrusted key",
        &by_mallory,
        "does not trust",
        false,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The good bundle still installs: the refusals were about the bundles.
    let out = repo.run(&["plugin", "install", good.to_str().unwrap(), "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---- Plugins in other languages, built from source by their own toolchains -------------------

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins/examples");

/// Whether a missing toolchain fails the test (CI sets this) or skips the language.
fn required() -> bool {
    std::env::var_os("THRUM_BACKUP_REQUIRE_POLYGLOT").is_some_and(|v| v == "1")
}

fn skip(lang: &str, why: &str) -> Option<PathBuf> {
    assert!(!required(), "{lang} example cannot be built: {why}");
    eprintln!("SKIPPED the {lang} example: {why} (see plugins/examples/README.md)");
    None
}

fn built_dir() -> &'static Path {
    // Under Cargo's scratch directory for integration tests (`target/tmp`), which goes with
    // `target/`: a `TempDir` held in a static is never dropped, and left ~30 MB in /tmp on
    // every run.
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("example-components");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// `plugins/examples/py-inventory` built with componentize-py (once per test run).
fn python_component() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let tool = std::env::var("THRUM_BACKUP_COMPONENTIZE_PY")
                .unwrap_or_else(|_| "componentize-py".into());
            let out = built_dir().join("inventory.wasm");
            let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/v0.1.0");
            let run = std::process::Command::new(&tool)
                .args([
                    "-d",
                    wit.to_str().unwrap(),
                    "-w",
                    "plugin",
                    "componentize",
                    "app",
                    "-o",
                ])
                .arg(&out)
                .current_dir(Path::new(EXAMPLES).join("py-inventory"))
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .output();
            match run {
                Err(e) => skip("Python", &format!("{tool}: {e}")),
                Ok(o) if !o.status.success() => {
                    skip("Python", &format!("{tool} failed: {}", stderr(&o)))
                }
                Ok(_) => Some(out),
            }
        })
        .clone()
}

/// `plugins/examples/js-beads-csv` built with componentize-js (`npm run build`, once).
fn js_component() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = Path::new(EXAMPLES).join("js-beads-csv");
            if !dir.join("node_modules/.bin/componentize-js").exists() {
                return skip(
                    "JavaScript",
                    "node_modules missing: run `npm ci` in plugins/examples/js-beads-csv",
                );
            }
            let o = std::process::Command::new("npm")
                .args(["run", "--silent", "build"])
                .current_dir(&dir)
                .output();
            match o {
                Err(e) => skip("JavaScript", &format!("npm: {e}")),
                Ok(o) if !o.status.success() => skip(
                    "JavaScript",
                    &format!("npm run build failed: {}", stderr(&o)),
                ),
                Ok(_) => {
                    let out = built_dir().join("beads-csv.wasm");
                    std::fs::copy(dir.join("beads-csv.wasm"), &out).unwrap();
                    Some(out)
                }
            }
        })
        .clone()
}

#[test]
fn team_story_install_in_a_commit_clone_run_in_b_tamper_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path(), "alice");
    // Rust (built by the engine's build script), Python and JavaScript (built here).
    let mut plugins = vec![("jsonl-stats", component("jsonl_stats"))];
    if let Some(p) = python_component() {
        plugins.push(("inventory", p));
    }
    if let Some(p) = js_component() {
        plugins.push(("beads-csv", p));
    }
    let (a, b) = share_through_git(tmp.path(), &key, &public, &plugins);
    if plugins.iter().any(|p| p.0 == "beads-csv") {
        let csv = std::fs::read_to_string(b.backups.join("b/current/plugins/beads-csv/issues.csv"))
            .unwrap();
        assert_eq!(csv.lines().count(), 26, "{csv}");
        assert!(
            csv.contains("bd-3,\"issue 3, with \"\"quotes\"\"\",closed,3"),
            "{csv}"
        );
    }
    if plugins.iter().any(|p| p.0 == "inventory") {
        let csv =
            std::fs::read_to_string(b.backups.join("b/current/plugins/inventory/inventory.csv"))
                .unwrap();
        assert!(csv.starts_with("path,bytes,lines,sha256\n"), "{csv}");
        assert!(
            csv.contains(&format!(
                "context/alice.md,16,2,{}",
                sha256(b"# alice\nworking\n")
            )),
            "{csv}"
        );
    }
    for (name, file) in [("jsonl-stats", "report.csv"), ("beads-csv", "issues.csv")] {
        if !plugins.iter().any(|p| p.0 == name) {
            continue;
        }
        let read = |repo: &Repo, n: &str| {
            std::fs::read(
                repo.backups
                    .join(format!("{n}/current/plugins/{name}/{file}")),
            )
            .unwrap()
        };
        assert_eq!(
            read(&a, "a"),
            read(&b, "b"),
            "{name} output differs between A and B"
        );
    }
    tamper_and_refuse(&b, &plugins);
}

/// The team story: repo A trusts `public`, installs each component as a bundle signed with
/// `key`, backs up, commits `.thrum/`; repo B, a clone, verifies the same plugins (same bytes,
/// same grants, signed by the trusted key) and backs up with each of them.
fn share_through_git(
    base: &Path,
    key: &Path,
    public: &str,
    plugins: &[(&str, PathBuf)],
) -> (Repo, Repo) {
    // Repo A: trust the key, install each bundle, run a backup, commit .thrum/.
    let a = Repo::new(base, "a");
    a.ok_json(&["plugin", "trust", public, "--name", "alice"]);
    for (name, wasm) in plugins {
        let tbp = pack(base, wasm, Some(key), &format!("{name}-0.1.0.tbp"));
        let r = a.ok_json(&["plugin", "install", tbp.to_str().unwrap(), "--yes"]);
        assert_eq!(r["installed"], *name);
    }
    let ra = a.ok_json(&["create"]);
    for r in ra["manifest"]["plugin_results"].as_array().unwrap() {
        assert_eq!(r["status"], "ok", "A: {r}");
    }
    git(&a.root, &["add", ".thrum"]);
    git(
        &a.root,
        &["commit", "-qm", "Install the team's backup plugins"],
    );

    // Repo B: a clone. Same config, same bytes, same grants; create runs them all.
    git(base, &["clone", "-q", a.root.to_str().unwrap(), "b"]);
    let b = Repo::at(base, base.join("b"));
    assert_eq!(
        a.config_json()["backup"]["plugins"],
        b.config_json()["backup"]["plugins"]
    );
    let v = b.ok_json(&["plugin", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    for p in v["plugins"].as_array().unwrap() {
        assert_eq!(p["status"], "ok", "{p}");
        assert!(
            p["detail"].as_str().unwrap().contains("signed by alice"),
            "{p}"
        );
    }
    let rb = b.ok_json(&["create"]);
    let results = rb["manifest"]["plugin_results"].as_array().unwrap();
    assert_eq!(results.len(), plugins.len());
    for r in results {
        assert_eq!(r["status"], "ok", "B: {r}");
    }
    let verify = b.ok_json(&["verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    (a, b)
}

/// Tampering with a committed component: B refuses that plugin and backs up the rest.
fn tamper_and_refuse(b: &Repo, plugins: &[(&str, PathBuf)]) {
    let (victim, _) = plugins.last().unwrap();
    let path = b.root.join(format!(".thrum/plugins/{victim}/plugin.wasm"));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let rb = b.ok_json(&["create"]);
    for r in rb["manifest"]["plugin_results"].as_array().unwrap() {
        if r["name"] == *victim {
            assert_eq!(r["status"], "failed", "{r}");
            assert!(
                r["error"]
                    .as_str()
                    .unwrap()
                    .contains("does not match its sha256 pin"),
                "{r}"
            );
        } else {
            assert_eq!(r["status"], "ok", "{r}");
        }
    }
    assert!(b.backups.join("b/current/manifest.json").is_file());
    let out = b.run(&["plugin", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("FAIL {victim}")));
}

#[test]
fn the_non_rust_examples_fail_cleanly_on_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "a");
    let mut ran = 0;
    if let Some(js) = js_component() {
        // A line that is not JSON: the JavaScript plugin answers invalid-data, naming the line.
        let tbp = pack(tmp.path(), &js, None, "js.tbp");
        let out = repo.run(&[
            "plugin",
            "install",
            tbp.to_str().unwrap(),
            "--yes",
            "--allow-unsigned",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::write(
            repo.root.join(".beads/issues.jsonl"),
            "{\"id\":\"x\"}\nnot json\n",
        )
        .unwrap();
        let r = repo.ok_json(&["create"]);
        let res = &r["manifest"]["plugin_results"][0];
        assert_eq!(res["status"], "failed", "{r}");
        let err = res["error"].as_str().unwrap();
        assert!(
            err.contains("invalid-data") && err.contains("line 2"),
            "{err}"
        );
        repo.ok_json(&["plugin", "remove", "beads-csv"]);
        ran += 1;
    }
    if let Some(py) = python_component() {
        // A config of the wrong type: the Python plugin answers invalid-config.
        let tbp = pack(tmp.path(), &py, None, "py.tbp");
        let out = repo.run(&[
            "plugin",
            "install",
            tbp.to_str().unwrap(),
            "--yes",
            "--allow-unsigned",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let cfg_path = repo.root.join(".thrum/config.json");
        let mut cfg = repo.config_json();
        cfg["backup"]["plugins"][0]["config"] = serde_json::json!({"skip": "var"});
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        let r = repo.ok_json(&["create"]);
        let res = &r["manifest"]["plugin_results"][0];
        assert_eq!(res["status"], "failed", "{r}");
        assert!(
            res["error"].as_str().unwrap().contains("invalid-config"),
            "{res}"
        );
        ran += 1;
    }
    if ran == 0 {
        eprintln!("SKIPPED: no JavaScript or Python toolchain");
    }
}

/// Build a project made by `plugin new` with its language's own toolchain, as its README
/// says; `None` when that toolchain is missing (reported, or fatal in CI).
fn build_scaffold(lang: &str, dir: &Path, output: &str) -> Option<PathBuf> {
    let out = match lang {
        "rust" => {
            let name = Path::new(output).file_name().unwrap();
            return Some(crate::wasm::build_rust_scaffold(dir).join(name));
        }
        "python" => {
            python_component()?;
            let tool = std::env::var("THRUM_BACKUP_COMPONENTIZE_PY")
                .unwrap_or_else(|_| "componentize-py".into());
            std::process::Command::new(tool)
                .args([
                    "-d",
                    "wit",
                    "-w",
                    "plugin",
                    "componentize",
                    "app",
                    "-o",
                    output,
                ])
                .current_dir(dir)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .output()
                .unwrap()
        }
        _ => {
            js_component()?;
            // `npm install` would fetch the same pinned packages the example has.
            std::os::unix::fs::symlink(
                Path::new(EXAMPLES).join("js-beads-csv/node_modules"),
                dir.join("node_modules"),
            )
            .unwrap();
            std::process::Command::new("npm")
                .args(["run", "--silent", "build"])
                .current_dir(dir)
                .output()
                .unwrap()
        }
    };
    assert!(out.status.success(), "{lang} build: {}", stderr(&out));
    Some(dir.join(output))
}

/// The docs' whole path, in each language: `plugin new` in an empty folder, build with the
/// language's toolchain, pack and sign, install in repo A, back up, commit `.thrum/`, clone as
/// repo B, where the same plugins run with the same grants and put `notes/` back on restore;
/// a tampered committed component is refused in B.
#[test]
fn from_an_empty_folder_in_rust_python_and_javascript_to_a_team_sharing_signed_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path(), "author");
    let mut plugins = Vec::new();
    for (lang, name) in [
        ("rust", "rs-notes"),
        ("python", "py-notes"),
        ("js", "js-notes"),
    ] {
        let out = tool(
            &["--json", "plugin", "new", name, "--lang", lang],
            tmp.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let dir = tmp.path().join(name);
        assert!(dir.join("README.md").is_file());
        if let Some(wasm) = build_scaffold(lang, &dir, v["output"].as_str().unwrap()) {
            plugins.push((name, wasm));
        }
    }
    let (a, b) = share_through_git(tmp.path(), &key, &public, &plugins);
    let cfg = b.config_json();
    for (i, (name, _)) in plugins.iter().enumerate() {
        let entry = &cfg["backup"]["plugins"][i];
        assert_eq!(entry["name"], *name);
        assert_eq!(
            entry["grants"],
            serde_json::json!(["read:notes", "write:notes"])
        );
        let copy = b
            .backups
            .join(format!("b/current/plugins/{name}/notes/a.jsonl"));
        assert_eq!(
            std::fs::read_to_string(copy).unwrap(),
            "{\"n\":1}\n{\"n\":2}\n"
        );
    }
    // B loses notes/; the restore puts it back through the plugins.
    let before = crate::harness::tree(&b.root.join("notes"));
    std::fs::remove_dir_all(b.root.join("notes")).unwrap();
    let out = b.run(&["restore", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(crate::harness::tree(&b.root.join("notes")), before);
    drop(a);
    tamper_and_refuse(&b, &plugins);
}
