//! Accounts that belong to LDAP directory entries: `LDAP_LINKS` from an entry's stable id to
//! its user, the account made at the first login and the profile re-synced at each one, each in
//! one write.

use redb::ReadableTable;

use super::tables::{LDAP_LINKS, LOGIN_NAMES, USERS};
use super::users::{load_user, put_user, take_user_id};
use super::{Store, StoreError, UserRecord};
use crate::ids::UserId;

/// What the directory says of a person who just proved their password.
#[derive(Clone, Debug)]
pub struct DirectoryUser {
    /// Hex of the entry's stable id bytes (`entryUUID`, `objectGUID`).
    pub id: String,
    /// A valid, lower-cased username.
    pub username: String,
    pub nickname: String,
    /// A valid, lower-cased e-mail address, if the entry has one.
    pub email: Option<String>,
    /// Membership of the configured admin group; `None` when no group is configured (the role
    /// is then Chinwag's own).
    pub admin: Option<bool>,
}

/// Why a directory login could not get an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRefusal {
    /// A local account (not linked to the directory) already has the username.
    LocalAccountExists,
}

/// A stored `password_hash` that no password matches: not a PHC string.
const NO_LOCAL_PASSWORD: &str = "!ldap";

impl Store {
    /// Finds the account linked to `d.id`, or makes one, and brings its display name, e-mail and
    /// administrator role in line with the directory. An e-mail address that belongs to another
    /// account is left out rather than refusing the login.
    pub async fn ldap_login(&self, d: DirectoryUser) -> Result<Result<UserRecord, LinkRefusal>, StoreError> {
        self.write(move |txn| {
            let linked = txn.open_table(LDAP_LINKS)?.get(d.id.as_str())?.map(|v| v.value());
            let mut names = txn.open_table(LOGIN_NAMES)?;
            let email = match &d.email {
                Some(e) => match names.get(e.as_str())?.map(|v| v.value()) {
                    Some(owner) if Some(owner) != linked => None,
                    _ => Some(e.clone()),
                },
                None => None,
            };
            let user = if let Some(id) = linked {
                let Some(mut user) = load_user(&txn.open_table(USERS)?, id)? else {
                    return Err(StoreError::Corrupt(format!("LDAP link to user {id}, who does not exist")));
                };
                if user.email != email {
                    if let Some(old) = &user.email {
                        names.remove(old.as_str())?;
                    }
                    if let Some(new) = &email {
                        names.insert(new.as_str(), id)?;
                    }
                    user.email = email;
                }
                user.nickname = d.nickname;
                if let Some(admin) = d.admin {
                    user.is_admin = admin;
                }
                user
            } else {
                if names.get(d.username.as_str())?.is_some() {
                    return Ok(Err(LinkRefusal::LocalAccountExists));
                }
                let id = take_user_id(txn)?;
                names.insert(d.username.as_str(), id.0)?;
                if let Some(e) = &email {
                    names.insert(e.as_str(), id.0)?;
                }
                txn.open_table(LDAP_LINKS)?.insert(d.id.as_str(), id.0)?;
                // Like a registration: the server's first account administers it.
                let is_admin = d.admin.unwrap_or(id.0 == 1);
                let mut user = UserRecord::fresh(id, d.username, NO_LOCAL_PASSWORD.into(), d.nickname, email, is_admin);
                user.ldap_id = Some(d.id);
                user
            };
            drop(names);
            put_user(txn, &user)?;
            Ok(Ok(user))
        })
        .await
    }

    /// Every linked account: (stable id in hex, user id).
    pub async fn ldap_links(&self) -> Result<Vec<(String, UserId)>, StoreError> {
        self.read(move |txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(LDAP_LINKS)?.iter()? {
                let (k, v) = entry?;
                out.push((k.value().to_owned(), UserId(v.value())));
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewUser, StoreOptions};

    fn dir_user(id: &str, username: &str, email: Option<&str>) -> DirectoryUser {
        DirectoryUser {
            id: id.into(),
            username: username.into(),
            nickname: format!("{username} nick"),
            email: email.map(Into::into),
            admin: None,
        }
    }

    #[tokio::test]
    async fn first_login_links_and_later_logins_resync_without_taking_over_local_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let local = NewUser {
            username: "root".into(),
            password_hash: "x".into(),
            nickname: "Root".into(),
            phone: None,
            email: Some("shared@example.org".into()),
            invite: None,
        };
        s.create_user(local, |_, _| Ok(crate::store::users::Admission::Admit)).await.unwrap().unwrap();

        assert_eq!(s.ldap_login(dir_user("aa01", "root", None)).await.unwrap().unwrap_err(), LinkRefusal::LocalAccountExists);
        let alice = s.ldap_login(dir_user("aa02", "alice", Some("shared@example.org"))).await.unwrap().unwrap();
        assert!(!alice.is_admin && alice.ldap_id.as_deref() == Some("aa02"));
        assert_eq!(alice.email, None, "another account's e-mail is left out");
        assert_eq!(s.user_by_login("alice".into()).await.unwrap().unwrap().id, alice.id);

        let again = DirectoryUser {
            nickname: "Alice L.".into(),
            email: Some("alice@example.org".into()),
            admin: Some(true),
            ..dir_user("aa02", "alice", None)
        };
        let synced = s.ldap_login(again).await.unwrap().unwrap();
        assert_eq!((synced.id, synced.nickname.as_str(), synced.is_admin), (alice.id, "Alice L.", true));
        assert_eq!(s.user_by_login("alice@example.org".into()).await.unwrap().unwrap().id, alice.id);
        let gone = DirectoryUser { admin: Some(false), ..dir_user("aa02", "alice", None) };
        let synced = s.ldap_login(gone).await.unwrap().unwrap();
        assert!(!synced.is_admin && synced.email.is_none());
        assert!(s.user_by_login("alice@example.org".into()).await.unwrap().is_none(), "the old e-mail no longer logs in");
        assert_eq!(s.ldap_links().await.unwrap(), vec![("aa02".to_owned(), alice.id)]);
    }
}
