//! Running user commands (`sh -c`) with a deadline that kills the whole process group, and a
//! bounded tail of stderr for the error report.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How much of stderr is kept for a report.
pub const STDERR_TAIL: usize = 4096;

/// How a command ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Whether our deadline killed it.
    pub timed_out: bool,
    /// The last bytes of its stderr.
    pub stderr_tail: String,
    /// The first bytes of its stdout, when captured.
    pub stdout_head: Vec<u8>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Outcome {
    /// Whether it exited 0 in time.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// A one-line description of a failure.
    pub fn describe_failure(&self, timeout: Duration) -> String {
        let mut msg = if self.timed_out {
            format!(
                "timed out after {}s (process group killed)",
                timeout.as_secs()
            )
        } else {
            match self.code {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".into(),
            }
        };
        let tail = self.stderr_tail.trim();
        if !tail.is_empty() {
            msg.push_str(": ");
            msg.push_str(tail);
        }
        msg
    }
}

/// Run `sh -c command` in `cwd` with extra `env`, killing its process group at `timeout`.
pub fn run_shell(
    command: &str,
    cwd: &Path,
    env: &[(&str, &std::ffi::OsStr)],
    timeout: Duration,
) -> std::io::Result<Outcome> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, timeout, None)
}

/// Run `program` with `args` for a plugin's `exec` grant: no shell, in `cwd`, with an empty
/// environment (but `PATH`, to find the program), in its own process group, capturing up to
/// `stdout_cap` bytes of stdout. When it ends or times out, everything it started goes with
/// it: its process group, and any descendant that left the group (`setsid`, a daemon):
/// thrum-backup is their child subreaper, so they become its children, and are killed. The
/// output readers never wait past the timeout for a pipe such a descendant held.
pub fn run_argv(
    program: &str,
    args: &[String],
    cwd: &Path,
    timeout: Duration,
    stdout_cap: usize,
) -> std::io::Result<Outcome> {
    become_subreaper();
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    let before = children();
    run_with(cmd, timeout, Some(stdout_cap), Some(&before))
}

/// Make this process the subreaper of its descendants (once).
fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustix::process::set_child_subreaper(rustix::process::Pid::from_raw(1));
    });
}

/// The processes whose parent is this one (any of its threads).
fn children() -> std::collections::BTreeSet<i32> {
    let mut out = std::collections::BTreeSet::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// The process group and session of `pid` (from `/proc/<pid>/stat`).
fn group_and_session(pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp session ...: comm may hold spaces, so count from its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Kill and reap what a command whose process group was `pgid` left behind once it ended:
/// the children of this process (a subreaper: orphans come to it) that were not children
/// before (`before`) and are either still in that group or in a session of their own (they
/// called `setsid`). Commands other threads run stay in this process's session: untouched.
fn kill_leftovers(before: &std::collections::BTreeSet<i32>, pgid: i32) {
    let own_session = group_and_session(std::process::id() as i32).map(|(_, s)| s);
    for _ in 0..100 {
        let left: Vec<i32> = children()
            .difference(before)
            .copied()
            .filter(|pid| {
                group_and_session(*pid).is_some_and(|(g, s)| g == pgid || Some(s) != own_session)
            })
            .collect();
        if left.is_empty() {
            return;
        }
        for pid in left {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
            }
        }
    }
}

/// The bytes a reader thread kept, if it ends within `limit`.
fn join_within(reader: std::thread::JoinHandle<Vec<u8>>, limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    while !reader.is_finished() {
        if Instant::now() >= deadline {
            return Vec::new();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    reader.join().unwrap_or_default()
}

fn spawn_reader(
    stream: Option<impl Read + Send + 'static>,
    keep_head: Option<usize>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        if let Some(mut s) = stream {
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                match keep_head {
                    Some(cap) => {
                        let room = cap.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                    None => {
                        kept.extend_from_slice(&buf[..n]);
                        if kept.len() > 2 * STDERR_TAIL {
                            kept.drain(..kept.len() - STDERR_TAIL);
                        }
                    }
                }
            }
        }
        if keep_head.is_none() && kept.len() > STDERR_TAIL {
            kept.drain(..kept.len() - STDERR_TAIL);
        }
        kept
    })
}

fn run(cmd: Command, timeout: Duration, stdout_cap: Option<usize>) -> std::io::Result<Outcome> {
    run_with(cmd, timeout, stdout_cap, None)
}

fn run_with(
    mut cmd: Command,
    timeout: Duration,
    stdout_cap: Option<usize>,
    confined: Option<&std::collections::BTreeSet<i32>>,
) -> std::io::Result<Outcome> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(if stdout_cap.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let err_reader = spawn_reader(child.stderr.take(), None);
    let out_reader = spawn_reader(child.stdout.take(), Some(stdout_cap.unwrap_or(0)));
    let pgid = rustix::process::Pid::from_child(&child);
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Whatever the command left running in its group goes too: its output is over.
    let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    if let Some(before) = confined {
        kill_leftovers(before, pgid.as_raw_nonzero().get());
    }
    let elapsed = start.elapsed();
    // A grandchild that escaped the group could hold a pipe open: after a timeout, do not
    // wait for the readers; otherwise wait no longer than what is left of the timeout.
    let (stderr_tail, stdout_head) = if timed_out {
        (String::new(), Vec::new())
    } else {
        let left = timeout.saturating_sub(elapsed) + Duration::from_millis(100);
        let err = join_within(err_reader, left);
        (
            String::from_utf8_lossy(&err).into_owned(),
            join_within(out_reader, left),
        )
    };
    Ok(Outcome {
        code: status.code(),
        timed_out,
        stderr_tail,
        stdout_head,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_failure_tail() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_shell(
            "echo oops >&2; exit 3",
            dir.path(),
            &[],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert!(
            out.describe_failure(Duration::from_secs(1))
                .contains("oops")
        );
    }

    #[test]
    fn exec_gets_an_empty_environment_and_takes_its_descendants_along() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY-free: a variable set for this test process only.
        let out = run_argv("env", &[], dir.path(), Duration::from_secs(5), 1 << 16).unwrap();
        let env = String::from_utf8_lossy(&out.stdout_head);
        assert!(env.lines().all(|l| l.starts_with("PATH=")), "{env}");
        // A descendant that leaves the process group (setsid) and keeps stderr open: gone
        // when the command ends, and the run does not wait for it.
        let marker = dir.path().join("survivor");
        let script = format!(
            "setsid sh -c 'sleep 3; touch {}' & exit 0",
            marker.display()
        );
        let start = Instant::now();
        let out = run_argv(
            "sh",
            &["-c".into(), script],
            dir.path(),
            Duration::from_secs(2),
            1024,
        )
        .unwrap();
        assert_eq!(out.code, Some(0));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(3500));
        assert!(!marker.exists(), "a setsid descendant outlived the command");
    }

    #[test]
    fn deadline_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survivor");
        let cmd = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let out = run_shell(&cmd, dir.path(), &[], Duration::from_millis(300)).unwrap();
        assert!(out.timed_out);
        assert!(out.elapsed < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(
            !marker.exists(),
            "a child of the shell survived the timeout"
        );
    }
}
