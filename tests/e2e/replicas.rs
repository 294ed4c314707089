//! Off-site replicas (restic-format repositories through rustic) against real servers: a local
//! path, `rclone serve restic`, OpenSSH's sshd and Garage, all started here on 127.0.0.1. And
//! restic itself reading what we wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{BIN, Fx, State, stderr, tree};
use crate::servers;

const PASSWORD: &str = "correct horse battery staple";

/// The binary with the workspace, backup dir and the replica password in the environment
/// (restic's own variables removed, so that only ours is read).
fn cmd(fx: &Fx) -> assert_cmd::Command {
    let mut c = fx.cmd();
    c.env("THRUM_BACKUP_PASSWORD", PASSWORD)
        .env_remove("THRUM_BACKUP_PASSWORD_FILE")
        .env_remove("RESTIC_PASSWORD")
        .env_remove("RESTIC_PASSWORD_FILE");
    c
}

fn run(fx: &Fx, args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut c = cmd(fx);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.args(args).output().expect("run")
}

fn json_ok(fx: &Fx, args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(fx, &all, envs);
    assert!(
        out.status.success(),
        "{args:?} failed ({:?}): {}\n{}",
        out.status.code(),
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON from {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn pushed_id(create: &Value, name: &str) -> String {
    let r = create["replicas"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no replica {name} in {create}"));
    assert!(r["error"].is_null(), "replica {name} failed: {r}");
    r["pushed"]["id"].as_str().expect("id").to_owned()
}

/// Wipe the workspace (config.json with it: the replica is then known only by its address,
/// as after a disk loss), restore it from `replica` and check it equals `before`.
fn wipe_and_restore_from(
    fx: &Fx,
    replica: &str,
    before: &State,
    envs: &[(&str, &std::ffi::OsStr)],
) -> Value {
    fx.wipe();
    let r = json_ok(fx, &["restore", "--yes", "--from-replica", replica], envs);
    assert!(r["source"].as_str().unwrap().starts_with("replica "), "{r}");
    let after = fx.state();
    assert!(
        after == *before,
        "the workspace restored from {replica} differs"
    );
    r
}

#[test]
fn a_local_replica_takes_every_snapshot_once_restic_reads_it_and_it_restores_the_workspace() {
    let fx = Fx::new();
    fx.create();
    fx.create();
    let repo = fx.tmp.path().join("replica");
    let repo_s = repo.to_string_lossy().into_owned();

    // A path that is not a repository is refused without --init; config.json untouched.
    std::fs::create_dir_all(&repo).unwrap();
    let config_before = std::fs::read(fx.thrum().join("config.json")).unwrap();
    let out = run(&fx, &["replica", "add", "offsite", &repo_s], &[]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("replica offsite"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no restic repository"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(fx.thrum().join("config.json")).unwrap(),
        config_before
    );

    let added = json_ok(&fx, &["replica", "add", "offsite", &repo_s, "--init"], &[]);
    assert_eq!(added["snapshots"], 0);
    let config = std::fs::read_to_string(fx.thrum().join("config.json")).unwrap();
    assert!(config.contains("\"replicas\""), "{config}");
    assert!(
        !config.contains(PASSWORD),
        "the password leaked into config.json"
    );

    // A replica added late receives the whole history: the archive, then current/.
    let sync = json_ok(&fx, &["replica", "sync"], &[]);
    assert_eq!(
        sync["offsite"]["pushed"].as_array().unwrap().len(),
        2,
        "{sync}"
    );
    let again = json_ok(&fx, &["replica", "sync", "offsite"], &[]);
    assert_eq!(
        again["offsite"]["pushed"].as_array().unwrap().len(),
        0,
        "{again}"
    );
    assert_eq!(again["offsite"]["already"], 2, "{again}");

    // create pushes the new snapshot after publishing it (retention aside: below).
    let c = json_ok(&fx, &["create", "--no-prune"], &[]);
    let id = pushed_id(&c, "offsite");
    let before = fx.state();
    let snaps = json_ok(&fx, &["replica", "snapshots", "offsite"], &[]);
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 3);
    assert!(
        snaps.iter().all(|s| s["path"] == "/thrum-backup/proj"),
        "{snaps:?}"
    );
    assert_eq!(snaps.iter().filter(|s| s["kind"] == "current").count(), 2);
    let status = json_ok(&fx, &["status"], &[]);
    assert_eq!(status["replicas"][0]["name"], "offsite", "{status}");
    assert!(
        status["replicas"][0]["last_success"].is_string(),
        "{status}"
    );
    assert!(status["replicas"][0]["last_error"].is_null(), "{status}");
    let listed = json_ok(&fx, &["replica", "list"], &[]);
    assert_eq!(listed[0]["snapshots"], 3, "{listed}");
    assert!(listed[0]["size"].as_u64().unwrap() > 0, "{listed}");
    let check = json_ok(&fx, &["replica", "check", "offsite", "--read-data"], &[]);
    assert_eq!(check["errors"].as_array().unwrap().len(), 0, "{check}");

    // restic itself lists our snapshots and restores one byte for byte.
    if let Some(restic) = servers::tool("restic", &[]) {
        let out = Command::new(&restic)
            .args([
                "-r",
                &repo_s,
                "snapshots",
                "--json",
                "--tag",
                "thrum-backup",
            ])
            .env("RESTIC_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
        let target = fx.tmp.path().join("restic-restore");
        let out = Command::new(&restic)
            .args(["-r", &repo_s, "restore", &id, "--target"])
            .arg(&target)
            .env("RESTIC_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(tree(&target.join("thrum-backup/proj")), tree(&fx.current()));
    }

    // The replica's retention: the local policy (newest of each day, week, month) through
    // rustic's forget, shown by a dry run with reasons, then applied with prune.
    let dry = json_ok(&fx, &["prune", "--dry-run"], &[]);
    let decisions = dry["replicas"][0]["decisions"].as_array().unwrap().clone();
    assert_eq!(decisions.len(), 3, "{dry}");
    let kept: Vec<&Value> = decisions.iter().filter(|d| d["keep"] == true).collect();
    assert!(!kept.is_empty() && kept.len() < 3, "{dry}");
    assert!(
        kept.iter().any(|d| d["snapshot"]["id"] == id.as_str()),
        "the newest must stay: {dry}"
    );
    assert!(
        kept.iter()
            .all(|d| !d["reasons"].as_array().unwrap().is_empty()),
        "{dry}"
    );
    assert_eq!(
        json_ok(&fx, &["replica", "snapshots", "offsite"], &[])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let pruned = json_ok(&fx, &["prune"], &[]);
    assert_eq!(pruned["replicas"][0]["removed"], 3 - kept.len(), "{pruned}");
    let left = json_ok(&fx, &["replica", "snapshots", "offsite"], &[]);
    assert_eq!(left.as_array().unwrap().len(), kept.len(), "{left}");
    let check = json_ok(&fx, &["replica", "check", "offsite", "--read-data"], &[]);
    assert_eq!(check["errors"].as_array().unwrap().len(), 0, "{check}");

    // The workspace lost: back from the replica, byte for byte and row for row.
    let r = wipe_and_restore_from(&fx, &repo_s, &before, &[]);
    assert!(r["source"].as_str().unwrap().contains(&id), "{r}");

    // The safety snapshot that restore saved reaches the replica too, and its retention never
    // removes it.
    let sync = json_ok(&fx, &["replica", "sync", "offsite"], &[]);
    let pushed = sync["offsite"]["pushed"].to_string();
    assert!(pushed.contains("pre-restore-"), "{sync}");
    let dry = json_ok(&fx, &["prune", "--dry-run"], &[]);
    let safety: Vec<&Value> = dry["replicas"][0]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["snapshot"]["kind"] == "pre-restore")
        .collect();
    assert_eq!(safety.len(), 1, "{dry}");
    assert_eq!(safety[0]["keep"], true, "{dry}");
    assert!(safety[0]["reasons"].to_string().contains("tags"), "{dry}");
}

#[test]
fn on_a_new_machine_a_rest_server_address_and_the_password_bring_the_workspace_back() {
    let fx = Fx::new();
    let Some(server) = servers::rest(&fx.tmp.path().join("rest-server"), None) else {
        return;
    };
    let address = format!("rest:http://127.0.0.1:{}/proj", server.port);
    fx.create();
    json_ok(&fx, &["replica", "add", "rest", &address, "--init"], &[]);
    let c = json_ok(&fx, &["create"], &[]);
    pushed_id(&c, "rest");
    let before = fx.state();

    // A new machine: a clone of the main branch, no .thrum/, no backups at all.
    let machine = fx.tmp.path().join("new-machine");
    std::fs::create_dir_all(&machine).unwrap();
    git(
        &machine,
        &[
            "clone",
            "-q",
            "--single-branch",
            "--branch",
            "main",
            &fx.root().to_string_lossy(),
            "proj",
        ],
    );
    let clone = machine.join("proj");
    assert!(!clone.join(".thrum").exists());
    let backups = machine.join("backups");
    let out = Command::new(BIN)
        .arg("--repo")
        .arg(&clone)
        .arg("--dir")
        .arg(&backups)
        .args(["--json", "restore", "--yes", "--from-replica", &address])
        .env("THRUM_BACKUP_PASSWORD", PASSWORD)
        .env("THRUM_BACKUP_CACHE_DIR", fx.tmp.path().join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = State::of(&clone.join(".git/thrum-sync/a-sync"), &clone.join(".thrum"));
    assert!(
        restored.files == before.files,
        "files differ after the disaster restore"
    );
    assert_eq!(restored.rows, before.rows);
    drop(server);
}

#[test]
fn a_server_killed_during_a_push_costs_no_local_backup_and_the_next_sync_completes() {
    let fx = Fx::new();
    let dir = fx.tmp.path().join("rest-server");
    let Some(mut server) = servers::rest(&dir, None) else {
        return;
    };
    let port = server.port;
    let address = format!("rest:http://127.0.0.1:{port}/proj");
    fx.create();
    json_ok(
        &fx,
        &[
            "replica",
            "add",
            "rest",
            &address,
            "--init",
            "--timeout",
            "10",
            "-o",
            "retry=1",
        ],
        &[],
    );
    // Kill the server as soon as the push has stored its first pack.
    let data = dir.join("proj/data");
    let count_packs = |d: &Path| {
        walkdir::WalkDir::new(d)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .count()
    };
    let packs_before = count_packs(&data);
    let child = Command::new(BIN)
        .arg("--repo")
        .arg(fx.root())
        .arg("--dir")
        .arg(&fx.backups)
        .args(["--json", "create"])
        .env("THRUM_BACKUP_PASSWORD", PASSWORD)
        .env("THRUM_BACKUP_CACHE_DIR", fx.tmp.path().join("cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_packs(&data) == packs_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    server.kill();
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    // The local backup stands whatever the replica did.
    let verify = json_ok(&fx, &["verify"], &[]);
    assert!(verify.to_string().contains("\"ok\":true"), "{verify}");
    let replica_failed = report["replicas"][0]["error"].is_string();
    eprintln!(
        "the push {} the kill",
        if replica_failed {
            "was cut by"
        } else {
            "had finished before"
        }
    );
    if replica_failed {
        assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
        assert!(stderr(&out).contains("replica rest"), "{}", stderr(&out));
        let status = json_ok(&fx, &["status"], &[]);
        assert!(status["replicas"][0]["last_error"].is_array(), "{status}");
        // While the server is down a replica command fails, naming it, within its timeout.
        let out = run(&fx, &["replica", "snapshots", "rest"], &[]);
        assert_eq!(out.status.code(), Some(6));
        assert!(stderr(&out).contains("replica rest"), "{}", stderr(&out));
    } else {
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // The server back on its data: sync completes, check passes, the error is cleared.
    let _server = servers::rest(&dir, Some(port)).expect("rclone");
    let sync = json_ok(&fx, &["replica", "sync", "rest"], &[]);
    let again = json_ok(&fx, &["replica", "sync", "rest"], &[]);
    assert_eq!(
        again["rest"]["pushed"].as_array().unwrap().len(),
        0,
        "{sync} {again}"
    );
    let check = json_ok(&fx, &["replica", "check", "rest", "--read-data"], &[]);
    assert_eq!(check["errors"].as_array().unwrap().len(), 0, "{check}");
    let status = json_ok(&fx, &["status"], &[]);
    assert!(status["replicas"][0]["last_error"].is_null(), "{status}");
    let snaps = json_ok(&fx, &["replica", "snapshots", "rest"], &[]);
    let current_id = fx.json(&["status"])["last_backup"]["timestamp"].clone();
    assert!(!current_id.is_null());
    assert_eq!(snaps.as_array().unwrap().len(), 2, "{snaps}");
}

#[test]
fn an_sftp_replica_on_a_real_sshd_takes_each_backup_and_restores_it() {
    let fx = Fx::new();
    let Some(sshd) = servers::sshd(&fx.tmp.path().join("ssh")) else {
        return;
    };
    let path = fx.tmp.path().join("sftp-repo");
    let user = Command::new("id").arg("-un").output().unwrap();
    let user = String::from_utf8_lossy(&user.stdout).trim().to_owned();
    let address = format!(
        "sftp://{user}@127.0.0.1:{}/{}",
        sshd.server.port,
        path.display()
    );
    let path_env = sshd.path_env();
    let envs: &[(&str, &std::ffi::OsStr)] = &[("PATH", &path_env)];
    fx.create();
    json_ok(&fx, &["replica", "add", "sftp", &address, "--init"], envs);
    assert!(
        path.join("config").is_file(),
        "no repository made over SFTP"
    );
    let c = json_ok(&fx, &["create"], envs);
    let id = pushed_id(&c, "sftp");
    let before = fx.state();
    let snaps = json_ok(&fx, &["replica", "snapshots", "sftp"], envs);
    assert!(snaps.to_string().contains(&id), "{snaps}");
    let r = wipe_and_restore_from(&fx, &address, &before, envs);
    assert!(r["source"].as_str().unwrap().contains(&id), "{r}");
}

#[test]
fn an_s3_replica_on_a_real_garage_node_takes_each_backup_and_restores_it() {
    let fx = Fx::new();
    let Some(garage) = servers::garage(&fx.tmp.path().join("garage")) else {
        return;
    };
    let address = garage.address("proj");
    let key = std::ffi::OsString::from(&garage.key_id);
    let secret = std::ffi::OsString::from(&garage.secret);
    let region = std::ffi::OsString::from("garage");
    let envs: &[(&str, &std::ffi::OsStr)] = &[
        ("AWS_ACCESS_KEY_ID", &key),
        ("AWS_SECRET_ACCESS_KEY", &secret),
        ("AWS_DEFAULT_REGION", &region),
    ];
    fx.create();
    json_ok(&fx, &["replica", "add", "s3", &address, "--init"], envs);
    let c = json_ok(&fx, &["create"], envs);
    let id = pushed_id(&c, "s3");
    let before = fx.state();
    if let Some(restic) = servers::tool("restic", &[]) {
        let out = Command::new(restic)
            .args(["-r", &address, "snapshots", "--json"])
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("AWS_ACCESS_KEY_ID", &key)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_DEFAULT_REGION", "garage")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    }
    let r = wipe_and_restore_from(&fx, &address, &before, envs);
    assert!(r["source"].as_str().unwrap().contains(&id), "{r}");
}

#[test]
fn a_wrong_password_is_named_and_costs_no_local_backup() {
    let fx = Fx::new();
    let repo = fx.tmp.path().join("replica");
    fx.create();
    json_ok(
        &fx,
        &[
            "replica",
            "add",
            "offsite",
            &repo.to_string_lossy(),
            "--init",
        ],
        &[],
    );
    let wrong = std::ffi::OsString::from("not the password");
    let envs: &[(&str, &std::ffi::OsStr)] = &[("THRUM_BACKUP_PASSWORD", &wrong)];
    let out = run(&fx, &["replica", "snapshots", "offsite"], envs);
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("replica offsite"), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out));
    let archives = fx.archive_names().len();
    let out = run(&fx, &["create"], envs);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("safe locally"), "{}", stderr(&out));
    assert_eq!(fx.archive_names().len(), archives + 1);
    json_ok(&fx, &["verify"], &[]);
    // No password at all: said how to give one.
    let out = fx
        .cmd()
        .env_remove("THRUM_BACKUP_PASSWORD")
        .env_remove("RESTIC_PASSWORD")
        .env_remove("RESTIC_PASSWORD_FILE")
        .env_remove("THRUM_BACKUP_PASSWORD_FILE")
        .args(["replica", "snapshots", "offsite"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("no password"), "{}", stderr(&out));
}

#[test]
fn an_unreachable_replica_is_given_up_on_after_its_timeout() {
    let fx = Fx::new();
    fx.create();
    let port = servers::free_port();
    let address = format!("rest:http://127.0.0.1:{port}/nothing");
    let started = Instant::now();
    let out = run(
        &fx,
        &[
            "replica",
            "add",
            "away",
            &address,
            "--init",
            "--timeout",
            "2",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("replica away"), "{}", stderr(&out));
    // It gave up on its own rather than retrying for minutes.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        !std::fs::read_to_string(fx.thrum().join("config.json"))
            .unwrap()
            .contains("\"replicas\"")
    );
}

#[test]
fn damaged_data_on_a_replica_is_named_by_check_and_refused_by_restore() {
    let fx = Fx::new();
    let repo = fx.tmp.path().join("replica");
    fx.create();
    json_ok(
        &fx,
        &[
            "replica",
            "add",
            "offsite",
            &repo.to_string_lossy(),
            "--init",
        ],
        &[],
    );
    json_ok(&fx, &["create"], &[]);
    // Flip bytes in the middle of every pack file on the "server".
    let mut packs: Vec<PathBuf> = walkdir::WalkDir::new(repo.join("data"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    packs.sort();
    assert!(!packs.is_empty());
    for p in &packs {
        let mut bytes = std::fs::read(p).unwrap();
        let mid = bytes.len() / 3;
        for b in &mut bytes[mid..mid + 16] {
            *b ^= 0x5a;
        }
        std::fs::write(p, bytes).unwrap();
    }
    let out = run(&fx, &["replica", "check", "offsite", "--read-data"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let named = packs.iter().any(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        text.contains(&name[..8])
    });
    assert!(named, "check names none of the damaged packs: {text}");

    let before = fx.state();
    let out = run(&fx, &["restore", "--yes", "--from-replica", "offsite"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("replica offsite"), "{}", stderr(&out));
    assert!(
        fx.state() == before,
        "a refused restore changed the workspace"
    );
}

#[test]
fn a_password_in_config_json_is_refused_by_name() {
    let fx = Fx::new();
    let path = fx.thrum().join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["backup"]["replicas"] = serde_json::json!([
        {"name": "offsite", "repository": "/srv/repo", "password": "hunter2"}
    ]);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let out = run(&fx, &["status"], &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("backup.replicas[0].password"), "{e}");
    assert!(e.contains("never read from config.json"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn a_full_remote_disk_is_reported_by_name_and_costs_no_local_backup() {
    let fx = Fx::new();
    let Some(sshd) = servers::sshd(&fx.tmp.path().join("ssh")) else {
        return;
    };
    // The server's disk: room for the repository's config and key, not for a snapshot.
    let Some(_disk) = servers::Tmpfs::mount(&fx.tmp.path().join("small-disk"), "64k") else {
        return;
    };
    let path = fx.tmp.path().join("small-disk/repo");
    let user = Command::new("id").arg("-un").output().unwrap();
    let user = String::from_utf8_lossy(&user.stdout).trim().to_owned();
    let address = format!(
        "sftp://{user}@127.0.0.1:{}/{}",
        sshd.server.port,
        path.display()
    );
    let path_env = sshd.path_env();
    let envs: &[(&str, &std::ffi::OsStr)] = &[("PATH", &path_env)];
    fx.create();
    json_ok(
        &fx,
        &[
            "replica", "add", "small", &address, "--init", "-o", "retry=1",
        ],
        envs,
    );
    let archives = fx.archive_names().len();
    let out = run(&fx, &["create"], envs);
    eprintln!("{}", stderr(&out));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("replica small"), "{}", stderr(&out));
    assert!(stderr(&out).contains("safe locally"), "{}", stderr(&out));
    assert_eq!(fx.archive_names().len(), archives + 1);
    json_ok(&fx, &["verify"], &[]);
    let status = json_ok(&fx, &["status"], envs);
    assert!(status["replicas"][0]["last_error"].is_array(), "{status}");
    // What was written before the disk filled up is no snapshot: the replica lists none.
    let snaps = json_ok(&fx, &["replica", "snapshots", "small"], envs);
    assert_eq!(snaps.as_array().unwrap().len(), 0, "{snaps}");
}

#[test]
fn a_sync_killed_midway_is_completed_by_the_next_and_the_repository_stays_sound() {
    let fx = Fx::new();
    for _ in 0..3 {
        json_ok(&fx, &["create", "--no-prune"], &[]);
    }
    let repo = fx.tmp.path().join("replica");
    let repo_s = repo.to_string_lossy().into_owned();
    json_ok(&fx, &["replica", "add", "offsite", &repo_s, "--init"], &[]);
    let local = fx.archive_names().len() + 1;
    assert!(local >= 3);
    // SIGKILL the sync as soon as its first data is in the repository.
    let mut child = Command::new(BIN)
        .arg("--repo")
        .arg(fx.root())
        .arg("--dir")
        .arg(&fx.backups)
        .args(["replica", "sync"])
        .env("THRUM_BACKUP_PASSWORD", PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let files = |d: &Path| {
        walkdir::WalkDir::new(d)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .count()
    };
    while files(&repo.join("data")) == 0 && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    let held = json_ok(&fx, &["replica", "snapshots", "offsite"], &[]);
    let held = held.as_array().unwrap().len();
    eprintln!("the kill left {held} of {local} snapshots in the repository");
    let sync = json_ok(&fx, &["replica", "sync"], &[]);
    assert_eq!(
        sync["offsite"]["pushed"].as_array().unwrap().len() + held,
        local,
        "{sync}"
    );
    let again = json_ok(&fx, &["replica", "sync"], &[]);
    assert_eq!(
        again["offsite"]["pushed"].as_array().unwrap().len(),
        0,
        "{again}"
    );
    let check = json_ok(&fx, &["replica", "check", "offsite", "--read-data"], &[]);
    assert_eq!(check["errors"].as_array().unwrap().len(), 0, "{check}");
    assert_eq!(
        json_ok(&fx, &["replica", "snapshots", "offsite"], &[])
            .as_array()
            .unwrap()
            .len(),
        local
    );
}
