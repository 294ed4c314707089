//! Kill `create` and `restore` with SIGKILL at random instants: the next command finishes or
//! rolls back the interrupted work, every earlier archive survives, `verify` passes, and a
//! restore is never a mix of two snapshots.
//!
//! CI runs a few kills; `THRUM_BACKUP_CRASH_ITERATIONS=300` runs the long version.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sample::Scale;

use crate::harness::*;

fn iterations(default: usize) -> usize {
    std::env::var("THRUM_BACKUP_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

fn spawn(fx: &Fx, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .arg("--repo")
        .arg(fx.root())
        .arg("--dir")
        .arg(&fx.backups)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn timed(fx: &Fx, args: &[&str]) -> Duration {
    let start = Instant::now();
    let status = spawn(fx, args).wait().unwrap();
    assert!(status.success());
    start.elapsed()
}

/// Put the workspace back to `live` (whose event log has `events` lines) if a restore changed
/// it, from the safety archive that restore saved.
fn back_to_live(fx: &Fx, live: &State, events: u64) {
    if fx.state() == *live {
        return;
    }
    let pre = fx
        .archive_names()
        .into_iter()
        .filter(|n| n.starts_with("pre-restore-"))
        .map(|n| fx.archives().join(n))
        .find(|p| {
            let m = thrum_backup::archive::read_manifest(p).unwrap().unwrap();
            m.counts.events == events
        })
        .expect("a pre-restore archive of the live state");
    fx.cmd()
        .arg("restore")
        .arg(&pre)
        .arg("--yes")
        .assert()
        .success();
    assert_eq!(fx.state(), *live);
}

fn archive_bytes(fx: &Fx) -> BTreeMap<String, Vec<u8>> {
    fx.archive_names()
        .into_iter()
        .map(|n| {
            let b = std::fs::read(fx.archives().join(&n)).unwrap();
            (n, b)
        })
        .collect()
}

#[test]
fn killed_creates_lose_nothing() {
    let mut fx = Fx::with_scale(Scale {
        agents: 8,
        messages: 12_000,
    });
    fx.create();
    let full = timed(&fx, &["create", "--no-prune"]);
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for i in 0..iterations(12) {
        fx.ws.add_messages(50).unwrap();
        let before = archive_bytes(&fx);
        let current_before = std::fs::read(fx.current().join("manifest.json")).unwrap();
        let mut child = spawn(&fx, &["create", "--no-prune"]);
        let at = Duration::from_micros(rng.below(full.as_micros() as u64 * 12 / 10));
        std::thread::sleep(at);
        let _ = child.kill();
        let finished = child.wait().unwrap().success();
        // Any command first recovers; then current/ verifies.
        fx.cmd().arg("status").assert().success();
        fx.cmd().arg("verify").assert().success();
        // Every archive that existed is still there, byte for byte.
        let after = archive_bytes(&fx);
        for (name, bytes) in &before {
            assert_eq!(
                after.get(name),
                Some(bytes),
                "iteration {i}: archive {name} lost or changed"
            );
        }
        // current/ is either the previous snapshot or the new one, never something else.
        let now = std::fs::read(fx.current().join("manifest.json")).unwrap();
        if now != current_before {
            assert_eq!(
                after.len(),
                before.len() + 1,
                "iteration {i}: new snapshot but no archive of the old"
            );
        }
        let _ = finished;
        // No leftovers once recovered.
        let tmp_left = std::fs::read_dir(fx.repo_dir().join(".tmp"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(tmp_left, 0, "iteration {i}: work files left in .tmp");
        fx.cmd().args(["create", "--no-prune"]).assert().success();
    }
    fx.cmd().args(["verify", "--all"]).assert().success();
}

#[test]
fn killed_restores_are_rolled_back_or_complete() {
    let mut fx = Fx::with_scale(Scale {
        agents: 8,
        messages: 6_000,
    });
    fx.create();
    let snapshot = fx.state();
    fx.ws.add_messages(500).unwrap();
    std::fs::write(fx.thrum().join("identities/extra.json"), b"{}").unwrap();
    let live = fx.state();
    assert_ne!(live, snapshot);
    let full = timed(&fx, &["restore", "--yes"]);
    let mut rng = Rng(0xfeed_beef_0bad_cafe);
    let mut outcomes = [0usize; 2];
    for i in 0..iterations(10) {
        // Start each round from the live state (restore the safety archive if needed).
        back_to_live(&fx, &live, 6_500);
        let mut child = spawn(&fx, &["restore", "--yes"]);
        std::thread::sleep(Duration::from_micros(
            rng.below(full.as_micros() as u64 * 12 / 10),
        ));
        let _ = child.kill();
        child.wait().unwrap();
        fx.cmd().arg("status").assert().success();
        let state = fx.state();
        if state == live {
            outcomes[0] += 1;
        } else if state == snapshot {
            outcomes[1] += 1;
        } else {
            panic!(
                "iteration {i}: the workspace is a mix of two snapshots\nlive: {live:?}\nsnapshot: {snapshot:?}\nnow: {state:?}\nbackup dir: {:?}",
                thrum_backup::fsx::walk_files(&fx.repo_dir()).unwrap_or_default()
            );
        }
    }
    eprintln!(
        "restore kills: {} rolled back, {} completed",
        outcomes[0], outcomes[1]
    );
}

/// Turn the sync worktree into a plain folder of its files (what an older restore left, and
/// what thrum's daemon would remove): its git link gone, git's record of it pruned.
fn make_plain(fx: &Fx) {
    let dot_git = fx.ws.sync_dir.join(".git");
    if dot_git.exists() {
        std::fs::remove_file(dot_git).unwrap();
    }
    let pruned = Command::new("git")
        .args(["worktree", "prune"])
        .current_dir(fx.root())
        .status()
        .unwrap();
    assert!(pruned.success());
}

#[test]
fn killed_restores_that_rebuild_the_sync_worktree_leave_the_old_folder_or_a_healthy_worktree() {
    let mut fx = Fx::with_scale(Scale {
        agents: 4,
        messages: 2_000,
    });
    fx.create();
    let snapshot = fx.state();
    fx.ws.add_messages(300).unwrap();
    let live = fx.state();
    make_plain(&fx);
    let full = timed(&fx, &["restore", "--yes"]);
    let healthy = |fx: &Fx| thrum_backup::gitsync::unhealthy(fx.root(), &fx.ws.sync_dir).is_none();
    assert!(healthy(&fx));
    let mut rng = Rng(0x005e_ed0f_a5c0_ffee);
    let mut outcomes = [0usize; 2];
    for i in 0..iterations(8) {
        back_to_live(&fx, &live, 2_300);
        make_plain(&fx);
        let mut child = spawn(&fx, &["restore", "--yes"]);
        std::thread::sleep(Duration::from_micros(
            rng.below(full.as_micros() as u64 * 12 / 10),
        ));
        let _ = child.kill();
        child.wait().unwrap();
        fx.cmd().arg("status").assert().success();
        let state = fx.state();
        if state == live {
            // Rolled back: the old plain folder, not a half-made worktree.
            assert!(!fx.ws.sync_dir.join(".git").exists(), "iteration {i}");
            outcomes[0] += 1;
        } else if state == snapshot {
            assert!(
                healthy(&fx),
                "iteration {i}: completed, but not a healthy worktree"
            );
            outcomes[1] += 1;
        } else {
            panic!("iteration {i}: the workspace is a mix of two snapshots");
        }
    }
    eprintln!(
        "rebuilding restore kills: {} rolled back, {} completed",
        outcomes[0], outcomes[1]
    );
}

/// Run the binary with a file-size limit (`ulimit -f`, 512-byte blocks) and SIGXFSZ ignored, so
/// writes past the limit fail with EFBIG as on a full disk.
fn limited(fx: &Fx, blocks: u32, args: &[&str]) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
        ))
        .arg(BIN)
        .arg("--repo")
        .arg(fx.root())
        .arg("--dir")
        .arg(&fx.backups)
        .args(args)
        .env("THRUM_BACKUP_CACHE_DIR", fx.tmp.path().join("cache"))
        .output()
        .unwrap()
}

#[test]
fn a_full_disk_gives_a_clear_error_and_keeps_the_previous_backup() {
    let mut fx = Fx::new();
    fx.create();
    let current_before = tree(&fx.current());
    fx.ws.add_messages(2_000).unwrap();
    fx.create();
    let current_before_2 = tree(&fx.current());
    let archives_before = archive_bytes(&fx);
    assert_ne!(current_before, current_before_2);
    fx.ws.add_messages(500).unwrap();
    let out = limited(&fx, 256, &["create"]);
    assert!(
        !out.status.success(),
        "create succeeded past the file-size limit"
    );
    let err = stderr(&out);
    assert!(err.contains("File too large") && err.contains('/'), "{err}");
    assert_eq!(tree(&fx.current()), current_before_2, "current/ changed");
    assert_eq!(archive_bytes(&fx), archives_before, "archives changed");
    let leftovers = std::fs::read_dir(fx.repo_dir().join(".tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "partial files left in .tmp");
    fx.cmd().arg("verify").assert().success();

    // Restore under the same limit: refused or rolled back, never half done.
    let live = fx.state();
    let out = limited(&fx, 256, &["restore", "--yes"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("File too large") || err.contains("disk full"),
        "{err}"
    );
    assert_eq!(fx.state(), live, "a failed restore changed the workspace");
    fx.cmd().arg("status").assert().success();
    assert_eq!(fx.state(), live);
    fx.cmd().arg("create").assert().success();
    fx.cmd().args(["verify", "--all"]).assert().success();
}

#[test]
fn interrupted_restores_roll_back_before_they_exit() {
    let mut fx = Fx::with_scale(Scale {
        agents: 8,
        messages: 6_000,
    });
    fx.create();
    let snapshot = fx.state();
    fx.ws.add_messages(500).unwrap();
    let live = fx.state();
    let full = timed(&fx, &["restore", "--yes"]);
    let pre_restores = |fx: &Fx| {
        fx.archive_names()
            .into_iter()
            .filter(|n| n.starts_with("pre-restore-"))
            .count()
    };
    let mut rng = Rng(0x0dd_ba11_5eed_cafe);
    let mut outcomes = [0usize; 2];
    for i in 0..iterations(6) {
        back_to_live(&fx, &live, 6_500);
        let before = pre_restores(&fx);
        let child = spawn(&fx, &["restore", "--yes"]);
        std::thread::sleep(Duration::from_micros(
            rng.below(full.as_micros() as u64 * 9 / 10),
        ));
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        let status = child.wait_with_output().unwrap().status;
        // Before any other command runs (no recovery yet): all or nothing already.
        let state = fx.state();
        match status.code() {
            Some(130) => {
                assert_eq!(
                    state, live,
                    "iteration {i}: interrupted but not rolled back"
                );
                assert_eq!(
                    pre_restores(&fx),
                    before,
                    "iteration {i}: a safety archive of nothing"
                );
                outcomes[0] += 1;
            }
            Some(0) => {
                assert_eq!(state, snapshot, "iteration {i}");
                outcomes[1] += 1;
            }
            // The signal came before the handlers were in place, while nothing was done yet.
            None => assert_eq!(state, live, "iteration {i}: killed before its handlers"),
            other => panic!("iteration {i}: exit {other:?}"),
        }
        assert!(
            !fx.repo_dir().join(".tmp/restore-journal.json").exists(),
            "iteration {i}: a journal was left for recovery"
        );
    }
    eprintln!(
        "interrupted restores: {} rolled back, {} completed",
        outcomes[0], outcomes[1]
    );
}

#[test]
fn interrupted_creates_drop_their_stage_before_they_exit() {
    let mut fx = Fx::with_scale(Scale {
        agents: 8,
        messages: 6_000,
    });
    fx.create();
    let full = timed(&fx, &["create", "--no-prune"]);
    let mut rng = Rng(0x0bad_c0de_5eed_0001);
    let mut outcomes = [0usize; 3];
    for i in 0..iterations(6) {
        fx.ws.add_messages(50).unwrap();
        let current = tree(&fx.current());
        let archives = archive_bytes(&fx);
        let child = spawn(&fx, &["create", "--no-prune"]);
        std::thread::sleep(Duration::from_micros(
            rng.below(full.as_micros() as u64 * 9 / 10),
        ));
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        let status = child.wait_with_output().unwrap().status;
        let tmp_left = std::fs::read_dir(fx.repo_dir().join(".tmp"))
            .map(|d| d.count())
            .unwrap_or(0);
        match status.code() {
            code @ (Some(130) | None) => {
                assert_eq!(tree(&fx.current()), current, "iteration {i}");
                assert_eq!(archive_bytes(&fx), archives, "iteration {i}");
                assert_eq!(tmp_left, 0, "iteration {i}: the stage was left behind");
                outcomes[usize::from(code.is_none())] += 1;
            }
            Some(0) => outcomes[2] += 1,
            other => panic!("iteration {i}: exit {other:?}"),
        }
        fx.cmd().arg("verify").assert().success();
    }
    eprintln!(
        "interrupted creates: {} dropped (130), {} killed before their handlers, {} completed",
        outcomes[0], outcomes[1], outcomes[2]
    );
}

#[test]
fn killed_partial_restores_are_rolled_back_or_complete() {
    let fx = Fx::with_scale(Scale {
        agents: 8,
        messages: 6_000,
    });
    fx.create();
    let ids = fx.thrum().join("identities");
    let msgs = fx.ws.sync_dir.join("messages");
    let first = |dir: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v.remove(0)
    };
    let (id, agent) = (first(&ids), first(&msgs));
    std::fs::write(ids.join(&id), b"{}").unwrap();
    std::fs::write(msgs.join(&agent), b"").unwrap();
    std::fs::write(fx.thrum().join("context/new-since.md"), b"kept\n").unwrap();
    let live = fx.state();
    let (inc_id, inc_msg) = (
        format!("config/identities/{id}"),
        format!("messages/{agent}"),
    );
    let args = ["restore", "--yes", "--include", &inc_id, &inc_msg];
    let full = timed(&fx, &args);
    let done = fx.state();
    assert!(done != live);
    // Back to the live state: a restore of the partial safety snapshot that restore saved.
    let undo = |fx: &Fx| {
        let pre = fx
            .archive_names()
            .into_iter()
            .filter(|n| n.starts_with("pre-restore-"))
            .max()
            .expect("a safety archive");
        fx.json(&["restore", &pre, "--yes"]);
    };
    undo(&fx);
    assert!(
        fx.state() == live,
        "the partial safety snapshot does not give the live state back"
    );
    let mut rng = Rng(0x5eed_0fba_5eba_1100);
    let mut outcomes = [0usize; 2];
    for i in 0..iterations(10) {
        if fx.state() != live {
            undo(&fx);
        }
        let mut child = spawn(&fx, &args);
        std::thread::sleep(Duration::from_micros(
            rng.below(full.as_micros() as u64 * 12 / 10),
        ));
        let _ = child.kill();
        child.wait().unwrap();
        fx.cmd().arg("status").assert().success();
        let state = fx.state();
        if state == live {
            outcomes[0] += 1;
        } else if state == done {
            outcomes[1] += 1;
        } else {
            panic!("iteration {i}: a killed partial restore left a mix\nnow: {state:?}");
        }
    }
    eprintln!(
        "partial restore kills: {} rolled back, {} completed",
        outcomes[0], outcomes[1]
    );
}
