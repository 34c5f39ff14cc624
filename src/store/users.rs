//! Users and their login names.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{LOGIN_NAMES, META, USERS};
use super::{Store, StoreError, now_ms};
use crate::ids::UserId;
use crate::protocol::{Gender, UserView};

/// A user as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    /// PHC string of an argon2id hash.
    pub password_hash: String,
    pub nickname: String,
    #[serde(default)]
    pub signature: String,
    #[serde(default)]
    pub gender: Gender,
    #[serde(default)]
    pub birthday: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub is_admin: bool,
    #[serde(default)]
    pub disabled: bool,
    pub created_at: u64,
    /// Do not show others whether I am online.
    #[serde(default)]
    pub hide_presence: bool,
    /// When the last device disconnected, ms.
    #[serde(default)]
    pub last_seen: Option<u64>,
    /// Deleted by an administrator (also `disabled`).
    #[serde(default)]
    pub deleted: bool,
    /// File id of the avatar image.
    #[serde(default)]
    pub avatar: Option<String>,
    /// The LDAP entry this account belongs to (its key in `LDAP_LINKS`); its password is the
    /// directory's, and `password_hash` never matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_id: Option<String>,
}

impl UserRecord {
    /// What other users see.
    pub fn public_view(&self) -> UserView {
        UserView {
            id: self.id,
            username: self.username.clone(),
            nickname: self.nickname.clone(),
            signature: self.signature.clone(),
            gender: self.gender,
            birthday: self.birthday.clone(),
            is_admin: self.is_admin,
            created_at: self.created_at,
            avatar: self.avatar.clone(),
            phone: None,
            email: None,
            hide_presence: None,
            ldap: None,
        }
    }

    /// What the user sees of themselves.
    pub fn own_view(&self) -> UserView {
        UserView {
            phone: self.phone.clone(),
            email: self.email.clone(),
            hide_presence: Some(self.hide_presence),
            ldap: self.ldap_id.is_some().then_some(true),
            ..self.public_view()
        }
    }
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub nickname: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// The invite code the user gave, if any.
    pub invite: Option<String>,
}

/// What the registration rule (`accounts::registration::admit`) decided for a new account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Admit, and spend one use of the invite the user gave.
    SpendInvite,
}

/// Why an account could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateRefusal {
    Taken(NameTaken),
    Closed,
    BadInvite,
}

/// A validated profile change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ProfilePatch {
    pub nickname: Option<String>,
    pub signature: Option<String>,
    pub gender: Option<Gender>,
    pub birthday: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub hide_presence: Option<bool>,
}

/// Which login name is already someone else's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameTaken {
    Username,
    Phone,
    Email,
}

pub(crate) fn load_user(t: &impl ReadableTable<u64, &'static [u8]>, id: u64) -> Result<Option<UserRecord>, StoreError> {
    Ok(match t.get(id)? {
        Some(v) => Some(serde_json::from_slice(v.value())?),
        None => None,
    })
}

/// The next user id, taken (counted up) inside the account-creating write.
pub(crate) fn take_user_id(txn: &WriteTransaction) -> Result<UserId, StoreError> {
    let mut meta = txn.open_table(META)?;
    let id = meta.get("next_user_id")?.map_or(1, |v| v.value());
    meta.insert("next_user_id", id + 1)?;
    Ok(UserId(id))
}

impl UserRecord {
    /// A new account with nothing set but what it is made with.
    pub(crate) fn fresh(
        id: UserId,
        username: String,
        password_hash: String,
        nickname: String,
        email: Option<String>,
        is_admin: bool,
    ) -> UserRecord {
        UserRecord {
            id,
            username,
            password_hash,
            nickname,
            signature: String::new(),
            gender: Gender::Unknown,
            birthday: None,
            phone: None,
            email,
            is_admin,
            disabled: false,
            created_at: now_ms(),
            hide_presence: false,
            last_seen: None,
            deleted: false,
            avatar: None,
            ldap_id: None,
        }
    }
}

pub(crate) fn put_user(txn: &WriteTransaction, u: &UserRecord) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(u)?;
    txn.open_table(USERS)?.insert(u.id.0, bytes.as_slice())?;
    Ok(())
}

impl Store {
    /// Creates a user; the first user of a server becomes its administrator. `admit` is the
    /// registration rule: given whether this is the server's first account and the invite the
    /// user named (loaded inside the write), it admits or refuses.
    pub async fn create_user<A>(&self, new: NewUser, admit: A) -> Result<Result<UserRecord, CreateRefusal>, StoreError>
    where
        A: FnOnce(bool, Option<&super::admin::Invite>) -> Result<Admission, CreateRefusal> + Send + 'static,
    {
        self.write(move |txn| {
            {
                let names = txn.open_table(LOGIN_NAMES)?;
                let checks = [
                    (Some(&new.username), NameTaken::Username),
                    (new.phone.as_ref(), NameTaken::Phone),
                    (new.email.as_ref(), NameTaken::Email),
                ];
                for (name, which) in checks {
                    if let Some(name) = name
                        && names.get(name.as_str())?.is_some()
                    {
                        return Ok(Err(CreateRefusal::Taken(which)));
                    }
                }
            }
            let first = txn.open_table(META)?.get("next_user_id")?.is_none_or(|v| v.value() == 1);
            let mut invites = txn.open_table(super::tables::INVITES)?;
            let invite = match &new.invite {
                Some(code) => invites.get(code.as_str())?.map(|v| serde_json::from_slice::<super::admin::Invite>(v.value())).transpose()?,
                None => None,
            };
            match admit(first, invite.as_ref()) {
                Err(r) => return Ok(Err(r)),
                Ok(Admission::Admit) => {}
                Ok(Admission::SpendInvite) => {
                    let Some(mut invite) = invite else { return Ok(Err(CreateRefusal::BadInvite)) };
                    invite.uses += 1;
                    invites.insert(invite.code.as_str(), serde_json::to_vec(&invite)?.as_slice())?;
                }
            }
            drop(invites);
            let id = take_user_id(txn)?;
            let mut user = UserRecord::fresh(id, new.username, new.password_hash, new.nickname, new.email, id.0 == 1);
            user.phone = new.phone;
            let mut names = txn.open_table(LOGIN_NAMES)?;
            for name in [Some(&user.username), user.phone.as_ref(), user.email.as_ref()].into_iter().flatten() {
                names.insert(name.as_str(), id.0)?;
            }
            drop(names);
            put_user(txn, &user)?;
            Ok(Ok(user))
        })
        .await
    }

    pub async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.read(move |txn| load_user(&txn.open_table(USERS)?, id.0)).await
    }

    /// Finds a user by username, phone or e-mail (already lower-cased and trimmed).
    pub async fn user_by_login(&self, name: String) -> Result<Option<UserRecord>, StoreError> {
        self.read(move |txn| {
            let Some(id) = txn.open_table(LOGIN_NAMES)?.get(name.as_str())?.map(|v| v.value()) else {
                return Ok(None);
            };
            load_user(&txn.open_table(USERS)?, id)
        })
        .await
    }

    /// Exact login-name matches first, then users whose nickname starts with `q`.
    pub async fn search_users(&self, q: String, limit: usize) -> Result<Vec<UserRecord>, StoreError> {
        self.read(move |txn| {
            let users = txn.open_table(USERS)?;
            let mut found: Vec<UserRecord> = Vec::new();
            let key = q.trim().to_lowercase();
            if let Some(id) = txn.open_table(LOGIN_NAMES)?.get(key.as_str())?.map(|v| v.value())
                && let Some(u) = load_user(&users, id)?
            {
                found.push(u);
            }
            // A linear scan is fine at the sizes a self-hosted server has; the search feature
            // replaces it with an index.
            for entry in users.iter()? {
                if found.len() >= limit {
                    break;
                }
                let (_, v) = entry?;
                let u: UserRecord = serde_json::from_slice(v.value())?;
                if !u.disabled && !key.is_empty() && u.nickname.to_lowercase().starts_with(&key) && !found.iter().any(|f| f.id == u.id) {
                    found.push(u);
                }
            }
            found.retain(|u| !u.disabled);
            Ok(found)
        })
        .await
    }

    /// Applies a profile change; a phone or e-mail that belongs to someone else is refused.
    pub async fn update_profile(&self, id: UserId, patch: ProfilePatch) -> Result<Result<UserRecord, NameTaken>, StoreError> {
        self.write(move |txn| {
            let Some(mut user) = load_user(&txn.open_table(USERS)?, id.0)? else {
                return Err(StoreError::Corrupt(format!("user {id} vanished")));
            };
            let mut names = txn.open_table(LOGIN_NAMES)?;
            for (new, which) in [(&patch.phone, NameTaken::Phone), (&patch.email, NameTaken::Email)] {
                if let Some(Some(name)) = new
                    && names.get(name.as_str())?.is_some_and(|owner| owner.value() != id.0)
                {
                    return Ok(Err(which));
                }
            }
            for (new, old) in [(&patch.phone, &mut user.phone), (&patch.email, &mut user.email)] {
                if let Some(new) = new {
                    if let Some(old) = old.as_ref() {
                        names.remove(old.as_str())?;
                    }
                    if let Some(name) = new {
                        names.insert(name.as_str(), id.0)?;
                    }
                    old.clone_from(new);
                }
            }
            drop(names);
            if let Some(v) = patch.nickname {
                user.nickname = v;
            }
            if let Some(v) = patch.signature {
                user.signature = v;
            }
            if let Some(v) = patch.gender {
                user.gender = v;
            }
            if let Some(v) = patch.birthday {
                user.birthday = v;
            }
            if let Some(v) = patch.hide_presence {
                user.hide_presence = v;
            }
            put_user(txn, &user)?;
            Ok(Ok(user))
        })
        .await
    }

    /// Disables or enables an account; returns the user, or `None` if there is none.
    pub async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<Option<UserRecord>, StoreError> {
        self.write(move |txn| {
            let Some(mut user) = load_user(&txn.open_table(USERS)?, id.0)? else { return Ok(None) };
            user.disabled = disabled;
            put_user(txn, &user)?;
            Ok(Some(user))
        })
        .await
    }

    pub async fn set_last_seen(&self, id: UserId, at: u64) -> Result<(), StoreError> {
        self.write(move |txn| {
            let Some(mut user) = load_user(&txn.open_table(USERS)?, id.0)? else { return Ok(()) };
            user.last_seen = Some(at);
            put_user(txn, &user)
        })
        .await
    }

    pub async fn set_password_hash(&self, id: UserId, hash: String) -> Result<(), StoreError> {
        self.write(move |txn| {
            let Some(mut user) = load_user(&txn.open_table(USERS)?, id.0)? else {
                return Err(StoreError::Corrupt(format!("user {id} vanished")));
            };
            user.password_hash = hash;
            put_user(txn, &user)
        })
        .await
    }
}
