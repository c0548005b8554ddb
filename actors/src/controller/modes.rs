//! How the array serves reads and what clients get once it has failed
//! (config keys `cluster_mode` and `fail_mode`). The config model uses
//! these types directly, as it does `RestartPolicy`.

use std::fmt;

/// How reads are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMode {
    /// Each read goes to one optimal member (round-robin, with failover).
    /// The array takes writes while at least one member is optimal.
    Single,
    /// Reads that name a revision go to every optimal member and are
    /// voted; the minority is degraded. The array takes writes while more
    /// than half of the configured members are optimal, so a majority
    /// always exists to outvote a member that diverged.
    Coop,
}

/// What clients get once the array has failed (too few optimal members).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Every call gets a `ClientStorageError` naming the reason.
    Close,
    /// Reads go on from the members left that are still up to date; writes
    /// get `ReadOnlyError`.
    ReadOnly,
}

impl ClusterMode {
    /// Optimal members needed for the array to take writes, of `configured`.
    pub fn quorum(self, configured: usize) -> usize {
        match self {
            ClusterMode::Single => 1,
            ClusterMode::Coop => configured / 2 + 1,
        }
    }
}

impl fmt::Display for ClusterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClusterMode::Single => "single",
            ClusterMode::Coop => "coop",
        })
    }
}

impl fmt::Display for FailMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailMode::Close => "close",
            FailMode::ReadOnly => "read-only",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coop_needs_a_strict_majority_of_the_configured_members() {
        assert_eq!(ClusterMode::Coop.quorum(1), 1);
        assert_eq!(ClusterMode::Coop.quorum(2), 2);
        assert_eq!(ClusterMode::Coop.quorum(3), 2);
        assert_eq!(ClusterMode::Coop.quorum(4), 3);
        assert_eq!(ClusterMode::Coop.quorum(5), 3);
        assert_eq!(ClusterMode::Single.quorum(3), 1);
    }
}
