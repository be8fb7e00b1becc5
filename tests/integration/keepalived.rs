//! keepalived with the real thing: every master's rendered keepalived.conf passes
//! `keepalived --config-test`, and in three network namespaces on one bridge, three real
//! keepalived daemons running those configs put the VIP on the first master, then move it
//! to the second when the first one's apiserver stops answering.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{KillOnDrop, Project, kube_bundle};

#[track_caller]
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (.ci/run installs it)"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn keepalived_config_test(path: &Path) -> bool {
    Command::new("keepalived")
        .arg("--config-test")
        .arg("-f")
        .arg(path)
        .output()
        .expect("keepalived must be installed (.ci/run installs it)")
        .status
        .success()
}

fn extract(tarball: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    run(
        "tar",
        &[
            "xzf",
            tarball.to_str().unwrap(),
            "-C",
            into.to_str().unwrap(),
        ],
    );
}

#[test]
fn every_masters_keepalived_config_passes_keepalived_own_check() {
    let project = Project::new();
    project.edit(
        "controlPlaneEndpoint: api.prod-eu1.example.com:6443",
        "controlPlaneEndpoint: 10.20.0.100:6443",
    );
    project.add_client();
    project.edit(
        "network:",
        "keepalived: { interface: eth0, virtualRouterId: 77 }\nnetwork:",
    );
    project.build();
    let out = project.path().join("x");
    for (index, node) in ["cp1", "cp2", "cp3"].iter().enumerate() {
        extract(&project.bundle(node), &out);
        let config = out.join(format!("{node}/rootfs/etc/keepalived/keepalived.conf"));
        assert!(
            keepalived_config_test(&config),
            "{node}: config test failed"
        );
        let text = fs::read_to_string(&config).unwrap();
        assert!(
            text.contains(&format!("priority {}\n", 200 - index)),
            "{text}"
        );
        assert!(text.contains("virtual_router_id 77\n"), "{text}");
        assert!(text.contains("10.20.0.100/24 dev eth0"), "{text}");
        let own = format!("10.20.0.{}", 11 + index);
        assert!(text.contains(&format!("unicast_src_ip {own}\n")), "{text}");
        let peers: Vec<&str> = text
            .split("unicast_peer {")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .unwrap()
            .split_whitespace()
            .collect();
        let mut expected = vec!["10.20.0.11", "10.20.0.12", "10.20.0.13"];
        expected.retain(|ip| *ip != own);
        assert_eq!(peers, expected, "{node}");
        let unit = fs::read_to_string(out.join(format!(
            "{node}/rootfs/etc/systemd/system/kube-apiserver.service"
        )))
        .unwrap();
        assert!(unit.contains("--bind-address=0.0.0.0"), "{unit}");
        let installer = fs::read_to_string(out.join(format!("{node}/install.sh"))).unwrap();
        assert!(
            installer.contains("  '0644 /etc/keepalived/keepalived.conf keepalived.service'")
                && installer.contains("  keepalived.service\n"),
            "{installer}"
        );
        // The check can fail: an out-of-range router id is refused.
        let broken = out.join(format!("{node}-broken.conf"));
        fs::write(
            &broken,
            text.replace("virtual_router_id 77", "virtual_router_id 999"),
        )
        .unwrap();
        assert!(!keepalived_config_test(&broken));
    }
    extract(&project.bundle("w1"), &out);
    assert!(
        !out.join("w1/rootfs/etc/keepalived").exists(),
        "a client runs no VRRP"
    );
}

/// Network namespaces `<prefix>sw` (a bridge) and `<prefix>1..3` (the masters, each with
/// an interface `kb0` on the bridge), removed on drop with everything running in them.
struct Segment {
    prefix: String,
    daemons: Vec<KillOnDrop>,
}

impl Segment {
    fn new(subnet: u8, masters: usize) -> Self {
        let prefix = format!("kb{}x{subnet}n", std::process::id());
        let segment = Self {
            prefix: prefix.clone(),
            daemons: Vec::new(),
        };
        let switch = format!("{prefix}sw");
        run("ip", &["netns", "add", &switch]);
        segment.exec(&switch, &["ip", "link", "add", "br0", "type", "bridge"]);
        segment.exec(&switch, &["ip", "link", "set", "br0", "up"]);
        for n in 1..=masters {
            let node = segment.node(n);
            let port = format!("p{n}");
            run("ip", &["netns", "add", &node]);
            run(
                "ip",
                &[
                    "link", "add", "kb0", "netns", &node, "type", "veth", "peer", "name", &port,
                    "netns", &switch,
                ],
            );
            segment.exec(&switch, &["ip", "link", "set", &port, "master", "br0"]);
            segment.exec(&switch, &["ip", "link", "set", &port, "up"]);
            let address = format!("10.99.{subnet}.{n}/24");
            segment.exec(&node, &["ip", "addr", "add", &address, "dev", "kb0"]);
            segment.exec(&node, &["ip", "link", "set", "kb0", "up"]);
            segment.exec(&node, &["ip", "link", "set", "lo", "up"]);
        }
        segment
    }

    fn node(&self, n: usize) -> String {
        format!("{}{n}", self.prefix)
    }

    #[track_caller]
    fn exec(&self, namespace: &str, command: &[&str]) -> String {
        let mut args = vec!["netns", "exec", namespace];
        args.extend_from_slice(command);
        run("ip", &args)
    }

    fn spawn(&mut self, namespace: &str, command: &[&str], log: &Path) -> usize {
        let log = fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", namespace])
            .args(command)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemons.push(KillOnDrop(child));
        self.daemons.len() - 1
    }

    fn holds(&self, n: usize, vip: &str) -> bool {
        self.exec(&self.node(n), &["ip", "-o", "addr", "show", "dev", "kb0"])
            .contains(&format!("inet {vip}/"))
    }

    /// Master n holds the VIP and no other master does.
    fn holds_alone(&self, n: usize, vip: &str) -> bool {
        (1..=3).all(|m| self.holds(m, vip) == (m == n))
    }
}

impl Drop for Segment {
    /// keepalived's VRRP child outlives a SIGKILLed parent: everything in the namespaces
    /// gets SIGTERM first, then SIGKILL, before the namespaces go.
    fn drop(&mut self) {
        let namespaces: Vec<String> = (1..=3)
            .map(|n| self.node(n))
            .chain([format!("{}sw", self.prefix)])
            .collect();
        let pids = |namespace: &str| -> Vec<String> {
            Command::new("ip")
                .args(["netns", "pids", namespace])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        for signal in ["-TERM", "-KILL"] {
            for namespace in &namespaces {
                for pid in pids(namespace) {
                    let _ = Command::new("kill").args([signal, &pid]).status();
                }
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while namespaces.iter().any(|ns| !pids(ns).is_empty()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.daemons.clear();
        for namespace in &namespaces {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
    }
}

/// A hang guard only: every wait below returns as soon as its condition holds.
const HANG_GUARD: Duration = Duration::from_secs(120);

#[track_caller]
fn wait_until(what: &str, mut condition: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + HANG_GUARD;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `condition` has held at every poll for three advert intervals (advert_int
/// 1), so a state seen in passing (two masters while an election settles) is not taken
/// for the outcome.
#[track_caller]
fn wait_stable(what: &str, mut condition: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + HANG_GUARD;
    let mut since: Option<Instant> = None;
    loop {
        if condition() {
            let start = *since.get_or_insert_with(Instant::now);
            if start.elapsed() >= Duration::from_secs(3) {
                return;
            }
        } else {
            since = None;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what} (stable for 3 s)\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_vip_moves_to_the_next_master_when_the_apiserver_stops_answering() {
    let subnet = 7;
    let dir = tempfile::tempdir().unwrap();
    let vip = format!("10.99.{subnet}.100");
    let masters: String = (1..=3)
        .map(|n| format!("  - {{ name: cp{n}, ip: 10.99.{subnet}.{n} }}\n"))
        .collect();
    fs::write(
        dir.path().join("cluster.yaml"),
        format!(
            "apiVersion: kube-bundle/v1alpha1\nkind: Cluster\nname: vrrp\nkubernetesVersion: v1.36.1\n\
             controlPlaneEndpoint: {vip}:6443\nmasters:\n{masters}network: {{}}\n\
             etcd: {{ endpoints: [\"https://10.99.{subnet}.1:2379\"] }}\n\
             keepalived: {{ interface: kb0, virtualRouterId: 42 }}\n"
        ),
    )
    .unwrap();
    kube_bundle(dir.path(), &["build"]).code(0);

    let mut segment = Segment::new(subnet, 3);
    let mut apiservers = Vec::new();
    for n in 1..=3 {
        let node = format!("cp{n}");
        let tree: PathBuf = dir.path().join("x");
        extract(
            &dir.path().join(format!("bundles/vrrp/{node}.tar.gz")),
            &tree,
        );
        let rootfs = tree.join(format!("{node}/rootfs"));
        let pki = rootfs.join("etc/kubernetes/cert");
        // The stand-in apiserver binds every address, as --bind-address=0.0.0.0 does,
        // with the bundle's serving certificate (its SANs hold the VIP).
        let apiserver = segment.spawn(
            &segment.node(n),
            &[
                "openssl",
                "s_server",
                "-quiet",
                "-www",
                "-accept",
                "6443",
                "-cert",
                pki.join("apiserver.crt").to_str().unwrap(),
                "-key",
                pki.join("apiserver.key").to_str().unwrap(),
            ],
            &dir.path().join(format!("{node}-apiserver.log")),
        );
        apiservers.push(apiserver);
        // The CA path is rewritten, to where this test extracted it, and the probe is
        // relaxed so that a slow answer on a loaded machine does not move the VIP; a
        // stopped apiserver refuses connections at once, so failover stays fast.
        let rendered = fs::read_to_string(rootfs.join("etc/keepalived/keepalived.conf")).unwrap();
        let mut config = rendered.replace(
            "/etc/kubernetes/cert/ca.crt",
            pki.join("ca.crt").to_str().unwrap(),
        );
        for (old, new) in [
            ("--max-time 2 ", "--max-time 10 "),
            ("    timeout 3\n", "    timeout 15\n"),
            ("    fall 2\n", "    fall 3\n"),
        ] {
            assert!(
                config.contains(old),
                "{old:?} not in the rendered config:\n{rendered}"
            );
            config = config.replace(old, new);
        }
        let config_path = dir.path().join(format!("{node}-keepalived.conf"));
        fs::write(&config_path, config).unwrap();
        let pid = |kind: &str| dir.path().join(format!("{node}-{kind}.pid"));
        segment.spawn(
            &segment.node(n),
            &[
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--vrrp",
                "--use-file",
                config_path.to_str().unwrap(),
                "--pid",
                pid("main").to_str().unwrap(),
                "--vrrp_pid",
                pid("vrrp").to_str().unwrap(),
            ],
            &dir.path().join(format!("{node}-keepalived.log")),
        );
    }
    let logs = || {
        (1..=3)
            .map(|n| {
                fs::read_to_string(dir.path().join(format!("cp{n}-keepalived.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n----\n")
    };

    wait_stable(
        "cp1 (priority 200) alone holds the VIP",
        || segment.holds_alone(1, &vip),
        logs,
    );
    let ca = dir.path().join("x/cp1/rootfs/etc/kubernetes/cert/ca.crt");
    // One try; the callers retry, as a client does while ARP caches learn where the
    // VIP went.
    let through_vip = |namespace: String| {
        Command::new("ip")
            .args(["netns", "exec", &namespace])
            .args([
                "curl",
                "--silent",
                "--max-time",
                "10",
                "--output",
                "/dev/null",
            ])
            .arg("--cacert")
            .arg(&ca)
            .arg(format!("https://{vip}:6443/"))
            .status()
            .unwrap()
            .success()
    };
    wait_until(
        "the VIP answers with a verified certificate",
        || through_vip(segment.node(3)),
        logs,
    );

    // cp1's apiserver stops answering: its track script fails and cp2 (199) takes over.
    segment.daemons.remove(apiservers[0]);
    wait_stable(
        "cp2 (priority 199) alone holds the VIP",
        || segment.holds_alone(2, &vip),
        logs,
    );
    wait_until(
        "the VIP answers after failover",
        || through_vip(segment.node(3)),
        logs,
    );
}
