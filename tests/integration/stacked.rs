//! Stacked etcd (`etcd.mode: stacked`, tests/fixtures/stacked.yaml): the etcd unit's
//! goldens across every etcd minor the table covers, systemd-analyze, the flags against the
//! etcd table, the restart and start order, the member certificates read back with
//! openssl, the installer's etcd parts in a sandbox root, and a real three-member etcd
//! cluster started from the rendered units, one master after another, until quorum.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kube_bundle::model::Cluster;
use kube_bundle::plan::Component;
use kube_bundle::render;
use kube_bundle::validate::ValidateOptions;
use kube_bundle::versions::etcd as etcd_table;

use crate::harness::{KillOnDrop, binary_cache, kube_bundle, pinned_etcd_version, repo_root};
use crate::render::{compare_golden, first_node, rendered, systemd_verify};

/// A stacked cluster's golden case per etcd minor: (golden directory, kubernetesVersion).
const GOLDEN: &[(&str, &str)] = &[
    ("stacked-v1.12.3", "v1.12.3"),
    ("stacked-v1.19.16", "v1.19.16"),
    ("stacked-v1.33.13", "v1.33.13"),
    ("stacked-v1.36.1", "v1.36.1"),
    ("stacked-v1.37.2", "v1.37.2"),
];

/// tests/fixtures/stacked.yaml (three masters, stacked etcd, the whole master) at `version`.
pub(crate) fn stacked_yaml(version: &str) -> String {
    let text = fs::read_to_string(repo_root().join("tests/fixtures/stacked.yaml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("kubernetesVersion:"))
        .expect("the fixture names its version")
        .to_owned();
    text.replace(&line, &format!("kubernetesVersion: {version}"))
}

pub(crate) fn load_stacked(version: &str) -> Cluster {
    load_yaml(&stacked_yaml(version))
}

fn load_yaml(yaml: &str) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    fs::write(&path, yaml).unwrap();
    kube_bundle::load_cluster(&path, ValidateOptions::default())
        .unwrap()
        .cluster
}

#[test]
fn golden_files_cover_every_etcd_minor() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    let mut minors = BTreeSet::new();
    for (case, version) in GOLDEN {
        let cluster = load_stacked(version);
        minors.insert(cluster.etcd.stacked.as_ref().unwrap().minor);
        assert!(rendered(&cluster).contains_key("etcd.service"), "{case}");
        compare_golden(case, &cluster, update, &mut mismatches);
    }
    assert_eq!(
        minors,
        (etcd_table::OLDEST_MINOR..=etcd_table::NEWEST_MINOR).collect(),
        "one golden case per etcd minor"
    );
    assert!(
        mismatches.is_empty(),
        "{mismatches:#?}\nrerun with UPDATE_GOLDEN=1 and review `git diff tests/golden`"
    );
}

#[test]
fn every_etcd_unit_passes_systemd_analyze_verify() {
    for (case, version) in GOLDEN {
        let cluster = load_stacked(version);
        let unit = &rendered(&cluster)["etcd.service"];
        let (ok, stderr) = systemd_verify("etcd.service", unit, cluster.paths.bin_dir.as_str());
        assert!(ok, "{case}/etcd.service: systemd-analyze verify:\n{stderr}");
        assert!(unit.contains("Type=notify\n"), "{case}");
        assert!(
            unit.contains(&format!("TimeoutStartSec={}\n", render::ETCD_TIMEOUT_START)),
            "{case}"
        );
    }
    // The check itself must be able to fail.
    let cluster = load_stacked("v1.37.2");
    let broken = rendered(&cluster)["etcd.service"].replace("Type=notify", "Type=bogus");
    assert!(!systemd_verify("etcd.service", &broken, cluster.paths.bin_dir.as_str()).0);
}

#[test]
fn every_rendered_etcd_flag_is_accepted_by_the_paired_etcd_minor() {
    for kube_minor in kube_bundle::versions::OLDEST_MINOR..=kube_bundle::versions::NEWEST_MINOR {
        let cluster = load_stacked(&format!("v1.{kube_minor}.0"));
        let minor = cluster.etcd.stacked.as_ref().unwrap().minor;
        assert_eq!(minor, etcd_table::paired_minor(kube_minor));
        let node = first_node(&cluster);
        for (name, flag) in &node.etcd_flags {
            let row = etcd_table::flag(name).unwrap_or_else(|| panic!("--{name} not in the table"));
            assert!(
                row.accepted_in(minor),
                "1.{kube_minor} renders --{name} for etcd 3.{minor}, which rejects it"
            );
            assert!(!flag.value.is_empty(), "--{name}");
        }
        let value = |name: &str| node.etcd_flags[name].value.as_str();
        // kubeadm's corruption check and watch progress notifications from etcd 3.5, each
        // under the one name the minor has.
        let named = |part: &str| {
            node.etcd_flags
                .keys()
                .filter(|name| name.contains(part))
                .count()
        };
        assert_eq!(
            named("corrupt-check") + named("feature-gates"),
            usize::from(minor >= 5)
        );
        assert_eq!(named("watch-progress"), usize::from(minor >= 5));
        assert_eq!(node.etcd_flags.contains_key("enable-v2"), minor == 3);
        assert_eq!(node.etcd_flags.contains_key("logger"), minor == 4);
        assert_eq!(value("name"), "cp1");
        assert_eq!(value("data-dir"), "/var/lib/kubernetes/etcd");
        assert_eq!(
            value("listen-client-urls"),
            "https://10.20.0.11:2379,https://127.0.0.1:2379"
        );
        assert_eq!(
            value("initial-cluster"),
            "cp1=https://10.20.0.11:2380,cp2=https://10.20.0.12:2380,cp3=https://10.20.0.13:2380"
        );
        assert_eq!(value("initial-cluster-token"), "prod-eu1");
        assert_eq!(value("client-cert-auth"), "true");
        assert_eq!(value("peer-client-cert-auth"), "true");
        assert_eq!(
            value("trusted-ca-file"),
            "/etc/kubernetes/pki/etcd/ca.crt",
            "the separate etcd CA by default"
        );
        // The apiserver stores in every member.
        assert_eq!(
            node.flags["etcd-servers"].value,
            "https://10.20.0.11:2379,https://10.20.0.12:2379,https://10.20.0.13:2379"
        );
    }
}

#[test]
fn etcd_starts_first_and_its_files_restart_the_units_that_read_them() {
    let cluster = load_stacked("v1.37.2");
    let node = first_node(&cluster);
    let running: Vec<Component> = Component::ALL
        .into_iter()
        .filter(|c| c.runs_in(&cluster))
        .collect();
    assert_eq!(running[0], Component::Etcd, "etcd before the apiserver");
    let layout = &node.layout;
    let restarts = |path: &str| node.restart_units(path, cluster.ha_front.as_ref());
    assert_eq!(
        restarts(&layout.etcd_ca_cert),
        ["etcd.service", "kube-apiserver.service"]
    );
    assert_eq!(restarts(&layout.etcd_server.cert), ["etcd.service"]);
    assert_eq!(restarts(&layout.etcd_peer.key), ["etcd.service"]);
    assert_eq!(restarts(&layout.etcd_unit), ["etcd.service"]);
    assert_eq!(
        restarts(&layout.etcd_client.cert),
        ["kube-apiserver.service"]
    );
    assert_eq!(node.private_directories, ["/var/lib/kubernetes/etcd"]);
    assert!(node.directories.contains(&node.private_directories[0]));
    // An external etcd runs no member and keeps today's plan.
    let external = crate::render::load_whole_master("cluster.yaml", Some("v1.37.2"));
    let node = first_node(&external);
    assert!(node.etcd_flags.is_empty() && node.private_directories.is_empty());
    assert!(!node.files.contains_key(&node.layout.etcd_unit));
    assert!(!Component::Etcd.runs_in(&external));
}

/// A scratch project holding `yaml` as cluster.yaml, built; its bundles' folder.
fn build(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("cluster.yaml"), yaml).unwrap();
    kube_bundle(dir.path(), &["build", "--quiet"]).code(0);
    let name = yaml
        .lines()
        .find_map(|line| line.strip_prefix("name: "))
        .unwrap()
        .to_owned();
    let bundles = dir.path().join("bundles").join(name);
    (dir, bundles)
}

/// Extracts `node`'s bundle from `bundles` into `into` with stock tar; its folder.
fn extract(bundles: &Path, node: &str, into: &Path) -> PathBuf {
    fs::create_dir_all(into).unwrap();
    let status = Command::new("tar")
        .arg("xzf")
        .arg(bundles.join(format!("{node}.tar.gz")))
        .current_dir(into)
        .status()
        .unwrap();
    assert!(status.success());
    into.join(node)
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn member_certificates_name_their_member_and_chain_to_the_etcd_ca() {
    let (dir, bundles) = build(&stacked_yaml("v1.37.2"));
    for (node, ip) in [("cp1", "10.20.0.11"), ("cp3", "10.20.0.13")] {
        let pki = extract(&bundles, node, &dir.path().join("x")).join("rootfs/etc/kubernetes/pki");
        let ca = pki.join("etcd/ca.crt");
        let ca = ca.to_str().unwrap();
        for member in ["server", "peer"] {
            let cert = pki.join(format!("etcd/{member}.crt"));
            let cert = cert.to_str().unwrap();
            let shown = openssl(&[
                "x509",
                "-in",
                cert,
                "-noout",
                "-subject",
                "-issuer",
                "-ext",
                "subjectAltName,extendedKeyUsage",
            ]);
            assert!(shown.contains(&format!("subject=CN = {node}")), "{shown}");
            assert!(shown.contains("issuer=CN = etcd-ca"), "{shown}");
            assert!(
                shown.contains(&format!(
                    "DNS:localhost, DNS:{node}, IP Address:127.0.0.1, IP Address:{ip}"
                )),
                "{member}: {shown}"
            );
            // A member serves with it and dials its peers (and itself) with it.
            for purpose in ["sslserver", "sslclient"] {
                let verified = openssl(&["verify", "-purpose", purpose, "-CAfile", ca, cert]);
                assert!(verified.contains(": OK"), "{member} {purpose}: {verified}");
            }
        }
        let health = pki.join("etcd/healthcheck-client.crt");
        let health = health.to_str().unwrap();
        let shown = openssl(&[
            "x509",
            "-in",
            health,
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage",
        ]);
        assert!(
            shown.contains("CN = kube-etcd-healthcheck-client"),
            "{shown}"
        );
        assert!(
            !shown.contains("Server Authentication"),
            "client only: {shown}"
        );
        let verified = openssl(&["verify", "-purpose", "sslclient", "-CAfile", ca, health]);
        assert!(verified.contains(": OK"), "{verified}");
        // Nothing the cluster CA signs is trusted by the members.
        let cluster_ca = pki.join("ca.crt");
        let refused = Command::new("openssl")
            .args(["verify", "-CAfile", cluster_ca.to_str().unwrap(), health])
            .output()
            .unwrap();
        assert!(!refused.status.success());
    }
    // The air gap holds: every host the etcd unit and the installer name is the cluster's.
    for node in ["cp1", "cp2", "cp3"] {
        let tarball = bundles.join(format!("{node}.tar.gz"));
        kube_bundle(
            dir.path(),
            &["verify", tarball.to_str().unwrap(), "--allow-unpinned"],
        )
        .code(0);
    }
    // A rebuild reuses every member certificate.
    let before = fs::read(bundles.join("cp1.tar.gz")).unwrap();
    kube_bundle(dir.path(), &["build", "--quiet"]).code(0);
    assert_eq!(fs::read(bundles.join("cp1.tar.gz")).unwrap(), before);
}

/// An executable stand-in printing `said`.
fn stub(path: &Path, said: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("#!/bin/sh\necho '{said}'\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_installer_checks_etcdctl_and_creates_the_data_directory_0700() {
    // A binDir no host has, so the pre-flight cannot find this host's etcdctl there.
    let yaml =
        stacked_yaml("v1.37.2").replace("  binDir: /usr/local/bin", "  binDir: /opt/kb-test/bin");
    assert!(yaml.contains("/opt/kb-test/bin"));
    let (dir, bundles) = build(&yaml);
    let bundle = extract(&bundles, "cp1", &dir.path().join("x"));
    let script = fs::read_to_string(bundle.join("install.sh")).unwrap();
    let units = script
        .split("UNITS=(\n")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap();
    let units: Vec<&str> = units.split_whitespace().collect();
    assert_eq!(units[..2], ["etcd.service", "kube-apiserver.service"]);
    for line in [
        "ETCDCTL=/opt/kb-test/bin/etcdctl\n",
        "ETCD_HEALTH_ENDPOINT=https://127.0.0.1:2379\n",
        "ETCD_HEALTH_CA=/etc/kubernetes/pki/etcd/ca.crt\n",
        "ETCD_HEALTH_CERT=/etc/kubernetes/pki/etcd/healthcheck-client.crt\n",
        "ETCD_HEALTH_KEY=/etc/kubernetes/pki/etcd/healthcheck-client.key\n",
        "ETCD_MEMBERS=3\n",
        "  'etcdctl /opt/kb-test/bin/etcdctl'\n",
        "  '0700 /var/lib/kubernetes/etcd'\n",
        // No reachability pre-flight toward members that are not installed yet.
        "ETCD_ENDPOINTS=(\n)\n",
    ] {
        assert!(script.contains(line), "install.sh lacks {line:?}");
    }
    // An external etcd's installer leaves the stacked inputs empty.
    let (external_dir, external) =
        build(&fs::read_to_string(repo_root().join("examples/cluster.yaml")).unwrap());
    let external = extract(&external, "cp1", &external_dir.path().join("x"));
    let external = fs::read_to_string(external.join("install.sh")).unwrap();
    assert!(external.contains("ETCD_MEMBERS=''\n") && external.contains("ETCDCTL=''\n"));
    assert!(!external.contains("etcd.service"));

    let root = dir.path().join("root");
    let run = |root: &Path| {
        Command::new("bash")
            .arg(bundle.join("install.sh"))
            .args(["--root", root.to_str().unwrap(), "--force"])
            .env("TMPDIR", dir.path())
            .output()
            .unwrap()
    };
    let bin = root.join("opt/kb-test/bin");
    stub(&bin.join("kube-apiserver"), "Kubernetes v1.37.2");
    for program in ["kube-controller-manager", "kube-scheduler", "etcd"] {
        stub(&bin.join(program), "");
    }
    stub(&root.join("usr/sbin/nginx"), "");
    // Without etcdctl the pre-flight stops the install before any change.
    let out = run(&root);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("FAILED: /opt/kb-test/bin/etcdctl is missing"),
        "{stdout}"
    );
    assert!(!root.join("var/lib/kubernetes/etcd").exists());
    stub(&bin.join("etcdctl"), "");
    let out = run(&root);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let data = fs::metadata(root.join("var/lib/kubernetes/etcd")).unwrap();
    assert_eq!(data.permissions().mode() & 0o7777, 0o700);
    let working = fs::metadata(root.join("var/lib/kubernetes/kube-apiserver")).unwrap();
    assert_eq!(working.permissions().mode() & 0o7777, 0o755);
    assert!(root.join("etc/systemd/system/etcd.service").is_file());
}

/// Three masters on this test's own 127.0.N.1–3 (loopback: Kubernetes 1.36, the newest
/// minor that advertises a loopback address; etcd 3.6's flags, which the pinned 3.7 accepts).
fn loopback_yaml(subnet: u8) -> String {
    let masters: String = (1..=3)
        .map(|n| format!("  - {{ name: cp{n}, ip: 127.0.{subnet}.{n} }}\n"))
        .collect();
    [
        "apiVersion: kube-bundle/v1alpha1\nkind: Cluster\nname: quorum\nkubernetesVersion: v1.36.1\n",
        &format!("masters:\n{masters}"),
        "network: { serviceCIDR: 10.96.0.0/12 }\n",
        "etcd: { mode: stacked }\n",
        "paths: { binDir: /usr/local/bin, certDir: /etc/kubernetes/pki, configDir: /etc/kubernetes, dataDir: /var/lib/kubernetes }\n",
        "haFront: { kind: none }\n",
    ]
    .concat()
}

/// The rendered unit's `--name=value` arguments, with what cannot be shared on one machine
/// moved aside: files under `rootfs`, the data directory into `data`, and the
/// member's loopback client and metrics listeners (every member would take 127.0.0.1's
/// 2379 and 2381) onto its own address.
fn member_args(unit: &str, rootfs: &Path, data: &Path, ip: &str) -> Vec<String> {
    let root = rootfs.to_str().unwrap();
    unit.lines()
        .skip_while(|line| !line.starts_with("ExecStart="))
        .map(|line| line.trim().trim_end_matches('\\').trim())
        .filter(|arg| arg.starts_with("--"))
        .map(|arg| {
            arg.replace("=/etc/kubernetes", &format!("={root}/etc/kubernetes"))
                .replace("=/var/lib/kubernetes/etcd", &format!("={}", data.display()))
                .replace("https://127.0.0.1:2379", &format!("https://{ip}:12379"))
                .replace("http://127.0.0.1:2381", &format!("http://{ip}:2381"))
        })
        .collect()
}

/// The installer's etcd_quorum_state (and what it calls) with its inputs, run as a script:
/// its output and whether it reported a quorum.
fn quorum_state(installer: &str, rootfs: &Path, etcdctl: &Path, endpoint: &str) -> (String, bool) {
    let function = |name: &str| -> String {
        let start = installer
            .find(&format!("\n{name}() {{\n"))
            .unwrap_or_else(|| panic!("install.sh has no {name}()"));
        let end = start + installer[start..].find("\n}\n").unwrap() + 3;
        installer[start..end].to_owned()
    };
    let variables: String = installer
        .lines()
        .filter(|line| line.starts_with("ETCD_") || line.starts_with("ETCDCTL="))
        .filter(|line| !line.ends_with('('))
        .map(|line| format!("{line}\n"))
        .collect();
    let peers = installer
        .split("ETCD_PEERS=(")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let script = format!(
        "set -euo pipefail\n{variables}ETCD_PEERS=({peers})\nROOT={root}\nHERE=/nonexistent\n\
         ETCDCTL={ctl}\nETCD_HEALTH_ENDPOINT={endpoint}\n\
         target() {{ case $1 in /etc/*) printf '%s%s' \"$ROOT\" \"$1\" ;; *) printf '%s' \"$1\" ;; esac; }}\n\
         {}{}\netcd_quorum_state\n",
        function("etcd_ctl"),
        function("etcd_quorum_state"),
        root = rootfs.display(),
        ctl = etcdctl.display(),
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        out.status.success(),
    )
}

/// Polls `check` until it returns Some, for at most a minute (a hang guard only).
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: no success within a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn three_members_started_one_after_another_reach_quorum_with_the_rendered_units() {
    let version = pinned_etcd_version();
    let bin = binary_cache().join("etcd").join(&version);
    let (etcd, etcdctl) = (bin.join("etcd"), bin.join("etcdctl"));
    assert!(
        etcd.is_file() && etcdctl.is_file(),
        "{} is missing: run tests/e2e/build-etcd.sh {version}. This test never skips.",
        bin.display()
    );
    let (subnet, _lock) = crate::harness::claim_subnet(10..=199);
    let (dir, bundles) = build(&loopback_yaml(subnet));
    let mut members = Vec::new();
    let mut installers = Vec::new();
    for n in 1..=3 {
        let node = format!("cp{n}");
        let bundle = extract(&bundles, &node, &dir.path().join("x"));
        let rootfs = bundle.join("rootfs");
        let unit = fs::read_to_string(rootfs.join("etc/systemd/system/etcd.service")).unwrap();
        let data = dir.path().join(format!("data-{node}"));
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
        let args = member_args(&unit, &rootfs, &data, &format!("127.0.{subnet}.{n}"));
        installers.push((
            fs::read_to_string(bundle.join("install.sh")).unwrap(),
            rootfs,
        ));
        members.push((node, args));
    }
    let endpoint = |n: u8| format!("https://127.0.{subnet}.{n}:12379");
    let start = |(node, args): &(String, Vec<String>)| {
        let log = fs::File::create(dir.path().join(format!("{node}.log"))).unwrap();
        KillOnDrop(
            Command::new(&etcd)
                .args(args)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    };
    let (installer, rootfs) = &installers[0];
    // Nothing up yet: something that merely accepts connections on a member's peer
    // address is not counted as the member.
    let impostor = std::net::TcpListener::bind(format!("127.0.{subnet}.3:2380")).unwrap();
    let (state, quorum) = quorum_state(installer, rootfs, &etcdctl, &endpoint(1));
    assert_eq!((state.as_str(), quorum), ("0/3 members up", false));
    drop(impostor);
    // The first master: up, waiting for its peers, no quorum.
    let _first = start(&members[0]);
    let state = eventually("the first member listens", || {
        let (state, quorum) = quorum_state(installer, rootfs, &etcdctl, &endpoint(1));
        assert!(!quorum, "{state}");
        (state == "1/3 members up").then_some(state)
    });
    assert_eq!(state, "1/3 members up");
    // The second: a quorum, and the health check the installer's gate runs passes.
    let _second = start(&members[1]);
    let state = eventually("a quorum of two", || {
        let (state, quorum) = quorum_state(installer, rootfs, &etcdctl, &endpoint(1));
        quorum.then_some(state)
    });
    assert_eq!(state, "2/3 members up");
    let _third = start(&members[2]);
    eventually("all three healthy", || {
        let (state, quorum) = quorum_state(installer, rootfs, &etcdctl, &endpoint(1));
        (quorum && state == "3/3 members up").then_some(())
    });
    // The apiserver's client certificate writes; the health-check client is a client too.
    let pki = rootfs.join("etc/kubernetes/pki");
    let put = Command::new(&etcdctl)
        .arg(format!("--endpoints={}", endpoint(3)))
        .arg(format!("--cacert={}", pki.join("etcd/ca.crt").display()))
        .arg(format!(
            "--cert={}",
            pki.join("apiserver-etcd-client.crt").display()
        ))
        .arg(format!(
            "--key={}",
            pki.join("apiserver-etcd-client.key").display()
        ))
        .args(["put", "/registry/kube-bundle", "stacked"])
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    // A client certificate of the cluster CA is refused by the members.
    let refused = Command::new(&etcdctl)
        .arg(format!("--endpoints={}", endpoint(1)))
        .arg(format!("--cacert={}", pki.join("etcd/ca.crt").display()))
        .arg(format!("--cert={}", pki.join("admin.crt").display()))
        .arg(format!("--key={}", pki.join("admin.key").display()))
        .args([
            "--dial-timeout=3s",
            "--command-timeout=5s",
            "get",
            "/registry/kube-bundle",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "the admin certificate read etcd");
}

#[test]
fn diff_names_the_units_a_renewed_member_certificate_restarts() {
    let (dir, bundles) = build(&stacked_yaml("v1.37.2"));
    kube_bundle(dir.path(), &["certs", "renew", "cp1/etcd-peer"]).code(0);
    kube_bundle(dir.path(), &["build", "--quiet"]).code(0);
    let out = bundles.to_str().unwrap();
    let diff = kube_bundle(
        dir.path(),
        &["diff", "--out", out, "--unverified", "-o", "json"],
    );
    diff.code(0);
    let report: serde_json::Value = serde_json::from_str(&diff.stdout()).unwrap();
    assert_eq!(
        report["cp1"]["restartUnits"],
        serde_json::json!(["etcd.service"])
    );
    assert_eq!(report["cp2"]["restartUnits"], serde_json::json!([]));
    // The bundle records the member's command line beside the other units'.
    let bundle = extract(&bundles, "cp1", &dir.path().join("x"));
    let provenance: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(bundle.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(
        provenance["unitFlags"]["etcd.service"]["name"],
        serde_json::json!("cp1")
    );
    assert_eq!(
        provenance["restarts"]["/etc/kubernetes/pki/etcd/ca.crt"],
        serde_json::json!(["etcd.service", "kube-apiserver.service"])
    );
}
