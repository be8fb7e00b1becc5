//! The render stage: golden files across the version matrix (rewritten with
//! UPDATE_GOLDEN=1, reviewed in the diff), the version table applied to every rendered
//! flag, and real-tool checks: systemd-analyze verify, YAML parsing, kubectl.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use kube_bundle::config::EncryptionProvider;
use kube_bundle::encryption::{EncryptionKey, EncryptionKeys};
use kube_bundle::model::Cluster;
use kube_bundle::plan::{self, NodePlan, SEED_UNIT_FLAGS};
use kube_bundle::render;
use kube_bundle::validate::ValidateOptions;
use kube_bundle::versions;

use crate::harness::repo_root;

/// (golden directory, example file, kubernetesVersion to substitute, whether the masters
/// run the controller manager and the scheduler too)
const MATRIX: &[(&str, &str, Option<&str>, bool)] = &[
    ("seed-ha-v1.12.3", "seed-ha.yaml", None, true),
    ("cluster-v1.19.16", "cluster.yaml", Some("v1.19.16"), true),
    ("cluster-v1.23.17", "cluster.yaml", Some("v1.23.17"), true),
    ("cluster-v1.24.17", "cluster.yaml", Some("v1.24.17"), true),
    ("cluster-v1.26.15", "cluster.yaml", Some("v1.26.15"), true),
    ("cluster-v1.29.15", "cluster.yaml", Some("v1.29.15"), true),
    ("cluster-v1.33.12", "cluster.yaml", Some("v1.33.12"), true),
    ("cluster-v1.33.13", "cluster.yaml", Some("v1.33.13"), true),
    ("cluster-v1.36.1", "cluster.yaml", Some("v1.36.1"), true),
    ("cluster-v1.37.2", "cluster.yaml", Some("v1.37.2"), true),
    // `enabled: false` (or no section): the apiserver tier alone.
    ("apiserver-only-v1.12.3", "seed-ha.yaml", None, false),
    (
        "apiserver-only-v1.37.2",
        "cluster.yaml",
        Some("v1.37.2"),
        false,
    ),
];

/// The sections that make a bundle a whole master, as cluster.yaml writes them.
pub(crate) const WHOLE_MASTER: &str = "controllerManager: {}\nscheduler: {}\n";

/// One case of the matrix: the example at its version, with or without the whole master.
fn load_case(example: &str, version: Option<&str>, whole_master: bool) -> Cluster {
    let appended = if whole_master { WHOLE_MASTER } else { "" };
    load_text(example, version, &[], appended)
}

/// `example` at `version` with the controller manager and the scheduler.
pub(crate) fn load_whole_master(example: &str, version: Option<&str>) -> Cluster {
    load_case(example, version, true)
}

/// Fixed key material, so the encryption config can be a golden file.
fn fixture_keys(provider: EncryptionProvider) -> EncryptionKeys {
    EncryptionKeys {
        rotation: None,
        retired: Vec::new(),
        keys: vec![EncryptionKey {
            provider,
            name: "key1".into(),
            secret: "a2V5LW1hdGVyaWFsLWZvci1nb2xkZW4tZmlsZXMtb25seQ==".into(),
        }],
    }
}

fn load(example: &str, version: Option<&str>) -> Cluster {
    load_edited(example, version, &[])
}

/// An example at `version`, with each `(old, new)` edit applied (each `old` must be there).
fn load_edited(example: &str, version: Option<&str>, edits: &[(&str, &str)]) -> Cluster {
    load_text(example, version, edits, "")
}

/// An example at `version`, edited, with `appended` added at its end.
pub(crate) fn load_text(
    example: &str,
    version: Option<&str>,
    edits: &[(&str, &str)],
    appended: &str,
) -> Cluster {
    let mut text = crate::harness::apiserver_only_example(example);
    if let Some(version) = version {
        let line = text
            .lines()
            .find(|l| l.starts_with("kubernetesVersion:"))
            .unwrap()
            .to_owned();
        text = text.replace(&line, &format!("kubernetesVersion: {version}"));
    }
    for (old, new) in edits {
        assert!(text.contains(old), "{example} lacks {old:?}");
        text = text.replacen(old, new, 1);
    }
    text.push_str(appended);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    fs::write(&path, text).unwrap();
    kube_bundle::load_cluster(&path, ValidateOptions::default())
        .unwrap()
        .cluster
}

pub(crate) fn first_node(cluster: &Cluster) -> NodePlan {
    let plan = plan::plan(cluster);
    plan.nodes[cluster.masters[0].name.as_str()].clone()
}

/// The rendered files of one case that do not depend on generated keys; the controller
/// manager's and the scheduler's where the cluster runs them.
fn rendered(cluster: &Cluster) -> BTreeMap<&'static str, String> {
    let node = first_node(cluster);
    let mut flags =
        serde_json::json!({ "flags": node.flags, "droppedSeedFlags": node.dropped_seed_flags });
    let mut files = BTreeMap::new();
    if cluster.controller_manager.is_some() {
        flags["controllerManagerFlags"] = serde_json::json!(node.controller_manager_flags);
        files.insert(
            "kube-controller-manager.service",
            render::controller_manager_unit(cluster, &node).unwrap(),
        );
    }
    if cluster.scheduler.is_some() {
        flags["schedulerFlags"] = serde_json::json!(node.scheduler_flags);
        files.insert(
            "kube-scheduler.service",
            render::scheduler_unit(cluster, &node).unwrap(),
        );
        files.insert(
            "kube-scheduler.yaml",
            render::scheduler_config(cluster, &node).unwrap(),
        );
    }
    files.extend([
        (
            "kube-apiserver.service",
            render::apiserver_unit(cluster, &node).unwrap(),
        ),
        (
            "encryption-config.yaml",
            render::encryption_config(cluster, &fixture_keys(cluster.encryption_provider)).unwrap(),
        ),
        ("audit-policy.yaml", render::audit_policy(cluster).unwrap()),
        (
            "flags.json",
            serde_json::to_string_pretty(&flags).unwrap() + "\n",
        ),
    ]);
    files
}

#[test]
fn golden_files_match_across_the_version_matrix() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (case, example, version, whole_master) in MATRIX {
        let cluster = load_case(example, *version, *whole_master);
        let dir = repo_root().join("tests/golden").join(case);
        for (name, text) in rendered(&cluster) {
            let path = dir.join(name);
            if update {
                fs::create_dir_all(&dir).unwrap();
                fs::write(&path, &text).unwrap();
                continue;
            }
            match fs::read_to_string(&path) {
                Ok(expected) if expected == text => {}
                Ok(_) => mismatches.push(format!("{case}/{name} differs")),
                Err(_) => mismatches.push(format!("{case}/{name} is missing")),
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{mismatches:#?}\nrerun with UPDATE_GOLDEN=1 and review `git diff tests/golden`"
    );
}

#[test]
fn every_rendered_flag_is_accepted_by_its_version_and_required_ones_are_there() {
    for minor in versions::OLDEST_MINOR..=versions::NEWEST_MINOR {
        let cluster = load("cluster.yaml", Some(&format!("v1.{minor}.0")));
        let node = first_node(&cluster);
        for name in node.flags.keys() {
            let flag =
                versions::flag(name).unwrap_or_else(|| panic!("--{name} is not in the table"));
            assert!(
                flag.accepted_in(minor),
                "1.{minor} renders --{name}, which it rejects"
            );
        }
        for flag in versions::FLAGS.iter().filter(|f| f.required_in(minor)) {
            assert!(
                node.flags.contains_key(flag.name),
                "1.{minor} lacks required --{}",
                flag.name
            );
        }
        let unit = render::apiserver_unit(&cluster, &node).unwrap();
        assert_eq!(
            unit.contains("--encryption-provider-config="),
            minor >= 13,
            "1.{minor}"
        );
        assert_eq!(
            unit.contains("--experimental-encryption-provider-config="),
            minor <= 12,
            "1.{minor}"
        );
        assert_eq!(unit.contains("--insecure-port=0"), minor <= 23, "1.{minor}");
        assert_eq!(unit.contains("--kubelet-https"), minor <= 21, "1.{minor}");
        assert_eq!(unit.contains("Initializers"), minor <= 13, "1.{minor}");
        assert_eq!(unit.contains("--logtostderr"), minor <= 22, "1.{minor}");
        assert_eq!(
            unit.contains("--encryption-provider-config-automatic-reload=true"),
            minor >= 26,
            "1.{minor}"
        );
        assert!(!unit.contains("DynamicAuditing") && !unit.contains("audit-dynamic-configuration"));
        let encryption =
            render::encryption_config(&cluster, &fixture_keys(cluster.encryption_provider))
                .unwrap();
        let expected_kind = if minor <= 12 {
            "kind: EncryptionConfig\napiVersion: v1\n"
        } else {
            "kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\n"
        };
        assert!(
            encryption.contains(expected_kind),
            "1.{minor}: {encryption}"
        );
        assert!(
            render::audit_policy(&cluster)
                .unwrap()
                .contains("apiVersion: audit.k8s.io/v1\n")
        );
    }
}

#[test]
fn the_seed_unit_at_1_12_carries_every_seed_flag_with_an_equivalent_value() {
    let cluster = load("seed-ha.yaml", None);
    let node = first_node(&cluster);
    assert!(
        node.dropped_seed_flags.is_empty(),
        "{:?}",
        node.dropped_seed_flags
    );
    for (name, _) in SEED_UNIT_FLAGS {
        assert!(node.flags.contains_key(*name), "--{name} is missing");
    }
    let value = |name: &str| node.flags[name].value.as_str();
    assert_eq!(value("advertise-address"), "172.27.128.150");
    assert_eq!(value("bind-address"), "172.27.128.150");
    assert_eq!(value("service-cluster-ip-range"), "10.254.0.0/16");
    assert_eq!(value("service-node-port-range"), "30000-32767");
    assert_eq!(value("apiserver-count"), "3");
    assert_eq!(
        value("experimental-encryption-provider-config"),
        "/etc/kubernetes/encryption-config.yaml"
    );
    assert_eq!(
        value("audit-log-path"),
        "/data/k8s/k8s/kube-apiserver/audit.log"
    );
    assert_eq!(value("tls-cert-file"), "/etc/kubernetes/cert/apiserver.crt");
    assert_eq!(
        value("etcd-servers"),
        "https://172.27.128.150:2379,https://172.27.128.149:2379,https://172.27.128.148:2379"
    );
}

#[test]
fn newer_versions_say_why_each_seed_flag_was_dropped() {
    let cluster = load("cluster.yaml", Some("v1.36.1"));
    let dropped = first_node(&cluster).dropped_seed_flags;
    let why = |name: &str| dropped[name].why.clone();
    assert!(
        why("insecure-port").contains("removed in 1.24"),
        "{}",
        why("insecure-port")
    );
    assert!(
        why("kubelet-https").contains("removed 1.22"),
        "{}",
        why("kubelet-https")
    );
    assert!(
        why("experimental-encryption-provider-config")
            .contains("--encryption-provider-config replaces it")
    );
    assert!(
        why("logtostderr").contains("removed 1.26"),
        "{}",
        why("logtostderr")
    );
    assert!(
        why("apiserver-count").contains("lease"),
        "{}",
        why("apiserver-count")
    );
    assert!(
        why("enable-swagger-ui").contains("removed in 1.24"),
        "{}",
        why("enable-swagger-ui")
    );
}

#[test]
fn extra_args_are_merged_last() {
    let cluster = load("cluster.yaml", Some("v1.36.1"));
    let node = first_node(&cluster);
    assert_eq!(node.flags["profiling"].value, "false");
    assert_eq!(node.flags["profiling"].reason, plan::FlagReason::User);
}

/// systemd-analyze verify of `unit` (installed as `name`, running `program` from `bin_dir`)
/// in a sandbox root that holds the host's system units (for the default dependencies), a
/// stub of every component's binary and a stand-in apiserver unit the others may want; any
/// output on stderr fails.
pub(crate) fn systemd_verify(name: &str, unit: &str, bin_dir: &str) -> (bool, String) {
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("etc/systemd/system");
    fs::create_dir_all(&units).unwrap();
    let bin = root.path().join(bin_dir.trim_start_matches('/'));
    fs::create_dir_all(&bin).unwrap();
    for program in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let binary = bin.join(program);
        fs::write(&binary, "#!/bin/sh\nexit 0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let apiserver = format!(
        "[Service]\nExecStart={}\n",
        bin.join("kube-apiserver").display()
    );
    fs::write(units.join("kube-apiserver.service"), apiserver).unwrap();
    fs::write(units.join(name), unit).unwrap();
    let lib = root.path().join("usr/lib/systemd/system");
    fs::create_dir_all(&lib).unwrap();
    for source in ["/lib/systemd/system", "/usr/lib/systemd/system"] {
        for entry in fs::read_dir(source).into_iter().flatten().flatten() {
            if entry.path().is_file() {
                let _ = fs::copy(entry.path(), lib.join(entry.file_name()));
            }
        }
    }
    let output = Command::new("systemd-analyze")
        .args([
            "verify",
            "--man=no",
            &format!("--root={}", root.path().display()),
            &format!("/etc/systemd/system/{name}"),
        ])
        .output()
        .expect("systemd-analyze must be installed (.ci/run installs systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success() && stderr.trim().is_empty(), stderr)
}

#[test]
fn every_rendered_unit_passes_systemd_analyze_verify() {
    for (case, example, version, whole_master) in MATRIX {
        let cluster = load_case(example, *version, *whole_master);
        for (name, text) in rendered(&cluster) {
            if !name.ends_with(".service") {
                continue;
            }
            let (ok, stderr) = systemd_verify(name, &text, cluster.paths.bin_dir.as_str());
            assert!(ok, "{case}/{name}: systemd-analyze verify:\n{stderr}");
        }
    }
    // The check itself must be able to fail.
    let cluster = load_whole_master("cluster.yaml", None);
    for name in ["kube-apiserver.service", "kube-scheduler.service"] {
        let broken = rendered(&cluster)[name].replace("[Service]", "[Service]\nBogusKey=1");
        assert!(
            !systemd_verify(name, &broken, cluster.paths.bin_dir.as_str()).0,
            "a bad {name} passed"
        );
    }
}

#[test]
fn every_rendered_yaml_file_parses() {
    for (case, example, version, whole_master) in MATRIX {
        let cluster = load_case(example, *version, *whole_master);
        for (name, text) in rendered(&cluster) {
            if name.ends_with(".yaml") {
                let value: Result<serde_json::Value, _> = serde_saphyr::from_str(&text);
                let value = value.unwrap_or_else(|e| panic!("{case}/{name}: {e}"));
                assert!(value.get("kind").is_some(), "{case}/{name} has no kind");
            }
        }
        let parsed: serde_json::Value = serde_saphyr::from_str(
            &render::encryption_config(&cluster, &fixture_keys(cluster.encryption_provider))
                .unwrap(),
        )
        .unwrap();
        let providers = &parsed["resources"][0]["providers"];
        assert!(
            providers[1]["identity"].is_object(),
            "{case}: identity comes last"
        );
    }
}

#[test]
fn the_kubeconfig_is_accepted_by_kubectl_and_points_at_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let example = fs::read_to_string(repo_root().join("examples/cluster.yaml")).unwrap();
    fs::write(dir.path().join("cluster.yaml"), &example).unwrap();
    let cluster =
        kube_bundle::load_cluster(&dir.path().join("cluster.yaml"), ValidateOptions::default())
            .unwrap()
            .cluster;
    let plan = plan::plan(&cluster);
    let store = kube_bundle::secrets::SecretStore::open(
        &dir.path().join("secrets"),
        kube_bundle::secrets::Access::ReadWrite,
    )
    .unwrap();
    let pki = kube_bundle::pki::provision(&cluster, &plan, &store, time::OffsetDateTime::now_utc())
        .unwrap();
    let keys = kube_bundle::encryption::keys_for_build(&cluster, &store).unwrap();
    let node = &plan.nodes["cp1"];
    let files = render::render_node(&cluster, node, &pki, &keys).unwrap();
    let render::Content::Bytes(kubeconfig) =
        &files.rootfs["/etc/kubernetes/admin.kubeconfig"].content
    else {
        panic!("kubeconfig is not rendered bytes");
    };
    let path = dir.path().join("admin.kubeconfig");
    fs::write(&path, kubeconfig).unwrap();
    let output = Command::new("kubectl")
        .args([
            "config",
            "view",
            "--minify",
            "--kubeconfig",
            path.to_str().unwrap(),
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .output()
        .expect("kubectl must be installed (.ci/run installs kubernetes-client)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // With the node-local proxy on (the default), the kubeconfig goes through it, as the
    // seed's `kubectl cluster-info` answers at https://127.0.0.1:8443.
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "https://127.0.0.1:8443"
    );
    let no_front = Cluster {
        ha_front: None,
        ..cluster.clone()
    };
    assert_eq!(
        render::kubeconfig_server(&no_front, node.ip),
        "https://api.prod-eu1.example.com:6443"
    );
    // Without either, it talks to the node itself.
    let without = Cluster {
        control_plane_endpoint: None,
        ..no_front
    };
    assert_eq!(
        render::kubeconfig_server(&without, node.ip),
        "https://10.20.0.11:6443"
    );
    assert!(Path::new(&path).exists());
}

#[test]
fn profiling_is_off_by_default_except_at_the_seeds_own_release() {
    let seed = first_node(&load("seed-ha.yaml", None));
    assert!(
        !seed.flags.contains_key("profiling"),
        "the seed's v1.12 unit keeps seed parity"
    );
    for version in ["v1.19.16", "v1.33.12", "v1.37.2"] {
        let node = first_node(&load("seed-ha.yaml", Some(version)));
        let flag = &node.flags["profiling"];
        assert_eq!(flag.value, "false", "{version}");
        assert!(
            matches!(flag.reason, kube_bundle::plan::FlagReason::KubeBundle(_)),
            "{version}: {:?}",
            flag.reason
        );
    }
}

/// examples/cluster.yaml without the keys whose defaults the tests below check.
const DEFAULTS: &[(&str, &str)] = &[
    ("maxBackup: 10, ", ""),
    ("  enableAllAPIs: false\n", ""),
    ("  verifyKubeletServingCerts: true\n", ""),
];

fn reason_note(node: &NodePlan, name: &str) -> String {
    match &node.flags[name].reason {
        plan::FlagReason::Translated(note) | plan::FlagReason::KubeBundle(note) => note.clone(),
        other => panic!("--{name}: {other:?}"),
    }
}

#[test]
fn audit_keeps_ten_old_logs_except_at_the_seeds_release_or_when_told() {
    for minor in versions::OLDEST_MINOR..=versions::NEWEST_MINOR {
        let version = format!("v1.{minor}.0");
        let node = first_node(&load_edited("cluster.yaml", Some(&version), DEFAULTS));
        let flag = &node.flags["audit-log-maxbackup"];
        if minor == versions::OLDEST_MINOR {
            assert_eq!(flag.value, "3", "{version}");
            assert_eq!(flag.reason, plan::FlagReason::Seed);
        } else {
            assert_eq!(flag.value, "10", "{version}");
            assert!(reason_note(&node, "audit-log-maxbackup").contains("CIS"));
        }
    }
    let seeds = first_node(&load_edited(
        "cluster.yaml",
        None,
        &[("maxBackup: 10", "maxBackup: 3")],
    ));
    assert_eq!(seeds.flags["audit-log-maxbackup"].value, "3");
    assert_eq!(
        seeds.flags["audit-log-maxbackup"].reason,
        plan::FlagReason::Seed
    );
}

#[test]
fn tls_is_1_2_with_strong_suites_named_as_each_minor_accepts_them() {
    for minor in versions::OLDEST_MINOR..=versions::NEWEST_MINOR {
        let version = format!("v1.{minor}.0");
        let cluster = load_edited("cluster.yaml", Some(&version), DEFAULTS);
        let node = first_node(&cluster);
        let unit = render::apiserver_unit(&cluster, &node).unwrap();
        if minor == versions::OLDEST_MINOR {
            assert!(
                !unit.contains("--tls-min-version") && !unit.contains("--tls-cipher-suites"),
                "seed parity at {version}:\n{unit}"
            );
            continue;
        }
        assert!(
            unit.contains("--tls-min-version=VersionTLS12 \\\n"),
            "{version}"
        );
        let suites = &node.flags["tls-cipher-suites"].value;
        assert!(
            unit.contains(&format!("--tls-cipher-suites={suites} \\\n")),
            "{version}"
        );
        let suites: Vec<&str> = suites.split(',').collect();
        assert_eq!(suites.len(), 6, "{version}");
        for suite in &suites {
            assert!(
                suite.starts_with("TLS_ECDHE_")
                    && (suite.contains("_GCM_") || suite.contains("_CHACHA20_POLY1305")),
                "{version}: {suite}"
            );
        }
        for kind in ["TLS_ECDHE_ECDSA_", "TLS_ECDHE_RSA_"] {
            assert!(
                suites.iter().any(|s| s.starts_with(kind)),
                "{version}: {kind}"
            );
        }
        let long_chacha_names = suites.iter().any(|s| s.ends_with("_POLY1305_SHA256"));
        assert_eq!(long_chacha_names, minor >= 23, "{version}: {suites:?}");
        assert!(reason_note(&node, "tls-cipher-suites").contains("CIS"));
    }
}

#[test]
fn all_apis_are_served_at_the_seeds_release_and_elsewhere_only_when_enabled() {
    let seed = first_node(&load("seed-ha.yaml", None));
    assert_eq!(seed.flags["runtime-config"].value, "api/all=true");
    for version in ["v1.13.0", "v1.24.17", "v1.37.2"] {
        let node = first_node(&load_edited("cluster.yaml", Some(version), DEFAULTS));
        assert!(!node.flags.contains_key("runtime-config"), "{version}");
        let why = &node.dropped_seed_flags["runtime-config"].why;
        assert!(
            why.contains("apiserver.enableAllAPIs") && why.contains("alpha"),
            "{version}: {why}"
        );
        let enabled = first_node(&load_edited(
            "cluster.yaml",
            Some(version),
            &[("enableAllAPIs: false", "enableAllAPIs: true")],
        ));
        assert_eq!(enabled.flags["runtime-config"].value, "api/all=true");
        assert!(reason_note(&enabled, "runtime-config").contains("alpha"));
        assert!(!enabled.dropped_seed_flags.contains_key("runtime-config"));
    }
}

#[test]
fn kubelet_serving_certs_are_verified_and_the_readme_says_what_kubelets_need() {
    let cluster = load_edited("cluster.yaml", None, DEFAULTS);
    let node = first_node(&cluster);
    assert_eq!(
        node.flags["kubelet-certificate-authority"].value,
        "/etc/kubernetes/pki/ca.crt"
    );
    let note = reason_note(&node, "kubelet-certificate-authority");
    assert!(
        note.contains("signed by the cluster CA") && note.contains("serverTLSBootstrap"),
        "{note}"
    );
    let readme = |cluster: &Cluster, node: &NodePlan| {
        render::node_readme(&render::BundleFacts {
            cluster,
            node,
            bundle_id: "test",
            manifests: Vec::new(),
        })
        .unwrap()
    };
    let verified = readme(&cluster, &node);
    assert!(
        verified.contains("--kubelet-certificate-authority=/etc/kubernetes/pki/ca.crt")
            && verified.contains("serverTLSBootstrap: true")
            && verified.contains("kubectl certificate approve"),
        "{verified}"
    );

    let off = load_edited(
        "cluster.yaml",
        None,
        &[(
            "verifyKubeletServingCerts: true",
            "verifyKubeletServingCerts: false",
        )],
    );
    let off_node = first_node(&off);
    assert!(!off_node.flags.contains_key("kubelet-certificate-authority"));
    let why = &off_node.dropped_seed_flags["kubelet-certificate-authority"].why;
    assert!(
        why.contains("Weaker") && why.contains("not verified"),
        "{why}"
    );
    let unit = render::apiserver_unit(&off, &off_node).unwrap();
    assert!(!unit.contains("--kubelet-certificate-authority"));
    let unverified = readme(&off, &off_node);
    assert!(
        unverified.contains("does **not** verify") && !unverified.contains("certificate approve"),
        "{unverified}"
    );
}

/// What the plan says about every flag, kept or dropped, cites nothing the operator does not
/// have: no section of a document outside the repository.
#[test]
fn no_flag_reason_cites_a_document_outside_the_repository() {
    let mut checked = 0;
    for entry in fs::read_dir(repo_root().join("tests/golden")).unwrap() {
        let flags = entry.unwrap().path().join("flags.json");
        let Ok(text) = fs::read_to_string(&flags) else {
            continue;
        };
        for marker in ["§", "design.md", "kubernetes-reference", "reference.md"] {
            assert!(
                !text.contains(marker),
                "{} cites {marker:?}",
                flags.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} golden flag files read");
}

/// Every file a node installs has one path from the node layout, and no two files share
/// one: the layout is the only place that names them.
#[test]
fn every_installed_file_takes_its_path_from_the_node_layout() {
    for (example, front) in [("cluster.yaml", true), ("seed-ha.yaml", true)] {
        let cluster = load(example, None);
        let plan = plan::plan(&cluster);
        for node in plan.nodes.values() {
            for (path, file) in &node.files {
                assert_eq!(
                    node.layout.path(file.artifact),
                    Some(path.as_str()),
                    "{example} {}: {:?}",
                    node.name,
                    file.artifact
                );
            }
            assert_eq!(node.layout.front.is_some(), front, "{example}");
        }
        let layout = &plan.nodes.values().next().unwrap().layout;
        let serialized = serde_json::to_value(layout).unwrap();
        let mut paths: Vec<String> = Vec::new();
        let mut stack = vec![serialized];
        while let Some(value) = stack.pop() {
            match value {
                serde_json::Value::String(path) => paths.push(path),
                serde_json::Value::Object(map) => stack.extend(map.into_values()),
                _ => {}
            }
        }
        let count = paths.len();
        paths.sort();
        paths.dedup();
        assert_eq!(
            paths.len(),
            count,
            "{example}: two files share a path: {paths:?}"
        );
    }
}
