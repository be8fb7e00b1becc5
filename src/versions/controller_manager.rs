//! kube-controller-manager: the flags each minor accepts, and the facts about them that
//! decide what a hardened HA master renders.
//!
//! Data only, in the apiserver table's shape. Rows cover every flag kube-bundle renders
//! for the controller manager, every flag of the seed series' unit, and the flags users
//! commonly pass through extraArgs; tests/integration/oracle.rs checks every row against
//! the real binary's `--help` for each pinned release.

use super::{Flag, OLDEST_MINOR, always, since, until};

/// From this minor the bootstrap RBAC policy lets the controller manager and the scheduler
/// delegate authentication and authorization (TokenReview, SubjectAccessReview, reading
/// kube-system/extension-apiserver-authentication); before it kube-bundle binds them.
pub const BOOTSTRAP_DELEGATES_AUTH_FROM: u64 = 14;

/// Until this minor the insecure HTTP port (10252 on every address) serves by default:
/// kube-bundle renders `--port=0` there to close it.
pub const INSECURE_PORT_SERVES_LAST: u64 = 21;
/// The per-signer `--cluster-signing-*-file` flags and `--cluster-signing-duration` appear
/// in this minor; the per-signer files exclude the generic pair.
pub const PER_SIGNER_FILES_FROM: u64 = 19;
/// Until this minor `--use-service-account-credentials` reads token Secrets that only the
/// tokens controller creates, which runs only with `--service-account-private-key-file`.
pub const SERVICE_ACCOUNT_CREDENTIALS_NEED_PRIVATE_KEY_LAST: u64 = 20;
/// The default of `--authorization-always-allow-paths` is `/healthz` alone until this
/// minor, then `/healthz`, `/readyz` and `/livez`.
pub const ALWAYS_ALLOW_HEALTHZ_ONLY_LAST: u64 = 20;
/// The secure port's default in every minor kube-bundle renders.
pub const SECURE_PORT: u16 = 10257;

const KLOG_NOTE: &str = "klog file flags: deprecated 1.23, removed 1.26";
const KLOG_SOURCE: &str = "KEP-2845; CHANGELOG-1.26";
const INSECURE_NOTE: &str = "the insecure HTTP port: serves until 1.21 (kube-bundle closes it \
                             with --port=0), accepted without effect in 1.22 and 1.23, removed \
                             in 1.24";
const INSECURE_SOURCE: &str = "k8s.io/kubernetes v1.21 cmd/kube-controller-manager/app/options/\
                               options.go (InsecureServing, default 10252); v1.22 the same file \
                               (addDummyInsecureFlags); CHANGELOG-1.24";
const PER_SIGNER_NOTE: &str = "one signer's own CA files, added in 1.19; cannot be combined \
                               with --cluster-signing-cert-file/--cluster-signing-key-file";
const PER_SIGNER_SOURCE: &str = "k8s.io/kubernetes v1.19 cmd/kube-controller-manager/app/options/csrsigningcontroller.go; \
     v1.37 cmd/kube-controller-manager/app/certificates.go";
const SERVING_SOURCE: &str = "k8s.io/apiserver pkg/server/options/serving.go";
const DELEGATED_AUTH_SOURCE: &str =
    "k8s.io/apiserver pkg/server/options/authentication.go, authorization.go";
const LEADER_ELECTION_SOURCE: &str = "k8s.io/kubernetes v1.12 pkg/client/leaderelectionconfig/\
                                      config.go; k8s.io/component-base v0.15+ config/options/\
                                      leaderelectionconfig.go";

const fn with_source(row: Flag, source: &'static str) -> Flag {
    Flag { source, ..row }
}

/// Every flag kube-bundle renders for the controller manager, every flag of the seed
/// series' unit, and common extraArgs. Sorted by name.
pub const FLAGS: &[Flag] = &[
    Flag {
        replacement: Some("bind-address"),
        inert_from: Some(INSECURE_PORT_SERVES_LAST + 1),
        source: INSECURE_SOURCE,
        ..until("address", 23, INSECURE_NOTE)
    },
    with_source(
        always("allocate-node-cidrs"),
        "k8s.io/kubernetes cmd/kube-controller-manager/app/options/kubecloudshared.go",
    ),
    with_source(until("alsologtostderr", 25, KLOG_NOTE), KLOG_SOURCE),
    with_source(
        since(
            "authentication-kubeconfig",
            OLDEST_MINOR,
            "optional: without it tokens on the secure port are not reviewed",
        ),
        DELEGATED_AUTH_SOURCE,
    ),
    with_source(
        since(
            "authentication-tolerate-lookup-failure",
            13,
            "added in 1.13; not needed when both client CA files are given",
        ),
        DELEGATED_AUTH_SOURCE,
    ),
    with_source(
        since(
            "authorization-always-allow-paths",
            OLDEST_MINOR,
            "defaults to /healthz until 1.20, to /healthz, /readyz and /livez from 1.21",
        ),
        "k8s.io/kubernetes v1.20 cmd/kube-controller-manager/app/options/options.go; \
         k8s.io/apiserver v0.21 pkg/server/options/authorization.go",
    ),
    with_source(
        since(
            "authorization-kubeconfig",
            OLDEST_MINOR,
            "optional: without it every path but the always-allowed ones is forbidden",
        ),
        DELEGATED_AUTH_SOURCE,
    ),
    with_source(
        since(
            "bind-address",
            OLDEST_MINOR,
            "the secure port's address; 0.0.0.0 by default",
        ),
        SERVING_SOURCE,
    ),
    with_source(always("cert-dir"), SERVING_SOURCE),
    with_source(
        since(
            "client-ca-file",
            OLDEST_MINOR,
            "with --requestheader-client-ca-file, spares the in-cluster lookup that fails on \
             1.12 and 1.13 without extra RBAC",
        ),
        DELEGATED_AUTH_SOURCE,
    ),
    with_source(
        since(
            "cluster-cidr",
            OLDEST_MINOR,
            "a dual-stack pair from 1.16 (behind IPv6DualStack until 1.20)",
        ),
        "k8s.io/kubernetes cmd/kube-controller-manager/app/options/kubecloudshared.go",
    ),
    with_source(
        always("cluster-name"),
        "k8s.io/kubernetes cmd/kube-controller-manager/app/options/kubecloudshared.go",
    ),
    with_source(
        since(
            "cluster-signing-cert-file",
            OLDEST_MINOR,
            "the CSR signer's certificate for every signer; defaults to \
             /etc/kubernetes/ca/ca.pem until 1.18, to none (signer off) from 1.19",
        ),
        "k8s.io/kubernetes cmd/kube-controller-manager/app/options/csrsigningcontroller.go",
    ),
    Flag {
        replacement: Some("experimental-cluster-signing-duration"),
        source: "CHANGELOG-1.19; k8s.io/kubernetes v1.19 cmd/kube-controller-manager/app/\
                 options/csrsigningcontroller.go",
        ..since(
            "cluster-signing-duration",
            PER_SIGNER_FILES_FROM,
            "renamed from --experimental-cluster-signing-duration in 1.19; 8760h by default",
        )
    },
    with_source(
        since(
            "cluster-signing-key-file",
            OLDEST_MINOR,
            "the CSR signer's key for every signer; defaults to /etc/kubernetes/ca/ca.key \
             until 1.18, to none (signer off) from 1.19",
        ),
        "k8s.io/kubernetes cmd/kube-controller-manager/app/options/csrsigningcontroller.go",
    ),
    with_source(
        since(
            "cluster-signing-kube-apiserver-client-cert-file",
            PER_SIGNER_FILES_FROM,
            PER_SIGNER_NOTE,
        ),
        PER_SIGNER_SOURCE,
    ),
    with_source(
        since(
            "cluster-signing-kube-apiserver-client-key-file",
            PER_SIGNER_FILES_FROM,
            PER_SIGNER_NOTE,
        ),
        PER_SIGNER_SOURCE,
    ),
    with_source(
        since(
            "cluster-signing-kubelet-client-cert-file",
            PER_SIGNER_FILES_FROM,
            PER_SIGNER_NOTE,
        ),
        PER_SIGNER_SOURCE,
    ),
    with_source(
        since(
            "cluster-signing-kubelet-client-key-file",
            PER_SIGNER_FILES_FROM,
            PER_SIGNER_NOTE,
        ),
        PER_SIGNER_SOURCE,
    ),
    with_source(
        since(
            "cluster-signing-kubelet-serving-cert-file",
            PER_SIGNER_FILES_FROM,
            PER_SIGNER_NOTE,
        ),
        PER_SIGNER_SOURCE,
    ),
    with_source(
        since(
            "cluster-signing-kubelet-serving-key-file",
            PER_SIGNER_FILES_FROM,
            PER_SIGNER_NOTE,
        ),
        PER_SIGNER_SOURCE,
    ),
    with_source(
        since(
            "cluster-signing-legacy-unknown-cert-file",
            PER_SIGNER_FILES_FROM,
            PER_SIGNER_NOTE,
        ),
        PER_SIGNER_SOURCE,
    ),
    with_source(
        since(
            "cluster-signing-legacy-unknown-key-file",
            PER_SIGNER_FILES_FROM,
            PER_SIGNER_NOTE,
        ),
        PER_SIGNER_SOURCE,
    ),
    always("concurrent-deployment-syncs"),
    always("concurrent-gc-syncs"),
    Flag {
        inert_from: Some(31),
        source: "CHANGELOG-1.37; k8s.io/kubernetes v1.37.2 cmd/kube-controller-manager/app/\
                 options/options.go (no service controller options; v1.36.1 has them)",
        ..until(
            "concurrent-service-syncs",
            36,
            "without effect since 1.31 (the cloud service controller left), removed in 1.37 \
             (found by the oracle test on a real v1.37.2)",
        )
    },
    with_source(
        always("contention-profiling"),
        "k8s.io/kubernetes v1.19 cmd/controller-manager/app/options/debugging.go; \
         k8s.io/controller-manager v0.20+ options/debugging.go",
    ),
    with_source(
        since(
            "controllers",
            OLDEST_MINOR,
            "'*,bootstrapsigner,tokencleaner' is valid in every minor",
        ),
        "k8s.io/kubernetes v1.37 cmd/kube-controller-manager/app/bootstrap.go",
    ),
    with_source(
        until("deleting-pods-burst", 24, "deprecated, removed in 1.25"),
        "CHANGELOG-1.25",
    ),
    with_source(
        until("deleting-pods-qps", 24, "deprecated, removed in 1.25"),
        "CHANGELOG-1.25",
    ),
    with_source(
        until(
            "enable-taint-manager",
            26,
            "deprecated in 1.25, removed in 1.27",
        ),
        "CHANGELOG-1.25; CHANGELOG-1.27",
    ),
    Flag {
        replacement: Some("cluster-signing-duration"),
        // Renamed, not dropped: kube-bundle renders the new name wherever it exists.
        inert_from: Some(PER_SIGNER_FILES_FROM),
        source: "CHANGELOG-1.19; CHANGELOG-1.25",
        ..until(
            "experimental-cluster-signing-duration",
            24,
            "renamed --cluster-signing-duration in 1.19, removed in 1.25",
        )
    },
    with_source(
        since(
            "feature-gates",
            OLDEST_MINOR,
            "an unknown gate stops startup",
        ),
        "k8s.io/component-base featuregate",
    ),
    Flag {
        // Read by nothing since 1.12: never worth rendering.
        inert_from: Some(OLDEST_MINOR),
        source: "CHANGELOG-1.31",
        ..until(
            "horizontal-pod-autoscaler-downscale-delay",
            30,
            "without effect since 1.12, removed in 1.31",
        )
    },
    always("horizontal-pod-autoscaler-sync-period"),
    Flag {
        inert_from: Some(OLDEST_MINOR),
        source: "CHANGELOG-1.31",
        ..until(
            "horizontal-pod-autoscaler-upscale-delay",
            30,
            "without effect since 1.12, removed in 1.31",
        )
    },
    with_source(
        until(
            "horizontal-pod-autoscaler-use-rest-clients",
            21,
            "deprecated, removed in 1.22",
        ),
        "k8s.io/kubernetes v1.21 cmd/kube-controller-manager/app/options/hpacontroller.go; \
         CHANGELOG-1.22",
    ),
    with_source(
        until(
            "insecure-experimental-approve-all-kubelet-csrs-for-group",
            OLDEST_MINOR,
            "removed in 1.13",
        ),
        "CHANGELOG-1.13",
    ),
    always("kube-api-burst"),
    always("kube-api-qps"),
    with_source(
        since(
            "kubeconfig",
            OLDEST_MINOR,
            "point it at the master's own apiserver, whose serving certificate must name \
             that address",
        ),
        "k8s.io/kubernetes cmd/kube-controller-manager/app/options/options.go; CHANGELOG-1.20",
    ),
    with_source(
        since("leader-elect", OLDEST_MINOR, "on by default"),
        LEADER_ELECTION_SOURCE,
    ),
    with_source(
        always("leader-elect-lease-duration"),
        LEADER_ELECTION_SOURCE,
    ),
    with_source(
        always("leader-elect-renew-deadline"),
        LEADER_ELECTION_SOURCE,
    ),
    with_source(
        since(
            "leader-elect-resource-lock",
            OLDEST_MINOR,
            "the lock types a minor accepts changed several times; only leases from 1.27",
        ),
        LEADER_ELECTION_SOURCE,
    ),
    with_source(
        since(
            "leader-elect-resource-name",
            16,
            "added in 1.16; the lock is kube-system/kube-controller-manager in every minor",
        ),
        "k8s.io/kubernetes v1.37 cmd/kube-controller-manager/app/options/options.go",
    ),
    with_source(
        since(
            "leader-elect-resource-namespace",
            16,
            "added in 1.16; the lock is kube-system/kube-controller-manager in every minor",
        ),
        "k8s.io/kubernetes v1.37 cmd/kube-controller-manager/app/options/options.go",
    ),
    with_source(always("leader-elect-retry-period"), LEADER_ELECTION_SOURCE),
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
            "overrides the kubeconfig's server; kube-bundle does not render it",
        ),
        "k8s.io/kubernetes cmd/kube-controller-manager/app/options/options.go",
    ),
    with_source(
        since(
            "node-cidr-mask-size",
            OLDEST_MINOR,
            "single-stack only; refused with a dual-stack --cluster-cidr",
        ),
        "k8s.io/kubernetes cmd/kube-controller-manager/app/options/nodeipamcontroller.go",
    ),
    with_source(
        since(
            "node-cidr-mask-size-ipv4",
            17,
            "added in 1.17 for dual-stack; excludes --node-cidr-mask-size",
        ),
        "k8s.io/kubernetes v1.17 cmd/kube-controller-manager/app/options/\
         nodeipamcontroller.go; CHANGELOG-1.17, CHANGELOG-1.23",
    ),
    with_source(
        since(
            "node-cidr-mask-size-ipv6",
            17,
            "added in 1.17 for dual-stack; excludes --node-cidr-mask-size",
        ),
        "k8s.io/kubernetes v1.17 cmd/kube-controller-manager/app/options/\
         nodeipamcontroller.go; CHANGELOG-1.17, CHANGELOG-1.23",
    ),
    always("node-monitor-grace-period"),
    with_source(
        until(
            "pod-eviction-timeout",
            26,
            "deprecated in 1.26, removed in 1.27",
        ),
        "CHANGELOG-1.26; CHANGELOG-1.27",
    ),
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
            "on by default; kube-bundle's hardened defaults turn it off",
        ),
        "k8s.io/controller-manager options/debugging.go",
    ),
    with_source(
        until("register-retry-count", 24, "deprecated, removed in 1.25"),
        "CHANGELOG-1.25",
    ),
    with_source(always("requestheader-allowed-names"), DELEGATED_AUTH_SOURCE),
    with_source(
        since(
            "requestheader-client-ca-file",
            OLDEST_MINOR,
            "the front-proxy CA: any certificate from this CA may assert users through \
             headers",
        ),
        DELEGATED_AUTH_SOURCE,
    ),
    with_source(
        always("requestheader-extra-headers-prefix"),
        DELEGATED_AUTH_SOURCE,
    ),
    with_source(always("requestheader-group-headers"), DELEGATED_AUTH_SOURCE),
    with_source(
        since("requestheader-uid-headers", 32, "added in 1.32"),
        "CHANGELOG-1.32",
    ),
    with_source(
        always("requestheader-username-headers"),
        DELEGATED_AUTH_SOURCE,
    ),
    with_source(
        since(
            "root-ca-file",
            OLDEST_MINOR,
            "the CA of the apiserver's serving certificate, published to pods (the \
             kube-root-ca.crt ConfigMap from 1.20); the kubeconfig's CA when unset",
        ),
        "k8s.io/kubernetes v1.37 cmd/kube-controller-manager/app/certificates.go; \
         CHANGELOG-1.20",
    ),
    with_source(
        since(
            "secure-port",
            OLDEST_MINOR,
            "10257 by default in every minor",
        ),
        "k8s.io/kubernetes v1.12 cmd/kube-controller-manager/app/options/options.go; \
         CHANGELOG-1.12",
    ),
    with_source(
        since(
            "service-account-private-key-file",
            OLDEST_MINOR,
            "the private half of the apiserver's --service-account-key-file; until 1.20 \
             --use-service-account-credentials needs it",
        ),
        "k8s.io/kubernetes cmd/kube-controller-manager/app/options/\
         serviceaccountcontroller.go",
    ),
    with_source(
        since(
            "service-cluster-ip-range",
            OLDEST_MINOR,
            "must equal the apiserver's",
        ),
        "k8s.io/kubernetes cmd/kube-controller-manager/app/options/nodeipamcontroller.go",
    ),
    always("terminated-pod-gc-threshold"),
    with_source(always("tls-cert-file"), SERVING_SOURCE),
    with_source(
        since(
            "tls-cipher-suites",
            OLDEST_MINOR,
            "the apiserver's names and aliases, minor by minor",
        ),
        SERVING_SOURCE,
    ),
    with_source(
        since("tls-curve-preferences", 36, "added in 1.36"),
        "k8s.io/apiserver v0.36 pkg/server/options/serving.go",
    ),
    with_source(always("tls-min-version"), SERVING_SOURCE),
    with_source(always("tls-private-key-file"), SERVING_SOURCE),
    with_source(
        since(
            "use-service-account-credentials",
            OLDEST_MINOR,
            "one service account per controller; token Secrets until 1.20, TokenRequest \
             from 1.21",
        ),
        "k8s.io/kubernetes v1.20, v1.21 cmd/kube-controller-manager/app/\
         controllermanager.go",
    ),
    always("v"),
];

pub fn flag(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.name == name)
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
        assert_table_consistent("kube-controller-manager", FLAGS, OLDEST_MINOR, NEWEST_MINOR);
    }

    #[test]
    fn insecure_port_serves_until_1_21_and_is_gone_in_1_24() {
        for name in ["port", "address"] {
            let row = flag(name).unwrap();
            assert!(row.effective_in(21), "--{name}");
            assert!(row.accepted_in(23) && !row.effective_in(22), "--{name}");
            assert!(!row.accepted_in(24), "--{name}");
        }
        assert!(accepted("secure-port", OLDEST_MINOR));
        assert_eq!(SECURE_PORT, 10257);
    }

    #[test]
    fn signing_duration_is_renamed_in_1_19_and_the_old_name_gone_in_1_25() {
        assert!(!accepted("cluster-signing-duration", 18));
        assert!(accepted("cluster-signing-duration", 19));
        let old = flag("experimental-cluster-signing-duration").unwrap();
        assert!(old.effective_in(18) && !old.effective_in(19));
        assert!(old.accepted_in(24) && !old.accepted_in(25));
        assert_eq!(old.replacement, Some("cluster-signing-duration"));
    }

    #[test]
    fn per_signer_files_come_in_pairs_from_1_19() {
        let per_signer: Vec<_> = FLAGS
            .iter()
            .filter(|row| {
                row.name.starts_with("cluster-signing-")
                    && row.name.ends_with("-file")
                    && !row.name.starts_with("cluster-signing-cert")
                    && !row.name.starts_with("cluster-signing-key")
            })
            .collect();
        assert_eq!(
            per_signer.len(),
            8,
            "four signers, a certificate and a key each"
        );
        for row in per_signer {
            assert_eq!(row.first, PER_SIGNER_FILES_FROM, "--{}", row.name);
            assert!(row.last.is_none(), "--{}", row.name);
            let twin = row
                .name
                .replace("-cert-file", "-KEY")
                .replace("-key-file", "-cert-file")
                .replace("-KEY", "-key-file");
            assert!(flag(&twin).is_some(), "--{} has no --{twin}", row.name);
        }
    }

    #[test]
    fn what_a_hardened_master_renders_is_accepted_in_every_minor() {
        for name in [
            "authentication-kubeconfig",
            "authorization-kubeconfig",
            "bind-address",
            "client-ca-file",
            "cluster-signing-cert-file",
            "cluster-signing-key-file",
            "controllers",
            "kubeconfig",
            "leader-elect",
            "profiling",
            "requestheader-client-ca-file",
            "root-ca-file",
            "secure-port",
            "service-account-private-key-file",
            "service-cluster-ip-range",
            "tls-cert-file",
            "tls-private-key-file",
            "use-service-account-credentials",
        ] {
            for minor in OLDEST_MINOR..=NEWEST_MINOR {
                assert!(
                    flag(name).unwrap().effective_in(minor),
                    "--{name} 1.{minor}"
                );
            }
        }
    }

    #[test]
    fn dual_stack_mask_sizes_start_in_1_17() {
        assert!(accepted("node-cidr-mask-size", NEWEST_MINOR));
        for name in ["node-cidr-mask-size-ipv4", "node-cidr-mask-size-ipv6"] {
            assert!(!accepted(name, 16) && accepted(name, 17), "--{name}");
        }
    }

    #[test]
    fn seed_only_flags_end_where_upstream_removed_them() {
        assert!(!accepted(
            "insecure-experimental-approve-all-kubelet-csrs-for-group",
            13
        ));
        assert!(accepted("horizontal-pod-autoscaler-use-rest-clients", 21));
        assert!(!accepted("horizontal-pod-autoscaler-use-rest-clients", 22));
        assert!(accepted("pod-eviction-timeout", 26));
        assert!(!accepted("pod-eviction-timeout", 27));
        assert!(
            !flag("horizontal-pod-autoscaler-upscale-delay")
                .unwrap()
                .effective_in(OLDEST_MINOR)
        );
        assert!(!accepted("logtostderr", 26));
    }

    #[test]
    fn every_row_says_where_its_fact_comes_from_unless_it_never_changed() {
        for row in FLAGS {
            let changed = row.first > OLDEST_MINOR || row.last.is_some();
            assert!(
                !changed || !row.source.is_empty(),
                "--{} changed but has no source",
                row.name
            );
            assert!(
                !row.note.contains("PR ") && !row.note.contains("KEP"),
                "--{}: notes are for users",
                row.name
            );
        }
    }
}
