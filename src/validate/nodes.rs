//! The node lists: masters and clients, their names and addresses.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::config::Spanned;

use super::Checker;
use crate::config::{FrontKind, RawNode};
use crate::model::Master;
use crate::values::{DnsLabel, KubeVersion};

pub(super) fn check_masters(
    c: &mut Checker<'_>,
    masters: &Spanned<Vec<RawNode>>,
    taken: &mut TakenNames,
) -> Option<Vec<Master>> {
    if masters.value.is_empty() {
        c.error(
            masters.referenced,
            "masters",
            "the list is empty".into(),
            "list every control-plane node as `- { name: m1, ip: 10.0.0.11 }`",
        );
        return None;
    }
    let valid = check_nodes(c, "masters", &masters.value, taken)?;
    if valid.len() > 1 && valid.len() % 2 == 0 {
        c.warn(
            masters.referenced,
            "masters",
            format!(
                "{} masters: an even number adds no fault \
            tolerance over {} when etcd runs beside them",
                valid.len(),
                valid.len() - 1
            ),
            "run an odd number of control-plane nodes (3 or 5)",
        );
    }
    if valid.len() == 1 {
        c.warn(
            masters.referenced,
            "masters",
            "one master is not highly available".into(),
            "run three control-plane nodes for HA",
        );
    }
    Some(valid)
}

/// From 1.37 the apiserver refuses to advertise a loopback, link-local or unspecified
/// address (its lease endpoint reconciler validates the IP at start-up), and a master's
/// address is its advertise address.
pub(super) fn check_advertise_addresses(
    c: &mut Checker<'_>,
    version: &KubeVersion,
    raw: &[RawNode],
    masters: &[Master],
) {
    if version.minor() < crate::versions::ADVERTISE_MUST_BE_ROUTABLE_FROM {
        return;
    }
    for (index, (node, master)) in raw.iter().zip(masters).enumerate() {
        let link_local = match master.ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
        };
        if master.ip.is_loopback() || link_local {
            c.error(
                node.ip.referenced,
                &format!("masters[{index}].ip"),
                format!(
                    "{} is a loopback or link-local address, which kube-apiserver {version} \
                     refuses as its advertise address",
                    master.ip
                ),
                "use the master's routable address (for a test bed on one host, give each \
                 master its own network namespace and address)",
            );
        }
    }
}

/// Node names and addresses already used: masters and clients share one namespace,
/// since their bundles share one directory.
#[derive(Default)]
pub(super) struct TakenNames {
    names: BTreeSet<DnsLabel>,
    ips: BTreeSet<IpAddr>,
}

/// Clients (non-master nodes with a front-only bundle) need a front to install.
pub(super) fn check_clients(
    c: &mut Checker<'_>,
    clients: Option<&Spanned<Vec<RawNode>>>,
    front_kind: Option<FrontKind>,
    taken: &mut TakenNames,
) -> Option<Vec<Master>> {
    let Some(clients) = clients else {
        return Some(Vec::new());
    };
    if front_kind == Some(FrontKind::None) && !clients.value.is_empty() {
        c.error(
            clients.referenced,
            "clients",
            "client bundles carry only the HA front, and haFront.kind is none".into(),
            "set haFront.kind to nginx or haproxy, or remove the clients list",
        );
        return None;
    }
    check_nodes(c, "clients", &clients.value, taken)
}

/// Names and addresses of a node list: each valid, none used twice.
fn check_nodes(
    c: &mut Checker<'_>,
    list: &str,
    nodes: &[RawNode],
    taken: &mut TakenNames,
) -> Option<Vec<Master>> {
    let mut valid = Vec::new();
    let mut ok = true;
    for (index, node) in nodes.iter().enumerate() {
        let name = c.parse(
            &format!("{list}[{index}].name"),
            &node.name,
            "a DNS label",
            "node names are RFC 1123 labels: lowercase letters, digits and '-', at most 63",
            DnsLabel::parse,
        );
        let ip = c.parse(
            &format!("{list}[{index}].ip"),
            &node.ip,
            "an IP address",
            "write the node's address, e.g. 172.27.128.150 or fd00::10",
            |text| {
                let ip: IpAddr = text.parse().map_err(|_| "it does not parse".to_owned())?;
                if ip.is_unspecified() || ip.is_multicast() {
                    return Err(
                        "an unspecified or multicast address cannot be a node's address".into(),
                    );
                }
                if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
                    return Err("the broadcast address cannot be a node's address".into());
                }
                Ok(ip)
            },
        );
        if let Some(name) = &name
            && !taken.names.insert(name.clone())
        {
            c.error(
                node.name.referenced,
                &format!("{list}[{index}].name"),
                format!("\"{name}\" is listed twice"),
                "give every master and client its own name",
            );
            ok = false;
        }
        if let Some(ip) = ip {
            if !taken.ips.insert(ip) {
                c.error(
                    node.ip.referenced,
                    &format!("{list}[{index}].ip"),
                    format!("{ip} is listed twice"),
                    "give every master and client its own address",
                );
                ok = false;
            }
            if ip.is_loopback() {
                c.warn(
                    node.ip.referenced,
                    &format!("{list}[{index}].ip"),
                    format!("{ip} is a loopback address; other nodes cannot reach it"),
                    "fine for a test bed on one host; use the node's routable address otherwise",
                );
            }
        }
        match (name, ip) {
            (Some(name), Some(ip)) => valid.push(Master { name, ip }),
            _ => ok = false,
        }
    }
    ok.then_some(valid)
}
#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::validate::ValidateOptions;

    #[test]
    fn clients_share_the_masters_namespace_and_need_a_front() {
        let with_clients = |clients: &str| format!("clients:\n{clients}network:");
        rejects(
            "network:",
            &with_clients("  - { name: cp2, ip: 10.20.0.50 }\n"),
            &["clients[0].name", "\"cp2\" is listed twice"],
        );
        rejects(
            "network:",
            &with_clients("  - { name: w1, ip: 10.20.0.11 }\n"),
            &["clients[0].ip", "10.20.0.11 is listed twice"],
        );
        rejects(
            "network:",
            &with_clients("  - { name: W1, ip: 10.20.0.50 }\n"),
            &["clients[0].name", "uppercase"],
        );
        let no_front = format!(
            "{}haFront: {{ kind: none }}\n",
            example_with(
                "network:",
                &with_clients("  - { name: w1, ip: 10.20.0.50 }\n")
            )
        );
        let errors = run(&no_front, ValidateOptions::default()).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("clients") && e.contains("haFront.kind is none")),
            "{errors:#?}"
        );
        let accepted = example_with(
            "network:",
            &with_clients("  - { name: w1, ip: 10.20.0.50 }\n"),
        );
        assert!(run(&accepted, ValidateOptions::default()).is_ok());
    }

    #[test]
    fn node_names_must_be_dns_labels() {
        rejects(
            "name: cp1,",
            "name: CP1,",
            &["masters[0].name", "uppercase"],
        );
        rejects(
            "name: cp1,",
            "name: cp_1,",
            &["masters[0].name", "'_' is not allowed"],
        );
        rejects(
            "name: cp1,",
            "name: -cp1,",
            &["masters[0].name", "start and end"],
        );
        rejects(
            "name: cp1,",
            "name: cp1.example,",
            &["masters[0].name", "'.' is not allowed"],
        );
        let long = format!("name: {},", "a".repeat(64));
        rejects("name: cp1,", &long, &["masters[0].name", "at most 63"]);
    }

    #[test]
    fn duplicate_names_and_ips_are_refused() {
        rejects(
            "name: cp2,",
            "name: cp1,",
            &["masters[1].name", "listed twice"],
        );
        rejects(
            "ip: 10.20.0.12",
            "ip: 10.20.0.11",
            &["masters[1].ip", "listed twice"],
        );
    }

    #[test]
    fn ips_must_parse_and_be_unicast() {
        rejects(
            "ip: 10.20.0.11",
            "ip: 10.20.0.311",
            &["masters[0].ip", "not an IP address"],
        );
        rejects(
            "ip: 10.20.0.11",
            "ip: 0.0.0.0",
            &["masters[0].ip", "unspecified"],
        );
        rejects(
            "ip: 10.20.0.11",
            "ip: 224.0.0.1",
            &["masters[0].ip", "multicast"],
        );
    }

    #[test]
    fn from_1_37_a_master_address_must_be_routable() {
        let master = "{ name: cp1, ip: 10.20.0.11 }";
        rejects(
            master,
            "{ name: cp1, ip: 127.0.0.11 }",
            &[
                "127.0.0.11 is a loopback or link-local address",
                "v1.37.2 refuses",
            ],
        );
        rejects(master, "{ name: cp1, ip: 169.254.0.11 }", &["link-local"]);
        let yaml =
            example_with(master, "{ name: cp1, ip: 127.0.0.11 }").replace("v1.37.2", "v1.36.1");
        assert!(
            run(&yaml, ValidateOptions::default()).is_ok(),
            "1.36 accepts a loopback master (with a warning)"
        );
    }
}
