//! Runs the real binary the way users and CI do. One test binary, one module per area.

mod access;
mod bundle;
mod cli;
mod e2e;
mod e2e_master;
mod front;
mod fuzz;
mod guards;
mod harness;
mod hostile;
mod install;
mod keepalived;
mod lifecycle;
mod master;
mod oracle;
mod pki;
mod render;
mod reuse;
mod safety;
mod schema;
mod stacked;
mod trust;
mod wording;
