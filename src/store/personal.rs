//! What one user keeps for themselves only: messages they deleted for themselves ("delete for
//! me", hidden from their own history, sync, search and list on every device) and their
//! private names (remarks) for other users.

use std::collections::{BTreeSet, HashMap};

use redb::{ReadTransaction, ReadableTable};

use super::facts::{ConvFacts, facts_in_txn};
use super::tables::{CONTACTS, HIDDEN_MESSAGES, REMARKS};
use super::{Store, StoreError};
use crate::ids::{ConvId, UserId};
use crate::outcome::Refusal;

/// The seqs of `conv` that `user` hid, from a read transaction.
fn hidden_in(txn: &ReadTransaction, user: UserId, conv: ConvId) -> Result<BTreeSet<u64>, StoreError> {
    let (a, b) = conv.key();
    let mut out = BTreeSet::new();
    for e in txn.open_table(HIDDEN_MESSAGES)?.range((user.0, a, b, 0)..=(user.0, a, b, u64::MAX))? {
        out.insert(e?.0.value().3);
    }
    Ok(out)
}

impl Store {
    /// Hides message `seq` of `conv` from `user`'s own view, if `gate` still lets the user read
    /// the conversation inside the write transaction and the message exists. Hiding twice is
    /// no error.
    pub async fn hide_message(
        &self,
        user: UserId,
        conv: ConvId,
        seq: u64,
        gate: impl FnOnce(&ConvFacts) -> Result<(), Refusal> + Send + 'static,
        after: impl FnOnce() + Send + 'static,
    ) -> Result<Result<(), Refusal>, StoreError> {
        self.write_then(
            move |txn| {
                if let Err(r) = gate(&facts_in_txn(txn, user, conv)?) {
                    return Ok(Err(r));
                }
                let (a, b) = conv.key();
                if !super::log::write(txn)?.contains((a, b, seq))? {
                    return Ok(Err(Refusal::NotFound("No such message.")));
                }
                txn.open_table(HIDDEN_MESSAGES)?.insert((user.0, a, b, seq), ())?;
                Ok(Ok(()))
            },
            move |out: &Result<(), Refusal>| {
                if out.is_ok() {
                    after();
                }
            },
        )
        .await
    }

    /// The seqs of `conv` that `user` hid.
    pub async fn hidden_seqs(&self, user: UserId, conv: ConvId) -> Result<BTreeSet<u64>, StoreError> {
        self.read(move |txn| hidden_in(txn, user, conv)).await
    }

    /// Sets (or, with an empty string, clears) `user`'s remark for `other`, who must be in
    /// `user`'s contacts as this transaction sees them.
    pub async fn set_remark(&self, user: UserId, other: UserId, remark: String) -> Result<Result<(), Refusal>, StoreError> {
        self.write(move |txn| {
            let is_contact = txn
                .open_table(CONTACTS)?
                .get((user.0, other.0))?
                .map(|v| serde_json::from_slice::<super::social::ContactSide>(v.value()))
                .transpose()?
                .is_some_and(|s| s.contact);
            if !is_contact {
                return Ok(Err(Refusal::NotFound("This user is not in your contacts.")));
            }
            let mut t = txn.open_table(REMARKS)?;
            if remark.is_empty() {
                t.remove((user.0, other.0))?;
            } else {
                t.insert((user.0, other.0), remark.as_str())?;
            }
            Ok(Ok(()))
        })
        .await
    }

    /// Every remark `user` gave, by the user it names.
    pub async fn remarks_of(&self, user: UserId) -> Result<HashMap<UserId, String>, StoreError> {
        self.read(move |txn| {
            let mut out = HashMap::new();
            for e in txn.open_table(REMARKS)?.range((user.0, 0)..=(user.0, u64::MAX))? {
                let (k, v) = e?;
                out.insert(UserId(k.value().1), v.value().to_owned());
            }
            Ok(out)
        })
        .await
    }

    /// `user`'s remark for `other`, if any.
    pub async fn remark(&self, user: UserId, other: UserId) -> Result<Option<String>, StoreError> {
        self.read(move |txn| Ok(txn.open_table(REMARKS)?.get((user.0, other.0))?.map(|v| v.value().to_owned()))).await
    }
}
