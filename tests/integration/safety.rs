//! Secrets and outputs are never destroyed or silently replaced: the output folder is
//! kube-bundle's alone, one cluster identity per output, defaults resolve against
//! cluster.yaml, removed masters retire their credentials, killed builds leave nothing
//! with keys behind, and no diagnostic quotes key material.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Project, Tmpfs, kube_bundle, names, repo_root, snapshot};

#[test]
fn outputs_that_hold_or_are_what_the_operator_keeps_are_refused() {
    let project = Project::new();
    project.build();
    let docs = project.path().join("docs");
    fs::create_dir(&docs).unwrap();
    fs::write(docs.join("runbook.md"), "mine").unwrap();
    let before = snapshot(project.path());
    let home = tempfile::tempdir().unwrap();
    for (out, why) in [
        (".", "it is the current folder"),
        ("..", "it holds the current folder"),
        ("/", "it is the root folder"),
        ("secrets", "it holds the secrets folder"),
        ("secrets/prod-eu1", "it is the secrets folder"),
        (
            "secrets/prod-eu1/bundles",
            "it is inside the secrets folder",
        ),
        ("docs", "holds files kube-bundle did not write"),
        ("cluster.yaml", "it is cluster.yaml"),
        (home.path().to_str().unwrap(), "it is your home folder"),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_kube-bundle"))
            .args(["build", "--out", out])
            .current_dir(project.path())
            .env("HOME", home.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "--out {out}: {stderr}");
        assert!(stderr.contains(why), "--out {out}: {stderr}");
    }
    // A config in a folder of its own: that folder and its ancestors are refused too.
    let nested = project.path().join("clusters/eu");
    fs::create_dir_all(&nested).unwrap();
    fs::copy(
        project.path().join("cluster.yaml"),
        nested.join("cluster.yaml"),
    )
    .unwrap();
    let sub = project.path().join("elsewhere");
    fs::create_dir(&sub).unwrap();
    for out in ["../clusters/eu", "../clusters"] {
        kube_bundle(
            &sub,
            &["build", "../clusters/eu/cluster.yaml", "--out", out],
        )
        .code(2)
        .stderr_has("cluster.yaml");
    }
    fs::remove_dir_all(project.path().join("clusters")).unwrap();
    fs::remove_dir(&sub).unwrap();
    assert_eq!(
        snapshot(project.path()),
        before,
        "a refused build changed files"
    );
}

#[test]
fn swapping_generations_never_touches_a_neighbour() {
    let project = Project::new();
    let parent = project.path().join("o");
    fs::create_dir_all(parent.join("v1.old")).unwrap();
    fs::write(parent.join("v1.old/keep.txt"), "mine").unwrap();
    for _ in 0..3 {
        kube_bundle(project.path(), &["build", "--out", "o/v1.2"]).code(0);
    }
    assert_eq!(names(&parent), ["v1.2", "v1.2.previous", "v1.old"]);
    assert_eq!(fs::read(parent.join("v1.old/keep.txt")).unwrap(), b"mine");

    // A folder named like our previous generation that we did not write is refused.
    let foreign = project.path().join("p");
    fs::create_dir_all(foreign.join("b.previous")).unwrap();
    fs::write(foreign.join("b.previous/notes"), "mine").unwrap();
    kube_bundle(project.path(), &["build", "--out", "p/b"])
        .code(2)
        .stderr_has("b.previous holds files kube-bundle did not write");
    assert_eq!(fs::read(foreign.join("b.previous/notes")).unwrap(), b"mine");
    assert_eq!(names(&foreign), ["b.previous"]);
}

#[test]
fn an_output_of_another_cluster_identity_is_refused_unless_replaced() {
    let project = Project::new();
    project.build();
    let bundles = project.path().join("bundles/prod-eu1");
    let before = snapshot(&bundles);
    let fingerprint = |dir: &Path| {
        let marker: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join(".kube-bundle-output")).unwrap()).unwrap();
        marker["caFingerprint"].as_str().unwrap().to_owned()
    };
    let old = fingerprint(&bundles);

    // A build with an empty secrets folder would mint a new CA: refused before writing.
    let run = kube_bundle(project.path(), &["build", "--secrets", "fresh"]);
    run.code(1)
        .stderr_has(&old)
        .stderr_has("a NEW CA")
        .stderr_has(
            &project
                .path()
                .join("secrets/prod-eu1")
                .display()
                .to_string(),
        )
        .stderr_has(&project.path().join("fresh").display().to_string())
        .stderr_has("--replace-cluster-identity");
    assert!(
        !project.path().join("fresh").exists(),
        "secrets were created"
    );
    assert_eq!(snapshot(&bundles), before, "the output changed");

    // Another stored CA: both fingerprints are named.
    kube_bundle(
        project.path(),
        &["build", "--secrets", "other", "--out", "o2"],
    )
    .code(0);
    let other = fingerprint(&project.path().join("o2"));
    kube_bundle(project.path(), &["build", "--secrets", "other"])
        .code(1)
        .stderr_has(&old)
        .stderr_has(&other);
    assert_eq!(snapshot(&bundles), before);

    kube_bundle(
        project.path(),
        &["build", "--secrets", "other", "--replace-cluster-identity"],
    )
    .code(0);
    assert_eq!(fingerprint(&bundles), other);
}

#[test]
fn defaults_resolve_against_cluster_yaml_from_any_working_folder() {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    let elsewhere = root.path().join("elsewhere");
    fs::create_dir_all(project.join("sub")).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();
    fs::copy(
        repo_root().join("examples/cluster.yaml"),
        project.join("cluster.yaml"),
    )
    .unwrap();
    let secrets = project.join("secrets/prod-eu1");
    let bundles = project.join("bundles/prod-eu1");

    let plan = kube_bundle(&elsewhere, &["plan", "../project/cluster.yaml"]);
    plan.code(0)
        .stdout_has("a build creates a NEW cluster identity")
        .stdout_has("ca.pem")
        .stderr_has(&secrets.display().to_string());
    let first = kube_bundle(&elsewhere, &["build", "../project/cluster.yaml"]);
    first
        .code(0)
        .stderr_has(&format!(
            "creating a NEW cluster identity in {}",
            secrets.display()
        ))
        .stderr_has(&bundles.display().to_string());
    assert_eq!(
        names(&elsewhere),
        Vec::<String>::new(),
        "wrote into the working folder"
    );
    let ca = fs::read(secrets.join("ca.pem")).unwrap();
    let bundle = fs::read(bundles.join("cp1.tar.gz")).unwrap();
    let gitignore = fs::read_to_string(secrets.join(".gitignore")).unwrap();
    assert!(gitignore.lines().any(|l| l == "*"));

    for (dir, config) in [
        (&project, "cluster.yaml"),
        (&project.join("sub"), "../cluster.yaml"),
    ] {
        let run = kube_bundle(dir, &["build", config]);
        run.code(0);
        assert!(!run.stderr().contains("NEW"), "{}", run.stderr());
        assert_eq!(fs::read(secrets.join("ca.pem")).unwrap(), ca, "one CA");
        assert_eq!(fs::read(bundles.join("cp1.tar.gz")).unwrap(), bundle);
    }
    assert_eq!(names(&project.join("sub")), Vec::<String>::new());
    kube_bundle(&elsewhere, &["certs", "expiry", "../project/cluster.yaml"])
        .code(0)
        .stderr_has(&secrets.display().to_string());
}

#[test]
fn generations_say_what_changed_and_a_removed_master_retires() {
    let project = Project::new();
    project.add_client();
    project.build();
    let unchanged = project.build();
    for node in ["cp1", "cp2", "cp3", "w1"] {
        unchanged.stdout_has(&format!("{node}: unchanged;"));
    }

    // cp3 leaves: the others' front configs lose an upstream, cp3's bundle leaves.
    project.edit("  - { name: cp3, ip: 10.20.0.13 }\n", "");
    let secrets = project.path().join("secrets/prod-eu1");
    let cp3_credentials = snapshot(&secrets.join("nodes/cp3"));
    assert!(!cp3_credentials.is_empty());
    let run = project.build();
    run.stdout_has("cp1: changed (")
        .stdout_has("cp3: removed")
        .stdout_has("retired/cp3-");
    let bundles = project.path().join("bundles/prod-eu1");
    let listing = names(&bundles);
    assert!(
        listing.iter().all(|n| !n.starts_with("cp3")),
        "cp3 is still in the output: {listing:?}"
    );
    let sums = fs::read_to_string(bundles.join("SHA256SUMS")).unwrap();
    assert!(!sums.contains("cp3"), "{sums}");
    assert!(!secrets.join("nodes/cp3").exists());
    let retired: Vec<String> = names(&secrets.join("retired"));
    assert_eq!(retired.len(), 1);
    assert!(retired[0].starts_with("cp3-"), "{retired:?}");
    let moved: Vec<Vec<u8>> = snapshot(&secrets.join("retired").join(&retired[0]))
        .into_values()
        .collect();
    assert_eq!(moved, cp3_credentials.into_values().collect::<Vec<_>>());
    // The previous generation still has cp3; `diff` with no arguments shows the change.
    assert!(
        project
            .path()
            .join("bundles/prod-eu1.previous/cp3.tar.gz")
            .is_file()
    );
    kube_bundle(project.path(), &["diff"])
        .code(0)
        .stdout_has("node cp3: removed in this generation")
        .stdout_has("node cp1 → cp1");
    kube_bundle(
        project.path(),
        &["verify", "bundles/prod-eu1/cp1.tar.gz", "--allow-unpinned"],
    )
    .code(0);

    // cp3 comes back: new credentials, a new bundle.
    project.edit(
        "  - { name: cp2, ip: 10.20.0.12 }\n",
        "  - { name: cp2, ip: 10.20.0.12 }\n  - { name: cp3, ip: 10.20.0.13 }\n",
    );
    project.build().stdout_has("cp3: new;");
    kube_bundle(project.path(), &["diff", "--output", "json"])
        .code(0)
        .stdout_has("\"added\"");
}

#[test]
fn diff_without_a_previous_generation_says_how_to_get_one() {
    let project = Project::new();
    project.build();
    kube_bundle(project.path(), &["diff"])
        .code(1)
        .stderr_has("no previous generation");
}

/// Kills builds that ship a large binary after pseudo-random delays. Whatever the
/// timing, files outside secrets/ and the finished generations are only our staging or
/// retiring folders, and the next build removes them.
#[test]
fn killed_builds_leave_no_keys_outside_secrets_and_the_output() {
    let project = Project::new();
    let binary: Vec<u8> = (0..24_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fs::write(project.path().join("kube-apiserver"), &binary).unwrap();
    project.edit("kubeApiserver: null", "kubeApiserver: kube-apiserver");
    project.build();
    let bundles = project.path().join("bundles");
    let finished = ["prod-eu1", "prod-eu1.previous"];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..8 {
        // A new binary per round, so every build writes and swaps a new generation.
        fs::write(
            project.path().join("kube-apiserver"),
            [&binary[..], &[round as u8]].concat(),
        )
        .unwrap();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut child = Command::new(env!("CARGO_BIN_EXE_kube-bundle"))
            .arg("build")
            .current_dir(project.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(seed >> 46));
        let _ = child.kill();
        let _ = child.wait();
        for name in names(&bundles) {
            let ours = finished.contains(&name.as_str())
                || name.starts_with(".prod-eu1.staging-")
                || name.starts_with(".prod-eu1.retiring-");
            assert!(ours, "round {round}: a killed build left {name}");
        }
        project.build();
        assert!(
            names(&bundles)
                .iter()
                .all(|n| finished.contains(&n.as_str())),
            "round {round}: leftovers survived the next build: {:?}",
            names(&bundles)
        );
        for name in names(project.path()) {
            assert!(
                ["bundles", "cluster.yaml", "kube-apiserver", "secrets"].contains(&name.as_str()),
                "round {round}: {name} appeared in the project"
            );
        }
        kube_bundle(
            project.path(),
            &["verify", "bundles/prod-eu1/cp2.tar.gz", "--allow-unpinned"],
        )
        .code(0);
    }
}

/// Fragments of every private key and encryption secret in `secrets`.
fn key_fragments(secrets: &Path) -> Vec<String> {
    let mut fragments = Vec::new();
    for (_, bytes) in snapshot(secrets) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut in_key = false;
        for line in text.lines() {
            if line.starts_with("-----BEGIN") {
                in_key = line.contains("PRIVATE KEY");
            } else if in_key && line.len() >= 16 && !line.starts_with("-----") {
                fragments.push(line[..16].to_owned());
            }
            if let Some(secret) = line.trim().strip_prefix("\"secret\": \"") {
                fragments.push(secret[..16].to_owned());
            }
        }
    }
    assert!(fragments.len() > 20, "nothing to look for");
    fragments
}

#[test]
fn no_command_quotes_a_key_file_given_as_its_config() {
    let project = Project::new();
    project.build();
    let secrets = project.path().join("secrets/prod-eu1");
    let fragments = key_fragments(&secrets);
    let der = project.path().join("key.der");
    let pem_body: String = fs::read_to_string(secrets.join("signing-key.pem"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    use base64::Engine as _;
    let der_bytes = base64::engine::general_purpose::STANDARD
        .decode(pem_body)
        .unwrap();
    fs::write(&der, &der_bytes).unwrap();
    let pasted = project.path().join("pasted.yaml");
    let body: String = fs::read_to_string(secrets.join("sa.pem"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(&pasted, format!("name: prod\n{body}\n")).unwrap();
    let mut fragments = fragments;
    fragments.extend(
        body.lines()
            .filter(|l| l.len() >= 16)
            .map(|l| l[..16].to_owned()),
    );

    let key_files = [
        secrets.join("signing-key.pem"),
        secrets.join("ca.pem"),
        secrets.join("sa.pem"),
        secrets.join("nodes/cp1/admin.pem"),
        secrets.join("encryption.json"),
        der,
        pasted,
    ];
    for file in &key_files {
        let file = file.to_str().unwrap();
        let commands = vec![
            vec!["check", file],
            vec!["plan", file],
            vec!["plan", file, "--output", "json"],
            vec!["build", file],
            vec!["certs", "expiry", file],
            vec!["certs", "renew", "--config", file, "--all"],
            vec!["encryption", "rotate", file],
            vec!["diff", "--config", file],
        ];
        for args in commands {
            let run = kube_bundle(project.path(), &args);
            let everything = run.stdout() + &run.stderr();
            assert_ne!(run.output.status.code(), Some(0), "{args:?}");
            for fragment in &fragments {
                assert!(
                    !everything.contains(fragment.as_str()),
                    "{args:?} leaked:\n{everything}"
                );
            }
            assert!(
                everything.contains("key") || everything.contains("not UTF-8"),
                "{args:?} does not say what the file is:\n{everything}"
            );
        }
    }
}

/// Ways to make the swap move or delete the secrets folder: each is refused up front,
/// and the secrets survive.
#[test]
fn the_secrets_folder_can_never_be_a_generation_or_scratch_folder() {
    let project = Project::new();
    let path = project.path();
    fs::create_dir(path.join("vault")).unwrap();
    std::os::unix::fs::symlink(path.join("vault"), path.join("linked")).unwrap();
    for (args, why) in [
        (
            vec!["build", "--out", "out", "--secrets", "out.previous"],
            "its previous generation",
        ),
        (
            vec!["build", "--out", "out", "--secrets", ".out.retiring-secret"],
            "scratch folders",
        ),
        (
            vec!["build", "--out", "vault", "--secrets", "linked/s"],
            "holds the secrets folder",
        ),
        (
            vec!["build", "--out", "nope/../secrets/prod-eu1/x"],
            "inside the secrets folder",
        ),
    ] {
        kube_bundle(path, &args).code(2).stderr_has(why);
    }
    // The default secrets folder is resolved through links too.
    let second = tempfile::tempdir().unwrap();
    fs::copy(
        path.join("cluster.yaml"),
        second.path().join("cluster.yaml"),
    )
    .unwrap();
    fs::create_dir(second.path().join("vault")).unwrap();
    std::os::unix::fs::symlink(second.path().join("vault"), second.path().join("secrets")).unwrap();
    kube_bundle(second.path(), &["build", "--out", "vault"])
        .code(2)
        .stderr_has("holds the secrets folder");
    assert_eq!(names(&second.path().join("vault")), Vec::<String>::new());
}

#[test]
fn a_marker_someone_else_could_write_is_not_trusted() {
    let project = Project::new();
    project.build();
    let shared = project.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::write(shared.join("report.txt"), "theirs").unwrap();
    fs::copy(
        project.path().join("bundles/prod-eu1/.kube-bundle-output"),
        shared.join(".kube-bundle-output"),
    )
    .unwrap();
    // World-writable folder, or a marker owned by someone else: refused.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    kube_bundle(project.path(), &["build", "--out", "shared"])
        .code(2)
        .stderr_has("others may write to it");
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(shared.join(".kube-bundle-output"), Some(65534), Some(65534)).unwrap();
    kube_bundle(project.path(), &["build", "--out", "shared"])
        .code(2)
        .stderr_has("is not a marker kube-bundle wrote");
    assert_eq!(fs::read(shared.join("report.txt")).unwrap(), b"theirs");
}

#[test]
fn a_node_build_carries_over_only_bundles_its_key_signed() {
    let project = Project::new();
    project.build();
    let out = project.path().join("bundles/prod-eu1");
    // Links into secrets/ posing as cp3's bundle: never copied into the output.
    fs::remove_file(out.join("cp3.tar.gz")).unwrap();
    fs::remove_file(out.join("cp3.tar.gz.sig")).unwrap();
    let secrets = project.path().join("secrets/prod-eu1");
    std::os::unix::fs::symlink(secrets.join("ca.pem"), out.join("cp3.tar.gz")).unwrap();
    std::os::unix::fs::symlink(secrets.join("signing-key.pem"), out.join("cp3.tar.gz.sig"))
        .unwrap();
    kube_bundle(project.path(), &["build", "--node", "cp1"])
        .code(1)
        .stderr_has("not a regular file");
    for (path, bytes) in snapshot(&out) {
        if fs::symlink_metadata(&path).unwrap().is_file() {
            assert!(
                !String::from_utf8_lossy(&bytes).contains("PRIVATE KEY"),
                "{}",
                path.display()
            );
        }
    }
    fs::remove_file(out.join("cp3.tar.gz")).unwrap();
    fs::remove_file(out.join("cp3.tar.gz.sig")).unwrap();
    project.build();

    // Another signing key for one node: the others would not verify.
    let other_key = tempfile::tempdir().unwrap();
    let store = kube_bundle::secrets::SecretStore::open(
        &other_key.path().join("s"),
        kube_bundle::secrets::Access::ReadWrite,
    )
    .unwrap();
    kube_bundle::sign::Signer::load_or_create(&store, None).unwrap();
    let key = other_key.path().join("s/signing-key.pem");
    kube_bundle(
        project.path(),
        &[
            "build",
            "--node",
            "cp1",
            "--signing-key",
            key.to_str().unwrap(),
        ],
    )
    .code(1)
    .stderr_has("build every node");
    kube_bundle(
        project.path(),
        &["build", "--node", "cp1", "--replace-cluster-identity"],
    )
    .code(2);
}

#[test]
fn a_swap_killed_between_its_renames_loses_no_node() {
    let project = Project::new();
    project.build();
    let bundles = project.path().join("bundles");
    // What a kill between "current → previous" and "staging → current" leaves.
    fs::rename(bundles.join("prod-eu1"), bundles.join("prod-eu1.previous")).unwrap();
    kube_bundle(project.path(), &["build", "--node", "cp1"]).code(0);
    let listing = names(&bundles.join("prod-eu1"));
    for node in ["cp1", "cp2", "cp3"] {
        assert!(listing.contains(&format!("{node}.tar.gz")), "{listing:?}");
    }
}

#[test]
fn a_mount_point_output_is_refused_before_anything_is_written() {
    let project = Project::new();
    let mount = project.path().join("mnt");
    fs::create_dir(&mount).unwrap();
    let mounted = Tmpfs::mount(&mount, "size=4m,mode=0700");
    let run = kube_bundle(project.path(), &["build", "--out", "mnt"]);
    drop(mounted);
    run.code(2).stderr_has("mount point");
    assert_eq!(names(project.path()), ["cluster.yaml", "mnt", "secrets"]);
}

#[test]
fn key_files_in_any_encoding_are_named_not_quoted() {
    let project = Project::new();
    let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n";
    let age = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS3HZ7NM\n";
    for (name, text) in [("hex.key", hex), ("age.key", age)] {
        fs::write(project.path().join(name), text).unwrap();
        let run = kube_bundle(project.path(), &["check", name]);
        run.code(1).stderr_has("not a cluster description");
        assert!(!run.stderr().contains(&text[..20]), "{}", run.stderr());
    }
}
