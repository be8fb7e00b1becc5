//! The Kubernetes versions kube-bundle knows, and what changed between them.
//!
//! Data only: `validate` uses it to refuse versions outside the table, `plan` (flags,
//! file formats) to decide what a given minor accepts. Facts come from
//! kubernetes-reference.md §3–§5 and §8.

/// The seed guide's era; nothing older is rendered.
pub const OLDEST_MINOR: u64 = 12;
/// The newest minor the tables below were checked against (design.md §7).
pub const NEWEST_MINOR: u64 = 36;
/// What `init` writes: the newest release of the newest minor the table knows.
pub const NEWEST_RELEASE: &str = "v1.36.1";
