//! More of what real machines do: `prune` killed at random instants, eight commands at once, a
//! real filesystem running out of space (tmpfs), and files the user cannot read or write (run as
//! an unprivileged user). The last two need root to set up (mount, setpriv) and say SKIPPED
//! otherwise; CI runs as root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn archive_set(fx: &Fx) -> BTreeSet<String> {
    fx.archive_names().into_iter().collect()
}

#[test]
fn killed_prunes_never_remove_more_than_retention_says() {
    let fx = Fx::new();
    let archives = fx.archives();
    std::fs::create_dir_all(&archives).unwrap();
    // One real zip, linked under 3 000 names eight hours apart (1 000 days).
    let source = fx.tmp.path().join("one.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&source).unwrap());
        zip.start_file("events.jsonl", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, b"{}\n").unwrap();
        zip.start_file("manifest.json", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, SMALL_MANIFEST).unwrap();
        zip.finish().unwrap();
    }
    let newest: chrono::DateTime<chrono::Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
    let all: BTreeSet<String> = (0..3_000)
        .map(|i| {
            let t = newest - chrono::Duration::hours(8 * i);
            format!("{}.zip", t.format("%Y-%m-%dT%H%M%S"))
        })
        .collect();
    let relink = || {
        for name in &all {
            let p = archives.join(name);
            if !p.exists() {
                std::fs::hard_link(&source, p).unwrap();
            }
        }
    };
    relink();
    let cfg = fx.thrum().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["backup"]["retention"] = serde_json::json!({"daily": 7, "weekly": 8, "monthly": 12});
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();

    let plan = fx.json(&["prune", "--dry-run"]);
    let keep: BTreeSet<String> = plan["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| !d["reasons"].as_array().unwrap().is_empty())
        .map(|d| d["archive"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(keep.len() >= 20 && keep.len() < 40, "{}", keep.len());
    assert_eq!(archive_set(&fx), all, "a dry run changed something");

    let start = Instant::now();
    fx.cmd().arg("prune").assert().success();
    let full = start.elapsed();
    assert_eq!(archive_set(&fx), keep);

    let mut rng = Rng(0x0bad_cafe_f00d_1234);
    let mut interrupted = 0;
    let rounds = std::env::var("THRUM_BACKUP_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    for i in 0..rounds {
        relink();
        let mut child = Command::new(BIN)
            .arg("--repo")
            .arg(fx.root())
            .arg("--dir")
            .arg(&fx.backups)
            .arg("prune")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(
            rng.below(full.as_micros() as u64 * 12 / 10),
        ));
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            interrupted += 1;
        }
        let left = archive_set(&fx);
        assert!(left.is_subset(&all), "round {i}: unknown files appeared");
        let lost: Vec<_> = keep.difference(&left).collect();
        assert!(
            lost.is_empty(),
            "round {i}: kept archives removed: {lost:?}"
        );
        fx.cmd().arg("status").assert().success();
        fx.cmd().arg("prune").assert().success();
        assert_eq!(archive_set(&fx), keep, "round {i}");
    }
    eprintln!("prune kills: {interrupted} of {rounds} interrupted before completion");
}

#[test]
fn eight_simultaneous_commands_are_serialized_or_told_the_lock_is_held() {
    let fx = Fx::new();
    fx.create();
    for timeout in ["60", "0"] {
        let children: Vec<_> = (0..8)
            .map(|i| {
                let mut c = Command::new(BIN);
                c.arg("--repo")
                    .arg(fx.root())
                    .arg("--dir")
                    .arg(&fx.backups)
                    .args(["--lock-timeout", timeout, "--json"]);
                match i {
                    0 | 3 | 6 => c.args(["create", "--no-prune"]),
                    1 | 5 => c.args(["prune"]),
                    2 | 7 => c.args(["restore", "--yes"]),
                    _ => c.args(["verify", "--all"]),
                };
                c.stdout(Stdio::null()).stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        let mut codes = Vec::new();
        for c in children {
            let out = c.wait_with_output().unwrap();
            let code = out.status.code();
            if timeout == "60" {
                assert!(out.status.success(), "{}", stderr(&out));
            } else {
                assert!(
                    code == Some(0) || (code == Some(4) && stderr(&out).contains("lock")),
                    "exit {code:?}: {}",
                    stderr(&out)
                );
            }
            codes.push(code);
        }
        eprintln!("--lock-timeout {timeout}: exit codes {codes:?}");
        fx.cmd().args(["verify", "--all"]).assert().success();
        let tmp_left = std::fs::read_dir(fx.repo_dir().join(".tmp"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(tmp_left, 0);
    }
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, bytes: u64) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn dir_bytes(p: &Path) -> u64 {
    tree(p).values().map(|v| v.len() as u64).sum()
}

#[test]
fn a_really_full_filesystem_gives_a_clear_error_and_keeps_the_previous_backup() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let mut fx = Fx::new();
    // How much one backup takes, measured on the normal disk.
    fx.create();
    let snapshot = dir_bytes(&fx.current());
    std::fs::remove_dir_all(&fx.backups).unwrap();
    // Room for one snapshot and a half: the first backup fits, the second cannot (it needs a
    // new snapshot beside the old one plus the archive of the old one).
    let Some(_mount) = Mount::tmpfs(&fx.backups, snapshot * 3 / 2 + (256 << 10)) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    };
    fx.create();
    let current_before = tree(&fx.current());
    fx.ws.add_messages(3_000).unwrap();
    let out = fx.cmd().arg("create").output().unwrap();
    assert!(!out.status.success(), "create succeeded on a full disk");
    let err = stderr(&out);
    assert!(
        err.contains("No space left on device") || err.contains("not enough free space"),
        "{err}"
    );
    assert!(
        err.contains(&fx.backups.display().to_string()),
        "no path named: {err}"
    );
    assert_eq!(tree(&fx.current()), current_before, "current/ changed");
    let leftovers = std::fs::read_dir(fx.repo_dir().join(".tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "partial files left in .tmp");
    fx.cmd().arg("verify").assert().success();

    // A restore needs room for the pre-restore zip: refused or rolled back, never half done.
    let live = fx.state();
    let out = fx.cmd().args(["restore", "--yes"]).output().unwrap();
    if !out.status.success() {
        assert_eq!(fx.state(), live, "a failed restore changed the workspace");
    }
    fx.cmd().arg("status").assert().success();
    fx.cmd().arg("verify").assert().success();
}

/// Run the binary as `nobody`.
fn as_nobody(fx: &Fx, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(BIN)
        .arg("--repo")
        .arg(fx.root())
        .arg("--dir")
        .arg(&fx.backups)
        .args(args)
        .env("HOME", fx.tmp.path().join("home"))
        .env("THRUM_BACKUP_CACHE_DIR", fx.tmp.path().join("cache"))
        .env("THRUM_BACKUP_DB_WAIT", "1")
        .output()
        .unwrap()
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn permission_denied_names_the_file_and_changes_nothing() {
    if !is_root() {
        eprintln!("SKIPPED: switching to an unprivileged user needs root");
        return;
    }
    let fx = Fx::new();
    std::fs::create_dir_all(fx.tmp.path().join("home")).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(fx.tmp.path())
        .status()
        .unwrap();
    assert!(chown.success());
    for _ in 0..2 {
        let ok = as_nobody(&fx, &["create"]);
        assert!(ok.status.success(), "as nobody: {}", stderr(&ok));
    }
    let current_before = tree(&fx.current());
    let archives_before = fx.archive_names();

    let identity = fx
        .thrum()
        .join("identities")
        .join(format!("{}.json", fx.ws.agents[0]));
    let original_identity = std::fs::read(&identity).unwrap();
    let cases: Vec<(&str, PathBuf, u32, Vec<&str>)> = vec![
        (
            "an unreadable identity",
            identity.clone(),
            0o000,
            vec!["create"],
        ),
        (
            "an unreadable database",
            fx.ws.db_path.clone(),
            0o000,
            vec!["create"],
        ),
        (
            "a read-only backup directory",
            fx.repo_dir(),
            0o555,
            vec!["create"],
        ),
        (
            "a read-only archives directory",
            fx.archives(),
            0o555,
            vec!["create"],
        ),
        (
            "a read-only identities folder to restore into",
            fx.thrum().join("identities"),
            0o555,
            vec!["restore", "--yes"],
        ),
    ];
    let mut failures = Vec::new();
    for (name, path, mode, args) in cases {
        let old = std::fs::metadata(&path).unwrap().permissions();
        if name.contains("restore") {
            // Something to restore that differs from the live files.
            std::fs::write(&identity, b"{\"changed\":true}\n").unwrap();
        }
        let live_now = fx.state();
        chmod(&path, mode);
        let out = as_nobody(&fx, &args);
        std::fs::set_permissions(&path, old).unwrap();
        let err = stderr(&out);
        if out.status.success() {
            failures.push(format!("{name}: succeeded"));
        } else if !err.contains("ermission denied") && !err.contains("readonly") {
            failures.push(format!("{name}: no permission error: {err}"));
        } else if !err.contains('/') {
            failures.push(format!("{name}: no path named: {err}"));
        }
        if tree(&fx.current()) != current_before {
            failures.push(format!("{name}: current/ changed"));
        }
        if fx.state() != live_now {
            failures.push(format!("{name}: the workspace changed"));
        }
        let archives_now: Vec<String> = fx
            .archive_names()
            .into_iter()
            .filter(|n| !n.starts_with("pre-restore-"))
            .collect();
        if archives_now != archives_before {
            failures.push(format!("{name}: archives changed: {archives_now:?}"));
        }
        if name.contains("restore") {
            std::fs::write(&identity, &original_identity).unwrap();
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Everything readable again: the next backup as that user works, and nothing was lost.
    let ok = as_nobody(&fx, &["create"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let ok = as_nobody(&fx, &["verify", "--all"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
}
