//! `etcd:`: the members the apiserver talks to and whose CA they trust: an external
//! cluster at the endpoints cluster.yaml lists, or one stacked member per master.

use url::Url;

use super::Checker;
use crate::config::{EtcdCaMode, EtcdMode, RawBinaries, RawEtcd, Spanned, Text};
use crate::model::{Etcd, EtcdCa, Master, StackedEtcd};
use crate::values::{DnsName, Host, KubeVersion};
use crate::versions::etcd::{CLIENT_PORT, paired_minor};

pub(super) fn check_etcd(
    c: &mut Checker<'_>,
    raw: &Spanned<RawEtcd>,
    masters: Option<&[Master]>,
    binaries: &RawBinaries,
    version: Option<&KubeVersion>,
) -> Option<Etcd> {
    let mode = raw
        .value
        .mode
        .as_ref()
        .map_or(EtcdMode::External, |m| m.value);
    match mode {
        EtcdMode::External => {
            for (field, value) in shipped_etcd_binaries(binaries) {
                c.error(
                    value.referenced,
                    field,
                    "an etcd binary to ship, but etcd.mode is external: the bundles run no \
                     etcd member"
                        .into(),
                    &format!(
                        "set `etcd.mode: stacked` to run one member per master, or remove {field}"
                    ),
                );
            }
            let endpoints = check_endpoints(c, raw);
            let ca = check_etcd_ca(c, &raw.value, raw.referenced);
            Some(Etcd {
                endpoints: endpoints?,
                ca: ca?,
                stacked: None,
            })
        }
        EtcdMode::Stacked => check_stacked(c, raw, masters, binaries, version),
    }
}

/// The shipped etcd binaries cluster.yaml names, with their fields.
fn shipped_etcd_binaries(binaries: &RawBinaries) -> Vec<(&'static str, &Text)> {
    [
        ("binaries.etcd", binaries.etcd.as_ref()),
        ("binaries.etcdctl", binaries.etcdctl.as_ref()),
    ]
    .into_iter()
    .filter_map(|(field, value)| Some((field, value?)))
    .collect()
}

/// One member per master: the endpoints are the masters' own, the CA kube-bundle's (it
/// issues every member's server and peer certificate), separate unless told otherwise.
fn check_stacked(
    c: &mut Checker<'_>,
    raw: &Spanned<RawEtcd>,
    masters: Option<&[Master]>,
    binaries: &RawBinaries,
    version: Option<&KubeVersion>,
) -> Option<Etcd> {
    let mut ok = true;
    if let Some(endpoints) = &raw.value.endpoints {
        c.error(
            endpoints.referenced,
            "etcd.endpoints",
            "endpoints are given but etcd.mode is stacked: the members are the masters, \
             reached at https://<master ip>:2379"
                .into(),
            "remove etcd.endpoints (the apiservers use every master's member), or set \
             `mode: external` to use the etcd cluster they list",
        );
        ok = false;
    }
    let ca = match (&raw.value.ca, &raw.value.external) {
        (Some(mode), _) if mode.value == EtcdCaMode::External => {
            stacked_needs_own_ca(c, mode.referenced, "etcd.ca");
            None
        }
        (_, Some(files)) => {
            stacked_needs_own_ca(c, files.ca.referenced, "etcd.external");
            None
        }
        (Some(mode), None) if mode.value == EtcdCaMode::Cluster => {
            c.warn(
                mode.referenced,
                "etcd.ca",
                "with `ca: cluster` the stacked members trust every client certificate the \
                 cluster CA signs (admin kubeconfigs, `kube-bundle kubeconfig user`): each can \
                 read and write etcd directly, past RBAC"
                    .into(),
                "use `ca: separate` (the default with stacked etcd), as kubeadm does",
            );
            Some(EtcdCa::Cluster)
        }
        _ => Some(EtcdCa::Separate),
    };
    let binary = binaries
        .etcd
        .as_ref()
        .and_then(|value| c.input_file("binaries.etcd", value));
    let etcdctl_binary = binaries
        .etcdctl
        .as_ref()
        .and_then(|value| c.input_file("binaries.etcdctl", value));
    // The masters' and the version's own errors are already recorded; an IP address and a
    // port always make a URL.
    let endpoints = masters?
        .iter()
        .map(|master| Url::parse(&Host::Ip(master.ip).https_url(CLIENT_PORT)))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let stacked = StackedEtcd {
        minor: paired_minor(version?.minor()),
        binary,
        etcdctl_binary,
    };
    Some(Etcd {
        endpoints,
        ca: ca?,
        stacked: Some(stacked),
    })
    .filter(|_| ok)
}

fn stacked_needs_own_ca(c: &mut Checker<'_>, at: serde_saphyr::Location, field: &str) {
    c.error(
        at,
        field,
        "stacked etcd needs kube-bundle's own etcd CA: it issues every member's server and \
         peer certificate, and cannot with a CA whose key it does not hold"
            .into(),
        "remove `ca: external` and `external:` (stacked etcd defaults to `ca: separate`), \
         or set `mode: external` to keep using your own etcd",
    );
}

/// An external etcd's endpoints: required, https, each listed once.
fn check_endpoints(c: &mut Checker<'_>, raw: &Spanned<RawEtcd>) -> Option<Vec<Url>> {
    let help = "write each endpoint as https://HOST:PORT, e.g. https://172.27.128.150:2379";
    let Some(listed) = &raw.value.endpoints else {
        c.error(
            raw.referenced,
            "etcd.endpoints",
            "an external etcd needs its members' client URLs".into(),
            "list them as `endpoints: [https://HOST:2379, …]`, or set `mode: stacked` to run \
             one etcd member per master",
        );
        return None;
    };
    if listed.value.is_empty() {
        c.error(
            listed.referenced,
            "etcd.endpoints",
            "the list is empty".into(),
            help,
        );
        return None;
    }
    let mut endpoints = Vec::new();
    let mut ok = true;
    for (index, value) in listed.value.iter().enumerate() {
        let field = format!("etcd.endpoints[{index}]");
        let url = c.parse(&field, value, "an https URL", help, etcd_url);
        match url {
            Some(url) if endpoints.contains(&url) => {
                c.error(
                    value.referenced,
                    &field,
                    format!("{url} is listed twice"),
                    "list each etcd member once",
                );
                ok = false;
            }
            Some(url) => endpoints.push(url),
            None => ok = false,
        }
    }
    if ok && endpoints.len() % 2 == 0 {
        c.warn(
            listed.referenced,
            "etcd.endpoints",
            format!(
                "{} etcd members: an even \
            number tolerates no more failures than one fewer",
                endpoints.len()
            ),
            "run an odd number of etcd members",
        );
    }
    Some(endpoints).filter(|_| ok)
}
/// An etcd member's client URL: https, a host, nothing else.
fn etcd_url(text: &str) -> Result<Url, String> {
    // The URL parser silently drops tabs and newlines; refuse them first.
    if let Some(bad) = text.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("it contains '{}'", bad.escape_default()));
    }
    let url = Url::parse(text).map_err(|err| err.to_string())?;
    match url.host() {
        Some(url::Host::Domain(name)) => {
            DnsName::parse(name, false).map_err(|why| format!("host '{name}': {why}"))?;
        }
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) | None => {}
    }
    if url.scheme() != "https" {
        return Err(format!(
            "the scheme is '{}'; the apiserver talks to etcd over TLS",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err("it has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it carries credentials".into());
    }
    if url.path() != "/" && !url.path().is_empty()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err("it has a path, query or fragment".into());
    }
    Ok(url)
}

/// Whose CA etcd trusts: the cluster's, a separate one kube-bundle issues, or the user's
/// own, whose client files must then be given.
fn check_etcd_ca(
    c: &mut Checker<'_>,
    raw: &RawEtcd,
    section: serde_saphyr::Location,
) -> Option<EtcdCa> {
    let mode = raw.ca.as_ref().map_or(EtcdCaMode::Cluster, |m| m.value);
    match (mode, &raw.external) {
        (EtcdCaMode::Cluster, None) => Some(EtcdCa::Cluster),
        (EtcdCaMode::Separate, None) => Some(EtcdCa::Separate),
        (EtcdCaMode::External, Some(files)) => {
            let ca = c.input_file("etcd.external.ca", &files.ca);
            let cert = c.input_file("etcd.external.cert", &files.cert);
            let key = c.input_file("etcd.external.key", &files.key);
            match (ca, cert, key) {
                (Some(ca), Some(cert), Some(key)) => Some(EtcdCa::External { ca, cert, key }),
                _ => None,
            }
        }
        (EtcdCaMode::External, None) => {
            let at = raw.ca.as_ref().map_or(section, |m| m.referenced);
            c.error(
                at,
                "etcd.external",
                "`ca: external` needs the client credentials".into(),
                "add `external: { ca: etcd-ca.pem, cert: client.pem, key: client-key.pem }`",
            );
            None
        }
        (_, Some(files)) => {
            c.error(files.ca.referenced, "etcd.external", "client files are given but `ca` is not `external`".into(),
                "set `ca: external`, or remove `external:` to let kube-bundle issue the etcd client cert");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use std::path::Path;

    use crate::error::Error;
    use crate::model::EtcdCa;
    use crate::source::SourceFile;
    use crate::validate::ValidateOptions;

    /// The example with its whole `etcd:` section replaced by `section`, and `binaries`
    /// (lines under `binaries:`) added.
    fn with_etcd(section: &str, binaries: &str) -> String {
        let mut lines = Vec::new();
        let mut in_etcd = false;
        for line in EXAMPLE_CLUSTER_YAML.lines() {
            if line == "etcd:" {
                in_etcd = true;
                lines.push(section);
                continue;
            }
            // The section ends at the next top-level key.
            if in_etcd && line.starts_with(|c: char| c.is_ascii_alphabetic()) {
                in_etcd = false;
            }
            if !in_etcd {
                lines.push(line);
            }
        }
        assert!(lines.contains(&section), "the example has no etcd section");
        let yaml = lines.join("\n") + "\n";
        yaml.replacen("binaries:\n", &format!("binaries:\n{binaries}"), 1)
    }

    /// Every error `yaml` gets, rendered as the user reads it: file:line:column, the
    /// snippet, the help line.
    fn rendered_errors(yaml: &str) -> Vec<String> {
        let source = SourceFile::new(Path::new("cluster.yaml"), yaml.to_owned());
        let raw = crate::config::parse(&source).expect("the shape is right");
        match crate::validate::validate(raw, &source, ValidateOptions::default()) {
            Err(Error::InvalidConfig(reports)) => reports
                .iter()
                .map(|report| crate::diagnostics::render(report.as_ref()))
                .collect(),
            other => panic!("not refused: {other:?}"),
        }
    }

    /// The 1-based number of the line of `yaml` that starts with `start`.
    fn line_of(yaml: &str, start: &str) -> usize {
        1 + yaml
            .lines()
            .position(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("no line starts with {start:?}"))
    }

    #[test]
    fn etcd_endpoints_are_https_urls() {
        let endpoint = "- https://10.20.0.11:2379";
        rejects(
            endpoint,
            "- http://10.20.0.11:2379",
            &["etcd.endpoints[0]", "scheme is 'http'"],
        );
        rejects(
            endpoint,
            "- 10.20.0.11:2379",
            &["etcd.endpoints[0]", "not an https URL"],
        );
        rejects(endpoint, "- https://10.20.0.11:2379/v3", &["path"]);
        rejects(
            endpoint,
            "- https://10.20.0.12:2379",
            &["etcd.endpoints[1]", "listed twice"],
        );
    }

    #[test]
    fn stacked_members_are_the_masters_with_etcds_own_ca() {
        let yaml = with_etcd("etcd:\n  mode: stacked", "");
        let validated = run(&yaml, ValidateOptions::default()).expect("valid");
        let etcd = &validated.cluster.etcd;
        let endpoints: Vec<&str> = etcd.endpoints.iter().map(url::Url::as_str).collect();
        assert_eq!(
            endpoints,
            [
                "https://10.20.0.11:2379/",
                "https://10.20.0.12:2379/",
                "https://10.20.0.13:2379/"
            ]
        );
        assert_eq!(etcd.ca, EtcdCa::Separate, "stacked defaults to its own CA");
        let stacked = etcd.stacked.as_ref().expect("stacked");
        assert_eq!(stacked.minor, 7, "etcd 3.7 for v1.37");
        assert!(stacked.binary.is_none() && stacked.etcdctl_binary.is_none());
        assert!(validated.warnings.is_empty(), "{:?}", validated.warnings);
        let external = run(EXAMPLE_CLUSTER_YAML, ValidateOptions::default()).unwrap();
        assert!(
            external.cluster.etcd.stacked.is_none(),
            "external by default"
        );
    }

    #[test]
    fn stacked_refuses_endpoints_and_a_ca_it_does_not_hold() {
        let yaml = with_etcd(
            "etcd:\n  mode: stacked\n  endpoints: [\"https://10.9.0.1:2379\"]",
            "",
        );
        // At the list, after `  endpoints: `.
        let at = format!("cluster.yaml:{}:14", line_of(&yaml, "  endpoints: ["));
        let errors = rendered_errors(&yaml);
        assert!(
            errors.iter().any(|e| e.contains(
                "etcd.endpoints: endpoints are given but \
                 etcd.mode is stacked"
            ) && e.contains(&at)
                && e.contains("help: remove etcd.endpoints")),
            "{errors:#?}"
        );
        rejects_yaml(
            &with_etcd("etcd:\n  mode: stacked\n  ca: external", ""),
            &["etcd.ca", "needs kube-bundle's own etcd CA"],
        );
        rejects_yaml(
            &with_etcd(
                "etcd:\n  mode: stacked\n  external: { ca: cluster.yaml, cert: cluster.yaml, \
                 key: cluster.yaml }",
                "",
            ),
            &["etcd.external", "needs kube-bundle's own etcd CA"],
        );
    }

    #[test]
    fn stacked_on_the_cluster_ca_is_allowed_with_a_warning() {
        let yaml = with_etcd("etcd:\n  mode: stacked\n  ca: cluster", "");
        let validated = run(&yaml, ValidateOptions::default()).expect("valid");
        assert_eq!(validated.cluster.etcd.ca, EtcdCa::Cluster);
        let warnings = warnings(&yaml);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("etcd.ca") && w.contains("past RBAC")),
            "{warnings:?}"
        );
    }

    #[test]
    fn external_etcd_needs_endpoints_and_ships_no_etcd() {
        let yaml = with_etcd("etcd:\n  ca: separate", "");
        // At the section's content.
        let at = format!("cluster.yaml:{}:", line_of(&yaml, "  ca: separate"));
        let errors = rendered_errors(&yaml);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("etcd.endpoints: an external etcd needs")
                    && e.contains(&at)
                    && e.contains("or set `mode: stacked`")),
            "{errors:#?}"
        );
        rejects_yaml(
            &with_etcd(
                "etcd:\n  mode: external\n  endpoints: [\"https://10.9.0.1:2379\"]",
                "  etcdctl: cluster.yaml\n",
            ),
            &["binaries.etcdctl", "etcd.mode is external"],
        );
    }

    #[test]
    fn shipped_etcd_binaries_must_exist() {
        rejects_yaml(
            &with_etcd("etcd:\n  mode: stacked", "  etcd: no/such/etcd\n"),
            &["binaries.etcd", "does not exist"],
        );
    }
}
