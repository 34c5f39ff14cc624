//! What administration needs from the store: the audit log, settings changed at run time,
//! invite codes, account status and roles, and the dashboard's counts.

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::tables::{AUDIT, DAILY_MESSAGES, INVITES, LOGIN_NAMES, SETTINGS, USERS};
use super::users::{UserRecord, load_user};
use super::{Store, StoreError, now_ms};
use crate::ids::UserId;

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: u64,
    pub at: u64,
    pub actor: UserId,
    /// What was done, e.g. `user.disable`, `settings.update`.
    pub action: String,
    /// What it was done to, e.g. `user:7`.
    pub target: String,
    #[serde(default)]
    pub detail: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invite {
    pub code: String,
    pub created_by: UserId,
    pub created_at: u64,
    pub expires_at: u64,
    pub max_uses: u32,
    pub uses: u32,
}

/// Why an administrative change to a user was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminRefusal {
    NoSuchUser,
    LastAdmin,
}

fn json<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, StoreError> {
    Ok(serde_json::from_slice(v)?)
}

pub(crate) fn count_admins(t: &impl ReadableTable<u64, &'static [u8]>) -> Result<usize, StoreError> {
    let mut n = 0;
    for e in t.iter()? {
        let (_, v) = e?;
        let u: UserRecord = json(v.value())?;
        if u.is_admin && !u.disabled {
            n += 1;
        }
    }
    Ok(n)
}

impl Store {
    pub async fn audit(&self, actor: UserId, action: &str, target: String, detail: String) -> Result<(), StoreError> {
        let action = action.to_owned();
        self.write(move |txn| {
            let mut t = txn.open_table(AUDIT)?;
            let id = t.last()?.map_or(1, |(k, _)| k.value() + 1);
            let e = AuditEntry { id, at: now_ms(), actor, action, target, detail };
            t.insert(id, serde_json::to_vec(&e)?.as_slice())?;
            Ok(())
        })
        .await
    }

    /// Newest first, entries older than `before` (an id) when given.
    pub async fn audit_log(&self, before: Option<u64>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |txn| {
            let t = txn.open_table(AUDIT)?;
            let mut out = Vec::new();
            for e in t.range(..before.unwrap_or(u64::MAX))?.rev().take(limit) {
                let (_, v) = e?;
                out.push(json(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// The settings an administrator changed, as stored (a TOML-like JSON object).
    pub async fn live_settings(&self) -> Result<Option<serde_json::Value>, StoreError> {
        self.read(|txn| txn.open_table(SETTINGS)?.get("live")?.map(|v| json(v.value())).transpose()).await
    }

    pub async fn save_live_settings(&self, v: serde_json::Value) -> Result<(), StoreError> {
        self.write(move |txn| {
            txn.open_table(SETTINGS)?.insert("live", serde_json::to_vec(&v)?.as_slice())?;
            Ok(())
        })
        .await
    }

    pub async fn create_invite(&self, invite: Invite) -> Result<(), StoreError> {
        self.write(move |txn| {
            txn.open_table(INVITES)?.insert(invite.code.as_str(), serde_json::to_vec(&invite)?.as_slice())?;
            Ok(())
        })
        .await
    }

    pub async fn invites(&self) -> Result<Vec<Invite>, StoreError> {
        self.read(|txn| {
            let mut out: Vec<Invite> = Vec::new();
            for e in txn.open_table(INVITES)?.iter()? {
                let (_, v) = e?;
                out.push(json(v.value())?);
            }
            out.sort_by_key(|e| std::cmp::Reverse(e.created_at));
            Ok(out)
        })
        .await
    }

    pub async fn delete_invite(&self, code: String) -> Result<bool, StoreError> {
        self.write(move |txn| Ok(txn.open_table(INVITES)?.remove(code.as_str())?.is_some())).await
    }

    /// A page of users matching `q` (username or nickname, case-insensitive), by id; and the
    /// number of matches.
    pub async fn list_users(&self, q: Option<String>, offset: usize, limit: usize) -> Result<(Vec<UserRecord>, usize), StoreError> {
        self.read(move |txn| {
            let needle = q.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
            let mut total = 0;
            let mut page = Vec::new();
            for e in txn.open_table(USERS)?.iter()? {
                let (_, v) = e?;
                let u: UserRecord = json(v.value())?;
                let hit = needle.as_ref().is_none_or(|n| u.username.contains(n.as_str()) || u.nickname.to_lowercase().contains(n.as_str()));
                if hit {
                    if total >= offset && page.len() < limit {
                        page.push(u);
                    }
                    total += 1;
                }
            }
            Ok((page, total))
        })
        .await
    }

    /// Makes `id` an administrator or not; the last active administrator stays one.
    pub async fn set_admin(&self, id: UserId, admin: bool) -> Result<Result<UserRecord, AdminRefusal>, StoreError> {
        self.write(move |txn| {
            let mut users = txn.open_table(USERS)?;
            let Some(mut user) = load_user(&users, id.0)? else { return Ok(Err(AdminRefusal::NoSuchUser)) };
            if !admin && user.is_admin && count_admins(&users)? <= 1 {
                return Ok(Err(AdminRefusal::LastAdmin));
            }
            user.is_admin = admin;
            users.insert(id.0, serde_json::to_vec(&user)?.as_slice())?;
            Ok(Ok(user))
        })
        .await
    }

    /// Deletes an account: it can no longer log in, its phone and e-mail are freed, its profile
    /// is emptied; the username stays reserved so nobody can take the name over, and messages
    /// stay in the conversations they were sent to.
    pub async fn delete_user(&self, id: UserId) -> Result<Result<UserRecord, AdminRefusal>, StoreError> {
        self.write(move |txn| {
            let mut users = txn.open_table(USERS)?;
            let Some(mut user) = load_user(&users, id.0)? else { return Ok(Err(AdminRefusal::NoSuchUser)) };
            if user.is_admin && count_admins(&users)? <= 1 {
                return Ok(Err(AdminRefusal::LastAdmin));
            }
            let mut names = txn.open_table(LOGIN_NAMES)?;
            for n in [user.phone.take(), user.email.take()].into_iter().flatten() {
                names.remove(n.as_str())?;
            }
            user.disabled = true;
            user.deleted = true;
            user.is_admin = false;
            user.nickname = "Deleted user".into();
            user.signature.clear();
            user.birthday = None;
            user.password_hash = String::new();
            users.insert(id.0, serde_json::to_vec(&user)?.as_slice())?;
            Ok(Ok(user))
        })
        .await
    }

    /// Users, messages, and messages per day for the last `days` days (oldest first).
    pub async fn counts(&self, days: u64) -> Result<(u64, u64, Vec<(u64, u64)>), StoreError> {
        self.read(move |txn| {
            let users = txn.open_table(USERS)?.len()?;
            let messages = super::log::read(txn)?.len()?;
            let today = now_ms() / 86_400_000;
            let daily = txn.open_table(DAILY_MESSAGES)?;
            let mut per_day = Vec::new();
            for d in today.saturating_sub(days - 1)..=today {
                per_day.push((d, daily.get(d)?.map_or(0, |v| v.value())));
            }
            Ok((users, messages, per_day))
        })
        .await
    }
}
