//! The command-line contract: commands, exit codes 0 / 1 / 2, messages.

use std::fs;

use crate::harness::{Project, kube_bundle, repo_root};

#[test]
fn examples_pass_check() {
    for example in ["examples/cluster.yaml", "examples/seed-ha.yaml"] {
        kube_bundle(&repo_root(), &["check", example])
            .code(0)
            .stdout_has("is valid");
    }
}

#[test]
fn seed_example_is_linted_for_aescbc() {
    kube_bundle(&repo_root(), &["check", "examples/seed-ha.yaml"])
        .code(0)
        .stderr_has("aescbc is rated weak")
        .stderr_has("examples/seed-ha.yaml:");
}

/// Every bad fixture exits 1 and names the position and the problem it was written for.
#[test]
fn every_bad_fixture_exits_1_with_its_expected_message() {
    let fixtures = repo_root().join("tests/fixtures/bad");
    let mut checked = 0;
    for entry in fs::read_dir(&fixtures).unwrap() {
        let dir = entry.unwrap().path();
        let expected = fs::read_to_string(dir.join("expected"))
            .unwrap_or_else(|_| panic!("{} has no `expected` file", dir.display()));
        let run = kube_bundle(&dir, &["check", "cluster.yaml"]);
        run.code(1);
        for line in expected.lines().filter(|line| !line.is_empty()) {
            run.stderr_has(line);
        }
        assert!(!run.stderr().contains("panicked"), "{}", dir.display());
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} fixtures found");
}

#[test]
fn plan_rejects_what_check_rejects() {
    let dir = repo_root().join("tests/fixtures/bad/dns-domain-trailing-dot");
    kube_bundle(&dir, &["plan", "cluster.yaml"])
        .code(1)
        .stderr_has("trailing dot");
}

#[test]
fn usage_errors_exit_2() {
    kube_bundle(&repo_root(), &["chek"]).code(2);
    kube_bundle(
        &repo_root(),
        &["plan", "--output", "yaml", "examples/cluster.yaml"],
    )
    .code(2);
    kube_bundle(&repo_root(), &["check", "--no-such-flag"]).code(2);
}

#[test]
fn a_missing_config_exits_1_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    kube_bundle(dir.path(), &["check"])
        .code(1)
        .stderr_has("kube-bundle init");
}

#[test]
fn init_writes_a_valid_example_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    kube_bundle(dir.path(), &["init", "site"]).code(0);
    let written = fs::read_to_string(dir.path().join("site/cluster.yaml")).unwrap();
    assert!(written.contains("kubernetesVersion: v1.37.2"));
    kube_bundle(dir.path(), &["check", "site/cluster.yaml"]).code(0);
    fs::write(dir.path().join("site/cluster.yaml"), "mine").unwrap();
    kube_bundle(dir.path(), &["init", "site"])
        .code(1)
        .stderr_has("never overwrites");
    assert_eq!(
        fs::read_to_string(dir.path().join("site/cluster.yaml")).unwrap(),
        "mine"
    );
}

#[test]
fn the_init_template_is_the_shipped_example() {
    let template = fs::read_to_string(repo_root().join("templates/cluster.yaml")).unwrap();
    let example = fs::read_to_string(repo_root().join("examples/cluster.yaml")).unwrap();
    assert_eq!(
        template, example,
        "examples/cluster.yaml must be what `init` writes"
    );
}

#[test]
fn plan_text_shows_seed_sans_and_paths() {
    let run = kube_bundle(&repo_root(), &["plan", "examples/seed-ha.yaml"]);
    run.code(0)
        .stdout_has("kubernetes service IP 10.254.0.1")
        .stdout_has("node m7-autocv-gpu01 (172.27.128.150)")
        .stdout_has("kubernetes.default.svc.cluster, kubernetes.default.svc.cluster.local")
        .stdout_has("IP:  172.27.128.150, 127.0.0.1, 10.254.0.1")
        .stdout_has("0600  /etc/kubernetes/cert/apiserver.key")
        .stdout_has("directories: /data/k8s/k8s/kube-apiserver");
}

#[test]
fn plan_json_has_the_documented_shape() {
    let run = kube_bundle(
        &repo_root(),
        &["plan", "--output", "json", "examples/cluster.yaml"],
    );
    run.code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(plan["formatVersion"], 1);
    assert_eq!(plan["cluster"], "prod-eu1");
    assert_eq!(plan["kubernetesVersion"], "v1.37.2");
    assert_eq!(plan["kubernetesServiceIp"], "10.96.0.1");
    let node = &plan["nodes"]["cp2"];
    assert_eq!(node["ip"], "10.20.0.12");
    let dns = node["servingCertSans"]["dns"].as_array().unwrap();
    assert!(
        dns.contains(&"api.prod-eu1.example.com".into()),
        "endpoint host is a SAN"
    );
    assert!(dns.contains(&"kubernetes.default.svc.cluster.local".into()));
    let ips = node["servingCertSans"]["ips"].as_array().unwrap();
    assert_eq!(
        ips,
        &["10.20.0.12", "127.0.0.1", "10.96.0.1"].map(serde_json::Value::from)
    );
    let key = &node["files"]["/etc/kubernetes/pki/apiserver.key"];
    assert_eq!(key["mode"], "0600");
    assert_eq!(key["artifact"], "apiserver-key");
    assert_eq!(
        node["files"]["/etc/kubernetes/pki/etcd/ca.crt"]["artifact"],
        "etcd-ca-cert"
    );
}

#[test]
fn opsnull_domain_yields_both_seed_names() {
    let dir = tempfile::tempdir().unwrap();
    let example = fs::read_to_string(repo_root().join("examples/seed-ha.yaml")).unwrap();
    let edited = example.replace("dnsDomain: cluster.local", "dnsDomain: opsnull.com");
    fs::write(dir.path().join("cluster.yaml"), edited).unwrap();
    kube_bundle(dir.path(), &["plan"])
        .code(0)
        .stdout_has("kubernetes.default.svc.opsnull, kubernetes.default.svc.opsnull.com");
}

/// `check` names the key and its line for every setting weaker than kube-bundle's defaults,
/// and stays quiet about the same settings at the seed's own release where they are the seed's.
#[test]
fn check_warns_about_weaker_apiserver_settings_at_their_lines() {
    let example = fs::read_to_string(repo_root().join("examples/cluster.yaml")).unwrap();
    let weaker = example
        .replace("maxBackup: 10", "maxBackup: 3")
        .replace("enableAllAPIs: false", "enableAllAPIs: true")
        .replace(
            "verifyKubeletServingCerts: true",
            "verifyKubeletServingCerts: false",
        );
    let line = |key: &str| {
        1 + weaker
            .lines()
            .position(|l| l.contains(key) && !l.trim_start().starts_with('#'))
            .unwrap_or_else(|| panic!("the example has no {key}"))
    };
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("cluster.yaml"), &weaker).unwrap();
    let run = kube_bundle(dir.path(), &["check", "cluster.yaml"]);
    run.code(0)
        .stderr_has("apiserver.audit.maxBackup")
        .stderr_has(&format!("cluster.yaml:{}:", line("maxBackup: 3")))
        .stderr_has("apiserver.enableAllAPIs")
        .stderr_has("alpha")
        .stderr_has(&format!("cluster.yaml:{}:", line("enableAllAPIs: true")))
        .stderr_has("apiserver.verifyKubeletServingCerts")
        .stderr_has(&format!(
            "cluster.yaml:{}:",
            line("verifyKubeletServingCerts: false")
        ));

    let seed = weaker
        .replace("kubernetesVersion: v1.37.2", "kubernetesVersion: v1.12.3")
        .replace(
            "verifyKubeletServingCerts: false",
            "verifyKubeletServingCerts: true",
        );
    fs::write(dir.path().join("cluster.yaml"), &seed).unwrap();
    let run = kube_bundle(dir.path(), &["check", "cluster.yaml"]);
    run.code(0);
    assert!(
        !run.stderr().contains("apiserver.audit.maxBackup"),
        "{}",
        run.stderr()
    );
    assert!(
        !run.stderr().contains("apiserver.enableAllAPIs"),
        "{}",
        run.stderr()
    );
}

/// bundle.json's configSha256 is the hash of the cluster.yaml bytes the build validated.
#[test]
fn bundle_json_records_the_sha256_of_the_cluster_yaml_it_built() {
    let project = Project::new();
    project.build();
    let extracted = std::process::Command::new("tar")
        .arg("-xzOf")
        .arg(project.bundle("cp1"))
        .arg("cp1/bundle.json")
        .output()
        .unwrap();
    assert!(extracted.status.success(), "{extracted:?}");
    let provenance: serde_json::Value = serde_json::from_slice(&extracted.stdout).unwrap();
    let config = fs::read(project.path().join("cluster.yaml")).unwrap();
    assert_eq!(
        provenance["configSha256"],
        kube_bundle::sign::sha256_hex(&config).as_str()
    );
}

/// `certs renew` names what exists at the level that was wrong: the nodes for an unknown
/// node, the node's certificates for an unknown certificate on a known node.
#[test]
fn renew_names_the_nodes_or_the_certificates_that_exist() {
    let project = Project::new();
    project.add_client();
    kube_bundle(project.path(), &["certs", "renew", "cp9/apiserver"])
        .code(2)
        .stderr_has("there is no node cp9; the nodes are cp1, cp2, cp3, w1");
    kube_bundle(project.path(), &["certs", "renew", "cp1/apiserver-key"])
        .code(2)
        .stderr_has("node cp1 has no certificate named \"apiserver-key\"; its certificates are admin, apiserver, ");
    kube_bundle(project.path(), &["certs", "renew", "w1/apiserver"])
        .code(2)
        .stderr_has("node w1 has no certificates");
    kube_bundle(project.path(), &["certs", "renew", "cp1/apiserver/x"])
        .code(2)
        .stderr_has("NODE/NAME");
    // The cluster description is an option: a file among the names says so.
    kube_bundle(project.path(), &["certs", "renew", "cluster.yaml", "--all"])
        .code(2)
        .stderr_has("--config cluster.yaml");
    kube_bundle(project.path(), &["certs", "renew", "apiserver", "--all"])
        .code(2)
        .stderr_has("--all");
    kube_bundle(
        project.path(),
        &[
            "certs",
            "renew",
            "--config",
            "cluster.yaml",
            "cp1/apiserver",
        ],
    )
    .code(0)
    .stdout_has("renewed cp1/apiserver\nnext:");
}

/// `certs renew` and `encryption rotate` change what a build created: run where nothing
/// was built (a config that does not load, a folder without secrets, a wrong --secrets),
/// they fail without creating a secrets folder or its lock file.
#[test]
fn a_failed_renew_or_rotate_creates_no_secrets_folder_and_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let example = fs::read_to_string(repo_root().join("examples/cluster.yaml")).unwrap();
    fs::write(
        dir.path().join("cluster.yaml"),
        example.replace("name: cp2", "name: cp2\n    nonsense: 1"),
    )
    .unwrap();
    let commands: [&[&str]; 3] = [
        &["certs", "renew", "--all"],
        &["certs", "renew", "cp1/apiserver"],
        &["encryption", "rotate"],
    ];
    for args in commands {
        kube_bundle(dir.path(), args).code(1).stderr_has("nonsense");
        assert!(!dir.path().join("secrets").exists(), "{args:?}");
    }

    fs::write(dir.path().join("cluster.yaml"), &example).unwrap();
    for args in commands {
        kube_bundle(dir.path(), args)
            .code(1)
            .stderr_has("no such secrets folder; `kube-bundle build` creates it");
        assert!(!dir.path().join("secrets").exists(), "{args:?}");
        let elsewhere = [args, &["--secrets", "elsewhere/prod-eu1"]].concat();
        kube_bundle(dir.path(), &elsewhere)
            .code(1)
            .stderr_has("elsewhere/prod-eu1: no such secrets folder");
        assert!(!dir.path().join("elsewhere").exists(), "{elsewhere:?}");
    }
}
