//! The node-local proxy (nginx or haproxy) every master and client runs in front of the
//! apiservers, and keepalived, which moves the virtual IP between masters.

use std::net::{IpAddr, SocketAddr};

use askama::Template;

use super::{node_api_url, render};
use crate::error::Error;
use crate::model::{Cluster, FrontKind, HaFront};
use crate::plan::NodePlan;
use crate::plan::layout::FrontPaths;
use crate::values::SECURE_PORT;

#[derive(Template)]
#[template(path = "front/kube-nginx.conf", escape = "none")]
struct NginxConfig<'a> {
    cluster: &'a str,
    listen: String,
    prefix: String,
    modules: Vec<String>,
    masters: Vec<String>,
}

#[derive(Template)]
#[template(path = "front/kube-haproxy.cfg", escape = "none")]
struct HaproxyConfig<'a> {
    cluster: &'a str,
    listen: String,
    masters: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "systemd/kube-nginx.service", escape = "none")]
struct NginxUnit<'a> {
    cluster: &'a str,
    node: &'a str,
    listen: String,
    prefix: String,
    binary: String,
    config: String,
}

#[derive(Template)]
#[template(path = "keepalived/keepalived.conf", escape = "none")]
struct KeepalivedConfig<'a> {
    cluster: &'a str,
    node: &'a str,
    node_ip: String,
    vip: String,
    prefix_length: u8,
    interface: &'a str,
    virtual_router_id: u8,
    priority: usize,
    peers: Vec<String>,
    ca_cert: String,
    healthz_url: String,
}

#[derive(Template)]
#[template(path = "systemd/kube-haproxy.service", escape = "none")]
struct HaproxyUnit<'a> {
    cluster: &'a str,
    node: &'a str,
    listen: String,
    binary: String,
    config: String,
}

/// keepalived.conf for one master: the masters' order in cluster.yaml is their priority.
pub fn keepalived_config(cluster: &Cluster, node: &NodePlan) -> Result<String, Error> {
    let keepalived = cluster
        .keepalived
        .as_ref()
        .ok_or_else(|| Error::Internal("keepalived planned but not configured".into()))?;
    let index = cluster
        .masters
        .iter()
        .position(|m| m.name.as_str() == node.name)
        .ok_or_else(|| Error::Internal(format!("{} is not a master", node.name)))?;
    render(&KeepalivedConfig {
        cluster: cluster.name.as_str(),
        node: &node.name,
        node_ip: node.ip.to_string(),
        vip: keepalived.vip.to_string(),
        prefix_length: keepalived.prefix_length,
        interface: &keepalived.interface,
        virtual_router_id: keepalived.virtual_router_id,
        priority: 200usize.saturating_sub(index).max(101),
        peers: cluster
            .masters
            .iter()
            .filter(|m| m.ip != node.ip)
            .map(|m| m.ip.to_string())
            .collect(),
        ca_cert: node.layout.ca_cert.clone(),
        healthz_url: format!("{}/healthz", node_api_url(node.ip)),
    })
}

fn no_front() -> Error {
    Error::Internal("a front file was planned without haFront".into())
}

/// The front's settings from cluster.yaml and its paths on `node`.
fn front<'a>(
    cluster: &'a Cluster,
    node: &'a NodePlan,
) -> Result<(&'a HaFront, &'a FrontPaths), Error> {
    let front = cluster.ha_front.as_ref().ok_or_else(no_front)?;
    let paths = node.layout.front.as_ref().ok_or_else(no_front)?;
    Ok((front, paths))
}

/// The node-local proxy's config: every master's secure port as an upstream.
pub fn front_config(cluster: &Cluster, node: &NodePlan) -> Result<String, Error> {
    let (front, paths) = front(cluster, node)?;
    let upstream = |ip: IpAddr| SocketAddr::new(ip, SECURE_PORT).to_string();
    match front.kind {
        FrontKind::Haproxy => render(&HaproxyConfig {
            cluster: cluster.name.as_str(),
            listen: front.listen(),
            masters: cluster
                .masters
                .iter()
                .map(|m| (m.name.to_string(), upstream(m.ip)))
                .collect(),
        }),
        FrontKind::Nginx => render(&NginxConfig {
            cluster: cluster.name.as_str(),
            listen: front.listen(),
            prefix: paths.prefix.clone(),
            modules: front
                .nginx_modules
                .iter()
                .map(ToString::to_string)
                .collect(),
            masters: cluster.masters.iter().map(|m| upstream(m.ip)).collect(),
        }),
    }
}

/// The node-local proxy's systemd unit.
pub fn front_unit(cluster: &Cluster, node: &NodePlan) -> Result<String, Error> {
    let (front, paths) = front(cluster, node)?;
    match front.kind {
        FrontKind::Haproxy => render(&HaproxyUnit {
            cluster: cluster.name.as_str(),
            node: &node.name,
            listen: front.listen(),
            binary: paths.binary.clone(),
            config: paths.config.clone(),
        }),
        FrontKind::Nginx => render(&NginxUnit {
            cluster: cluster.name.as_str(),
            node: &node.name,
            listen: front.listen(),
            prefix: paths.prefix.clone(),
            binary: paths.binary.clone(),
            config: paths.config.clone(),
        }),
    }
}
