//! `etcd:`: the members the apiserver talks to and whose CA they trust.

use url::Url;

use super::Checker;
use crate::config::{EtcdCaMode, RawEtcd};
use crate::model::{Etcd, EtcdCa};
use crate::values::DnsName;

pub(super) fn check_etcd(c: &mut Checker<'_>, raw: &RawEtcd) -> Option<Etcd> {
    let help = "write each endpoint as https://HOST:PORT, e.g. https://172.27.128.150:2379";
    if raw.endpoints.value.is_empty() {
        c.error(
            raw.endpoints.referenced,
            "etcd.endpoints",
            "the list is empty".into(),
            help,
        );
        return None;
    }
    let mut endpoints = Vec::new();
    let mut ok = true;
    for (index, value) in raw.endpoints.value.iter().enumerate() {
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
            raw.endpoints.referenced,
            "etcd.endpoints",
            format!(
                "{} etcd members: an even \
            number tolerates no more failures than one fewer",
                endpoints.len()
            ),
            "run an odd number of etcd members",
        );
    }
    let ca = check_etcd_ca(c, raw);
    Some(Etcd { endpoints, ca: ca? }).filter(|_| ok)
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
fn check_etcd_ca(c: &mut Checker<'_>, raw: &RawEtcd) -> Option<EtcdCa> {
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
            let at = raw
                .ca
                .as_ref()
                .map_or(raw.endpoints.referenced, |m| m.referenced);
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
}
