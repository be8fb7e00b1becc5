//! Stage 3, a stacked etcd member's part: every flag of its unit with the reason it is
//! there, for a master of a cluster with `etcd.mode: stacked`. Which flags the member's etcd
//! minor accepts comes from `versions::etcd`; the minor is the one kubeadm pairs with the
//! Kubernetes minor (`versions::etcd::paired_minor`), and the rules see it as the context's
//! minor.
//!
//! One member per master, named after it, bootstrapping a new cluster of all the masters
//! (the seed series' 04 guide, as kubeadm lays it out): clients on the master's address and
//! loopback, peers on the master's address, both TLS with client certificates required, and
//! metrics and /health on loopback over plain HTTP.
//!
//! Left out on purpose: the seed's `http://127.0.0.1:2379` client listener (plain HTTP
//! without client certificates: anyone on the node could read every Secret), its
//! `--wal-dir` (the WAL stays inside the data directory), and its tuning flags
//! (auto-compaction, which the apiserver already does every five minutes; quota, request
//! size, heartbeat and election timeouts, which suit the guide's machines, not every one).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::flags::{FlagContext, Rule, kube_bundle, kubeadm, rendered_flags, seed, translated};
use super::layout::CredentialPaths;
use super::{Component, NodeLayout, PlannedFlag};
use crate::model::{Cluster, EtcdCa, Master};
use crate::values::Host;
use crate::versions::etcd::{self, CLIENT_PORT, METRICS_PORT, PEER_PORT};

/// The stacked etcd member's command line for one master; empty with an external etcd.
pub fn etcd_flags(
    cluster: &Cluster,
    master: &Master,
    layout: &NodeLayout,
) -> BTreeMap<String, PlannedFlag> {
    let Some(stacked) = &cluster.etcd.stacked else {
        return BTreeMap::new();
    };
    let context = FlagContext {
        cluster,
        master,
        layout,
        minor: stacked.minor,
        component: Component::Etcd,
    };
    rendered_flags(RULES, etcd::flag, &context, &BTreeMap::new())
}

/// A member's data directory: under paths.dataDir, beside the apiserver's.
pub fn etcd_data_dir(cluster: &Cluster) -> String {
    cluster.paths.data_dir.join("etcd")
}

fn url(ip: IpAddr, port: u16) -> String {
    Host::Ip(ip).https_url(port)
}

fn client_url(context: &FlagContext) -> String {
    url(context.master.ip, CLIENT_PORT)
}

fn peer_url(context: &FlagContext) -> String {
    url(context.master.ip, PEER_PORT)
}

/// The CA every member's certificates and the apiserver's client certificate chain to:
/// the clients and peers a member accepts.
fn etcd_ca(context: &FlagContext) -> Option<PlannedFlag> {
    match context.cluster.etcd.ca {
        EtcdCa::Cluster => translated(
            &context.layout.ca_cert,
            "the cluster CA (`etcd.ca: cluster`): every client certificate it signs can \
             reach etcd",
        ),
        EtcdCa::Separate | EtcdCa::External { .. } => translated(
            &context.layout.etcd_ca_cert,
            "this bundle's etcd CA, which signs the members' and the apiserver's etcd \
             certificates and nothing else",
        ),
    }
}

fn server<'a>(context: &FlagContext<'a>) -> &'a CredentialPaths {
    &context.layout.etcd_server
}

fn peer<'a>(context: &FlagContext<'a>) -> &'a CredentialPaths {
    &context.layout.etcd_peer
}

const MEMBER_CERT: &str = "a certificate per member from the etcd CA, naming the master's \
     address, 127.0.0.1, localhost and its name";

fn initial_cluster(context: &FlagContext) -> Option<PlannedFlag> {
    let members: Vec<String> = context
        .cluster
        .masters
        .iter()
        .map(|master| format!("{}={}", master.name, url(master.ip, PEER_PORT)))
        .collect();
    seed(members.join(","))
}

fn listen_client_urls(context: &FlagContext) -> Option<PlannedFlag> {
    let loopback = url(IpAddr::V4(Ipv4Addr::LOCALHOST), CLIENT_PORT);
    translated(
        format!("{},{loopback}", client_url(context)),
        "loopback over TLS with client certificates instead of the seed's plain \
         http://127.0.0.1:2379, which let anyone on the node read every Secret (kubeadm's \
         pair of listeners)",
    )
}

fn listen_metrics_urls(_: &FlagContext) -> Option<PlannedFlag> {
    let metrics = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), METRICS_PORT);
    kubeadm(format!("http://{metrics}"))
}

/// kubeadm passes the corruption check and the progress notifications with etcd 3.5 on
/// (Kubernetes 1.22 and 1.25): older members, experimental there, run without them.
const KUBEADM_EXTRAS_FROM: u64 = 5;

fn experimental_initial_corrupt_check(context: &FlagContext) -> Option<PlannedFlag> {
    (context.minor >= KUBEADM_EXTRAS_FROM).then_some(())?;
    kubeadm("true")
}

/// kubeadm's --experimental-initial-corrupt-check=true, a feature gate from etcd 3.6:
/// a member checks its data against its peers' before serving.
fn feature_gates(_: &FlagContext) -> Option<PlannedFlag> {
    kubeadm("InitialCorruptCheck=true")
}

/// kubeadm's value from Kubernetes 1.25: the apiserver's watch cache learns etcd's revision
/// every five seconds even when nothing it watches changes.
fn watch_progress_notify_interval(context: &FlagContext) -> Option<PlannedFlag> {
    (context.minor >= KUBEADM_EXTRAS_FROM).then_some(())?;
    kubeadm("5s")
}

/// Every flag kube-bundle renders for a stacked member, sorted by name.
const RULES: &[Rule] = &[
    Rule::new("advertise-client-urls", |c| seed(client_url(c))),
    Rule::new("cert-file", |c| translated(&server(c).cert, MEMBER_CERT)),
    Rule::new("client-cert-auth", |_| seed("true")),
    Rule::new("data-dir", |c| {
        translated(
            etcd_data_dir(c.cluster),
            "under paths.dataDir, created 0700 by install.sh: it holds every Secret",
        )
    }),
    Rule::new("enable-v2", |_| {
        kube_bundle(
            "false",
            "etcd 3.3 serves the v2 API by default, which the apiserver never uses",
        )
    }),
    Rule::new(
        "experimental-initial-corrupt-check",
        experimental_initial_corrupt_check,
    ),
    Rule::new(
        "experimental-watch-progress-notify-interval",
        watch_progress_notify_interval,
    ),
    Rule::new("feature-gates", feature_gates),
    Rule::new("initial-advertise-peer-urls", |c| seed(peer_url(c))),
    Rule::new("initial-cluster", initial_cluster),
    Rule::new("initial-cluster-state", |_| seed("new")),
    Rule::new("initial-cluster-token", |c| {
        translated(
            c.cluster.name.as_str(),
            "cluster.yaml's name: members of two clusters never join each other",
        )
    }),
    Rule::new("key-file", |c| translated(&server(c).key, MEMBER_CERT)),
    Rule::new("listen-client-urls", listen_client_urls),
    Rule::new("listen-metrics-urls", listen_metrics_urls),
    Rule::new("listen-peer-urls", |c| seed(peer_url(c))),
    Rule::new("logger", |c| {
        // 3.4's default is capnslog, deprecated there; from 3.5 zap is the only logger.
        (c.minor == 4).then_some(())?;
        kube_bundle("zap", "etcd 3.4 defaults to capnslog, which 3.5 removes")
    }),
    Rule::new("name", |c| seed(c.master.name.as_str())),
    Rule::new("peer-cert-file", |c| translated(&peer(c).cert, MEMBER_CERT)),
    Rule::new("peer-client-cert-auth", |_| seed("true")),
    Rule::new("peer-key-file", |c| translated(&peer(c).key, MEMBER_CERT)),
    Rule::new("peer-trusted-ca-file", etcd_ca),
    Rule::new("snapshot-count", |_| kubeadm("10000")),
    Rule::new("trusted-ca-file", etcd_ca),
    Rule::new(
        "watch-progress-notify-interval",
        watch_progress_notify_interval,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::etcd::{NEWEST_MINOR, OLDEST_MINOR};

    #[test]
    fn rules_are_sorted_unique_and_in_the_table() {
        super::super::flags::assert_rules_sorted_and_known("etcd", RULES, etcd::flag);
    }

    #[test]
    fn one_spelling_of_each_renamed_switch_per_minor() {
        let admitted = |name: &str, minor: u64| {
            RULES
                .iter()
                .find(|rule| rule.name == name)
                .is_some_and(|rule| rule.admitted(etcd::flag, minor))
        };
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            let corrupt_check = [
                admitted("experimental-initial-corrupt-check", minor),
                admitted("feature-gates", minor),
            ];
            assert_eq!(corrupt_check.iter().filter(|a| **a).count(), 1, "3.{minor}");
            let progress = [
                admitted("experimental-watch-progress-notify-interval", minor),
                admitted("watch-progress-notify-interval", minor),
            ];
            // 3.3 has neither name.
            assert_eq!(
                progress.iter().filter(|a| **a).count(),
                usize::from(minor >= 4),
                "3.{minor}"
            );
            assert_eq!(admitted("enable-v2", minor), minor == 3, "3.{minor}");
        }
    }
}
