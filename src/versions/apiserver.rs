//! kube-apiserver: the flags each minor accepts, and the file formats, admission plugins
//! and feature gates that changed between minors.
//!
//! Data only, read by `validate` (extraArgs the target rejects) and `plan` (which flags and
//! formats to render); tests/integration/oracle.rs checks every row against the real
//! binary's `--help`.

use super::{Flag, OLDEST_MINOR, always, since, until};

/// From this minor the apiserver refuses loopback and link-local advertise addresses
/// (the lease endpoint reconciler validates them; checked on a real v1.37.2).
pub const ADVERTISE_MUST_BE_ROUTABLE_FROM: u64 = 37;
/// From this minor the per-master admin credential is in a group an RBAC binding grants
/// cluster-admin (revocable by deleting the binding) instead of `system:masters` (which no
/// authorizer can revoke): the minor in which kubeadm made the same change.
pub const REVOCABLE_ADMIN_GROUP_FROM: u64 = 29;
/// From this minor the apiserver refuses to start without `--service-account-issuer` and
/// `--service-account-signing-key-file`: TokenRequest went GA (PR 95896).
pub const SERVICE_ACCOUNT_TOKEN_FLAGS_REQUIRED_FROM: u64 = 20;
/// The last minor with the Initializers admission plugin; from the next one, naming an
/// unknown plugin stops startup.
pub const INITIALIZERS_PLUGIN_LAST: u64 = 13;
/// The lease endpoint reconciler is the default from this minor, which makes
/// `--apiserver-count` a no-op; older than anything kube-bundle renders.
pub const LEASE_ENDPOINT_RECONCILER_DEFAULT_FROM: u64 = 11;
/// From this minor `--runtime-config` refuses the bare `api/all` the seed guide wrote;
/// `api/all=true` means the same in every minor.
pub const BARE_API_ALL_REFUSED_FROM: u64 = 36;
/// The first minor with the `audit.k8s.io/v1` audit policy.
pub const AUDIT_V1_FROM: u64 = 12;
/// The DynamicAuditing feature gate: added in this minor, gone with
/// `--audit-dynamic-configuration` after [`DYNAMIC_AUDITING_LAST`].
pub const DYNAMIC_AUDITING_FROM: u64 = 13;
pub const DYNAMIC_AUDITING_LAST: u64 = 18;
/// StructuredAuthenticationConfiguration (`--authentication-config` and its feature gate):
/// added in this minor; the gate is gone after [`STRUCTURED_AUTHENTICATION_GATE_LAST`].
pub const STRUCTURED_AUTHENTICATION_FROM: u64 = 29;
pub const STRUCTURED_AUTHENTICATION_GATE_LAST: u64 = 36;

/// Every flag kube-bundle emits, every flag of the seed guides' units, and the common
/// flags users pass through extraArgs. Sorted by name.
pub const FLAGS: &[Flag] = &[
    Flag {
        replacement: Some("enable-admission-plugins"),
        ..since(
            "admission-control",
            OLDEST_MINOR,
            "deprecated since 1.10 in favour of --enable-admission-plugins, yet still listed \
             and accepted (with a warning) by real v1.33.13 and v1.37.2 binaries",
        )
    },
    always("advertise-address"),
    always("allow-privileged"),
    always("anonymous-auth"),
    always("api-audiences"),
    since(
        "apiserver-count",
        OLDEST_MINOR,
        "deprecated: only used by the master-count reconciler; lease is the default since 1.11; \
         hidden from --help but still accepted by v1.37.2",
    ),
    Flag {
        source: "PR 91502",
        ..until(
            "audit-dynamic-configuration",
            DYNAMIC_AUDITING_LAST,
            "DynamicAuditing was removed in 1.19",
        )
    },
    always("audit-log-compress"),
    always("audit-log-format"),
    always("audit-log-maxage"),
    always("audit-log-maxbackup"),
    always("audit-log-maxsize"),
    always("audit-log-path"),
    always("audit-log-truncate-enabled"),
    always("audit-policy-file"),
    always("audit-webhook-config-file"),
    since(
        "authentication-config",
        STRUCTURED_AUTHENTICATION_FROM,
        "StructuredAuthenticationConfiguration, alpha in 1.29, GA in 1.34; from 1.37 the \
         feature gate is gone and naming it stops startup (checked on a real v1.37.2)",
    ),
    since(
        "authorization-config",
        29,
        "StructuredAuthorizationConfiguration, alpha in 1.29; excludes --authorization-mode",
    ),
    always("authorization-mode"),
    always("bind-address"),
    always("client-ca-file"),
    always("cors-allowed-origins"),
    always("default-not-ready-toleration-seconds"),
    always("default-unreachable-toleration-seconds"),
    since(
        "default-watch-cache-size",
        OLDEST_MINOR,
        "deprecated and hidden from --help in 1.33; a no-op from 1.37 (the deprecation notice \
         of a real v1.37.2 says so)",
    ),
    always("delete-collection-workers"),
    always("enable-admission-plugins"),
    always("enable-aggregator-routing"),
    always("enable-bootstrap-token-auth"),
    always("enable-priority-and-fairness"),
    Flag {
        source: "PRs 72924, 105032",
        inert_from: Some(14),
        ..until(
            "enable-swagger-ui",
            23,
            "a no-op since 1.14, removed in 1.24",
        )
    },
    Flag {
        replacement: Some("experimental-encryption-provider-config"),
        ..since(
            "encryption-provider-config",
            ENCRYPTION_CONFIG_GRADUATED_IN,
            "graduated from --experimental-encryption-provider-config in 1.13",
        )
    },
    Flag {
        source: "PR 112050",
        ..since(
            "encryption-provider-config-automatic-reload",
            26,
            "added in 1.26",
        )
    },
    always("endpoint-reconciler-type"),
    always("etcd-cafile"),
    always("etcd-certfile"),
    always("etcd-keyfile"),
    always("etcd-prefix"),
    always("etcd-servers"),
    always("event-ttl"),
    Flag {
        source: "PRs 71206, 108423",
        replacement: Some("encryption-provider-config"),
        // Renamed, not dropped: kube-bundle renders the new name wherever it exists.
        inert_from: Some(ENCRYPTION_CONFIG_GRADUATED_IN),
        ..until(
            "experimental-encryption-provider-config",
            23,
            "renamed in 1.13, removed in 1.24",
        )
    },
    always("feature-gates"),
    Flag {
        replacement: Some("bind-address"),
        ..until(
            "insecure-bind-address",
            23,
            "the insecure port was removed in 1.24",
        )
    },
    Flag {
        source: "PRs 59018, 95856",
        ..until(
            "insecure-port",
            23,
            "inert from 1.20 (only 0 allowed), removed in 1.24",
        )
    },
    always("kubelet-certificate-authority"),
    always("kubelet-client-certificate"),
    always("kubelet-client-key"),
    Flag {
        source: "PRs 91630, 101178",
        ..until(
            "kubelet-https",
            21,
            "deprecated 1.19, removed 1.22: HTTPS is unconditional",
        )
    },
    always("kubelet-preferred-address-types"),
    always("kubelet-timeout"),
    Flag {
        source: "KEP-2845",
        ..until(
            "log-dir",
            25,
            "klog file flags: deprecated 1.23, removed 1.26",
        )
    },
    Flag {
        source: "KEP-2845",
        ..until(
            "log-file",
            25,
            "klog file flags: deprecated 1.23, removed 1.26",
        )
    },
    Flag {
        source: "KEP-2845",
        inert_from: Some(23),
        ..until(
            "logtostderr",
            25,
            "klog file flags: deprecated 1.23, removed 1.26; stderr is the only output since",
        )
    },
    always("max-mutating-requests-inflight"),
    always("max-requests-inflight"),
    until("port", 23, "the insecure port was removed in 1.24"),
    always("profiling"),
    always("proxy-client-cert-file"),
    always("proxy-client-key-file"),
    always("request-timeout"),
    always("requestheader-allowed-names"),
    always("requestheader-client-ca-file"),
    always("requestheader-extra-headers-prefix"),
    always("requestheader-group-headers"),
    always("requestheader-username-headers"),
    always("runtime-config"),
    always("secure-port"),
    Flag {
        source: "PR 95896",
        required_from: Some(SERVICE_ACCOUNT_TOKEN_FLAGS_REQUIRED_FROM),
        ..since(
            "service-account-issuer",
            OLDEST_MINOR,
            "required since 1.20, when TokenRequest went GA",
        )
    },
    always("service-account-key-file"),
    always("service-account-lookup"),
    Flag {
        source: "PR 95896",
        required_from: Some(SERVICE_ACCOUNT_TOKEN_FLAGS_REQUIRED_FROM),
        ..since(
            "service-account-signing-key-file",
            OLDEST_MINOR,
            "required since 1.20",
        )
    },
    always("service-cluster-ip-range"),
    always("service-node-port-range"),
    always("storage-backend"),
    always("tls-cert-file"),
    always("tls-cipher-suites"),
    since(
        "tls-curve-preferences",
        36,
        "added in 1.36 (in the serving options' source of v1.36.0, not of v1.35.0); listed by \
         a real v1.37.2, refused by v1.33.13",
    ),
    always("tls-min-version"),
    always("tls-private-key-file"),
    always("v"),
];

pub fn flag(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.name == name)
}

/// The minor that renamed `--experimental-encryption-provider-config` to
/// `--encryption-provider-config` and versioned the file's format.
pub const ENCRYPTION_CONFIG_GRADUATED_IN: u64 = 13;

/// The encryption-at-rest flag for a minor.
pub fn encryption_config_flag(minor: u64) -> &'static str {
    if minor < ENCRYPTION_CONFIG_GRADUATED_IN {
        "experimental-encryption-provider-config"
    } else {
        "encryption-provider-config"
    }
}

/// (apiVersion, kind) of the encryption config file: 1.12 parses the unversioned
/// `EncryptionConfig`; 1.13 moved to apiserver.config.k8s.io/v1 `EncryptionConfiguration`.
pub fn encryption_config_format(minor: u64) -> (&'static str, &'static str) {
    if minor < ENCRYPTION_CONFIG_GRADUATED_IN {
        ("v1", "EncryptionConfig")
    } else {
        ("apiserver.config.k8s.io/v1", "EncryptionConfiguration")
    }
}

/// Audit policy apiVersion: v1 exists from 1.12 and v1beta1 is gone in 1.24, so v1
/// is right for every minor kube-bundle renders.
pub fn audit_policy_api_version(minor: u64) -> &'static str {
    if minor < AUDIT_V1_FROM {
        "audit.k8s.io/v1beta1"
    } else {
        "audit.k8s.io/v1"
    }
}

/// The last minor that accepts audit.k8s.io/v1beta1 policies.
pub const AUDIT_V1BETA1_LAST: u64 = 23;

/// The Initializers admission plugin: an unknown plugin stops startup from 1.14.
pub fn initializers_plugin_accepted(minor: u64) -> bool {
    minor <= INITIALIZERS_PLUGIN_LAST
}

/// DynamicAuditing feature gate, removed with --audit-dynamic-configuration in 1.19.
pub fn dynamic_auditing_accepted(minor: u64) -> bool {
    (DYNAMIC_AUDITING_FROM..=DYNAMIC_AUDITING_LAST).contains(&minor)
}

/// A feature gate whose name an apiserver refuses where it does not know it.
#[derive(Debug, Clone, Copy)]
pub struct FeatureGate {
    pub name: &'static str,
    pub known_in: fn(u64) -> bool,
}

/// The feature gates `validate` checks in extraArgs `feature-gates`, and the oracle test
/// against real binaries.
pub const CHECKED_FEATURE_GATES: &[FeatureGate] = &[
    FeatureGate {
        name: "DynamicAuditing",
        known_in: dynamic_auditing_accepted,
    },
    FeatureGate {
        name: "StructuredAuthenticationConfiguration",
        known_in: structured_authentication_gate_accepted,
    },
];

/// StructuredAuthenticationConfiguration feature gate: alpha in 1.29, locked on in 1.34,
/// removed in 1.37, whose apiserver refuses to start when `--feature-gates` names it
/// (checked on real v1.33.13 and v1.37.2 binaries by the oracle test).
pub fn structured_authentication_gate_accepted(minor: u64) -> bool {
    (STRUCTURED_AUTHENTICATION_FROM..=STRUCTURED_AUTHENTICATION_GATE_LAST).contains(&minor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::NEWEST_MINOR;

    fn accepted(name: &str, minor: u64) -> bool {
        flag(name)
            .unwrap_or_else(|| panic!("{name} is not in the table"))
            .accepted_in(minor)
    }

    #[test]
    fn table_is_sorted_and_unique() {
        let names: Vec<_> = FLAGS.iter().map(|f| f.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn encryption_flag_is_renamed_in_1_13() {
        assert!(accepted("experimental-encryption-provider-config", 12));
        assert!(!accepted("encryption-provider-config", 12));
        assert!(accepted("encryption-provider-config", 13));
        assert!(!accepted("experimental-encryption-provider-config", 24));
        assert_eq!(
            encryption_config_flag(12),
            "experimental-encryption-provider-config"
        );
        assert_eq!(encryption_config_flag(13), "encryption-provider-config");
        let old = flag("experimental-encryption-provider-config").unwrap();
        assert_eq!(old.replacement, Some("encryption-provider-config"));
    }

    #[test]
    fn encryption_file_format_changes_in_1_13() {
        assert_eq!(encryption_config_format(12), ("v1", "EncryptionConfig"));
        assert_eq!(
            encryption_config_format(13),
            ("apiserver.config.k8s.io/v1", "EncryptionConfiguration")
        );
        assert_eq!(
            encryption_config_format(36),
            ("apiserver.config.k8s.io/v1", "EncryptionConfiguration")
        );
    }

    #[test]
    fn insecure_port_is_gone_in_1_24() {
        assert!(accepted("insecure-port", 23));
        assert!(!accepted("insecure-port", 24));
        assert!(!accepted("insecure-bind-address", 24));
        assert!(!accepted("port", 24));
    }

    #[test]
    fn kubelet_https_is_gone_in_1_22() {
        assert!(accepted("kubelet-https", 21));
        assert!(!accepted("kubelet-https", 22));
    }

    #[test]
    fn swagger_ui_is_gone_in_1_24() {
        assert!(accepted("enable-swagger-ui", 23));
        assert!(!accepted("enable-swagger-ui", 24));
    }

    #[test]
    fn seed_flags_stop_being_rendered_where_they_stop_doing_anything() {
        let effective = |name: &str, minor| flag(name).unwrap().effective_in(minor);
        assert!(effective("enable-swagger-ui", 13) && !effective("enable-swagger-ui", 14));
        assert!(effective("logtostderr", 22) && !effective("logtostderr", 23));
        assert!(
            !effective("logtostderr", 26),
            "gone is not effective either"
        );
        assert!(effective("profiling", NEWEST_MINOR));
        let experimental = "experimental-encryption-provider-config";
        assert!(effective(experimental, 12) && !effective(experimental, 13));
        assert!(effective("encryption-provider-config", 13));
    }

    #[test]
    fn initializers_plugin_ends_with_1_13() {
        assert!(initializers_plugin_accepted(12));
        assert!(initializers_plugin_accepted(13));
        assert!(!initializers_plugin_accepted(14));
    }

    #[test]
    fn logtostderr_is_gone_in_1_26() {
        assert!(accepted("logtostderr", 25));
        assert!(!accepted("logtostderr", 26));
    }

    #[test]
    fn apiserver_count_is_accepted_but_deprecated() {
        assert!(accepted("apiserver-count", NEWEST_MINOR));
        assert!(flag("apiserver-count").unwrap().note.contains("deprecated"));
    }

    #[test]
    fn service_account_issuer_and_signing_key_are_required_from_1_20() {
        for name in ["service-account-issuer", "service-account-signing-key-file"] {
            let flag = flag(name).unwrap();
            assert!(!flag.required_in(19));
            assert!(flag.required_in(20));
            assert!(flag.required_in(NEWEST_MINOR));
        }
    }

    #[test]
    fn dynamic_auditing_is_gone_in_1_19() {
        assert!(accepted("audit-dynamic-configuration", 18));
        assert!(!accepted("audit-dynamic-configuration", 19));
        assert!(dynamic_auditing_accepted(18));
        assert!(!dynamic_auditing_accepted(19));
    }

    #[test]
    fn structured_authentication_gate_is_gone_in_1_37() {
        assert!(!structured_authentication_gate_accepted(28));
        assert!(structured_authentication_gate_accepted(29));
        assert!(structured_authentication_gate_accepted(36));
        assert!(!structured_authentication_gate_accepted(37));
        assert!(accepted("authentication-config", 37));
    }

    #[test]
    fn audit_policy_is_v1_everywhere_kube_bundle_renders() {
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            assert_eq!(audit_policy_api_version(minor), "audit.k8s.io/v1");
        }
        assert_eq!(AUDIT_V1BETA1_LAST, 23);
    }

    #[test]
    fn automatic_reload_starts_in_1_26() {
        assert!(!accepted("encryption-provider-config-automatic-reload", 25));
        assert!(accepted("encryption-provider-config-automatic-reload", 26));
    }
}

#[cfg(test)]
mod table_consistency {
    use super::*;
    use crate::versions::{NEWEST_MINOR, assert_table_consistent};

    #[test]
    fn every_row_is_consistent() {
        assert_table_consistent("kube-apiserver", FLAGS, OLDEST_MINOR, NEWEST_MINOR);
    }
}
