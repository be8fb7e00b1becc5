//! The HA front every node reaches the apiservers through, and the keepalived VIP that
//! carries controlPlaneEndpoint between the masters.

use std::net::IpAddr;

use crate::config::Spanned;
use serde_saphyr::Location;

use super::Checker;
use crate::config::{self, RawHaFront, RawKeepalived};
use crate::model::{FrontKind, HaFront, Keepalived, Master};
use crate::values::{AbsPath, Endpoint, Host, SECURE_PORT};

/// `Some(None)` when the front is off, `None` when its settings are invalid.
pub(super) fn check_ha_front(c: &mut Checker<'_>, raw: &RawHaFront) -> Option<Option<HaFront>> {
    let kind = match raw.kind.unwrap_or(config::FrontKind::Nginx) {
        config::FrontKind::None => return Some(None),
        config::FrontKind::Nginx => FrontKind::Nginx,
        config::FrontKind::Haproxy => FrontKind::Haproxy,
    };
    let listen = match &raw.listen {
        None => Some((IpAddr::from([127, 0, 0, 1]), 8443)),
        Some(value) => c.parse(
            "haFront.listen",
            value,
            "an IP:port to listen on",
            "write a local address and port, e.g. 127.0.0.1:8443 (the seed's kube-nginx)",
            |text| {
                let endpoint = Endpoint::parse(text)?;
                match (endpoint.host, endpoint.port) {
                    (Host::Ip(ip), Some(port)) if port != SECURE_PORT => Ok((ip, port)),
                    (Host::Ip(_), Some(_)) => {
                        Err(format!("{SECURE_PORT} is the apiserver's own port"))
                    }
                    (Host::Ip(_), None) => Err("it has no port".into()),
                    (Host::Dns(_), _) => {
                        Err("the proxy listens on an IP address, not a name".into())
                    }
                }
            },
        ),
    };
    let default_binary = if kind == FrontKind::Nginx {
        "/usr/sbin/nginx"
    } else {
        "/usr/sbin/haproxy"
    };
    let binary = c.path("haFront.binary", raw.binary.as_ref(), default_binary);
    let mut modules = Vec::new();
    let mut ok = true;
    match &raw.nginx_modules {
        // Debian and Ubuntu build the stream module as a dynamic module.
        None if kind == FrontKind::Nginx => {
            modules.extend(AbsPath::parse("/usr/lib/nginx/modules/ngx_stream_module.so").ok())
        }
        None => {}
        Some(values) => {
            for (index, value) in values.iter().enumerate() {
                match c.path(&format!("haFront.nginxModules[{index}]"), Some(value), "") {
                    Some(path) => modules.push(path),
                    None => ok = false,
                }
            }
        }
    }
    let (listen_ip, listen_port) = listen?;
    Some(HaFront {
        kind,
        listen_ip,
        listen_port,
        binary: binary?,
        nginx_modules: modules,
    })
    .filter(|_| ok)
    .map(Some)
}

/// The VIP is controlPlaneEndpoint's address, on the masters' own subnet, served by
/// whichever master holds it: its apiserver then binds every address.
pub(super) fn check_keepalived(
    c: &mut Checker<'_>,
    raw: &Spanned<RawKeepalived>,
    endpoint: Option<&Endpoint>,
    masters: &[Master],
) -> Option<Keepalived> {
    let at = raw.referenced;
    let vip = keepalived_vip(c, at, endpoint)?;
    let interface = c.parse(
        "keepalived.interface",
        &raw.value.interface,
        "a network interface name",
        "write the masters' interface, e.g. eth0 or ens192",
        interface_name,
    );
    let router_id = bounded(
        c,
        raw.value.virtual_router_id.as_ref(),
        "keepalived.virtualRouterId",
        (51, 255),
        "pick a VRRP router id no other VRRP instance on that network uses",
    );
    let (default_prefix, max_prefix) = if vip.is_ipv4() { (24, 32) } else { (64, 128) };
    let prefix = bounded(
        c,
        raw.value.prefix_length.as_ref(),
        "keepalived.prefixLength",
        (default_prefix, max_prefix),
        "write the masters' subnet prefix length, e.g. 24",
    );
    let (interface, router_id, prefix) = (interface?, router_id?, prefix?);
    let prefix_length = u8::try_from(prefix).ok()?;
    check_masters_reach_vip(c, at, vip, prefix_length, masters)?;
    Some(Keepalived {
        vip,
        prefix_length,
        interface,
        virtual_router_id: u8::try_from(router_id).ok()?,
    })
}

/// controlPlaneEndpoint's address, if it can be a VIP: an IP on the apiservers' own port.
fn keepalived_vip(
    c: &mut Checker<'_>,
    at: Location,
    endpoint: Option<&Endpoint>,
) -> Option<IpAddr> {
    match endpoint {
        Some(Endpoint {
            host: Host::Ip(ip),
            port,
        }) if port.is_none_or(|p| p == SECURE_PORT) => Some(*ip),
        Some(Endpoint {
            host: Host::Ip(_), ..
        }) => {
            c.error(
                at,
                "keepalived",
                format!("the VIP serves the apiservers' own port {SECURE_PORT}, and controlPlaneEndpoint names another"),
                &format!("write controlPlaneEndpoint as the VIP, e.g. 10.0.0.100:{SECURE_PORT}"),
            );
            None
        }
        _ => {
            c.error(
                at,
                "keepalived",
                "keepalived needs controlPlaneEndpoint to be an IP address: the VIP it moves between the masters".into(),
                "write controlPlaneEndpoint as a free address on the masters' subnet, e.g. 10.0.0.100:6443",
            );
            None
        }
    }
}

/// A Linux interface name: it is written into keepalived.conf unquoted.
fn interface_name(text: &str) -> Result<String, String> {
    let ok = (1..=15).contains(&text.len())
        && text != "."
        && text != ".."
        && text
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch));
    ok.then(|| text.to_owned()).ok_or_else(|| {
        "Linux names interfaces with 1 to 15 letters, digits, '_', '.' or '-'".into()
    })
}

/// An optional number from 1 to `max`, `default` when absent.
fn bounded(
    c: &mut Checker<'_>,
    value: Option<&Spanned<u32>>,
    field: &str,
    (default, max): (u32, u32),
    help: &str,
) -> Option<u32> {
    let Some(value) = value else {
        return Some(default);
    };
    if (1..=max).contains(&value.value) {
        Some(value.value)
    } else {
        c.error(
            value.referenced,
            field,
            format!("{} is out of range 1-{max}", value.value),
            help,
        );
        None
    }
}

/// VRRP moves the VIP within one L2 segment, so every master must be on its subnet, and
/// none may already own it.
fn check_masters_reach_vip(
    c: &mut Checker<'_>,
    at: Location,
    vip: IpAddr,
    prefix_length: u8,
    masters: &[Master],
) -> Option<()> {
    let subnet = ipnet::IpNet::new(vip, prefix_length).ok()?;
    for master in masters {
        if master.ip == vip {
            c.error(
                at,
                "keepalived",
                format!("the VIP {vip} is master {}'s own address", master.name),
                "pick a free address for controlPlaneEndpoint",
            );
            return None;
        }
        if !subnet.contains(&master.ip) {
            c.error(
                at,
                "keepalived",
                format!(
                    "master {} ({}) is not on the VIP's subnet {}",
                    master.name,
                    master.ip,
                    subnet.trunc()
                ),
                "VRRP moves an address within one L2 segment: every master must be on the VIP's subnet (check keepalived.prefixLength)",
            );
            return None;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::validate::ValidateOptions;

    #[test]
    fn a_shipped_front_binary_must_exist_and_needs_a_front() {
        rejects(
            "  kubeApiserver: null",
            "  kubeApiserver: null\n  front: no-such-nginx",
            &["binaries.front", "does not exist"],
        );
    }

    #[test]
    fn keepalived_needs_an_ip_endpoint_on_the_masters_subnet() {
        let with = |endpoint: &str, keepalived: &str| {
            format!(
                "{}keepalived: {keepalived}\n",
                example_with(
                    "controlPlaneEndpoint: api.prod-eu1.example.com:6443",
                    &format!("controlPlaneEndpoint: {endpoint}")
                )
            )
        };
        let errors = |yaml: String| run(&yaml, ValidateOptions::default()).unwrap_err();
        let has = |errors: &[String], fragments: &[&str]| {
            assert!(
                errors
                    .iter()
                    .any(|e| fragments.iter().all(|f| e.contains(f))),
                "no error has {fragments:?}: {errors:#?}"
            );
        };
        has(
            &errors(with("api.example.com:6443", "{ interface: eth0 }")),
            &[
                "keepalived",
                "needs controlPlaneEndpoint to be an IP address",
            ],
        );
        has(
            &errors(with("10.20.0.100:8443", "{ interface: eth0 }")),
            &["keepalived", "6443"],
        );
        has(
            &errors(with("10.20.1.100:6443", "{ interface: eth0 }")),
            &["keepalived", "not on the VIP's subnet 10.20.1.0/24"],
        );
        has(
            &errors(with("10.20.0.11:6443", "{ interface: eth0 }")),
            &["keepalived", "master cp1's own address"],
        );
        has(
            &errors(with("10.20.0.100:6443", "{ interface: \"eth0; reboot\" }")),
            &["keepalived.interface", "1 to 15 letters"],
        );
        has(
            &errors(with(
                "10.20.0.100:6443",
                "{ interface: eth0, virtualRouterId: 256 }",
            )),
            &["keepalived.virtualRouterId", "out of range 1-255"],
        );
        // A /16 reaches 10.20.1.100 from the 10.20.0.x masters.
        let wide = with("10.20.1.100:6443", "{ interface: eth0, prefixLength: 16 }");
        let keepalived = run(&wide, ValidateOptions::default())
            .unwrap()
            .cluster
            .keepalived
            .unwrap();
        assert_eq!(
            (keepalived.prefix_length, keepalived.virtual_router_id),
            (16, 51)
        );
    }
}
