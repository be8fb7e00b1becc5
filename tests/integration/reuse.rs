//! A rebuild reuses the tarball of every node whose inputs did not change (the output
//! marker's sealed record says what each was made from), and writes every other one:
//! the reused bytes are the ones a fresh build writes, and nothing in the output that
//! an operator or an attacker changed is ever carried forward.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{Project, kube_bundle};

const NODES: [&str; 3] = ["cp1", "cp2", "cp3"];

fn output(project: &Project) -> PathBuf {
    project.path().join("bundles/prod-eu1")
}

fn marker(project: &Project) -> Value {
    let text = fs::read_to_string(output(project).join(".kube-bundle-output")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn write_marker(project: &Project, marker: &Value) {
    fs::write(
        output(project).join(".kube-bundle-output"),
        serde_json::to_string_pretty(marker).unwrap(),
    )
    .unwrap();
}

/// Each node's (inode, tarball bytes, signature bytes).
fn tarballs(project: &Project) -> BTreeMap<&'static str, (u64, Vec<u8>, Vec<u8>)> {
    NODES
        .iter()
        .map(|node| {
            let tarball = project.bundle(node);
            let signature = tarball.with_extension("gz.sig");
            let inode = fs::metadata(&tarball).unwrap().ino();
            (
                *node,
                (
                    inode,
                    fs::read(&tarball).unwrap(),
                    fs::read(signature).unwrap(),
                ),
            )
        })
        .collect()
}

fn sha256(path: &Path) -> String {
    kube_bundle::sign::sha256_hex(&fs::read(path).unwrap())
}

/// `verify` accepts every bundle, and SHA256SUMS names every file as it is.
fn verifies(project: &Project) {
    for node in NODES {
        kube_bundle(
            project.path(),
            &[
                "verify",
                &format!("bundles/prod-eu1/{node}.tar.gz"),
                "--allow-unpinned",
            ],
        )
        .code(0)
        .stdout_has("OK");
    }
    let sums = std::process::Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(output(project))
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
}

#[test]
fn a_rebuild_reuses_unchanged_tarballs_and_writes_the_changed_ones() {
    let project = Project::new();
    project.build();
    let first = tarballs(&project);
    let recorded = marker(&project);
    for node in NODES {
        let record = &recorded["tarballs"][node];
        assert_eq!(
            record["tarballSha256"].as_str(),
            Some(sha256(&project.bundle(node)).as_str()),
            "{node}: the marker's record does not name the tarball's bytes"
        );
        assert_eq!(record["seal"].as_str().map(str::len), Some(64), "{node}");
    }

    kube_bundle(project.path(), &["certs", "renew", "cp2/apiserver"]).code(0);
    let run = project.build();
    run.stdout_has("cp1: unchanged")
        .stdout_has("cp3: unchanged")
        .stdout_has("cp2: changed");
    let second = tarballs(&project);
    for node in ["cp1", "cp3"] {
        assert_eq!(
            second[node], first[node],
            "{node}: not carried over as it was"
        );
    }
    assert_ne!(
        second["cp2"].1, first["cp2"].1,
        "cp2's renewed certificate is not in it"
    );
    assert_ne!(second["cp2"].0, first["cp2"].0, "cp2 was not written anew");
    verifies(&project);

    // What was reused is exactly what a build with no previous output writes.
    fs::remove_dir_all(project.path().join("bundles")).unwrap();
    project.build();
    let fresh = tarballs(&project);
    for node in NODES {
        assert_eq!(
            fresh[node].1, second[node].1,
            "{node}: tarball bytes differ"
        );
        assert_eq!(
            fresh[node].2, second[node].2,
            "{node}: signature bytes differ"
        );
    }
}

#[test]
fn a_tarball_changed_in_the_output_is_written_again_not_reused() {
    let project = Project::new();
    project.build();
    let clean = tarballs(&project);

    // Damaged bytes whose record still names the old digest.
    let cp1 = project.bundle("cp1");
    let mut damaged = fs::read(&cp1).unwrap();
    damaged.push(0);
    fs::remove_file(&cp1).unwrap();
    fs::write(&cp1, &damaged).unwrap();
    // A validly signed tarball of another node, with the record edited to name it: the
    // record's seal no longer matches, so it is not believed.
    let cp2 = project.bundle("cp2");
    fs::remove_file(&cp2).unwrap();
    fs::copy(project.bundle("cp3"), &cp2).unwrap();
    fs::remove_file(cp2.with_extension("gz.sig")).unwrap();
    fs::copy(
        project.bundle("cp3").with_extension("gz.sig"),
        cp2.with_extension("gz.sig"),
    )
    .unwrap();
    let mut forged = marker(&project);
    forged["tarballs"]["cp2"]["tarballSha256"] = forged["tarballs"]["cp3"]["tarballSha256"].clone();
    forged["tarballs"]["cp2"]["signatureSha256"] =
        forged["tarballs"]["cp3"]["signatureSha256"].clone();
    write_marker(&project, &forged);
    // A link in place of a tarball is never followed into the next generation.
    let cp3 = project.bundle("cp3");
    let elsewhere = project.path().join("cp3-copy.tar.gz");
    fs::rename(&cp3, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &cp3).unwrap();

    // cp2 now holds cp3's bundle, which the guards refuse to compare with: waive them, so
    // that what is tested is the reuse alone.
    kube_bundle(
        project.path(),
        &["build", "--allow-version-skew", "--allow-issuer-change"],
    )
    .code(0);
    let rebuilt = tarballs(&project);
    for node in NODES {
        assert_eq!(
            rebuilt[node].1, clean[node].1,
            "{node}: not the tarball its inputs make"
        );
        assert_eq!(rebuilt[node].2, clean[node].2, "{node}: not its signature");
        assert!(
            fs::symlink_metadata(project.bundle(node))
                .unwrap()
                .is_file(),
            "{node}: a link was carried into the output"
        );
    }
    verifies(&project);
}

#[test]
fn a_record_sealed_by_another_key_or_missing_reuses_nothing() {
    let project = Project::new();
    project.build();
    // Another signing key: every record's seal fails and every tarball is signed anew.
    let other_key = project.path().join("other-signing-key.pem");
    let key = kube_bundle::keys::PrivateKey::generate(kube_bundle::config::KeyAlgorithm::EcdsaP256)
        .unwrap();
    fs::write(&other_key, key.to_pem()).unwrap();
    let before = tarballs(&project);
    kube_bundle(
        project.path(),
        &["build", "--signing-key", other_key.to_str().unwrap()],
    )
    .code(0);
    let resigned = tarballs(&project);
    for node in NODES {
        assert_ne!(
            resigned[node].0, before[node].0,
            "{node}: reused under another key"
        );
        assert_eq!(
            resigned[node].1, before[node].1,
            "{node}: the bytes should not differ"
        );
        assert_ne!(
            resigned[node].2, before[node].2,
            "{node}: not signed by the new key"
        );
    }

    // A marker written before the records existed: parsed, and nothing is reused.
    let mut old = marker(&project);
    old.as_object_mut().unwrap().remove("tarballs");
    write_marker(&project, &old);
    let inodes = tarballs(&project);
    project.build();
    let rebuilt = tarballs(&project);
    for node in NODES {
        assert_ne!(
            rebuilt[node].0, inodes[node].0,
            "{node}: reused without a record"
        );
        assert_eq!(rebuilt[node].1, inodes[node].1, "{node}");
    }
    assert!(marker(&project)["tarballs"]["cp1"].is_object());
}
