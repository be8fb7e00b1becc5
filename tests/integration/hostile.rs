//! Hostile input and interrupted builds: every file of tests/hostile makes `build` exit 1
//! with a clear message, never panic, and leaves secrets/ and bundles/ exactly as they
//! were; builds killed at arbitrary points leave every secret absent or complete; two
//! builds on one secrets/ directory do not corrupt it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Project, Tmpfs, kube_bundle, names, repo_root, snapshot};

#[test]
fn every_hostile_input_is_refused_cleanly_and_changes_nothing() {
    let project = Project::new();
    project.build();
    let secrets = project.path().join("secrets/prod-eu1");
    let bundles = project.path().join("bundles/prod-eu1");
    let (secrets_before, bundles_before) = (snapshot(&secrets), snapshot(&bundles));
    let corpus = repo_root().join("tests/hostile");
    let mut inputs: Vec<PathBuf> = fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 150, "only {} hostile inputs", inputs.len());
    for input in &inputs {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let run = kube_bundle(
            project.path(),
            &[
                "build",
                input.to_str().unwrap(),
                "--secrets",
                secrets.to_str().unwrap(),
                "--out",
                bundles.to_str().unwrap(),
            ],
        );
        let stderr = run.stderr();
        assert_eq!(
            run.output.status.code(),
            Some(1),
            "{name}: exit {:?}\n{stderr}",
            run.output.status.code()
        );
        assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
        assert!(
            stderr.contains("error"),
            "{name}: no error message:\n{stderr}"
        );
        assert!(
            stderr.len() < 64 * 1024,
            "{name}: {} bytes of diagnostics",
            stderr.len()
        );
        kube_bundle(project.path(), &["check", input.to_str().unwrap()]).code(1);
    }
    assert_eq!(snapshot(&secrets), secrets_before, "secrets/ changed");
    assert_eq!(snapshot(&bundles), bundles_before, "bundles/ changed");
    let stray: Vec<_> = fs::read_dir(project.path().join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "prod-eu1")
        .collect();
    assert!(stray.is_empty(), "left behind: {stray:?}");
}

/// Our writer's temp files: `.tmp-` and six letters or digits.
fn is_temp_file(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name.strip_prefix(".tmp-")
        .is_some_and(|rest| rest.len() == 6 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Every file in a secrets directory under a real name must be a complete credential, key
/// or key set. Temp files are allowed only while a killed build's leftovers may exist.
fn assert_secrets_complete(dir: &Path, temp_files_allowed: bool) {
    for (path, bytes) in snapshot(dir) {
        let name = path.file_name().unwrap().to_string_lossy();
        if is_temp_file(&path) {
            assert!(
                temp_files_allowed,
                "a temp file survived: {}",
                path.display()
            );
            continue;
        }
        if name == ".gitignore" {
            continue;
        }
        let text = String::from_utf8(bytes).unwrap();
        if name.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else {
            assert_eq!(
                text.matches("-----BEGIN").count(),
                text.matches("-----END").count(),
                "{}",
                path.display()
            );
            assert!(text.ends_with("-----\n"), "{} is cut off", path.display());
        }
    }
}

/// Kills builds after pseudo-random delays. Whether a kill lands before, during or after
/// the build depends on the machine's speed, so nothing here counts how many were
/// interrupted: what must hold holds at any timing.
#[test]
fn builds_killed_at_arbitrary_points_never_leave_partial_secrets() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        repo_root().join("examples/cluster.yaml"),
        dir.path().join("cluster.yaml"),
    )
    .unwrap();
    // A fixed pseudo-random sequence of kill delays, so a failure can be replayed.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..50 {
        // A fresh cluster each time: new secrets, so no bundles of the old identity.
        let _ = fs::remove_dir_all(dir.path().join("secrets"));
        let _ = fs::remove_dir_all(dir.path().join("bundles"));
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_micros(seed >> 49);
        let mut child = Command::new(env!("CARGO_BIN_EXE_kube-bundle"))
            .arg("build")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let secrets = dir.path().join("secrets/prod-eu1");
        // Right after the kill: temp files may remain, a cut-off credential never.
        assert_secrets_complete(&secrets, true);
        // The next build cleans up after the dead one and picks up from there.
        kube_bundle(dir.path(), &["build"]).code(0);
        assert_secrets_complete(&secrets, false);
        // A build the kill missed has finished, and the next one kept its generation as
        // prod-eu1.previous: only our dot-named scratch folders must be gone.
        let outputs = names(&dir.path().join("bundles"));
        assert!(
            outputs.iter().all(|name| !name.starts_with('.'))
                && outputs.first().map(String::as_str) == Some("prod-eu1"),
            "a killed build's staging folder survived the next build: {outputs:?}"
        );
        kube_bundle(
            dir.path(),
            &["verify", "bundles/prod-eu1/cp1.tar.gz", "--allow-unpinned"],
        )
        .code(0);
    }
}

/// The same leftovers as a build killed between writing a temp file and renaming it,
/// made by hand so the test does not depend on timing.
#[test]
fn a_build_removes_the_temp_files_a_killed_build_left_and_nothing_else() {
    let project = Project::new();
    project.build();
    let secrets = project.path().join("secrets/prod-eu1");
    let leftovers = [
        secrets.join(".tmp-Ab3dE9"),
        secrets.join("nodes/cp1/.tmp-x7Y2k0"),
    ];
    for path in &leftovers {
        fs::write(
            path,
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0w\n",
        )
        .unwrap();
    }
    let operator_files = [
        secrets.join(".tmp-notes"),
        secrets.join("nodes/cp1/.tmp-Ab3dE9.bak"),
        secrets.join("README.operator"),
    ];
    for path in &operator_files {
        fs::write(path, "mine").unwrap();
    }
    let mut before = snapshot(&secrets);
    for path in &leftovers {
        before.remove(path);
    }

    let run = project.build();
    assert!(
        leftovers.iter().all(|p| !p.exists()),
        "temp files survived a build"
    );
    assert_eq!(
        snapshot(&secrets),
        before,
        "a file other than our temp files changed"
    );
    run.stderr_has("removed 2 temp file(s) left by an interrupted kube-bundle run");
    kube_bundle(
        project.path(),
        &["verify", "bundles/prod-eu1/cp1.tar.gz", "--allow-unpinned"],
    )
    .code(0);
}

#[test]
fn two_concurrent_builds_do_not_corrupt_the_secrets() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        repo_root().join("examples/cluster.yaml"),
        dir.path().join("cluster.yaml"),
    )
    .unwrap();
    for _ in 0..5 {
        let _ = fs::remove_dir_all(dir.path().join("secrets"));
        let _ = fs::remove_dir_all(dir.path().join("out"));
        let _ = fs::remove_dir_all(dir.path().join("out.previous"));
        let spawn = || {
            Command::new(env!("CARGO_BIN_EXE_kube-bundle"))
                .args(["build", "--out", "out"])
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (spawn(), spawn());
        for child in [first, second] {
            let output = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success()
                    || stderr.contains("another kube-bundle build is using these secrets"),
                "{stderr}"
            );
        }
        assert_secrets_complete(&dir.path().join("secrets/prod-eu1"), false);
        let before = snapshot(&dir.path().join("secrets/prod-eu1"));
        kube_bundle(dir.path(), &["build", "--out", "out"]).code(0);
        assert_eq!(
            snapshot(&dir.path().join("secrets/prod-eu1")),
            before,
            "a clean rebuild changed nothing"
        );
    }
}

#[test]
fn a_read_only_output_fails_cleanly_and_writes_nothing() {
    let project = Project::new();
    let secrets_before = snapshot(&project.path().join("secrets"));
    let out = tempfile::tempdir().unwrap();
    let _mounted = Tmpfs::mount(out.path(), "size=1m,ro");
    let target = out.path().join("prod-eu1");
    let run = kube_bundle(
        project.path(),
        &["build", "--out", target.to_str().unwrap()],
    );
    run.code(1).stderr_has("Read-only file system");
    assert!(
        run.stderr().contains(out.path().to_str().unwrap()),
        "the error names the directory: {}",
        run.stderr()
    );
    assert!(names(out.path()).is_empty());
    assert_eq!(
        snapshot(&project.path().join("secrets")),
        secrets_before,
        "secrets/ changed"
    );
}

#[test]
fn a_full_output_fails_cleanly_and_keeps_the_previous_bundles() {
    let project = Project::new();
    let out = tempfile::tempdir().unwrap();
    let _mounted = Tmpfs::mount(out.path(), "size=1m");
    let target = out.path().join("prod-eu1");
    let target_arg = target.to_str().unwrap();
    kube_bundle(project.path(), &["build", "--out", target_arg]).code(0);
    let bundles_before = snapshot(&target);
    let secrets_before = snapshot(&project.path().join("secrets"));

    // A 4 MB incompressible binary cannot fit three times in what is left of 1 MB.
    let mut binary = vec![0u8; 4_000_000];
    std::io::Read::read_exact(&mut fs::File::open("/dev/urandom").unwrap(), &mut binary).unwrap();
    fs::write(project.path().join("kube-apiserver"), binary).unwrap();
    project.edit("kubeApiserver: null", "kubeApiserver: kube-apiserver");
    let run = kube_bundle(project.path(), &["build", "--out", target_arg]);
    run.code(1).stderr_has("No space left on device");
    assert!(!run.stderr().contains("panicked"));
    assert_eq!(
        snapshot(&target),
        bundles_before,
        "the previous bundles changed"
    );
    assert_eq!(
        names(out.path()),
        ["prod-eu1"],
        "a staging directory was left behind"
    );
    assert_eq!(snapshot(&project.path().join("secrets")), secrets_before);
}

#[test]
fn a_corrupt_key_file_is_reported_and_kept() {
    let project = Project::new();
    project.build();
    let key = project.path().join("secrets/prod-eu1/sa.pem");
    fs::write(&key, "not a key").unwrap();
    kube_bundle(project.path(), &["build"])
        .code(1)
        .stderr_has("sa.pem")
        .stderr_has("never overwrites");
    assert_eq!(fs::read_to_string(&key).unwrap(), "not a key");
}
