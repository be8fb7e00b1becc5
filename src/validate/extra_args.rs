//! `extraArgs` of every component (apiserver, controller manager, scheduler): flag names
//! and values checked for what reaches a unit file, against the component's version table
//! for the target release, and for values that turn a protection off.

use std::collections::BTreeMap;

use super::Checker;
use super::apiserver::is_strong_cipher_suite;
use crate::config::Text;
use crate::values::KubeVersion;
use crate::versions::Flag;

/// Which component's flags an `extraArgs` map holds.
pub(super) struct FlagTable {
    /// The cluster.yaml section: `apiserver`, `controllerManager`, `scheduler`.
    pub section: &'static str,
    /// The binary, as messages name it.
    pub binary: &'static str,
    /// The component as prose names it: "the apiserver".
    pub noun: &'static str,
    pub lookup: fn(&str) -> Option<&'static Flag>,
    /// Why extraArgs may not set a flag kube-bundle owns, if it owns it.
    pub owned: fn(&str) -> Option<&'static str>,
}

/// No flag is off limits.
fn owns_nothing(_: &str) -> Option<&'static str> {
    None
}

/// The controller manager signs CSRs with the signer kube-bundle issues for it: the files
/// are its, and the per-signer files (which the controller manager refuses beside the
/// generic pair) would bypass it.
fn controller_manager_owned(key: &str) -> Option<&'static str> {
    key.strip_prefix("cluster-signing-")
        .is_some_and(|rest| rest.ends_with("cert-file") || rest.ends_with("key-file"))
        .then_some(
            "the controller manager signs every CSR with kube-bundle's cluster-signer CA \
             (an intermediate under the cluster CA, trusted through the client-CA bundle), so \
             the root CA key never reaches a master; other signing files would bypass it",
        )
}

pub(super) const APISERVER: FlagTable = FlagTable {
    section: "apiserver",
    binary: "kube-apiserver",
    noun: "the apiserver",
    lookup: crate::versions::flag,
    owned: owns_nothing,
};

pub(super) const CONTROLLER_MANAGER: FlagTable = FlagTable {
    section: "controllerManager",
    binary: "kube-controller-manager",
    noun: "the controller manager",
    lookup: crate::versions::controller_manager::flag,
    owned: controller_manager_owned,
};

pub(super) const SCHEDULER: FlagTable = FlagTable {
    section: "scheduler",
    binary: "kube-scheduler",
    noun: "the scheduler",
    lookup: crate::versions::scheduler::flag,
    owned: owns_nothing,
};

pub(super) fn check_extra_args(
    c: &mut Checker<'_>,
    table: &FlagTable,
    raw: Option<&BTreeMap<String, Text>>,
    version: Option<&KubeVersion>,
) -> BTreeMap<String, String> {
    let mut args = BTreeMap::new();
    for (key, value) in raw.into_iter().flatten() {
        let field = format!("{}.extraArgs.{}", table.section, key.escape_debug());
        if key.starts_with('-') {
            c.error(
                value.referenced,
                &field,
                "flag names are written without leading dashes".into(),
                &format!("write `{}: …`", key.trim_start_matches('-').escape_debug()),
            );
            continue;
        }
        let valid_key = key.chars().next().is_some_and(|ch| ch.is_ascii_lowercase())
            && key
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
        if !valid_key {
            c.error(
                value.referenced,
                &field,
                format!("is not a {} flag name", table.binary),
                "flag names are lowercase letters, digits and '-', e.g. `event-ttl: 168h`",
            );
            continue;
        }
        if let Some(bad) = value.value.chars().find(|ch| !(' '..='~').contains(ch)) {
            c.error(
                value.referenced,
                &field,
                format!(
                    "the value contains '{}', which is not printable ASCII (control characters, \
                     bidi overrides and look-alikes hide what the flag says)",
                    bad.escape_default()
                ),
                "flag values are one line of printable ASCII text",
            );
            continue;
        }
        if value.value.len() > 4096 {
            c.error(
                value.referenced,
                &field,
                "the value is longer than 4096 characters".into(),
                "pass long settings through a file the flag points at",
            );
            continue;
        }
        if let Some(why) = (table.owned)(key) {
            c.error(
                value.referenced,
                &field,
                format!("--{key} is set by kube-bundle: {why}"),
                &format!("remove {field}"),
            );
            continue;
        }
        if let Some(version) = version {
            check_flag_against_version(c, table, &field, key, value, version);
        }
        if let Some(why) = weakens_security(key, &value.value) {
            c.warn(
                value.referenced,
                &field,
                format!("--{key}={} weakens {}: {why}", value.value, table.noun),
                "remove it unless you mean it (the CIS Kubernetes Benchmark's API-server items \
                 ask for the opposite)",
            );
        }
        args.insert(key.clone(), value.value.clone());
    }
    args
}

/// Why an extraArgs value turns off a protection the apiserver has by default or by
/// kube-bundle's choice, if it does.
fn weakens_security(key: &str, value: &str) -> Option<String> {
    let items = || value.split(',').map(str::trim);
    if key == "tls-cipher-suites" {
        return items()
            .filter(|suite| !suite.is_empty())
            .find(|suite| !is_strong_cipher_suite(suite))
            .map(|weak| {
                format!(
                    "{weak} is allowed, which lacks ECDHE key exchange or an AEAD cipher \
                     (AES-GCM, ChaCha20-Poly1305)"
                )
            });
    }
    let why = match key {
        "anonymous-auth" if value == "true" => Some("unauthenticated requests are served"),
        "authorization-mode" if items().any(|m| m == "AlwaysAllow") => {
            Some("AlwaysAllow authorizes every request")
        }
        "enable-admission-plugins" if items().any(|p| p == "AlwaysAdmit") => {
            Some("AlwaysAdmit admits every request")
        }
        "service-account-lookup" if value == "false" => {
            Some("tokens of deleted service accounts stay valid")
        }
        "tls-min-version" if matches!(value, "VersionTLS10" | "VersionTLS11") => {
            Some("TLS below 1.2 is broken")
        }
        "kubelet-certificate-authority" if value.is_empty() => {
            Some("kubelet serving certificates are not verified")
        }
        "profiling" if value == "true" => Some("profiling exposes program internals over HTTP"),
        _ => None,
    };
    why.map(str::to_owned)
}

/// A flag the target version rejects is an error naming its replacement; one the table
/// does not know is passed through with a warning.
fn check_flag_against_version(
    c: &mut Checker<'_>,
    table: &FlagTable,
    field: &str,
    key: &str,
    value: &Text,
    version: &KubeVersion,
) {
    let minor = version.minor();
    let Some(flag) = (table.lookup)(key) else {
        c.warn(
            value.referenced,
            field,
            format!(
                "--{key} is not in kube-bundle's version table; \
            it is passed through unchecked"
            ),
            "check the flag exists in this Kubernetes release",
        );
        return;
    };
    if !flag.accepted_in(minor) {
        let instead = flag
            .replacement
            .map(|r| format!("use `{r}` instead"))
            .unwrap_or_else(|| "remove it".into());
        c.error(
            value.referenced,
            field,
            format!("--{key} is not accepted by {version}: {}", flag.note),
            &instead,
        );
        return;
    }
    let plugins = key == "enable-admission-plugins"
        && value.value.split(',').any(|p| p.trim() == "Initializers");
    if plugins && !crate::versions::initializers_plugin_accepted(minor) {
        c.error(
            value.referenced,
            field,
            format!(
                "the Initializers admission plugin was removed in 1.14; \
            {version} refuses to start with it"
            ),
            "remove Initializers from the list",
        );
    }
    if key == "tls-cipher-suites" && minor < crate::versions::CHACHA20_SHA256_NAMES_FROM {
        let long_chacha =
            value.value.split(',').map(str::trim).find(|suite| {
                suite.starts_with("TLS_ECDHE_") && suite.ends_with("_POLY1305_SHA256")
            });
        if let Some(suite) = long_chacha {
            let short = suite.trim_end_matches("_SHA256");
            c.error(
                value.referenced,
                field,
                format!(
                    "{version} does not know {suite} and refuses to start: before 1.23 the suite \
                     is named {short}"
                ),
                &format!("write {short}"),
            );
        }
    }
    for gate in crate::versions::CHECKED_FEATURE_GATES {
        let gate_known = (gate.known_in)(minor);
        let gate = gate.name;
        if key == "feature-gates" && value.value.contains(gate) && !gate_known {
            c.error(
                value.referenced,
                field,
                format!(
                    "the {gate} feature gate does not exist in {version}, which refuses to \
                     start with it"
                ),
                &format!("remove {gate} from feature-gates"),
            );
        }
    }
}
