//! `apiserver:`: extraArgs checked against the target release and against the CIS
//! benchmark, and the apiserver's own settings with their hardened defaults.

use std::collections::BTreeMap;

use super::Checker;
use super::extra_args::{APISERVER, check_extra_args};
use crate::config::{KeyAlgorithm, RawApiserver, Text};
use crate::model::{Apiserver, Audit, CIS_AUDIT_MAX_BACKUP, SEED_AUDIT_MAX_BACKUP};
use crate::values::KubeVersion;

/// extraArgs first, then whether their cipher suites fit the serving key (once pki is
/// valid), then the apiserver's own settings.
pub(super) fn check_apiserver(
    c: &mut Checker<'_>,
    raw: &RawApiserver,
    version: Option<&KubeVersion>,
    key_algorithm: Option<KeyAlgorithm>,
) -> Apiserver {
    let extra_args = check_extra_args(c, &APISERVER, raw.extra_args.as_ref(), version);
    if let (Some(raw_args), Some(algorithm)) = (&raw.extra_args, key_algorithm) {
        check_cipher_suites_fit_key(c, raw_args, algorithm);
    }
    check_apiserver_settings(c, raw, version, extra_args)
}

/// The apiserver's own keys: the audit log's rotation, enableAllAPIs and
/// verifyKubeletServingCerts, with kube-bundle's hardened defaults after the seed's release
/// and a warning for each explicit value that is weaker than them.
fn check_apiserver_settings(
    c: &mut Checker<'_>,
    raw: &RawApiserver,
    version: Option<&KubeVersion>,
    extra_args: BTreeMap<String, String>,
) -> Apiserver {
    // Without a valid version validation fails anyway; the hardened defaults are the safe guess.
    let hardened = version.is_none_or(|v| crate::versions::hardened_defaults(v.minor()));
    let shown_version = version.map_or_else(|| "this release".to_owned(), ToString::to_string);
    let raw_audit = raw.audit.as_ref();
    let enabled = raw_audit.and_then(|a| a.enabled).unwrap_or(true);
    let max_backup = match raw_audit.and_then(|a| a.max_backup.as_ref()) {
        Some(explicit) => {
            // 0 keeps every old file, which is more than the benchmark asks for.
            let fewer = (1..CIS_AUDIT_MAX_BACKUP).contains(&explicit.value);
            if enabled && hardened && fewer {
                c.warn(
                    explicit.referenced,
                    "apiserver.audit.maxBackup",
                    format!(
                        "{} rotated audit logs are fewer than the {CIS_AUDIT_MAX_BACKUP} the CIS \
                         Kubernetes Benchmark asks for",
                        explicit.value
                    ),
                    &format!(
                        "remove the key for kube-bundle's default of {CIS_AUDIT_MAX_BACKUP}, or \
                         keep {SEED_AUDIT_MAX_BACKUP} if you mean the seed guide's rotation"
                    ),
                );
            }
            explicit.value
        }
        None if hardened => CIS_AUDIT_MAX_BACKUP,
        None => SEED_AUDIT_MAX_BACKUP,
    };
    // The seed's audit-log settings, but for the number of old files.
    let audit = Audit {
        enabled,
        max_age: raw_audit.and_then(|a| a.max_age).unwrap_or(30),
        max_backup,
        max_size: raw_audit.and_then(|a| a.max_size).unwrap_or(100),
    };
    let enable_all_apis = match &raw.enable_all_apis {
        Some(explicit) => {
            if explicit.value && hardened {
                c.warn(
                    explicit.referenced,
                    "apiserver.enableAllAPIs",
                    format!(
                        "--runtime-config=api/all=true serves every API of {shown_version}, alpha \
                         ones included: upstream advises against alpha APIs in production (they \
                         are off by default, may be buggy, and can change or vanish in any release)"
                    ),
                    "remove the key, and enable only the API versions you need with \
                     `extraArgs: { runtime-config: \"<group>/<version>=true\" }`",
                );
            }
            explicit.value
        }
        None => !hardened,
    };
    let verify_kubelet_serving_certs = match &raw.verify_kubelet_serving_certs {
        Some(explicit) => {
            if !explicit.value {
                c.warn(
                    explicit.referenced,
                    "apiserver.verifyKubeletServingCerts",
                    "kubelets' serving certificates are not verified (no \
                     --kubelet-certificate-authority): whoever answers on a kubelet's address \
                     receives the apiserver's exec, attach, logs and port-forward traffic"
                        .into(),
                    "give every kubelet a serving certificate signed by the cluster CA (kubelet \
                     serverTLSBootstrap: true and approved CSRs) and remove the key",
                );
            }
            explicit.value
        }
        None => true,
    };
    Apiserver {
        extra_args,
        audit,
        enable_all_apis,
        verify_kubelet_serving_certs,
    }
}

/// Whether a TLS 1.2 suite name is one the CIS benchmark accepts: ECDHE key exchange with
/// AES-GCM or ChaCha20-Poly1305. TLS 1.3 names are accepted too: every TLS 1.3 suite is an
/// AEAD with ephemeral key exchange.
pub(super) fn is_strong_cipher_suite(name: &str) -> bool {
    const TLS13_SUITES: [&str; 3] = [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    ];
    TLS13_SUITES.contains(&name)
        || (name.starts_with("TLS_ECDHE_")
            && (name.contains("_GCM_") || name.contains("_CHACHA20_POLY1305")))
}

/// A TLS 1.2 suite authenticates the server with one kind of key: an extraArgs cipher list
/// without a suite for the serving certificate's key leaves TLS 1.2 clients unable to
/// connect (TLS 1.3 suites are not configurable and still work).
fn check_cipher_suites_fit_key(
    c: &mut Checker<'_>,
    raw_args: &BTreeMap<String, Text>,
    algorithm: KeyAlgorithm,
) {
    let Some(suites) = raw_args.get("tls-cipher-suites") else {
        return;
    };
    let tls13_only = raw_args
        .get("tls-min-version")
        .is_some_and(|v| v.value == "VersionTLS13");
    let (fits, kind) = match algorithm {
        KeyAlgorithm::EcdsaP256 => (&["_ECDSA_"][..], "ECDSA"),
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            (&["TLS_ECDHE_RSA_", "TLS_RSA_"][..], "RSA")
        }
    };
    let any_fits = suites
        .value
        .split(',')
        .map(str::trim)
        .any(|suite| fits.iter().any(|part| suite.contains(part)));
    if !any_fits && !tls13_only {
        c.warn(
            suites.referenced,
            "apiserver.extraArgs.tls-cipher-suites",
            format!(
                "no TLS 1.2 suite in the list fits the serving certificate's {kind} key \
                 (pki.keyAlgorithm: {algorithm}): clients limited to TLS 1.2 cannot connect"
            ),
            &format!("add the matching TLS_ECDHE_{kind}_WITH_… suites, or remove the flag"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::validate::ValidateOptions;
    use crate::versions::NEWEST_MINOR;

    #[test]
    fn extra_args_keys_and_values_are_checked() {
        let arg = "profiling: \"false\"";
        rejects(arg, "--event-ttl: 168h", &["leading dashes"]);
        rejects(arg, "Event_TTL: 168h", &["not a kube-apiserver flag name"]);
        rejects(
            arg,
            "profiling: \"168h\\n--evil\"",
            &["not printable ASCII"],
        );
    }

    #[test]
    fn extra_args_that_weaken_security_are_named_in_a_warning() {
        let arg = "profiling: \"false\"";
        for (weak, fragment) in [
            ("anonymous-auth: \"true\"", "unauthenticated requests"),
            ("authorization-mode: \"Node,AlwaysAllow\"", "AlwaysAllow"),
            (
                "enable-admission-plugins: \"NodeRestriction,AlwaysAdmit\"",
                "AlwaysAdmit",
            ),
            (
                "service-account-lookup: \"false\"",
                "deleted service accounts",
            ),
            ("tls-min-version: VersionTLS11", "below 1.2"),
            ("kubelet-certificate-authority: \"\"", "not verified"),
            ("profiling: \"true\"", "profiling exposes"),
        ] {
            let yaml = example_with(arg, weak);
            let validated = run(&yaml, ValidateOptions::default()).expect(weak);
            assert!(
                validated
                    .warnings
                    .iter()
                    .any(|w| w.message.contains("weakens the apiserver")
                        && w.message.contains(fragment)),
                "{weak}: {:?}",
                validated
                    .warnings
                    .iter()
                    .map(|w| &w.message)
                    .collect::<Vec<_>>()
            );
        }
        let quiet = run(
            &example_with(arg, "profiling: \"false\""),
            ValidateOptions::default(),
        )
        .unwrap();
        assert!(
            quiet
                .warnings
                .iter()
                .all(|w| !w.message.contains("weakens"))
        );
    }

    #[test]
    fn extra_args_the_target_rejects_are_errors_naming_the_replacement() {
        let arg = "profiling: \"false\"";
        rejects(
            arg,
            "insecure-port: \"0\"",
            &[
                "--insecure-port is not accepted by v1.37.2",
                "removed in 1.24",
            ],
        );
        rejects(
            arg,
            "experimental-encryption-provider-config: /etc/x.yaml",
            &["not accepted by v1.37.2"],
        );
        rejects(
            arg,
            "enable-admission-plugins: Initializers,NodeRestriction",
            &["Initializers"],
        );
        rejects(
            arg,
            "feature-gates: DynamicAuditing=true",
            &["DynamicAuditing"],
        );
        rejects(
            arg,
            "feature-gates: StructuredAuthenticationConfiguration=true",
            &["StructuredAuthenticationConfiguration feature gate does not exist in v1.37.2"],
        );
        let yaml = example_with(
            arg,
            "feature-gates: StructuredAuthenticationConfiguration=true",
        )
        .replace("v1.37.2", "v1.33.13");
        assert!(
            run(&yaml, ValidateOptions::default()).is_ok(),
            "1.33 still knows the StructuredAuthenticationConfiguration gate"
        );
        let yaml = example_with(arg, "kubelet-https: \"true\"").replace("v1.37.2", "v1.21.0");
        assert!(
            run(&yaml, ValidateOptions::default()).is_ok(),
            "1.21 still accepts --kubelet-https"
        );
        let yaml = example_with(arg, "made-up-flag: \"1\"");
        assert!(
            warnings(&yaml)
                .iter()
                .any(|w| w.contains("not in kube-bundle's version table"))
        );
    }

    /// The example at `version`, its enableAllAPIs and verifyKubeletServingCerts lines
    /// replaced by `settings` (so that an empty string means the defaults).
    fn example_at(version: &str, settings: &str) -> String {
        let explicit = "  enableAllAPIs: false\n";
        example_with(explicit, settings)
            .replace("  verifyKubeletServingCerts: true\n", "")
            .replace("v1.37.2", version)
    }

    /// The warnings about one cluster.yaml key, with the line they point at.
    fn warnings_about(yaml: &str, field: &str) -> Vec<(String, Option<usize>)> {
        run(yaml, ValidateOptions::default())
            .expect("valid")
            .warnings
            .iter()
            .filter(|w| w.field == field)
            .map(|w| {
                let line = w.span.map(|span| yaml[..span.offset()].lines().count());
                (w.message.clone(), line)
            })
            .collect()
    }

    fn line_of(yaml: &str, fragment: &str) -> Option<usize> {
        yaml.lines()
            .position(|l| l.contains(fragment))
            .map(|i| i + 1)
    }

    #[test]
    fn audit_keeps_ten_old_logs_after_the_seeds_release_and_three_in_it() {
        let without =
            |version: &str| example_with("maxBackup: 10, ", "").replace("v1.37.2", version);
        let cluster_of = |yaml: &str| run(yaml, ValidateOptions::default()).unwrap().cluster;
        assert_eq!(
            cluster_of(&without("v1.37.2")).apiserver.audit.max_backup,
            10
        );
        assert_eq!(
            cluster_of(&without("v1.13.0")).apiserver.audit.max_backup,
            10
        );
        assert_eq!(
            cluster_of(&without("v1.12.3")).apiserver.audit.max_backup,
            3
        );

        // The seed's 3 stays allowed, with a warning naming the key and its line.
        let seeds = example_with("maxBackup: 10", "maxBackup: 3");
        assert_eq!(cluster_of(&seeds).apiserver.audit.max_backup, 3);
        let warned = warnings_about(&seeds, "apiserver.audit.maxBackup");
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].0.contains("fewer than the 10"), "{warned:?}");
        assert_eq!(warned[0].1, line_of(&seeds, "maxBackup: 3"));
        // Not at the seed's own release, not for 0 (keeps every file), not when audit is off.
        for quiet in [
            seeds.replace("v1.37.2", "v1.12.3"),
            example_with("maxBackup: 10", "maxBackup: 0"),
            example_with(
                "enabled: true, maxAge: 30, maxBackup: 10",
                "enabled: false, maxAge: 30, maxBackup: 3",
            ),
        ] {
            assert!(warnings_about(&quiet, "apiserver.audit.maxBackup").is_empty());
        }
    }

    #[test]
    fn all_apis_are_served_only_at_the_seeds_release_unless_enabled() {
        let enabled = |yaml: &str| {
            run(yaml, ValidateOptions::default())
                .unwrap()
                .cluster
                .apiserver
                .enable_all_apis
        };
        assert!(enabled(&example_at("v1.12.3", "")));
        assert!(!enabled(&example_at("v1.13.0", "")));
        assert!(!enabled(&example_at("v1.37.2", "")));
        assert!(!enabled(&example_at("v1.12.3", "  enableAllAPIs: false\n")));

        let yaml = example_at("v1.37.2", "  enableAllAPIs: true\n");
        assert!(enabled(&yaml));
        let warned = warnings_about(&yaml, "apiserver.enableAllAPIs");
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].0.contains("alpha"), "{warned:?}");
        assert!(warned[0].0.contains("v1.37.2"), "{warned:?}");
        assert_eq!(warned[0].1, line_of(&yaml, "enableAllAPIs: true"));
        // The seed's own release serves every API anyway: nothing to warn about.
        let seed = example_at("v1.12.3", "  enableAllAPIs: true\n");
        assert!(warnings_about(&seed, "apiserver.enableAllAPIs").is_empty());
    }

    #[test]
    fn kubelet_serving_certs_are_verified_unless_turned_off_with_a_warning() {
        let verified = |yaml: &str| {
            run(yaml, ValidateOptions::default())
                .unwrap()
                .cluster
                .apiserver
                .verify_kubelet_serving_certs
        };
        assert!(verified(&example_at("v1.37.2", "")));
        assert!(verified(&example_at("v1.12.3", "")));
        for version in ["v1.12.3", "v1.37.2"] {
            let yaml = example_at(version, "  verifyKubeletServingCerts: false\n");
            assert!(!verified(&yaml));
            let warned = warnings_about(&yaml, "apiserver.verifyKubeletServingCerts");
            assert_eq!(warned.len(), 1, "{version}: {warned:?}");
            assert!(warned[0].0.contains("not verified"), "{warned:?}");
            assert_eq!(warned[0].1, line_of(&yaml, "verifyKubeletServingCerts"));
        }
    }

    #[test]
    fn extra_args_cipher_suites_are_checked_for_strength_names_and_key_fit() {
        let arg = "profiling: \"false\"";
        let with_suites = |suites: &str| example_with(arg, &format!("tls-cipher-suites: {suites}"));
        let field = "apiserver.extraArgs.tls-cipher-suites";
        let weak = with_suites(
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        );
        let warned = warnings_about(&weak, field);
        assert!(
            warned.iter().any(|(m, _)| m.contains("weakens")
                && m.contains("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA is allowed")),
            "{warned:?}"
        );
        let rsa_kex =
            with_suites("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_GCM_SHA256");
        assert!(
            warnings_about(&rsa_kex, field)
                .iter()
                .any(|(m, _)| m.contains("weakens"))
        );
        let strong = crate::versions::strong_tls_cipher_suites(NEWEST_MINOR).join(",");
        assert!(warnings_about(&with_suites(&strong), field).is_empty());
        let tls13 = with_suites("TLS_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
        assert!(warnings_about(&tls13, field).is_empty());

        // Before 1.23 the long ChaCha20 names stop the apiserver from starting.
        let long = with_suites("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256");
        assert!(run(&long, ValidateOptions::default()).is_ok());
        rejects_yaml(
            &long.replace("v1.37.2", "v1.22.17"),
            &[
                "does not know TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            ],
        );
        let short =
            with_suites("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305").replace("v1.37.2", "v1.22.17");
        assert!(run(&short, ValidateOptions::default()).is_ok());

        // Only ECDSA suites for an RSA serving key: TLS 1.2 clients cannot connect.
        let ecdsa_only = with_suites("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
        assert!(warnings_about(&ecdsa_only, field).is_empty());
        let rsa_key = ecdsa_only.replace("keyAlgorithm: ecdsa-p256", "keyAlgorithm: rsa-2048");
        let warned = warnings_about(&rsa_key, field);
        assert!(
            warned
                .iter()
                .any(|(m, _)| m.contains("fits the serving certificate's RSA key")),
            "{warned:?}"
        );
        assert_eq!(warned[0].1, line_of(&rsa_key, "tls-cipher-suites"));
    }
}
