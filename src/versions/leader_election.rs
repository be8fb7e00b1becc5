//! Leader election of kube-controller-manager and kube-scheduler: the lock types each minor
//! accepts, the default one, and where the leader is recorded.
//!
//! Both components share client-go's lock implementations and, from 1.27, the same
//! validation, so one table serves both. A rolling upgrade must not change the lock type
//! between two minors (two leaders could run at once): kube-bundle picks `leases` wherever
//! it exists and keeps it in every later minor.

/// One `--leader-elect-resource-lock` value (the scheduler's `leaderElection.resourceLock`)
/// and the minors that accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockType {
    pub name: &'static str,
    pub first: u64,
    /// Last minor that accepts it; `None` while it is still accepted.
    pub last: Option<u64>,
    /// What changed, in words for users.
    pub note: &'static str,
    /// Where the fact comes from upstream.
    pub source: &'static str,
}

impl LockType {
    pub fn accepted_in(&self, minor: u64) -> bool {
        minor >= self.first && self.last.is_none_or(|last| minor <= last)
    }
}

/// The first minor with a Lease lock. Before it the leader is only an annotation on an
/// Endpoints object (see [`ENDPOINTS_LEADER_ANNOTATION`]).
pub const LEASES_FROM: u64 = 14;
/// The first minor whose controller manager and scheduler refuse any lock but `leases`
/// when leader election is on.
pub const LEASES_ONLY_FROM: u64 = 27;
/// Where a leader is recorded on an Endpoints or ConfigMap lock.
pub const ENDPOINTS_LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// The namespace of both locks, in every minor.
pub const LOCK_NAMESPACE: &str = "kube-system";
/// The lock objects' names, in every minor (flags could rename them from 1.16; kube-bundle
/// keeps them).
pub const CONTROLLER_MANAGER_LOCK_NAME: &str = "kube-controller-manager";
pub const SCHEDULER_LOCK_NAME: &str = "kube-scheduler";
/// The default lease duration, renew deadline and retry period, in seconds, in every minor.
pub const DEFAULT_TIMINGS_SECONDS: (u64, u64, u64) = (15, 10, 2);

const CLIENT_GO_SOURCE: &str = "k8s.io/client-go tools/leaderelection/resourcelock/interface.go";
const LEASES_ONLY_SOURCE: &str = "k8s.io/controller-manager v0.27 options/generic.go and \
                                  k8s.io/kubernetes v1.27 pkg/scheduler/apis/config/\
                                  validation/validation.go; CHANGELOG-1.27";
const OBJECT_LOCK_NOTE: &str = "refused from 1.24: the lock moved to Leases";
const MULTILOCK_NOTE: &str = "the migration lock (both objects), added in 1.17; refused from \
                              1.27, which accepts only leases";

/// Every lock type, sorted by name.
pub const LOCK_TYPES: &[LockType] = &[
    LockType {
        name: "configmaps",
        first: super::OLDEST_MINOR,
        last: Some(23),
        note: OBJECT_LOCK_NOTE,
        source: CLIENT_GO_SOURCE,
    },
    LockType {
        name: "configmapsleases",
        first: 17,
        last: Some(LEASES_ONLY_FROM - 1),
        note: MULTILOCK_NOTE,
        source: LEASES_ONLY_SOURCE,
    },
    LockType {
        name: "endpoints",
        first: super::OLDEST_MINOR,
        last: Some(23),
        note: OBJECT_LOCK_NOTE,
        source: CLIENT_GO_SOURCE,
    },
    LockType {
        name: "endpointsleases",
        first: 17,
        last: Some(LEASES_ONLY_FROM - 1),
        note: MULTILOCK_NOTE,
        source: LEASES_ONLY_SOURCE,
    },
    LockType {
        name: "leases",
        first: LEASES_FROM,
        last: None,
        note: "added in 1.14; the only lock from 1.27",
        source: CLIENT_GO_SOURCE,
    },
];

pub fn lock_type(name: &str) -> Option<&'static LockType> {
    LOCK_TYPES.iter().find(|lock| lock.name == name)
}

/// The lock a minor uses when none is given: Endpoints until 1.16, the Endpoints+Lease
/// migration lock in 1.17–1.19, Leases from 1.20.
pub fn default_lock(minor: u64) -> &'static str {
    match minor {
        ..=16 => "endpoints",
        17..=19 => "endpointsleases",
        _ => "leases",
    }
}

/// The lock kube-bundle renders: a Lease wherever one exists, so that no later upgrade
/// changes the lock type; the default Endpoints lock before.
pub fn rendered_lock(minor: u64) -> &'static str {
    if minor >= LEASES_FROM {
        "leases"
    } else {
        default_lock(minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::{NEWEST_MINOR, OLDEST_MINOR};

    #[test]
    fn table_is_sorted_and_ranges_are_sane() {
        let names: Vec<_> = LOCK_TYPES.iter().map(|lock| lock.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for lock in LOCK_TYPES {
            assert!(lock.first >= OLDEST_MINOR, "{}", lock.name);
            assert!(
                lock.last.is_none_or(|last| last >= lock.first),
                "{}",
                lock.name
            );
            assert!(
                !lock.note.is_empty() && !lock.source.is_empty(),
                "{}",
                lock.name
            );
        }
    }

    #[test]
    fn the_default_and_the_rendered_lock_are_accepted_in_every_minor() {
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            for name in [default_lock(minor), rendered_lock(minor)] {
                assert!(
                    lock_type(name).unwrap().accepted_in(minor),
                    "{name} 1.{minor}"
                );
            }
        }
    }

    #[test]
    fn once_rendered_as_leases_it_stays_leases() {
        let first = (OLDEST_MINOR..=NEWEST_MINOR)
            .find(|minor| rendered_lock(*minor) == "leases")
            .unwrap();
        assert_eq!(first, LEASES_FROM);
        assert!((first..=NEWEST_MINOR).all(|minor| rendered_lock(minor) == "leases"));
    }

    #[test]
    fn pinned_facts() {
        assert_eq!(default_lock(16), "endpoints");
        assert_eq!(default_lock(17), "endpointsleases");
        assert_eq!(default_lock(20), "leases");
        assert!(!lock_type("leases").unwrap().accepted_in(13));
        assert!(!lock_type("endpoints").unwrap().accepted_in(24));
        assert!(lock_type("endpointsleases").unwrap().accepted_in(26));
        let only_leases = LOCK_TYPES
            .iter()
            .filter(|lock| lock.accepted_in(LEASES_ONLY_FROM))
            .map(|lock| lock.name);
        assert_eq!(only_leases.collect::<Vec<_>>(), ["leases"]);
    }
}
