//! The member and controller settings from the validated config: the
//! daemon is where config meets actors, so this mapping lives here and the
//! actors crate knows no config format.

use crate::config::{self, Config};
use crate::tls::PreparedTls;
use zeoraid_actors::controller::{ControllerSettings, RecoveryPolicy};
use zeoraid_actors::member::{Deadlines, MemberAddress, MemberSettings};
use zeoraid_actors::recovery::Throttle;

/// The member actor's settings for one configured member, with its
/// certificates from `tls`.
pub fn settings(config: &Config, member: &config::Member, tls: &PreparedTls) -> MemberSettings {
    let address = match &member.address {
        config::MemberAddress::Unix(path) => MemberAddress::Unix(path.clone()),
        tcp @ config::MemberAddress::Tcp { .. } => MemberAddress::Tcp(tcp.to_string()),
    };
    let mut settings = MemberSettings::new(member.name.clone(), address, member.storage.clone());
    settings.deadlines = Deadlines {
        connect: config.timeouts.connect,
        call: config.timeouts.call,
        commit: config.timeouts.commit,
        long: config.timeouts.pack,
    };
    settings.max_frame = config.max_frame_size;
    settings.allow_msgpack = member.msgpack;
    // The member's policy, already merged over the global `[restart]`.
    settings.restart = member.restart;
    settings.tls = tls.member(member);
    settings
}

/// The controller's settings: the storage name and every member.
pub fn controller_settings(config: &Config, tls: &PreparedTls) -> ControllerSettings {
    ControllerSettings {
        storage: config.storage.clone(),
        members: config.members.iter().map(|m| settings(config, m, tls)).collect(),
        cluster_mode: config.cluster_mode,
        fail_mode: config.fail_mode,
        recovery: RecoveryPolicy {
            throttle: Throttle {
                max_transactions_per_second: config.recovery.max_transactions_per_second,
                max_bytes_per_second: config.recovery.max_bytes_per_second,
            },
            auto: config.recovery.auto,
            stable_for: config.recovery.stable_for,
            final_step_slice: config.recovery.final_step_slice,
            final_step_timeout: config.recovery.final_step_timeout,
            spool_dir: Some(config.spool_dir.clone()),
        },
        slow: config.slow_member,
        scrub: config.scrub,
        transaction_timeout: config.timeouts.transaction,
        leading: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{from_toml_str, Environment};

    #[test]
    fn a_member_speaks_msgpack_unless_its_table_says_not() {
        let config = from_toml_str(
            r#"
            [[members]]
            name = "a"
            address = "127.0.0.1:9001"
            [[members]]
            name = "b"
            address = "127.0.0.1:9002"
            msgpack = false
            "#,
            "test",
            &Environment::default(),
        )
        .expect("valid");
        let allowed: Vec<bool> = config
            .members
            .iter()
            .map(|m| settings(&config, m, &PreparedTls::default()).allow_msgpack)
            .collect();
        assert_eq!(allowed, [true, false]);
    }
}
