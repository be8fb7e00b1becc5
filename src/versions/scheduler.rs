//! kube-scheduler: the flags each minor accepts, and the KubeSchedulerConfiguration API
//! versions its `--config` file may use.
//!
//! Data only, in the apiserver table's shape. kube-bundle configures the scheduler through
//! the file (with `--config` the scheduler ignores `--kubeconfig`, and until 1.21 the
//! leader-election flags too), and through flags only where no field exists: secure
//! serving, delegated authentication and authorization, feature gates, verbosity.
//! tests/integration/oracle.rs checks the flags against the real binary's `--help` and the
//! API versions against the real config loader, for each pinned release.

use super::{Flag, OLDEST_MINOR, always, since, until};

/// The first minor with a secure port (10259) and its serving, authentication and
/// authorization flags; 1.12 refuses them as unknown.
pub const SECURE_PORT_FROM: u64 = 13;
/// The secure port's default, from [`SECURE_PORT_FROM`].
pub const SECURE_PORT: u16 = 10259;
/// Until this minor the insecure HTTP server (10251) runs, configured only by the file's
/// `healthzBindAddress`/`metricsBindAddress` when `--config` is given; a zero port there
/// fails validation from 1.18, so kube-bundle pins it to loopback instead.
pub const INSECURE_PORT_SERVES_LAST: u64 = 22;
/// Until this minor the leader-election flags are ignored when `--config` is given; from
/// the next one a flag set explicitly overrides the file.
pub const LEADER_ELECTION_FLAGS_IGNORED_WITH_CONFIG_LAST: u64 = 21;
/// From this minor an unknown or duplicated field in the config file is an error.
pub const STRICT_CONFIG_DECODING_FROM: u64 = 17;
/// The config file's kind, in every API version.
pub const CONFIG_KIND: &str = "KubeSchedulerConfiguration";
/// The config file's API group.
pub const CONFIG_GROUP: &str = "kubescheduler.config.k8s.io";

const KLOG_NOTE: &str = "klog file flags: deprecated 1.23, removed 1.26";
const KLOG_SOURCE: &str = "KEP-2845; CHANGELOG-1.26";
const SECURE_NOTE: &str = "added with the secure port in 1.13";
const SECURE_SOURCE: &str = "k8s.io/kubernetes v1.12 cmd/kube-scheduler/app/options/options.go \
                             (SecureServing nil); CHANGELOG-1.13";
const INSECURE_NOTE: &str = "the insecure HTTP port: ignored with --config (the file's \
                             healthzBindAddress applies) until 1.22, accepted without effect \
                             in 1.23, removed in 1.24";
const INSECURE_SOURCE: &str = "k8s.io/kubernetes v1.12 cmd/kube-scheduler/app/options/\
                               insecure_serving.go; v1.23 options/deprecated.go; CHANGELOG-1.24";
const IGNORED_WITH_CONFIG: &str = "deprecated; ignored with --config";
const DEPRECATED_SOURCE: &str = "k8s.io/kubernetes cmd/kube-scheduler/app/options/deprecated.go";
const LEADER_ELECTION_NOTE: &str = "ignored with --config until 1.21; from 1.22 a flag given \
                                    overrides the file";
const LEADER_ELECTION_SOURCE: &str = "k8s.io/kubernetes v1.21, v1.22 cmd/kube-scheduler/app/\
                                      options/options.go";
const POLICY_NOTE: &str = "the scheduler Policy API, removed in 1.23";
const LEGACY_NOTE: &str = "removed in 1.22";

const fn secure(name: &'static str) -> Flag {
    Flag {
        source: SECURE_SOURCE,
        ..since(name, SECURE_PORT_FROM, SECURE_NOTE)
    }
}

const fn with_source(row: Flag, source: &'static str) -> Flag {
    Flag { source, ..row }
}

/// Every flag kube-bundle renders for the scheduler, every flag of the seed series' unit,
/// and common extraArgs. Sorted by name.
pub const FLAGS: &[Flag] = &[
    Flag {
        replacement: Some("bind-address"),
        inert_from: Some(INSECURE_PORT_SERVES_LAST + 1),
        source: INSECURE_SOURCE,
        ..until("address", 23, INSECURE_NOTE)
    },
    with_source(
        until("algorithm-provider", 21, LEGACY_NOTE),
        "CHANGELOG-1.22",
    ),
    with_source(until("alsologtostderr", 25, KLOG_NOTE), KLOG_SOURCE),
    secure("authentication-kubeconfig"),
    secure("authentication-tolerate-lookup-failure"),
    secure("authorization-always-allow-paths"),
    secure("authorization-kubeconfig"),
    secure("bind-address"),
    secure("cert-dir"),
    secure("client-ca-file"),
    with_source(
        since(
            "config",
            OLDEST_MINOR,
            "the KubeSchedulerConfiguration file: kubeconfig, leader election, profiling",
        ),
        "k8s.io/kubernetes cmd/kube-scheduler/app/options/options.go",
    ),
    with_source(
        since("contention-profiling", OLDEST_MINOR, IGNORED_WITH_CONFIG),
        DEPRECATED_SOURCE,
    ),
    always("feature-gates"),
    with_source(
        until("hard-pod-affinity-symmetric-weight", 21, LEGACY_NOTE),
        "CHANGELOG-1.22",
    ),
    with_source(
        since("kube-api-burst", OLDEST_MINOR, IGNORED_WITH_CONFIG),
        DEPRECATED_SOURCE,
    ),
    with_source(
        since("kube-api-content-type", OLDEST_MINOR, IGNORED_WITH_CONFIG),
        DEPRECATED_SOURCE,
    ),
    with_source(
        since("kube-api-qps", OLDEST_MINOR, IGNORED_WITH_CONFIG),
        DEPRECATED_SOURCE,
    ),
    with_source(
        since(
            "kubeconfig",
            OLDEST_MINOR,
            "deprecated; ignored with --config, whose clientConnection.kubeconfig applies",
        ),
        DEPRECATED_SOURCE,
    ),
    with_source(
        since("leader-elect", OLDEST_MINOR, LEADER_ELECTION_NOTE),
        LEADER_ELECTION_SOURCE,
    ),
    with_source(
        since(
            "leader-elect-lease-duration",
            OLDEST_MINOR,
            LEADER_ELECTION_NOTE,
        ),
        LEADER_ELECTION_SOURCE,
    ),
    with_source(
        since(
            "leader-elect-renew-deadline",
            OLDEST_MINOR,
            LEADER_ELECTION_NOTE,
        ),
        LEADER_ELECTION_SOURCE,
    ),
    with_source(
        since(
            "leader-elect-resource-lock",
            OLDEST_MINOR,
            LEADER_ELECTION_NOTE,
        ),
        LEADER_ELECTION_SOURCE,
    ),
    with_source(
        since(
            "leader-elect-resource-name",
            16,
            "added in 1.16; the lock is kube-system/kube-scheduler in every minor",
        ),
        "k8s.io/kubernetes v1.16 cmd/kube-scheduler/app/options/options.go",
    ),
    with_source(
        since(
            "leader-elect-resource-namespace",
            16,
            "added in 1.16; the lock is kube-system/kube-scheduler in every minor",
        ),
        "k8s.io/kubernetes v1.16 cmd/kube-scheduler/app/options/options.go",
    ),
    with_source(
        since(
            "leader-elect-retry-period",
            OLDEST_MINOR,
            LEADER_ELECTION_NOTE,
        ),
        LEADER_ELECTION_SOURCE,
    ),
    Flag {
        replacement: Some("leader-elect-resource-name"),
        source: "CHANGELOG-1.28",
        ..until("lock-object-name", 27, "deprecated, removed in 1.28")
    },
    Flag {
        replacement: Some("leader-elect-resource-namespace"),
        source: "CHANGELOG-1.28",
        ..until("lock-object-namespace", 27, "deprecated, removed in 1.28")
    },
    with_source(until("log-dir", 25, KLOG_NOTE), KLOG_SOURCE),
    with_source(until("log-file", 25, KLOG_NOTE), KLOG_SOURCE),
    Flag {
        inert_from: Some(23),
        source: KLOG_SOURCE,
        ..until(
            "logtostderr",
            25,
            "klog file flags: deprecated 1.23, removed 1.26; stderr is the only output since",
        )
    },
    with_source(
        since(
            "master",
            OLDEST_MINOR,
            "overrides the kubeconfig's server even with --config; kube-bundle does not \
             render it",
        ),
        "k8s.io/kubernetes cmd/kube-scheduler/app/options/options.go",
    ),
    with_source(
        until("policy-config-file", 22, POLICY_NOTE),
        "CHANGELOG-1.23",
    ),
    with_source(until("policy-configmap", 22, POLICY_NOTE), "CHANGELOG-1.23"),
    Flag {
        replacement: Some("secure-port"),
        inert_from: Some(INSECURE_PORT_SERVES_LAST + 1),
        source: INSECURE_SOURCE,
        ..until("port", 23, INSECURE_NOTE)
    },
    with_source(
        since(
            "profiling",
            OLDEST_MINOR,
            "deprecated; ignored with --config, whose enableProfiling applies",
        ),
        DEPRECATED_SOURCE,
    ),
    secure("requestheader-allowed-names"),
    secure("requestheader-client-ca-file"),
    secure("requestheader-extra-headers-prefix"),
    secure("requestheader-group-headers"),
    with_source(
        since("requestheader-uid-headers", 32, "added in 1.32"),
        "CHANGELOG-1.32",
    ),
    secure("requestheader-username-headers"),
    with_source(until("scheduler-name", 21, LEGACY_NOTE), "CHANGELOG-1.22"),
    secure("secure-port"),
    secure("tls-cert-file"),
    secure("tls-cipher-suites"),
    with_source(
        since("tls-curve-preferences", 36, "added in 1.36"),
        "k8s.io/apiserver v0.36 pkg/server/options/serving.go",
    ),
    secure("tls-min-version"),
    secure("tls-private-key-file"),
    with_source(
        until("use-legacy-policy-config", 22, POLICY_NOTE),
        "CHANGELOG-1.23",
    ),
    always("v"),
    with_source(
        since(
            "write-config-to",
            OLDEST_MINOR,
            "writes the effective configuration and exits",
        ),
        "k8s.io/kubernetes cmd/kube-scheduler/app/options/options.go",
    ),
];

pub fn flag(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.name == name)
}

/// One `kubescheduler.config.k8s.io` version of KubeSchedulerConfiguration and the minors
/// whose scheduler loads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigApiVersion {
    /// The version after the group, e.g. `v1beta3`.
    pub version: &'static str,
    pub first: u64,
    /// Last minor that loads it; `None` while it is still loaded.
    pub last: Option<u64>,
    /// What changed, in words for users.
    pub note: &'static str,
    /// Where the fact comes from upstream.
    pub source: &'static str,
}

impl ConfigApiVersion {
    pub fn accepted_in(&self, minor: u64) -> bool {
        minor >= self.first && self.last.is_none_or(|last| minor <= last)
    }

    /// `kubescheduler.config.k8s.io/<version>`.
    pub fn api_version(&self) -> String {
        format!("{CONFIG_GROUP}/{}", self.version)
    }
}

const SCHEME_SOURCE: &str = "k8s.io/kubernetes pkg/scheduler/apis/config/scheme/scheme.go";

/// Every KubeSchedulerConfiguration version, oldest first.
pub const CONFIG_API_VERSIONS: &[ConfigApiVersion] = &[
    ConfigApiVersion {
        version: "v1alpha1",
        first: OLDEST_MINOR,
        last: Some(18),
        note: "the seed's version; not strict until 1.17",
        source: SCHEME_SOURCE,
    },
    ConfigApiVersion {
        version: "v1alpha2",
        first: 18,
        last: Some(18),
        note: "only in 1.18, with scheduling profiles",
        source: SCHEME_SOURCE,
    },
    ConfigApiVersion {
        version: "v1beta1",
        first: 19,
        last: Some(22),
        note: "removed in 1.23",
        source: SCHEME_SOURCE,
    },
    ConfigApiVersion {
        version: "v1beta2",
        first: 22,
        last: Some(27),
        note: "deprecated in 1.25, removed in 1.28",
        source: "k8s.io/kubernetes v1.27 cmd/kube-scheduler/app/options/configfile.go",
    },
    ConfigApiVersion {
        version: "v1beta3",
        first: 23,
        last: Some(28),
        note: "deprecated in 1.26, removed in 1.29",
        source: "k8s.io/kubernetes v1.28 cmd/kube-scheduler/app/options/configfile.go",
    },
    ConfigApiVersion {
        // The v1 of 1.17–1.22 is the Policy kind, not KubeSchedulerConfiguration.
        version: "v1",
        first: 25,
        last: None,
        note: "GA in 1.25",
        source: SCHEME_SOURCE,
    },
];

/// The version kube-bundle writes for a minor: the newest one it loads, except 1.18's
/// short-lived v1alpha2 (whose profiles the file does not need), so that 1.12–1.18 share
/// one file format.
pub fn config_api_version(minor: u64) -> &'static ConfigApiVersion {
    let version = match minor {
        ..=18 => "v1alpha1",
        19..=21 => "v1beta1",
        22 => "v1beta2",
        23 | 24 => "v1beta3",
        _ => "v1",
    };
    CONFIG_API_VERSIONS
        .iter()
        .find(|row| row.version == version)
        .expect("every version config_api_version names is in CONFIG_API_VERSIONS")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::{NEWEST_MINOR, assert_table_consistent};

    fn accepted(name: &str, minor: u64) -> bool {
        flag(name)
            .unwrap_or_else(|| panic!("{name} is not in the table"))
            .accepted_in(minor)
    }

    #[test]
    fn every_row_is_consistent() {
        assert_table_consistent("kube-scheduler", FLAGS, OLDEST_MINOR, NEWEST_MINOR);
    }

    #[test]
    fn the_seed_release_has_no_secure_port() {
        for name in [
            "secure-port",
            "bind-address",
            "tls-cert-file",
            "authentication-kubeconfig",
            "requestheader-client-ca-file",
        ] {
            assert!(!accepted(name, 12) && accepted(name, 13), "--{name}");
        }
        assert!(accepted("port", 12) && accepted("config", 12));
        assert_eq!(SECURE_PORT, 10259);
    }

    #[test]
    fn insecure_port_is_inert_in_1_23_and_gone_in_1_24() {
        for name in ["port", "address"] {
            let row = flag(name).unwrap();
            assert!(row.effective_in(22) && !row.effective_in(23), "--{name}");
            assert!(row.accepted_in(23) && !row.accepted_in(24), "--{name}");
        }
    }

    #[test]
    fn lock_object_flags_give_way_to_the_leader_election_ones() {
        assert!(accepted("lock-object-name", 27) && !accepted("lock-object-name", 28));
        assert!(accepted("leader-elect-resource-name", 16));
        assert!(!accepted("leader-elect-resource-name", 15));
    }

    #[test]
    fn config_versions_per_minor() {
        let version = |minor| config_api_version(minor).version;
        assert_eq!(version(12), "v1alpha1");
        assert_eq!(version(18), "v1alpha1");
        assert_eq!(version(19), "v1beta1");
        assert_eq!(version(22), "v1beta2");
        assert_eq!(version(23), "v1beta3");
        assert_eq!(version(24), "v1beta3");
        assert_eq!(version(25), "v1");
        assert_eq!(version(NEWEST_MINOR), "v1");
        assert_eq!(
            config_api_version(NEWEST_MINOR).api_version(),
            "kubescheduler.config.k8s.io/v1"
        );
    }

    #[test]
    fn the_written_version_is_loaded_and_every_minor_loads_one() {
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            assert!(config_api_version(minor).accepted_in(minor), "1.{minor}");
        }
        let names: Vec<_> = CONFIG_API_VERSIONS.iter().map(|row| row.version).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(names.len(), unique.len());
        for row in CONFIG_API_VERSIONS {
            assert!(
                row.last.is_none_or(|last| last >= row.first),
                "{}",
                row.version
            );
            assert!(row.first >= OLDEST_MINOR, "{}", row.version);
        }
    }

    #[test]
    fn the_written_version_never_goes_back() {
        let index = |minor| {
            let version = config_api_version(minor).version;
            CONFIG_API_VERSIONS
                .iter()
                .position(|row| row.version == version)
                .unwrap()
        };
        for minor in OLDEST_MINOR..NEWEST_MINOR {
            assert!(
                index(minor) <= index(minor + 1),
                "1.{minor} -> 1.{}",
                minor + 1
            );
        }
    }
}
