//! Stacked etcd: the flags each etcd minor accepts (one member per master).
//!
//! The same row shape as the Kubernetes tables, but `first`/`last` are etcd minors: 3 means
//! etcd 3.3. Rows cover every flag a stacked member needs and the seed series' tuning
//! flags; tests/integration/oracle.rs checks them against the real etcd binaries the tests
//! run (the pinned build and the distribution's).

use super::Flag;

/// The oldest etcd minor the table knows (etcd 3.3, the seed series' etcd).
pub const OLDEST_MINOR: u64 = 3;
/// The newest etcd minor the table was checked against (etcd 3.7).
pub const NEWEST_MINOR: u64 = 7;
/// The etcd major every row is about.
pub const MAJOR: u64 = 3;

/// The client, peer and metrics ports of a stacked member: etcd's defaults, and kubeadm's
/// metrics port (loopback, plain HTTP: /metrics and /health).
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;
pub const METRICS_PORT: u16 = 2381;

/// From this Kubernetes minor kubeadm pairs etcd 3.4, 3.5, 3.6, 3.7 (its default etcd per
/// minor, `cmd/kubeadm/app/constants/constants.go`, in docs/control-plane-components.md
/// §3.2).
const KUBEADM_ETCD_3_4_FROM: u64 = 17;
const KUBEADM_ETCD_3_5_FROM: u64 = 22;
const KUBEADM_ETCD_3_6_FROM: u64 = 34;
const KUBEADM_ETCD_3_7_FROM: u64 = 37;

/// The etcd minor a stacked member of a Kubernetes `kube_minor` cluster runs, which decides
/// its flags: kubeadm's default etcd for that minor. kubeadm pairs 1.12 and 1.13 with etcd
/// 3.2, which this table does not cover; the seed series runs 3.3 with 1.12, and so does
/// kube-bundle up to 1.16.
pub fn paired_minor(kube_minor: u64) -> u64 {
    match kube_minor {
        m if m >= KUBEADM_ETCD_3_7_FROM => 7,
        m if m >= KUBEADM_ETCD_3_6_FROM => 6,
        m if m >= KUBEADM_ETCD_3_5_FROM => 5,
        m if m >= KUBEADM_ETCD_3_4_FROM => 4,
        _ => OLDEST_MINOR,
    }
}

const fn always(name: &'static str) -> Flag {
    Flag {
        name,
        first: OLDEST_MINOR,
        last: None,
        replacement: None,
        required_from: None,
        inert_from: None,
        note: "",
        source: "",
    }
}

const fn since(name: &'static str, first: u64, note: &'static str, source: &'static str) -> Flag {
    Flag {
        first,
        note,
        source,
        ..always(name)
    }
}

const fn until(name: &'static str, last: u64, note: &'static str, source: &'static str) -> Flag {
    Flag {
        last: Some(last),
        note,
        source,
        ..always(name)
    }
}

const V3_3_SOURCE: &str = "github.com/coreos/etcd v3.3 etcdmain/config.go";
const V3_4_SOURCE: &str = "go.etcd.io/etcd v3.4 etcdmain/config.go";
const V3_6_SOURCE: &str = "go.etcd.io/etcd/server/v3 v3.6 embed/config.go (AddFlags), \
                           etcdmain/config.go (deprecatedFlags)";
const V3_7_SOURCE: &str = "go.etcd.io/etcd/server/v3 v3.7 embed/config.go";
const LOG_NOTE: &str = "capnslog's flags: deprecated in 3.4, removed in 3.5";
const LATE_3_5_NOTE: &str = "added in 3.6 and in late 3.5 patches (3.5.21 has it, 3.5.4 not)";

/// Every flag a stacked member needs, and the seed series' tuning flags. Sorted by name.
pub const FLAGS: &[Flag] = &[
    always("advertise-client-urls"),
    always("auto-compaction-mode"),
    always("auto-compaction-retention"),
    always("cert-file"),
    always("cipher-suites"),
    always("client-cert-auth"),
    always("data-dir"),
    Flag {
        replacement: Some("log-level"),
        inert_from: Some(4),
        ..until("debug", 4, LOG_NOTE, V3_4_SOURCE)
    },
    always("election-timeout"),
    Flag {
        // 3.3 serves the v2 API by default: kube-bundle turns it off there, and only there.
        inert_from: Some(4),
        ..until(
            "enable-v2",
            5,
            "the v2 API: on by default in 3.3, off from 3.4, deprecated in 3.5, refused from 3.6",
            "github.com/coreos/etcd v3.3 embed/config.go (DefaultEnableV2); go.etcd.io/etcd/\
             server/v3 v3.6 embed/config.go",
        )
    },
    Flag {
        replacement: Some("feature-gates"),
        inert_from: Some(6),
        ..until(
            "experimental-initial-corrupt-check",
            6,
            "deprecated in 3.6 for --feature-gates=InitialCorruptCheck=true, removed in 3.7",
            V3_6_SOURCE,
        )
    },
    Flag {
        replacement: Some("watch-progress-notify-interval"),
        first: 4,
        inert_from: Some(6),
        ..until(
            "experimental-watch-progress-notify-interval",
            6,
            "added in 3.4; renamed --watch-progress-notify-interval in 3.6, removed in 3.7",
            V3_6_SOURCE,
        )
    },
    since(
        "feature-gates",
        6,
        "added in 3.6, replacing the --experimental-* switches",
        V3_6_SOURCE,
    ),
    always("heartbeat-interval"),
    always("initial-advertise-peer-urls"),
    always("initial-cluster"),
    always("initial-cluster-state"),
    always("initial-cluster-token"),
    always("key-file"),
    always("listen-client-urls"),
    since(
        "listen-metrics-urls",
        OLDEST_MINOR,
        "serves /metrics and /health; /livez and /readyz from late 3.5",
        V3_3_SOURCE,
    ),
    always("listen-peer-urls"),
    since(
        "log-level",
        4,
        "added in 3.4 with the zap logger",
        V3_4_SOURCE,
    ),
    since(
        "log-outputs",
        4,
        "added in 3.4 with the zap logger",
        V3_4_SOURCE,
    ),
    Flag {
        replacement: Some("log-level"),
        inert_from: Some(4),
        ..until("log-package-levels", 4, LOG_NOTE, V3_4_SOURCE)
    },
    since(
        "logger",
        4,
        "added in 3.4, whose default capnslog kube-bundle replaces by zap; zap is the only \
         logger from 3.5",
        V3_4_SOURCE,
    ),
    always("max-request-bytes"),
    always("name"),
    always("peer-cert-file"),
    since(
        "peer-client-cert-auth",
        OLDEST_MINOR,
        "a peer's certificate must name the address it connects from",
        "go.etcd.io/etcd client/pkg/transport/listener_tls.go (checkCertSAN)",
    ),
    always("peer-key-file"),
    always("peer-trusted-ca-file"),
    always("quota-backend-bytes"),
    always("snapshot-count"),
    since("tls-max-version", 6, LATE_3_5_NOTE, V3_6_SOURCE),
    since("tls-min-version", 6, LATE_3_5_NOTE, V3_6_SOURCE),
    always("trusted-ca-file"),
    Flag {
        inert_from: Some(6),
        ..since(
            "v2-deprecation",
            5,
            "added in 3.5; deprecated in 3.6, where the v2 store is always off",
            V3_6_SOURCE,
        )
    },
    always("wal-dir"),
    since(
        "watch-progress-notify-interval",
        6,
        "the new name of --experimental-watch-progress-notify-interval from 3.6",
        V3_7_SOURCE,
    ),
];

pub fn flag(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::assert_table_consistent;

    fn accepted(name: &str, minor: u64) -> bool {
        flag(name)
            .unwrap_or_else(|| panic!("{name} is not in the table"))
            .accepted_in(minor)
    }

    #[test]
    fn each_kubernetes_minor_pairs_with_kubeadms_etcd_within_the_table() {
        use crate::versions as kube;
        let pairs = [
            (12, 3),
            (16, 3),
            (17, 4),
            (21, 4),
            (22, 5),
            (33, 5),
            (34, 6),
            (36, 6),
        ];
        for (kube_minor, etcd_minor) in pairs {
            assert_eq!(paired_minor(kube_minor), etcd_minor, "1.{kube_minor}");
        }
        assert_eq!(paired_minor(kube::NEWEST_MINOR), NEWEST_MINOR);
        for kube_minor in kube::OLDEST_MINOR..=kube::NEWEST_MINOR + 1 {
            let minor = paired_minor(kube_minor);
            assert!(
                (OLDEST_MINOR..=NEWEST_MINOR).contains(&minor),
                "1.{kube_minor}"
            );
        }
    }

    #[test]
    fn every_row_is_consistent() {
        assert_table_consistent("etcd", FLAGS, OLDEST_MINOR, NEWEST_MINOR);
    }

    #[test]
    fn v2_api_is_switched_off_only_on_3_3_and_refused_from_3_6() {
        let row = flag("enable-v2").unwrap();
        assert!(row.effective_in(3) && !row.effective_in(4));
        assert!(row.accepted_in(5) && !row.accepted_in(6));
    }

    #[test]
    fn experimental_flags_are_gone_in_3_7() {
        let experimental = FLAGS
            .iter()
            .filter(|row| row.name.starts_with("experimental-"));
        for row in experimental {
            assert!(row.accepted_in(6) && !row.effective_in(6), "--{}", row.name);
            assert!(!row.accepted_in(7), "--{}", row.name);
            assert!(row.replacement.is_some(), "--{}", row.name);
        }
        assert!(accepted("feature-gates", 7) && !accepted("feature-gates", 5));
    }

    #[test]
    fn zap_logging_flags_start_in_3_4_and_capnslog_ones_end_there() {
        for name in ["logger", "log-level", "log-outputs"] {
            assert!(!accepted(name, 3) && accepted(name, 4), "--{name}");
        }
        for name in ["debug", "log-package-levels"] {
            assert!(accepted(name, 4) && !accepted(name, 5), "--{name}");
        }
    }

    #[test]
    fn what_a_stacked_member_renders_is_accepted_by_every_minor() {
        for name in [
            "name",
            "data-dir",
            "listen-client-urls",
            "advertise-client-urls",
            "listen-peer-urls",
            "initial-advertise-peer-urls",
            "initial-cluster",
            "initial-cluster-state",
            "initial-cluster-token",
            "cert-file",
            "key-file",
            "trusted-ca-file",
            "client-cert-auth",
            "peer-cert-file",
            "peer-key-file",
            "peer-trusted-ca-file",
            "peer-client-cert-auth",
            "listen-metrics-urls",
        ] {
            for minor in OLDEST_MINOR..=NEWEST_MINOR {
                assert!(accepted(name, minor), "--{name} 3.{minor}");
            }
        }
    }
}
