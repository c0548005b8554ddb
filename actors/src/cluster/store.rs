//! The array state in etcd (`[cluster]`), written only under the leader's
//! epoch.
//!
//! CONTRACT (to be implemented): `EtcdStore::open(settings, leadership)`;
//! `load` reads `settings.state_key()` (the same JSON [`ArrayRecord`] as the
//! state file); `save` is one etcd transaction: if the campaign key's create
//! revision still equals the epoch, put the record; else
//! `StateError::Deposed`. Both bounded by a timeout; `save` returns once
//! etcd acknowledged. [`StateStore`] is synchronous (the controller saves
//! on its own thread, as it fsyncs the file): the etcd client runs on a
//! thread of its own with its own runtime.

use super::{ClusterSettings, Leadership};
use crate::state::{ArrayRecord, StateError, StateStore};

pub struct EtcdStore {
    location: String,
}

impl EtcdStore {
    pub fn open(settings: &ClusterSettings, leadership: &Leadership) -> Result<EtcdStore, StateError> {
        let _ = leadership;
        Ok(EtcdStore {
            location: format!("etcd {:?} {}", settings.endpoints, settings.state_key()),
        })
    }
}

impl StateStore for EtcdStore {
    fn load(&mut self) -> Result<Option<ArrayRecord>, StateError> {
        unimplemented!("EtcdStore::load")
    }

    fn save(&mut self, _record: &ArrayRecord) -> Result<(), StateError> {
        unimplemented!("EtcdStore::save")
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}
