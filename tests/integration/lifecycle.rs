//! Certificate expiry and renewal, the staged encryption-key rotation, and `diff` between
//! bundle generations, all offline; and no key material in any of their outputs.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::harness::{Project, Run, kube_bundle, snapshot};

fn cert_text(pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("c.pem"), pem).unwrap();
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", "c.pem"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The certificate block of a stored credential.
fn stored_cert(project: &Project, file: &str) -> String {
    let text = fs::read_to_string(project.path().join("secrets/prod-eu1").join(file)).unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
    text[..end].to_owned()
}

fn sans(text: &str) -> String {
    text.lines()
        .skip_while(|l| !l.contains("Subject Alternative Name"))
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The encryption config inside a node's bundle.
fn bundled_encryption_config(project: &Project) -> String {
    let (_, entries) = kube_bundle::verify::read_entries(&project.bundle("cp1")).unwrap();
    entries["rootfs/etc/kubernetes/encryption-config.yaml"]
        .text
        .clone()
        .unwrap()
}

fn key_order(config: &str) -> Vec<String> {
    let value: serde_json::Value = serde_saphyr::from_str(config).unwrap();
    let mut order = Vec::new();
    for provider in value["resources"][0]["providers"].as_array().unwrap() {
        let (kind, body) = provider.as_object().unwrap().iter().next().unwrap();
        match body["keys"].as_array() {
            Some(keys) => order.extend(
                keys.iter()
                    .map(|k| format!("{kind}:{}", k["name"].as_str().unwrap())),
            ),
            None => order.push(kind.clone()),
        }
    }
    order
}

#[test]
fn expiry_lists_every_ca_and_leaf_and_can_fail_the_run() {
    let project = Project::new();
    let run = kube_bundle(project.path(), &["certs", "expiry"]);
    run.code(0);
    let text = run.stdout();
    for line in [
        "(CA)     ca ",
        "(CA)     front-proxy-ca",
        "(CA)     etcd-ca",
        "cp1      apiserver ",
        "cp3      admin",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    assert_eq!(text.lines().count(), 1 + 3 + 3 * 5, "{text}");
    assert!(text.contains("CN=kubernetes"), "issuer shown: {text}");
    // The fixture leaves live for a century.
    kube_bundle(project.path(), &["certs", "expiry", "--fail-under", "30"]).code(0);
    kube_bundle(
        project.path(),
        &["certs", "expiry", "--fail-under", "40000"],
    )
    .code(1)
    .stderr_has("under --fail-under 40000: run `kube-bundle certs renew --all`, then build");
    let json: serde_json::Value = serde_json::from_str(
        &kube_bundle(project.path(), &["certs", "expiry", "--output", "json"]).stdout(),
    )
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 18);
}

#[test]
fn expiry_warns_under_thirty_days() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = fs::read_to_string(crate::harness::repo_root().join("examples/cluster.yaml"))
        .unwrap()
        .replace("certValidity: 8760h", "certValidity: 480h");
    fs::write(dir.path().join("cluster.yaml"), yaml).unwrap();
    kube_bundle(dir.path(), &["build"]).code(0);
    let run = kube_bundle(dir.path(), &["certs", "expiry"]);
    assert!(
        run.stdout().contains("WARNING: under 30 days"),
        "{}",
        run.stdout()
    );
}

#[test]
fn renewed_certs_verify_keep_their_sans_and_change_only_their_files() {
    let project = Project::new();
    project.build();
    let old_bundle = project.path().join("old.tar.gz");
    fs::copy(project.bundle("cp1"), &old_bundle).unwrap();
    let before = stored_cert(&project, "nodes/cp1/apiserver.pem");
    let run = kube_bundle(project.path(), &["certs", "renew", "apiserver"]);
    run.code(0)
        .stdout_has("renewed cp1/apiserver")
        .stdout_has("renewed cp3/apiserver");
    let after = stored_cert(&project, "nodes/cp1/apiserver.pem");
    assert_ne!(before, after);
    assert_eq!(
        sans(&cert_text(&before)),
        sans(&cert_text(&after)),
        "SANs kept"
    );
    let ca = stored_cert(&project, "ca.pem");
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ca.crt"), ca).unwrap();
    fs::write(dir.path().join("leaf.crt"), &after).unwrap();
    let verify = Command::new("openssl")
        .args([
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            "ca.crt",
            "-verify_hostname",
            "kubernetes.default.svc.cluster.local",
            "leaf.crt",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    project.build();
    let run = kube_bundle(
        project.path(),
        &[
            "diff",
            old_bundle.to_str().unwrap(),
            project.bundle("cp1").to_str().unwrap(),
            "--unverified",
        ],
    );
    let text = run.stdout();
    let changed: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("changed"))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        changed,
        [
            "README.md",
            "SHA256SUMS",
            "bundle.json",
            "install.sh",
            "rootfs/etc/kubernetes/pki/apiserver.crt",
            "rootfs/etc/kubernetes/pki/apiserver.key"
        ],
        "{text}"
    );
    assert!(
        text.contains("key changed") && text.contains("kube-apiserver flags: unchanged"),
        "{text}"
    );
    // Renewed the day it was issued (or just after midnight): never "expires D → D".
    let expiries: Vec<&str> = text.lines().filter(|l| l.contains("expires")).collect();
    assert!(!expiries.is_empty(), "{text}");
    for line in expiries {
        match line.split_once(" → ") {
            Some((old, new)) => assert_ne!(old.split_whitespace().last(), Some(new.trim())),
            None => assert!(line.contains("re-issued, expires"), "{line}"),
        }
    }
}

/// Found by the end-to-end test: every bundle's timestamp was the newest leaf of the whole
/// cluster, so renewing one node's certificate changed the bytes of every node's bundle.
#[test]
fn renewing_one_nodes_certificate_leaves_the_other_bundles_byte_for_byte() {
    let project = Project::new();
    project.build();
    let before: Vec<Vec<u8>> = ["cp1", "cp2", "cp3"]
        .iter()
        .map(|node| fs::read(project.bundle(node)).unwrap())
        .collect();
    kube_bundle(project.path(), &["certs", "renew", "cp2/apiserver"]).code(0);
    let build = project.build();
    build
        .stdout_has("cp1: unchanged")
        .stdout_has("cp2: changed (")
        .stdout_has("cp3: unchanged");
    assert_eq!(fs::read(project.bundle("cp1")).unwrap(), before[0]);
    assert_ne!(fs::read(project.bundle("cp2")).unwrap(), before[1]);
    assert_eq!(fs::read(project.bundle("cp3")).unwrap(), before[2]);
}

#[test]
fn renew_can_keep_keys_and_refuses_unknown_names() {
    let project = Project::new();
    let key_of = |p: &Project| {
        let text = fs::read_to_string(
            p.path()
                .join("secrets/prod-eu1/nodes/cp2/front-proxy-client.pem"),
        )
        .unwrap();
        text[text.find("-----BEGIN PRIVATE KEY").unwrap()..].to_owned()
    };
    let before = key_of(&project);
    kube_bundle(
        project.path(),
        &["certs", "renew", "cp2/front-proxy-client", "--reuse-keys"],
    )
    .code(0)
    .stdout_has("renewed cp2/front-proxy-client");
    assert_eq!(key_of(&project), before);
    kube_bundle(
        project.path(),
        &["certs", "renew", "cp2/front-proxy-client"],
    )
    .code(0);
    assert_ne!(key_of(&project), before);
    kube_bundle(project.path(), &["certs", "renew", "etcd-server"])
        .code(2)
        .stderr_has("no certificate named");
    kube_bundle(project.path(), &["certs", "renew"])
        .code(2)
        .stderr_has("--all");
}

#[test]
fn a_rotation_walks_three_phases_and_refuses_steps_out_of_order() {
    let project = Project::new();
    project.build();
    assert_eq!(
        key_order(&bundled_encryption_config(&project)),
        ["secretbox:key1", "identity"]
    );
    let rotate = |args: &[&str]| -> Run {
        let mut all = vec!["encryption", "rotate"];
        all.extend_from_slice(args);
        kube_bundle(project.path(), &all)
    };
    rotate(&[]).code(0).stdout_has("phase 1/3");
    rotate(&[])
        .code(1)
        .stderr_has("phase 1 of the rotation has not been built");
    project.build();
    assert_eq!(
        key_order(&bundled_encryption_config(&project)),
        ["secretbox:key1", "secretbox:key2", "identity"]
    );
    rotate(&[])
        .code(0)
        .stdout_has("phase 2/3")
        .stdout_has("kubectl get secrets --all-namespaces -o json | kubectl replace -f -");
    // A --node build does not complete a phase.
    kube_bundle(project.path(), &["build", "--node", "cp1"]).code(0);
    rotate(&["--confirm-rewritten"])
        .code(1)
        .stderr_has("phase 2 of the rotation has not been built");
    project.build();
    assert_eq!(
        key_order(&bundled_encryption_config(&project)),
        ["secretbox:key2", "secretbox:key1", "identity"]
    );
    rotate(&[]).code(1).stderr_has("--confirm-rewritten");
    rotate(&["--confirm-rewritten"])
        .code(0)
        .stdout_has("phase 3/3")
        .stdout_has("old key key1 removed");
    project.build();
    assert_eq!(
        key_order(&bundled_encryption_config(&project)),
        ["secretbox:key2", "identity"]
    );
    let stored: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(project.path().join("secrets/prod-eu1/encryption.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        stored["retired"][0]["name"], "key1",
        "the old key is never thrown away"
    );
    // Built phase 3: another call would start a new rotation, which must be asked for.
    let secrets = project.path().join("secrets");
    let before = snapshot(&secrets);
    rotate(&[])
        .code(1)
        .stderr_has("starts a NEW rotation")
        .stderr_has("--start-new-rotation");
    assert_eq!(
        snapshot(&secrets),
        before,
        "a refused rotation changes nothing"
    );
    // Asked for, it starts one with a fresh name; the flag does not skip its phases.
    rotate(&["--start-new-rotation"])
        .code(0)
        .stdout_has("new key key3 added second");
    project.build();
    rotate(&["--start-new-rotation"])
        .code(1)
        .stderr_has("at phase 1 of 3 and must finish first");
    rotate(&[]).code(0).stdout_has("phase 2/3");
}

#[test]
fn a_provider_change_uses_the_same_sequence() {
    let project = Project::new();
    project.build();
    project.edit("provider: secretbox", "provider: aescbc");
    kube_bundle(project.path(), &["build"])
        .code(1)
        .stderr_has("encryption rotate");
    let rotate = |args: &[&str]| {
        let mut all = vec!["encryption", "rotate"];
        all.extend_from_slice(args);
        kube_bundle(project.path(), &all).code(0);
        project.build();
        key_order(&bundled_encryption_config(&project))
    };
    assert_eq!(rotate(&[]), ["secretbox:key1", "aescbc:key2", "identity"]);
    assert_eq!(rotate(&[]), ["aescbc:key2", "secretbox:key1", "identity"]);
    assert_eq!(
        rotate(&["--confirm-rewritten"]),
        ["aescbc:key2", "identity"]
    );
}

#[test]
fn diff_of_a_rebuild_with_one_changed_flag_names_exactly_that_flag() {
    let project = Project::new();
    project.build();
    let old = project.path().join("old.tar.gz");
    fs::copy(project.bundle("cp1"), &old).unwrap();
    project.edit(
        "profiling: \"false\"",
        "profiling: \"false\"\n    event-ttl: 2h",
    );
    project.build();
    let run = kube_bundle(
        project.path(),
        &[
            "diff",
            old.to_str().unwrap(),
            project.bundle("cp1").to_str().unwrap(),
            "--unverified",
            "--output",
            "json",
        ],
    );
    run.code(0);
    let diff: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(
        diff["flags"]["changed"],
        serde_json::json!({ "event-ttl": ["168h", "2h"] })
    );
    assert_eq!(diff["flags"]["added"], serde_json::json!({}));
    assert_eq!(diff["flags"]["removed"], serde_json::json!({}));
    assert_eq!(diff["restart"], true);
    assert_eq!(
        diff["restartUnits"],
        serde_json::json!(["kube-apiserver.service"])
    );
    let rootfs: Vec<&str> = diff["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .filter(|p| p.starts_with("rootfs/"))
        .collect();
    assert_eq!(rootfs, ["rootfs/etc/systemd/system/kube-apiserver.service"]);
    // The same bundle against itself: nothing, and no restart.
    let same = kube_bundle(
        project.path(),
        &[
            "diff",
            project.bundle("cp1").to_str().unwrap(),
            project.bundle("cp1").to_str().unwrap(),
            "--pubkey",
            "bundles/prod-eu1/signing.pub",
        ],
    );
    same.code(0)
        .stdout_has("kube-apiserver flags: unchanged")
        .stdout_has("files: unchanged")
        .stdout_has("will not restart");
}

/// Every piece of key material in the project's secrets: PEM key bodies and the
/// encryption secrets, as the fragments a leak would show.
fn key_material(secrets: &Path) -> Vec<String> {
    let mut fragments = Vec::new();
    let mut stack = vec![secrets.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = fs::read_to_string(&path).unwrap_or_default();
            let mut in_key = false;
            for line in text.lines() {
                if line.starts_with("-----BEGIN") {
                    in_key = line.contains("PRIVATE KEY");
                } else if in_key && line.len() >= 24 && !line.starts_with("-----") {
                    fragments.push(line[..24].to_owned());
                }
                if let Some(secret) = line.trim().strip_prefix("\"secret\": \"") {
                    fragments.push(secret.trim_end_matches(['"', ',']).to_owned());
                }
            }
        }
    }
    assert!(
        fragments.len() > 20,
        "the search must have something to look for"
    );
    fragments
}

#[test]
fn no_output_contains_key_material() {
    let project = Project::new();
    project.build();
    let old = project.path().join("old.tar.gz");
    fs::copy(project.bundle("cp1"), &old).unwrap();
    let mut outputs = vec![project.build()];
    outputs.push(kube_bundle(project.path(), &["encryption", "rotate"]));
    outputs.push(project.build());
    outputs.push(kube_bundle(project.path(), &["certs", "renew", "--all"]));
    outputs.push(project.build());
    let new = project.bundle("cp1");
    for args in [
        vec!["plan"],
        vec!["plan", "--output", "json"],
        vec!["check"],
        vec!["certs", "expiry"],
        vec!["certs", "expiry", "--output", "json"],
        vec![
            "diff",
            old.to_str().unwrap(),
            new.to_str().unwrap(),
            "--unverified",
        ],
        vec![
            "diff",
            old.to_str().unwrap(),
            new.to_str().unwrap(),
            "--unverified",
            "--output",
            "json",
        ],
        vec!["diff"],
        vec!["verify", new.to_str().unwrap(), "--allow-unpinned"],
    ] {
        outputs.push(kube_bundle(project.path(), &args));
    }
    // Errors too: a damaged leaf and a bad import are reported without their contents.
    let leaf = project
        .path()
        .join("secrets/prod-eu1/nodes/cp2/apiserver.pem");
    let text = fs::read_to_string(&leaf).unwrap();
    fs::write(&leaf, &text[..text.len() - 40]).unwrap();
    outputs.push(kube_bundle(project.path(), &["build"]));
    let fragments = key_material(&project.path().join("secrets/prod-eu1"));
    for run in &outputs {
        let all = format!("{}{}", run.stdout(), run.stderr());
        for fragment in &fragments {
            assert!(
                !all.contains(fragment.as_str()),
                "`kube-bundle {:?}` printed key material",
                run.args
            );
        }
    }
}

/// Moving one master re-renders every front, masters' and clients', and `diff` says that
/// only the front restarts.
#[test]
fn diff_reports_a_master_list_change_as_a_front_restart_on_every_node() {
    let project = Project::new();
    project.add_client();
    project.build();
    let old = tempfile::tempdir().unwrap();
    for node in ["cp1", "cp2", "w1"] {
        fs::copy(
            project.bundle(node),
            old.path().join(format!("{node}.tar.gz")),
        )
        .unwrap();
    }
    project.edit("ip: 10.20.0.13", "ip: 10.20.0.33");
    project.build();
    for node in ["cp1", "cp2", "w1"] {
        let old_bundle = old.path().join(format!("{node}.tar.gz"));
        let new_bundle = project.bundle(node);
        let args = [
            "diff",
            old_bundle.to_str().unwrap(),
            new_bundle.to_str().unwrap(),
            "--unverified",
        ];
        let text = kube_bundle(project.path(), &args).code(0).stdout();
        assert!(
            text.contains("changed  rootfs/etc/kubernetes/kube-nginx.conf")
                && text.contains("install.sh will restart kube-nginx.service\n"),
            "{node}: {text}"
        );
        let json = kube_bundle(project.path(), &[&args[..], &["--output", "json"]].concat())
            .code(0)
            .stdout();
        let diff: serde_json::Value = serde_json::from_str(&json).unwrap();
        let rootfs: Vec<&str> = diff["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["path"].as_str())
            .filter(|p| p.starts_with("rootfs/"))
            .collect();
        assert_eq!(rootfs, ["rootfs/etc/kubernetes/kube-nginx.conf"], "{node}");
        assert_eq!(
            diff["restartUnits"],
            serde_json::json!(["kube-nginx.service"]),
            "{node}"
        );
    }
}
