//! The whole master (issue 19): the controller manager and the scheduler beside the
//! apiserver, planned, rendered and bundled. Their golden files are in render.rs's matrix;
//! apiserver-only bundles stay byte-identical (its other golden files and the pinned bundle
//! say so). The real binaries' view of the rendered flags is in oracle.rs.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use kube_bundle::plan::{self, Component, FlagReason};
use kube_bundle::versions::{self, controller_manager, scheduler};

use crate::harness::{Project, kube_bundle};
use crate::render::{WHOLE_MASTER, first_node, load_text, load_whole_master};

/// A component's version table: its row for a flag name.
type FlagTable = fn(&str) -> Option<&'static versions::Flag>;

#[test]
fn every_component_flag_is_accepted_by_its_table_in_every_minor() {
    for minor in versions::OLDEST_MINOR..=versions::NEWEST_MINOR {
        let cluster = load_whole_master("cluster.yaml", Some(&format!("v1.{minor}.0")));
        let node = first_node(&cluster);
        let tables: [(Component, FlagTable); 2] = [
            (Component::ControllerManager, controller_manager::flag),
            (Component::Scheduler, scheduler::flag),
        ];
        for (component, table) in tables {
            let flags = node.component_flags(component);
            assert!(!flags.is_empty(), "1.{minor}: {component:?} has no flags");
            for name in flags.keys() {
                let row = table(name)
                    .unwrap_or_else(|| panic!("{component:?} --{name} is not in its table"));
                assert!(
                    row.accepted_in(minor),
                    "1.{minor} renders {component:?} --{name}, which it rejects"
                );
            }
        }
        let manager = &node.controller_manager_flags;
        let scheduler_flags = &node.scheduler_flags;
        // The insecure ports: closed where they serve, never named where they are gone.
        assert_eq!(
            manager.get("port").map(|f| f.value.as_str()),
            (minor <= controller_manager::INSECURE_PORT_SERVES_LAST).then_some("0"),
            "1.{minor}"
        );
        assert!(!scheduler_flags.contains_key("port"), "1.{minor}");
        // The scheduler's secure port, serving certificate and delegated auth from 1.13.
        let serves = minor >= scheduler::SECURE_PORT_FROM;
        assert_eq!(
            scheduler_flags.contains_key("secure-port"),
            serves,
            "1.{minor}"
        );
        assert_eq!(
            node.files
                .contains_key("/etc/kubernetes/pki/scheduler-server.crt"),
            serves,
            "1.{minor}"
        );
        // A certificate is issued only where a file ships it.
        assert_eq!(
            node.certificates
                .contains_key(&kube_bundle::plan::LeafName::SchedulerServer),
            serves,
            "1.{minor}"
        );
        for (name, value) in [
            ("bind-address", "127.0.0.1"),
            ("leader-elect", "true"),
            ("use-service-account-credentials", "true"),
            ("controllers", "*,bootstrapsigner,tokencleaner"),
            ("root-ca-file", "/etc/kubernetes/pki/ca.crt"),
            ("client-ca-file", "/etc/kubernetes/pki/client-ca.crt"),
            (
                "requestheader-client-ca-file",
                "/etc/kubernetes/pki/front-proxy-ca.crt",
            ),
            (
                "cluster-signing-cert-file",
                "/etc/kubernetes/pki/cluster-signer.crt",
            ),
            (
                "service-account-private-key-file",
                "/etc/kubernetes/pki/sa.key",
            ),
        ] {
            assert_eq!(manager[name].value, value, "1.{minor} --{name}");
        }
        assert_eq!(manager.contains_key("profiling"), minor > 12, "1.{minor}");
        assert_eq!(
            manager.contains_key("leader-elect-resource-lock"),
            minor >= versions::leader_election::LEASES_FROM,
            "1.{minor}"
        );
        // Settings the scheduler reads only from its file are not flags.
        for name in ["kubeconfig", "leader-elect", "profiling"] {
            assert!(!scheduler_flags.contains_key(name), "1.{minor} --{name}");
        }
        let config = kube_bundle::render::scheduler_config(&cluster, &node).unwrap();
        let api_version = scheduler::config_api_version(minor).api_version();
        assert!(
            config.contains(&format!("apiVersion: {api_version}\n")),
            "1.{minor}:\n{config}"
        );
        assert_eq!(
            config.contains("healthzBindAddress: 127.0.0.1:10251"),
            minor <= scheduler::INSECURE_PORT_SERVES_LAST,
            "1.{minor}"
        );
        assert_eq!(
            config.contains("resourceLock: leases"),
            minor >= 14,
            "1.{minor}"
        );
    }
}

#[test]
fn the_apiserver_trusts_the_signer_only_where_the_controller_manager_runs() {
    let apiserver_only = first_node(&load_text("cluster.yaml", None, &[], ""));
    let whole = first_node(&load_whole_master("cluster.yaml", None));
    let scheduler_only = first_node(&load_text("cluster.yaml", None, &[], "scheduler: {}\n"));
    let disabled = first_node(&load_text(
        "cluster.yaml",
        None,
        &[],
        "controllerManager: { enabled: false }\nscheduler: { enabled: false }\n",
    ));
    for name in ["client-ca-file", "kubelet-certificate-authority"] {
        assert_eq!(
            whole.flags[name].value, "/etc/kubernetes/pki/client-ca.crt",
            "--{name}"
        );
        for node in [&apiserver_only, &scheduler_only, &disabled] {
            assert_eq!(
                node.flags[name].value, "/etc/kubernetes/pki/ca.crt",
                "--{name}"
            );
        }
    }
    // Without the controller manager there is no signer, so nothing to bundle with the CA.
    for file in [
        "/etc/kubernetes/pki/client-ca.crt",
        "/etc/kubernetes/pki/cluster-signer.key",
    ] {
        assert!(whole.files.contains_key(file), "{file}");
        assert!(!scheduler_only.files.contains_key(file), "{file}");
    }
    assert_eq!(
        scheduler_only.scheduler_flags["client-ca-file"].value,
        "/etc/kubernetes/pki/ca.crt"
    );
    assert_eq!(disabled.files, apiserver_only.files);
    assert!(disabled.controller_manager_flags.is_empty() && disabled.scheduler_flags.is_empty());
}

#[test]
fn component_extra_args_are_merged_last_and_plan_names_their_section() {
    let cluster = load_text(
        "cluster.yaml",
        None,
        &[],
        "controllerManager:\n  extraArgs: { v: \"4\", profiling: \"true\" }\n\
         scheduler:\n  extraArgs: { v: \"3\" }\n",
    );
    let node = first_node(&cluster);
    assert_eq!(node.controller_manager_flags["v"].value, "4");
    assert_eq!(node.controller_manager_flags["v"].reason, FlagReason::User);
    assert_eq!(node.controller_manager_flags["profiling"].value, "true");
    assert_eq!(node.scheduler_flags["v"].value, "3");

    let project = Project::new();
    let config = project.path().join("cluster.yaml");
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str("controllerManager:\n  extraArgs: { v: \"4\" }\n");
    fs::write(&config, text).unwrap();
    let run = kube_bundle(project.path(), &["plan"]);
    run.code(0);
    let stdout = run.stdout();
    assert!(
        stdout.contains("  kube-controller-manager flags:\n")
            && stdout.contains("    --v=4  [controllerManager.extraArgs]"),
        "{stdout}"
    );
    assert!(!stdout.contains("kube-scheduler flags"), "{stdout}");
}

/// One file of `node`'s bundle, by its path under the node directory.
fn bundle_entry(project: &Project, node: &str, path: &str) -> Vec<u8> {
    let output = Command::new("tar")
        .arg("xzOf")
        .arg(project.bundle(node))
        .arg(format!("{node}/{path}"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{path}: {output:?}");
    output.stdout
}

/// A project of examples/cluster.yaml (with the fixture secrets) whose masters also run the
/// controller manager and the scheduler; returns it and its cluster.yaml's text.
fn whole_master_project() -> (Project, String) {
    let project = Project::new();
    let config = project.path().join("cluster.yaml");
    let text = fs::read_to_string(&config).unwrap() + WHOLE_MASTER;
    fs::write(&config, &text).unwrap();
    (project, text)
}

#[test]
fn a_whole_master_bundle_verifies_and_each_file_restarts_every_reader() {
    let (project, _) = whole_master_project();
    project.build();
    kube_bundle(
        project.path(),
        &["verify", "bundles/prod-eu1/cp1.tar.gz", "--allow-unpinned"],
    )
    .code(0);

    let provenance: serde_json::Value =
        serde_json::from_slice(&bundle_entry(&project, "cp1", "bundle.json")).unwrap();
    let restarts: BTreeMap<String, Vec<String>> =
        serde_json::from_value(provenance["restarts"].clone()).unwrap();
    let (apiserver, manager, scheduler) = (
        plan::APISERVER_UNIT,
        plan::CONTROLLER_MANAGER_UNIT,
        plan::SCHEDULER_UNIT,
    );
    // Every unit whose command line names a file restarts with it; its owner's always.
    for (path, units) in [
        ("/etc/kubernetes/pki/ca.crt", &[apiserver, manager][..]),
        (
            "/etc/kubernetes/pki/client-ca.crt",
            &[apiserver, manager, scheduler],
        ),
        (
            "/etc/kubernetes/pki/front-proxy-ca.crt",
            &[apiserver, manager, scheduler],
        ),
        ("/etc/kubernetes/pki/sa.key", &[apiserver, manager]),
        ("/etc/kubernetes/pki/sa.pub", &[apiserver]),
        ("/etc/kubernetes/pki/cluster-signer.key", &[manager]),
        ("/etc/kubernetes/controller-manager.kubeconfig", &[manager]),
        ("/etc/kubernetes/kube-scheduler.yaml", &[scheduler]),
        ("/etc/systemd/system/kube-scheduler.service", &[scheduler]),
        ("/etc/kubernetes/kube-nginx.conf", &["kube-nginx.service"]),
    ] {
        assert_eq!(restarts[path], units, "{path}");
    }
    let installer_entry = |path: &str| format!("{path} {}'", restarts[path].join(","));
    let unit_flags = provenance["unitFlags"].as_object().unwrap();
    let units: Vec<&String> = unit_flags.keys().collect();
    assert_eq!(
        units,
        [
            plan::APISERVER_UNIT,
            plan::CONTROLLER_MANAGER_UNIT,
            plan::SCHEDULER_UNIT
        ]
    );
    assert_eq!(
        unit_flags[plan::SCHEDULER_UNIT]["config"],
        "/etc/kubernetes/kube-scheduler.yaml"
    );

    // install.sh starts the apiserver first, then what needs it.
    let installer = String::from_utf8(bundle_entry(&project, "cp1", "install.sh")).unwrap();
    // install.sh's FILES entries name the same units, comma-separated.
    for path in restarts.keys() {
        assert!(installer.contains(&installer_entry(path)), "{path}");
    }
    let units_block: String = installer
        .lines()
        .skip_while(|line| !line.starts_with("UNITS=("))
        .take_while(|line| !line.starts_with(')'))
        .collect::<Vec<_>>()
        .join("\n");
    let position = |unit: &str| units_block.find(unit).unwrap_or(usize::MAX);
    assert!(
        position(plan::APISERVER_UNIT) < position(plan::CONTROLLER_MANAGER_UNIT)
            && position(plan::CONTROLLER_MANAGER_UNIT) < position(plan::SCHEDULER_UNIT)
            && position(plan::SCHEDULER_UNIT) < usize::MAX,
        "{units_block}"
    );
    assert!(
        installer.contains("  'kube-controller-manager /usr/local/bin/kube-controller-manager'")
            && installer.contains("  'kube-scheduler /usr/local/bin/kube-scheduler'"),
        "the pre-flight checks the programs"
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("install.sh");
    fs::write(&script, &installer).unwrap();
    let shellcheck = Command::new("shellcheck")
        .arg("--severity=style")
        .arg(&script)
        .output()
        .expect("shellcheck must be installed (.ci/run installs it)");
    assert!(
        shellcheck.status.success(),
        "{}",
        String::from_utf8_lossy(&shellcheck.stdout)
    );

    // The signer is an intermediate under the cluster CA, and the client-CA bundle is both.
    let extract = |path: &str| {
        let target = dir.path().join(path.rsplit('/').next().unwrap());
        fs::write(
            &target,
            bundle_entry(&project, "cp1", &format!("rootfs{path}")),
        )
        .unwrap();
        target
    };
    let ca = extract("/etc/kubernetes/pki/ca.crt");
    let signer = extract("/etc/kubernetes/pki/cluster-signer.crt");
    let bundle = extract("/etc/kubernetes/pki/client-ca.crt");
    let verified = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&ca)
        .arg(&signer)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
    let expected = format!(
        "{}{}",
        fs::read_to_string(&ca).unwrap(),
        fs::read_to_string(&signer).unwrap()
    );
    assert_eq!(fs::read_to_string(&bundle).unwrap(), expected);

    // Each kubeconfig reaches this master's own apiserver as the component's identity.
    for (file, user) in [
        ("controller-manager.kubeconfig", plan::CONTROLLER_MANAGER_CN),
        ("scheduler.kubeconfig", plan::SCHEDULER_CN),
    ] {
        let kubeconfig = extract(&format!("/etc/kubernetes/{file}"));
        let output = Command::new("kubectl")
            .args(["config", "view", "--minify", "--kubeconfig"])
            .arg(&kubeconfig)
            .args([
                "-o",
                "jsonpath={.clusters[0].cluster.server} {.users[0].name}",
            ])
            .output()
            .expect("kubectl must be installed (.ci/run installs kubernetes-client)");
        assert!(output.status.success(), "{file}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("https://10.20.0.11:6443 {user}"),
            "{file}"
        );
    }
}

/// `diff` between two whole-master generations names the controller manager's changed flag
/// under its own unit, leaves the apiserver's and the scheduler's unchanged, and restarts
/// the controller manager alone.
#[test]
fn diff_shows_each_components_flags_and_restarts_only_its_unit() {
    let (project, text) = whole_master_project();
    let config = project.path().join("cluster.yaml");
    let pinned = project.build().signing_fingerprint();
    fs::rename(
        project.path().join("bundles/prod-eu1"),
        project.path().join("old"),
    )
    .unwrap();
    fs::write(
        &config,
        text.replace(
            "controllerManager: {}",
            "controllerManager: { extraArgs: { concurrent-deployment-syncs: \"10\" } }",
        ),
    )
    .unwrap();
    project.build();
    let run = kube_bundle(
        project.path(),
        &[
            "diff",
            "old/cp1.tar.gz",
            "bundles/prod-eu1/cp1.tar.gz",
            "--fingerprint",
            &pinned,
            "--output",
            "json",
        ],
    );
    run.code(0);
    let diff: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(diff["flags"]["changed"], serde_json::json!({}), "{diff}");
    assert_eq!(
        diff["componentFlags"][plan::CONTROLLER_MANAGER_UNIT]["added"],
        serde_json::json!({ "concurrent-deployment-syncs": "10" }),
        "{diff}"
    );
    let scheduler_flags = &diff["componentFlags"][plan::SCHEDULER_UNIT];
    for kind in ["added", "removed", "changed"] {
        assert_eq!(scheduler_flags[kind], serde_json::json!({}), "{diff}");
    }
    assert_eq!(
        diff["restartUnits"],
        serde_json::json!([plan::CONTROLLER_MANAGER_UNIT]),
        "{diff}"
    );
    let text = kube_bundle(
        project.path(),
        &[
            "diff",
            "old/cp1.tar.gz",
            "bundles/prod-eu1/cp1.tar.gz",
            "--fingerprint",
            &pinned,
        ],
    );
    text.code(0);
    let shown = text.stdout();
    assert!(
        shown.contains("kube-apiserver flags: unchanged")
            && shown
                .contains("kube-controller-manager flags:\n  + --concurrent-deployment-syncs=10")
            && shown.contains("kube-scheduler flags: unchanged"),
        "{shown}"
    );
}

/// A second build of a whole master changes nothing and says so: the controller manager's
/// and the scheduler's identities, which travel inside their kubeconfigs, count as reused.
#[test]
fn a_whole_master_rebuild_reuses_every_certificate_and_says_so() {
    let (project, _) = whole_master_project();
    project.build();
    let before = fs::read(project.bundle("cp1")).unwrap();
    let again = project.build();
    assert_eq!(fs::read(project.bundle("cp1")).unwrap(), before);
    for node in ["cp1", "cp2", "cp3"] {
        again.stdout_has(&format!("{node}: unchanged"));
    }
    let stdout = again.stdout();
    assert_eq!(
        stdout.matches("(certificates reused)").count(),
        3,
        "{stdout}"
    );
}

/// Before 1.14 the bootstrap policy does not let the controller manager and the scheduler
/// delegate authentication and authorization: the bundle binds them (a ClusterRoleBinding
/// to system:auth-delegator, a kube-system RoleBinding to the authentication reader, the
/// latter POSTed to the namespaced collection). From 1.14 nothing extra is applied.
#[test]
fn old_releases_bind_the_components_delegated_auth() {
    for (version, bound) in [("v1.13.12", true), ("v1.14.10", false)] {
        let project = Project::new();
        let config = project.path().join("cluster.yaml");
        let text = fs::read_to_string(&config).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("kubernetesVersion:"))
            .unwrap()
            .to_owned();
        let text = text.replace(&line, &format!("kubernetesVersion: {version}")) + WHOLE_MASTER;
        fs::write(&config, text).unwrap();
        fs::remove_dir_all(project.path().join("secrets")).unwrap();
        project.build();
        let listing = Command::new("tar")
            .arg("tzf")
            .arg(project.bundle("cp1"))
            .output()
            .unwrap();
        let listing = String::from_utf8(listing.stdout).unwrap();
        let installer = String::from_utf8(bundle_entry(&project, "cp1", "install.sh")).unwrap();
        for (file, kind, collection) in [
            (
                "kube-bundle-components-auth-delegator.yaml",
                "ClusterRoleBinding",
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            ),
            (
                "kube-system-components-authentication-reader.yaml",
                "RoleBinding",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings",
            ),
        ] {
            let path = format!("manifests/{file}");
            assert_eq!(
                listing.contains(&path),
                bound,
                "{version} {file}:\n{listing}"
            );
            assert_eq!(
                installer.contains(&format!("'{file} {collection}'")),
                bound,
                "{version} {file}"
            );
            if !bound {
                continue;
            }
            let manifest: serde_json::Value =
                serde_saphyr::from_slice(&bundle_entry(&project, "cp1", &path)).unwrap();
            assert_eq!(manifest["kind"], kind);
            let users: Vec<&str> = manifest["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                users,
                ["system:kube-controller-manager", "system:kube-scheduler"]
            );
        }
    }
}
