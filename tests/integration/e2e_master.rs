//! The whole master end to end, for real (issue 19): the harness of e2e.rs, with every
//! master also running the kube-controller-manager and kube-scheduler its bundle ships, on
//! each pinned release:
//! - the masters are installed one after another, install.sh gating on each unit's
//!   /healthz; the first one's controller manager and scheduler take both leader leases,
//!   and the later ones' wait as standbys;
//! - a Deployment leads to a ReplicaSet and a Pod that the controller manager creates and
//!   the scheduler binds to a Node object registered through the API (no kubelet runs: the
//!   Pod stays Pending, bound);
//! - every lease has one holder, and exactly one of the three processes says it leads;
//! - the leaders' master dies (every process in its namespaces): both leases move to the
//!   survivors, which keep serving (a scaled Deployment gets its new Pod, bound by the new
//!   leader; a new namespace gets its ServiceAccount);
//! - a ServiceAccount token issued through one apiserver is accepted by another;
//! - a CSR for the kube-apiserver-client signer, approved, is signed by the controller
//!   manager with the cluster-signer CA, chains to the cluster CA through it, and logs in;
//!   the root CA's key is in no bundle.
//!
//! Every wait is a poll whose deadline is only a hang guard; nothing here asserts how long
//! anything takes.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::e2e::{
    CLUSTER, Cluster, Etcd, MASTERS, Master, Shape, check_line, newest_and_oldest_release, ok,
    poll, stacked_etcd_version, take_turn, text,
};
use crate::harness::binary_cache;

/// The whole master with its own etcd member (`etcd.mode: stacked`): the bundles ship the
/// etcd build of the minor kube-bundle pairs with the release (3.7 for 1.37, 3.5 for 1.33).
const STACKED: Shape = Shape {
    whole_master: true,
    etcd: Etcd::Stacked,
};

/// A control-plane component beside the apiserver.
#[derive(Clone, Copy, Debug)]
struct Component {
    unit: &'static str,
    /// Its leader lease in kube-system, and its name in the leader-election metric.
    lease: &'static str,
    /// Its secure port on 127.0.0.1.
    port: u16,
}

const CONTROLLER_MANAGER: Component = Component {
    unit: "kube-controller-manager.service",
    lease: "kube-controller-manager",
    port: 10257,
};

const SCHEDULER: Component = Component {
    unit: "kube-scheduler.service",
    lease: "kube-scheduler",
    port: 10259,
};

const COMPONENTS: [Component; 2] = [CONTROLLER_MANAGER, SCHEDULER];

/// The Node object the test registers in place of a kubelet.
const NODE: &str = "worker-1";

#[test]
fn whole_masters_schedule_fail_over_and_sign_on_the_newest_release() {
    let (newest, _) = newest_and_oldest_release();
    whole_masters_schedule_fail_over_and_sign(&newest, STACKED);
}

#[test]
fn whole_masters_schedule_fail_over_and_sign_on_the_oldest_release() {
    let (_, oldest) = newest_and_oldest_release();
    whole_masters_schedule_fail_over_and_sign(&oldest, STACKED);
}

fn whole_masters_schedule_fail_over_and_sign(version: &str, shape: Shape) {
    let _turn = take_turn();
    let cluster = Cluster::start_shaped(version, shape, |cluster, index, out| {
        let master = &cluster.masters[index];
        for component in COMPONENTS {
            // install.sh waited for each unit's /healthz before starting the next; the test
            // asks too, checking the serving certificate against the cluster CA.
            let gate = format!("healthz https://127.0.0.1:{}/healthz", component.port);
            assert!(check_line(out, &gate).ends_with(" ok"), "{out}");
            wait_healthy(master, component);
            master.assert_runs_exactly(component.unit);
            // The first master's are the only candidates: they lead from then on, and the
            // later masters' wait.
            poll(
                &format!("{} holds the {} lease", MASTERS[0], component.lease),
                || match lease_holder(master, component)? {
                    holder if holder == MASTERS[0] => Ok(()),
                    holder => Err(format!("held by {holder}")),
                },
            );
        }
        cluster.progress(&format!(
            "{}'s controller manager and scheduler healthy",
            master.name
        ));
    });
    let [m1, m2, m3] = &cluster.masters[..] else {
        unreachable!()
    };

    // ---- the root CA's key stays on the build host; the signer's travels
    assert_root_key_in_no_bundle(&cluster, version, shape);

    // ---- every lease has one holder, and exactly that process says it leads
    for component in COMPONENTS {
        assert_one_leader(&cluster.masters, component, m1.name);
    }

    // ---- a Deployment becomes a ReplicaSet and a Pod, bound to a Node
    register_node(m2);
    let manifest = m1.dir.join("deployment.yaml");
    fs::write(&manifest, DEPLOYMENT).unwrap();
    ok(&mut m1.kubectl(&["create", "-f", manifest.to_str().unwrap()]));
    let first = poll("the Deployment's Pod is bound", || {
        match bound_pods(m1)?.as_slice() {
            [pod] => Ok(pod.clone()),
            pods => Err(format!("{pods:?}")),
        }
    });
    assert_made_by_the_controllers(m1, &first);
    assert_bound_by(&cluster.masters, &first, m1.name);
    cluster.progress("the Deployment's Pod is created and bound");

    // ---- the leaders' master dies: both leases move, the others keep serving
    // Every process of m1 (its etcd member too), as when the host dies; sweep returns once
    // none is left, so nothing answers there any more.
    m1.ns.sweep();
    let gone = m2.curl(&format!("https://{}:6443/healthz", m1.ip));
    assert!(!gone.status.success(), "{}", text(&gone));
    let survivors = &cluster.masters[1..];
    let manager_leader = new_leader(survivors, CONTROLLER_MANAGER);
    let scheduler_leader = new_leader(survivors, SCHEDULER);
    cluster.progress(&format!(
        "leases moved: controller manager to {manager_leader}, scheduler to {scheduler_leader}"
    ));
    ok(&mut m2.kubectl_direct(&["scale", "deployment", "e2e-web", "--replicas", "2"]));
    let second = poll("the scaled Deployment's new Pod is bound", || {
        let pods = bound_pods(m3)?;
        match pods.iter().find(|p| p.name != first.name) {
            Some(pod) if pods.len() == 2 => Ok(pod.clone()),
            _ => Err(format!("{pods:?}")),
        }
    });
    assert_made_by_the_controllers(m3, &second);
    assert_bound_by(&cluster.masters, &second, &scheduler_leader);
    cluster.progress("with m1 dead, a new Pod is created and bound");

    // ---- a ServiceAccount token: issued by one apiserver, accepted by another
    ok(&mut m2.kubectl_direct(&["create", "namespace", "e2e"]));
    // The namespace's default ServiceAccount is the new leader's work.
    let token = poll("a token for e2e/default", || {
        m2.try_direct(&["create", "token", "default", "--namespace", "e2e"])
    });
    let token = token.trim();
    let whoami = ok(credentials_only(m3, &["--token", token]).args([
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]));
    assert_eq!(whoami, "system:serviceaccount:e2e:default");
    cluster.progress("a ServiceAccount token is issued and accepted");

    // ---- a CSR signed by the controller manager chains to the cluster CA
    assert_csr_signed_through_the_signer(m2, m3);
    cluster.progress("a CSR is signed through the cluster-signer; done");
}

/// Polls `component`'s /healthz on `master`, over TLS checked against the cluster CA.
fn wait_healthy(master: &Master, component: Component) {
    let url = format!("https://127.0.0.1:{}/healthz", component.port);
    poll(&format!("{}'s {url}", master.name), || {
        let output = master.curl(&url);
        if output.status.success() && output.stdout == b"ok" {
            Ok(())
        } else {
            Err(text(&output))
        }
    });
}

/// The master whose process holds `component`'s lease, read through `master`'s own
/// apiserver: holders are named `HOSTNAME_UUID`, and every master has its own host name.
fn lease_holder(master: &Master, component: Component) -> Result<String, String> {
    let holder = master.try_direct(&[
        "get",
        "lease",
        component.lease,
        "--namespace",
        "kube-system",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])?;
    match holder.split_once('_') {
        Some((host, id)) if !id.is_empty() => Ok(host.to_owned()),
        _ => Err(format!("holder {holder:?}")),
    }
}

/// Whether `component` on `master` says it leads, from its own /metrics (which it serves
/// to the admin only through its delegated authentication and authorization).
fn says_it_leads(master: &Master, component: Component) -> Result<bool, String> {
    let output = master.curl(&format!("https://127.0.0.1:{}/metrics", component.port));
    let metrics = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !metrics.contains("# TYPE") {
        return Err(text(&output));
    }
    let series = format!(
        "leader_election_master_status{{name=\"{}\"}}",
        component.lease
    );
    Ok(metrics
        .lines()
        .any(|line| line.split_whitespace().collect::<Vec<_>>() == [series.as_str(), "1"]))
}

/// `component`'s lease names `leader`, and of `masters` exactly `leader`'s process says it
/// leads (polled: a process that lost its lease learns it at its next renewal).
#[track_caller]
fn assert_one_leader(masters: &[Master], component: Component, leader: &str) {
    for master in masters {
        assert_eq!(
            lease_holder(master, component).as_deref(),
            Ok(leader),
            "{}'s view of the {} lease",
            master.name,
            component.lease
        );
    }
    poll(
        &format!("only {leader}'s {} says it leads", component.lease),
        || {
            let mut leading = Vec::new();
            for master in masters {
                if says_it_leads(master, component)? {
                    leading.push(master.name);
                }
            }
            if leading == [leader] {
                Ok(())
            } else {
                Err(format!("leading: {leading:?}"))
            }
        },
    );
}

/// Waits for `component`'s lease to name one of `survivors`, and checks that it alone
/// leads; its name.
fn new_leader(survivors: &[Master], component: Component) -> String {
    let leader = poll(
        &format!("the {} lease moves to a survivor", component.lease),
        || {
            let holder = lease_holder(&survivors[0], component)?;
            if survivors.iter().any(|m| m.name == holder) {
                Ok(holder)
            } else {
                Err(format!("held by {holder}"))
            }
        },
    );
    assert_one_leader(survivors, component, &leader);
    leader
}

/// Registers the Node object a kubelet would, with room for pods and Ready.
fn register_node(master: &Master) {
    let manifest = master.dir.join("node.yaml");
    fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {NODE}\n  labels: {{ kubernetes.io/hostname: {NODE} }}\n"
        ),
    )
    .unwrap();
    ok(&mut master.kubectl(&["create", "-f", manifest.to_str().unwrap()]));
    let resources = r#"{"cpu": "4", "memory": "8Gi", "pods": "110"}"#;
    let status = format!(
        r#"{{"status": {{"capacity": {resources}, "allocatable": {resources}, "conditions": [{{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "registered by the end-to-end test"}}]}}}}"#
    );
    ok(&mut master.kubectl(&[
        "patch",
        "node",
        NODE,
        "--subresource=status",
        "--type=merge",
        "--patch",
        &status,
    ]));
}

/// One replica that tolerates every taint: the Node has no kubelet behind it, so the node
/// lifecycle controller soon taints it unreachable.
const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: { name: e2e-web, namespace: default }
spec:
  replicas: 1
  selector: { matchLabels: { app: e2e-web } }
  template:
    metadata: { labels: { app: e2e-web } }
    spec:
      tolerations: [ { operator: Exists } ]
      containers: [ { name: web, image: registry.k8s.io/pause:3.10 } ]
";

/// A Pod of the Deployment, as the API serves it.
#[derive(Clone, Debug)]
struct Pod {
    name: String,
    node: String,
    /// `Kind/name` of its controller.
    owner: String,
}

/// The Deployment's Pods bound to the Node, read through `master`'s own apiserver; an
/// error while one is still unbound.
fn bound_pods(master: &Master) -> Result<Vec<Pod>, String> {
    let template = r#"{range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.ownerReferences[?(@.controller==true)].kind}/{.metadata.ownerReferences[?(@.controller==true)].name}{"\n"}{end}"#;
    let listed = master.try_direct(&[
        "get",
        "pods",
        "--namespace",
        "default",
        "--selector",
        "app=e2e-web",
        "-o",
        &format!("jsonpath={template}"),
    ])?;
    let pods: Vec<Pod> = listed
        .lines()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [name, node, owner] => Some(Pod {
                    name: name.to_owned(),
                    node: node.to_owned(),
                    owner: owner.to_owned(),
                }),
                _ => None,
            },
        )
        .collect();
    if pods.is_empty() || pods.len() != listed.lines().count() {
        return Err(format!("not every Pod is bound yet:\n{listed}"));
    }
    Ok(pods)
}

/// `pod` is on the Node, and its ReplicaSet belongs to the Deployment: both written by the
/// controller manager (the API records who wrote what, by user agent).
#[track_caller]
fn assert_made_by_the_controllers(master: &Master, pod: &Pod) {
    assert_eq!(pod.node, NODE, "{pod:?}");
    let replica_set = pod
        .owner
        .strip_prefix("ReplicaSet/")
        .unwrap_or_else(|| panic!("{pod:?} is not a ReplicaSet's"));
    let get = |kind: &str, name: &str, path: &str| {
        ok(&mut master.kubectl_direct(&[
            "get",
            kind,
            name,
            "--namespace",
            "default",
            "-o",
            &format!("jsonpath={path}"),
        ]))
    };
    let writers = "{.metadata.managedFields[*].manager}";
    let owner = "{.metadata.ownerReferences[?(@.controller==true)].kind}/{.metadata.ownerReferences[?(@.controller==true)].name}";
    assert_eq!(
        get("replicaset", replica_set, owner),
        "Deployment/e2e-web",
        "{pod:?}"
    );
    for (kind, name) in [("pod", pod.name.as_str()), ("replicaset", replica_set)] {
        let written_by = get(kind, name, writers);
        assert!(
            written_by.split_whitespace().next() == Some("kube-controller-manager"),
            "{kind} {name} was first written by {written_by:?}"
        );
    }
}

/// Of `masters`, the scheduler that bound `pod` is `leader`'s alone, as the schedulers' own
/// logs say (its events do not name the instance).
#[track_caller]
fn assert_bound_by(masters: &[Master], pod: &Pod, leader: &str) {
    let line = format!(
        "\"Successfully bound pod to node\" pod=\"default/{}\" node=\"{NODE}\"",
        pod.name
    );
    let binders = poll(&format!("a scheduler logs binding {}", pod.name), || {
        let binders: Vec<&str> = masters
            .iter()
            .filter(|m| m.log(&format!("{}.log", SCHEDULER.unit)).contains(&line))
            .map(|m| m.name)
            .collect();
        if binders.is_empty() {
            Err("none yet".to_owned())
        } else {
            Ok(binders)
        }
    });
    assert_eq!(binders, [leader], "{pod:?}");
}

/// kubectl reaching `master`'s own apiserver with the cluster CA and only the credentials
/// in `credentials` (no kubeconfig, so no admin certificate rides along).
fn credentials_only(master: &Master, credentials: &[&str]) -> Command {
    let empty = master.dir.join("empty.kubeconfig");
    fs::write(&empty, "").unwrap();
    let mut command = master.ns.command("kubectl");
    command
        .arg("--kubeconfig")
        .arg(&empty)
        .args(["--server", &format!("https://{}:6443", master.ip)])
        .args(["--certificate-authority", "/etc/kubernetes/pki/ca.crt"])
        .args(["--request-timeout", "10s"])
        .args(credentials);
    command
}

/// A client CSR created and approved through `by`, signed by the controller manager: its
/// certificate chains to the cluster CA only through the cluster-signer, and `login`'s
/// apiserver accepts it.
fn assert_csr_signed_through_the_signer(by: &Master, login: &Master) {
    let dir = by.dir.join("csr");
    fs::create_dir_all(&dir).unwrap();
    ok(Command::new("openssl")
        .args(["req", "-new", "-nodes", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-subj", "/O=e2e-csr-group/CN=e2e-csr-user"])
        .args(["-keyout", "user.key", "-out", "user.csr"])
        .current_dir(&dir));
    let request = BASE64.encode(fs::read(dir.join("user.csr")).unwrap());
    let manifest = dir.join("csr.yaml");
    fs::write(
        &manifest,
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\n\
             metadata: {{ name: e2e-csr-user }}\nspec:\n  request: {request}\n  \
             signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 3600\n  \
             usages: [ client auth ]\n"
        ),
    )
    .unwrap();
    ok(&mut by.kubectl_direct(&["create", "-f", manifest.to_str().unwrap()]));
    ok(&mut by.kubectl_direct(&["certificate", "approve", "e2e-csr-user"]));
    let issued = poll("the approved CSR is signed", || {
        let encoded = by.try_direct(&[
            "get",
            "csr",
            "e2e-csr-user",
            "-o",
            "jsonpath={.status.certificate}",
        ])?;
        match encoded.trim() {
            "" => Err("approved, not signed yet".to_owned()),
            encoded => BASE64.decode(encoded).map_err(|e| e.to_string()),
        }
    });
    fs::write(dir.join("user.crt"), &issued).unwrap();
    let pki = |file: &str| by.installed(&format!("/etc/kubernetes/pki/{file}"));
    let verify = |untrusted: Option<&Path>| {
        let mut command = Command::new("openssl");
        command.arg("verify").arg("-CAfile").arg(pki("ca.crt"));
        if let Some(signer) = untrusted {
            command.arg("-untrusted").arg(signer);
        }
        command.arg(dir.join("user.crt")).output().unwrap()
    };
    let chained = verify(Some(&pki("cluster-signer.crt")));
    assert!(chained.status.success(), "{}", text(&chained));
    // Not signed with the root CA's own key: without the signer there is no chain.
    let direct = verify(None);
    assert!(!direct.status.success(), "{}", text(&direct));
    // The signer is an intermediate under the cluster CA, not a root of its own.
    let signer = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(pki("ca.crt"))
        .arg(pki("cluster-signer.crt"))
        .output()
        .unwrap();
    assert!(signer.status.success(), "{}", text(&signer));
    let whoami = ok(credentials_only(
        login,
        &[
            "--client-certificate",
            dir.join("user.crt").to_str().unwrap(),
            "--client-key",
            dir.join("user.key").to_str().unwrap(),
        ],
    )
    .args([
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]));
    assert_eq!(
        whoami,
        r#"e2e-csr-user ["e2e-csr-group","system:authenticated"]"#
    );
}

/// Whether `reader` yields exactly the bytes of the file at `path`, read a chunk at a time
/// (the shipped binaries are hundreds of megabytes).
fn same_bytes(mut reader: impl Read, path: &Path) -> bool {
    let mut file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut ours, mut theirs) = (vec![0; 1 << 20], vec![0; 1 << 20]);
    loop {
        let n = read_full(&mut reader, &mut ours);
        if n != read_full(&mut file, &mut theirs) || ours[..n] != theirs[..n] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

/// Fills `buffer` as far as the input goes; the count read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]).unwrap() {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

/// The private key and the certificate of a CA in the secrets folder (`NAME.pem`).
fn secret_ca(cluster: &Cluster, name: &str) -> (pem::Pem, pem::Pem) {
    let path = cluster
        .project()
        .join("secrets")
        .join(CLUSTER)
        .join(format!("{name}.pem"));
    let blocks = pem::parse_many(fs::read(&path).unwrap()).unwrap();
    let find = |tag: &str| {
        blocks
            .iter()
            .find(|b| b.tag() == tag)
            .unwrap_or_else(|| panic!("{}: no {tag}", path.display()))
            .clone()
    };
    (find("PRIVATE KEY"), find("CERTIFICATE"))
}

/// The public key of a PEM private key or certificate, as openssl prints it.
fn public_key(pem: &pem::Pem) -> String {
    let script = if pem.tag() == "CERTIFICATE" {
        "openssl x509 -pubkey -noout"
    } else {
        "openssl pkey -pubout"
    };
    ok(Command::new("sh")
        .args(["-c", &format!("printf '%s' \"$PEM\" | {script}")])
        .env("PEM", pem::encode(pem)))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The key as stored (DER) and its PEM body on one line (which also matches it re-wrapped,
/// once the haystack's line breaks are gone too).
fn key_forms(key: &pem::Pem) -> [Vec<u8>; 2] {
    let body: String = pem::encode(key)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    [key.contents().to_vec(), body.into_bytes()]
}

/// The private keys in a file: its PEM blocks, and those of the kubeconfig fields that
/// embed a PEM file in base64 (`client-key-data:`).
fn private_keys(contents: &[u8]) -> Vec<pem::Pem> {
    let mut blocks = pem::parse_many(contents).unwrap_or_default();
    for line in String::from_utf8_lossy(contents).lines() {
        if let Some((_, value)) = line.split_once("-data:") {
            let value = value.trim().trim_matches('"');
            if let Ok(decoded) = BASE64.decode(value) {
                blocks.extend(pem::parse_many(decoded).unwrap_or_default());
            }
        }
    }
    blocks.retain(|b| b.tag().ends_with("PRIVATE KEY"));
    blocks
}

/// No bundle holds the root CA's key: not its stored bytes (DER or PEM text), and no
/// private key in a bundle, in a PEM file or inside a kubeconfig, has its public key. The
/// shipped binaries are byte for byte the ones cluster.yaml names; every other file is
/// searched. The cluster-signer's key, which the same search finds in every bundle, shows
/// that the search finds a key that is there.
fn assert_root_key_in_no_bundle(cluster: &Cluster, version: &str, shape: Shape) {
    let (root_key, root_cert) = secret_ca(cluster, "ca");
    let (signer_key, _) = secret_ca(cluster, "cluster-signer-ca");
    let root_public = public_key(&root_cert);
    assert_eq!(public_key(&root_key), root_public);
    let root_forms = key_forms(&root_key);
    let signer_forms = key_forms(&signer_key);
    for name in MASTERS {
        let tarball = cluster.bundles().join(format!("{name}.tar.gz"));
        // Large files are stored as several gzip members.
        let gz = flate2::read::MultiGzDecoder::new(fs::File::open(&tarball).unwrap());
        let mut archive = tar::Archive::new(gz);
        let (mut binaries, mut keys, mut signer_found) = (0, 0, false);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().unwrap().into_owned();
            let shown = path.display().to_string();
            if let Ok(binary) = path.strip_prefix(format!("{name}/rootfs/usr/local/bin")) {
                let shipped = if binary.to_string_lossy().starts_with("etcd") {
                    let etcd = stacked_etcd_version(version);
                    binary_cache().join("etcd").join(etcd).join(binary)
                } else {
                    binary_cache().join("kube").join(version).join(binary)
                };
                assert!(same_bytes(&mut entry, &shipped), "{name}: {shown}");
                binaries += 1;
                continue;
            }
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).unwrap();
            let unwrapped: Vec<u8> = contents.iter().copied().filter(|b| *b != b'\n').collect();
            let found =
                |[der, body]: &[Vec<u8>; 2]| contains(&contents, der) || contains(&unwrapped, body);
            assert!(!found(&root_forms), "{name}: {shown} holds the root CA key");
            signer_found |= found(&signer_forms);
            for key in private_keys(&contents) {
                keys += 1;
                assert_ne!(
                    public_key(&key),
                    root_public,
                    "{name}: {shown} holds the root CA key"
                );
            }
        }
        // kube-apiserver, kube-controller-manager, kube-scheduler (and etcd and etcdctl).
        let shipped = if shape.etcd == Etcd::Stacked { 5 } else { 3 };
        assert_eq!(binaries, shipped, "{name}: the shipped binaries");
        assert!(
            signer_found && keys > 0,
            "{name}: the search finds no cluster-signer key ({keys} private keys)"
        );
    }
}
