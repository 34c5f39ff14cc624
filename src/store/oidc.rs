//! Accounts signed in through OpenID Connect: the `(issuer, subject)` links, the account made
//! or found at a first login, and how each user signs in (shown to administrators).

use redb::{ReadableTable, WriteTransaction};
use serde::Serialize;

use super::admin::count_admins;
use super::tables::{LOGIN_NAMES, OIDC_LINKS, OIDC_USER_LINKS, USERS};
use super::users::{UserRecord, load_user, put_user, take_user_id};
use super::{Store, StoreError};
use crate::ids::{UserId, Username};

/// What a provider said about the person, after the ID token was verified.
#[derive(Clone, Debug, Default)]
pub struct OidcIdentity {
    pub issuer: String,
    pub subject: String,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    /// Lower-cased; only kept when the provider marked it verified.
    pub verified_email: Option<String>,
    /// `Some` when the provider decides who is an administrator (`admin_claim`).
    pub admin: Option<bool>,
}

/// How an OpenID Connect login ended in the store.
#[derive(Clone, Debug)]
pub enum OidcLogin {
    /// An account already linked to this identity.
    Linked(UserRecord),
    /// An existing local account with the same verified e-mail, now linked.
    LinkedByEmail(UserRecord),
    /// A new account.
    Created(UserRecord),
    /// The linked account is disabled or deleted.
    Disabled,
}

/// One way a user signs in, as administrators see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignInSource {
    /// A password set on this server.
    Password,
    /// An OpenID Connect provider, by its issuer URL.
    Oidc { issuer: String },
    /// The LDAP directory.
    Ldap,
}

/// A username for a new account from what the provider offers: the preferred username, else
/// the e-mail's local part, else `user`, cut to the allowed characters; a number is added
/// until it is free.
fn free_username(names: &impl ReadableTable<&'static str, u64>, id: &OidcIdentity) -> Result<String, StoreError> {
    let raw = id.preferred_username.as_deref().or_else(|| id.verified_email.as_deref().and_then(|e| e.split('@').next())).unwrap_or("user");
    let mut base: String = raw
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' })
        .take(24)
        .collect();
    if base.trim_matches('_').is_empty() {
        base = "user".into();
    }
    while base.len() < 3 {
        base.push('_');
    }
    for n in 0..10_000u32 {
        let candidate = if n == 0 { base.clone() } else { format!("{base}{}", n + 1) };
        if let Some(u) = Username::parse(&candidate)
            && names.get(u.as_str())?.is_none()
        {
            return Ok(u.as_str().to_owned());
        }
    }
    Err(StoreError::Corrupt("no free username".into()))
}

fn link(txn: &WriteTransaction, id: &OidcIdentity, user: UserId) -> Result<(), StoreError> {
    txn.open_table(OIDC_LINKS)?.insert((id.issuer.as_str(), id.subject.as_str()), user.0)?;
    txn.open_table(OIDC_USER_LINKS)?.insert((user.0, id.issuer.as_str()), id.subject.as_str())?;
    Ok(())
}

/// Applies the provider's word on administrators, but never removes the last one.
fn sync_admin(txn: &WriteTransaction, mut user: UserRecord, admin: Option<bool>) -> Result<UserRecord, StoreError> {
    let Some(admin) = admin else { return Ok(user) };
    if user.is_admin == admin || (!admin && count_admins(&txn.open_table(USERS)?)? <= 1) {
        return Ok(user);
    }
    user.is_admin = admin;
    put_user(txn, &user)?;
    Ok(user)
}

impl Store {
    /// Finds or makes the account of a verified OpenID Connect identity, in one write: the
    /// linked account; else, when `link_by_email`, the local account holding the verified
    /// e-mail; else a new account (the server's first becomes its administrator).
    pub async fn oidc_login(&self, id: OidcIdentity, link_by_email: bool) -> Result<OidcLogin, StoreError> {
        self.write(move |txn| {
            let linked = txn.open_table(OIDC_LINKS)?.get((id.issuer.as_str(), id.subject.as_str()))?.map(|v| v.value());
            if let Some(uid) = linked {
                let Some(user) = load_user(&txn.open_table(USERS)?, uid)? else {
                    return Err(StoreError::Corrupt(format!("linked user {uid} vanished")));
                };
                if user.disabled {
                    return Ok(OidcLogin::Disabled);
                }
                return Ok(OidcLogin::Linked(sync_admin(txn, user, id.admin)?));
            }
            if link_by_email && let Some(email) = &id.verified_email {
                let owner = txn.open_table(LOGIN_NAMES)?.get(email.as_str())?.map(|v| v.value());
                let user = match owner {
                    Some(uid) => load_user(&txn.open_table(USERS)?, uid)?,
                    None => None,
                };
                if let Some(user) = user
                    && user.email.as_deref() == Some(email.as_str())
                {
                    if user.disabled {
                        return Ok(OidcLogin::Disabled);
                    }
                    link(txn, &id, user.id)?;
                    return Ok(OidcLogin::LinkedByEmail(sync_admin(txn, user, id.admin)?));
                }
            }
            let mut names = txn.open_table(LOGIN_NAMES)?;
            let username = free_username(&names, &id)?;
            // The e-mail becomes a login name only when nobody has it yet.
            let email = match &id.verified_email {
                Some(e) if names.get(e.as_str())?.is_none() => Some(e.clone()),
                _ => None,
            };
            let uid = take_user_id(txn)?;
            let nickname: String =
                id.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(&username).chars().take(64).collect();
            let nickname = nickname.chars().filter(|c| !c.is_control()).collect();
            // No password: password login cannot succeed until one is set.
            let user = UserRecord::fresh(uid, username, String::new(), nickname, email, uid.0 == 1 || id.admin == Some(true));
            for name in [Some(&user.username), user.email.as_ref()].into_iter().flatten() {
                names.insert(name.as_str(), uid.0)?;
            }
            drop(names);
            put_user(txn, &user)?;
            link(txn, &id, user.id)?;
            Ok(OidcLogin::Created(user))
        })
        .await
    }

    /// How each of `users` signs in: a password when one is set, and every linked provider.
    /// (Other sign-in methods add their links here.)
    pub async fn sign_in_sources(&self, users: Vec<UserRecord>) -> Result<Vec<Vec<SignInSource>>, StoreError> {
        self.read(move |txn| {
            let links = txn.open_table(OIDC_USER_LINKS)?;
            let mut out = Vec::with_capacity(users.len());
            for u in &users {
                let mut sources = Vec::new();
                // A directory account's stored hash matches no password.
                if !u.password_hash.is_empty() && u.ldap_id.is_none() {
                    sources.push(SignInSource::Password);
                }
                if u.ldap_id.is_some() {
                    sources.push(SignInSource::Ldap);
                }
                for e in links.range((u.id.0, "")..(u.id.0 + 1, ""))? {
                    let (k, _) = e?;
                    sources.push(SignInSource::Oidc { issuer: k.value().1.to_owned() });
                }
                out.push(sources);
            }
            Ok(out)
        })
        .await
    }

    /// How one user signs in.
    pub async fn sign_in_source(&self, user: UserRecord) -> Result<Vec<SignInSource>, StoreError> {
        Ok(self.sign_in_sources(vec![user]).await?.pop().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(sub: &str, name: Option<&str>, email: Option<&str>) -> OidcIdentity {
        OidcIdentity {
            issuer: "https://id.example.org".into(),
            subject: sub.into(),
            preferred_username: name.map(Into::into),
            name: None,
            verified_email: email.map(Into::into),
            admin: None,
        }
    }

    #[tokio::test]
    async fn a_first_login_makes_an_account_with_a_free_username_and_later_logins_find_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::store::StoreOptions::default()).unwrap();
        let OidcLogin::Created(a) = store.oidc_login(identity("1", Some("Ann Lee"), Some("ann@example.org")), false).await.unwrap() else {
            panic!("created")
        };
        assert_eq!((a.username.as_str(), a.is_admin, a.email.as_deref()), ("ann_lee", true, Some("ann@example.org")));
        let OidcLogin::Created(b) = store.oidc_login(identity("2", Some("ann lee"), Some("ann@example.org")), false).await.unwrap() else {
            panic!("created")
        };
        assert_eq!((b.username.as_str(), b.is_admin, b.email), ("ann_lee2", false, None), "the e-mail stays the first account's");
        let OidcLogin::Linked(again) = store.oidc_login(identity("1", Some("other"), None), false).await.unwrap() else { panic!("linked") };
        assert_eq!(again.id, a.id);
        let OidcLogin::Created(c) = store.oidc_login(identity("3", Some("x"), None), false).await.unwrap() else { panic!("created") };
        assert_eq!(c.username, "x__");
        assert_eq!(store.sign_in_source(c).await.unwrap(), vec![SignInSource::Oidc { issuer: "https://id.example.org".into() }]);
    }

    #[tokio::test]
    async fn a_verified_email_links_to_the_local_account_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::store::StoreOptions::default()).unwrap();
        let local = crate::store::NewUser {
            username: "bob".into(),
            password_hash: "$argon2id$x".into(),
            nickname: "Bob".into(),
            phone: None,
            email: Some("bob@example.org".into()),
            invite: None,
        };
        let bob = store.create_user(local, |_, _| Ok(crate::store::users::Admission::Admit)).await.unwrap().unwrap();
        let OidcLogin::Created(other) = store.oidc_login(identity("9", Some("bob"), Some("bob@example.org")), false).await.unwrap() else {
            panic!("created")
        };
        assert_ne!(other.id, bob.id);
        let OidcLogin::LinkedByEmail(linked) = store.oidc_login(identity("10", None, Some("bob@example.org")), true).await.unwrap() else {
            panic!("linked by e-mail")
        };
        assert_eq!(linked.id, bob.id);
        let sources = store.sign_in_source(linked).await.unwrap();
        assert_eq!(sources, vec![SignInSource::Password, SignInSource::Oidc { issuer: "https://id.example.org".into() }]);
    }
}
