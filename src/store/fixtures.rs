//! Records the tests of the store and of the conversation rules build their data from.

use super::social::{GroupRecord, GroupStatus};
use crate::ids::UserId;
use crate::protocol::JoinMode;

impl GroupRecord {
    /// An open, active group of `owner` named "g", as tests create it.
    pub(crate) fn for_test(owner: UserId) -> GroupRecord {
        GroupRecord {
            id: 0,
            name: "g".into(),
            notice: String::new(),
            avatar: None,
            join_mode: JoinMode::Open,
            owner,
            created_at: 0,
            status: GroupStatus::Active,
        }
    }
}
