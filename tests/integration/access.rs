//! `kubeconfig user`: a kubeconfig for a person or a tool, issued from the stored cluster CA.
//! What kubectl reads, what openssl verifies, and what the command refuses to hand out.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use base64::Engine as _;

use crate::harness::{Project, kube_bundle};

/// Every file under `dir` with its bytes.
fn tree(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(tree(&path));
        } else {
            files.push((path.clone(), fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

/// The certificate inside a kubeconfig, as PEM, read with kubectl itself.
fn kubeconfig_cert(project: &Project, file: &str, field: &str) -> String {
    let output = Command::new("kubectl")
        .args([
            "config",
            "view",
            "--raw",
            "--kubeconfig",
            file,
            "-o",
            &format!("jsonpath={{{field}}}"),
        ])
        .current_dir(project.path())
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pem = base64::engine::general_purpose::STANDARD
        .decode(output.stdout.trim_ascii())
        .unwrap();
    String::from_utf8(pem).unwrap()
}

fn openssl(project: &Project, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(project.path())
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_user_kubeconfig_holds_a_short_lived_client_certificate_from_the_cluster_ca() {
    let project = Project::new();
    project.build();
    // Names YAML would read as a number or a boolean stay text in the kubeconfig.
    for name in ["1001", "on"] {
        kube_bundle(project.path(), &["kubeconfig", "user", name]).code(0);
        let user = Command::new("kubectl")
            .args([
                "config",
                "view",
                "--kubeconfig",
                &format!("{name}.kubeconfig"),
                "-o",
                "jsonpath={.users[0].name}",
            ])
            .current_dir(project.path())
            .output()
            .unwrap();
        assert!(
            user.status.success(),
            "{}",
            String::from_utf8_lossy(&user.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&user.stdout), name);
        fs::remove_file(project.path().join(format!("{name}.kubeconfig"))).unwrap();
    }
    let secrets_before = tree(&project.path().join("secrets"));
    kube_bundle(
        project.path(),
        &[
            "kubeconfig",
            "user",
            "alice",
            "--group",
            "devs",
            "--validity",
            "8h",
        ],
    )
    .code(0)
    .stdout_has(
        "wrote alice.kubeconfig: alice in group devs at https://api.prod-eu1.example.com:6443",
    );
    let file = project.path().join("alice.kubeconfig");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Handed out, not stored: secrets/ is as the build left it.
    assert_eq!(tree(&project.path().join("secrets")), secrets_before);

    let server = Command::new("kubectl")
        .args([
            "config",
            "view",
            "--kubeconfig",
            "alice.kubeconfig",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&server.stdout),
        "https://api.prod-eu1.example.com:6443"
    );

    fs::write(
        project.path().join("alice.crt"),
        kubeconfig_cert(
            &project,
            "alice.kubeconfig",
            ".users[0].user.client-certificate-data",
        ),
    )
    .unwrap();
    fs::write(
        project.path().join("ca.crt"),
        kubeconfig_cert(
            &project,
            "alice.kubeconfig",
            ".clusters[0].cluster.certificate-authority-data",
        ),
    )
    .unwrap();
    let stored_ca = fs::read_to_string(project.path().join("secrets/prod-eu1/ca.pem")).unwrap();
    assert!(
        stored_ca.contains(
            fs::read_to_string(project.path().join("ca.crt"))
                .unwrap()
                .trim()
        )
    );
    openssl(
        &project,
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            "ca.crt",
            "alice.crt",
        ],
    );
    let subject = openssl(
        &project,
        &[
            "x509",
            "-in",
            "alice.crt",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
        ],
    );
    assert_eq!(subject.trim(), "subject=CN=alice,O=devs");
    // 8 hours from now (plus the backdate every certificate gets), never a year.
    openssl(
        &project,
        &["x509", "-in", "alice.crt", "-noout", "-checkend", "25200"],
    );
    let expired_by_tomorrow = Command::new("openssl")
        .args(["x509", "-in", "alice.crt", "-noout", "-checkend", "86400"])
        .current_dir(project.path())
        .status()
        .unwrap();
    assert!(
        !expired_by_tomorrow.success(),
        "an 8h certificate outlives a day"
    );

    // The same user again: the first file is a credential someone holds; never replaced.
    let before = fs::read(&file).unwrap();
    kube_bundle(project.path(), &["kubeconfig", "user", "alice"])
        .code(1)
        .stderr_has("never overwrites a credential");
    assert_eq!(fs::read(&file).unwrap(), before);
}

#[test]
fn kubeconfig_user_refuses_unrevocable_and_malformed_identities() {
    let project = Project::new();
    project.build();
    for (args, fragment) in [
        (
            vec!["root", "--group", "system:masters"],
            "no RBAC change can revoke",
        ),
        (
            vec!["system:kube-scheduler"],
            "reserves for its own components",
        ),
        (vec!["alice\nkind: x"], "letters, digits"),
        (vec!["alice", "--group", "a b"], "letters, digits"),
        (vec!["alice", "--validity", "87601h"], "at most 8760h"),
        (vec!["alice", "--validity", "0s"], "at least 15m"),
        (
            vec!["bob", "--group", "kube-bundle:cluster-admins"],
            "kube-bundle's own",
        ),
        (vec!["kube-apiserver-kubelet-client"], "kube-bundle's own"),
        (vec!["kubernetes-admin"], "kube-bundle's own"),
        (vec!["alice", "--validity", "soon"], "--validity soon"),
        (
            vec!["alice", "--server", "http://10.0.0.1:6443"],
            "https://HOST[:PORT]",
        ),
        (
            vec!["alice", "--server", "https://x:6443/path?q"],
            "https://HOST[:PORT]",
        ),
    ] {
        let mut argv = vec!["kubeconfig", "user"];
        argv.extend(&args);
        kube_bundle(project.path(), &argv)
            .code(2)
            .stderr_has(fragment);
    }
    let written: Vec<_> = fs::read_dir(project.path())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|name| name.ends_with(".kubeconfig"))
        .collect();
    assert!(written.is_empty(), "{written:?}");

    // The break-glass superuser exists, but only when asked for by name.
    kube_bundle(
        project.path(),
        &[
            "kubeconfig",
            "user",
            "breakglass",
            "--group",
            "system:masters",
            "--allow-system-identity",
            "--validity",
            "1h",
            "--server",
            "https://10.20.0.11:6443",
        ],
    )
    .code(0)
    .stdout_has("at https://10.20.0.11:6443");
}

#[test]
fn kubeconfig_user_before_the_first_build_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        crate::harness::repo_root().join("examples/cluster.yaml"),
        dir.path().join("cluster.yaml"),
    )
    .unwrap();
    kube_bundle(dir.path(), &["kubeconfig", "user", "alice"])
        .code(1)
        .stderr_has("`kube-bundle build` creates it");
    assert!(!dir.path().join("secrets").exists());
    assert!(!dir.path().join("alice.kubeconfig").exists());
}
