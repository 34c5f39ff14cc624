//! Sign-in through an LDAP directory or Active Directory (the `ldap3` crate over rustls).
//!
//! A login: connect (`ldaps://`, or `ldap://` upgraded with `StartTLS`), bind as the service
//! account, search `user_base` with `user_filter` (the typed name escaped, `filter.rs`), accept
//! exactly one entry, refuse it if the disabled filter matches it, read the admin group with
//! the service account, then bind as the entry with the typed password. An empty password is
//! refused before any bind: to a directory it is an anonymous bind, which succeeds.
//! `sync.rs` rechecks linked accounts and ends the sessions of those gone or disabled.
//!
//! Every exchange runs in a task of its own under one deadline, so a slow directory costs a
//! 503 and a misbehaving one (the crate panics on some malformed answers) cannot take a request
//! handler down with it.

mod filter;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

use crate::accounts::validate;
use crate::config;
use crate::ids::Username;
use crate::store::ldap::DirectoryUser;

pub use sync::spawn_sync;

/// LDAP result codes (RFC 4511, appendix A) that mean "these credentials are refused", as
/// opposed to "the directory has a problem".
const REFUSED_BIND: [u32; 5] = [
    19, // constraintViolation: a password policy refusing the bind
    48, // inappropriateAuthentication
    49, // invalidCredentials
    50, // insufficientAccessRights
    53, // unwillingToPerform: a locked or disabled account, or an unauthenticated bind
];
/// sizeLimitExceeded: the user search found more than one entry.
const SIZE_LIMIT_EXCEEDED: u32 = 4;
/// noSuchObject: the search base (or the admin group) does not exist.
const NO_SUCH_OBJECT: u32 = 32;

/// The directory could not answer; the text is for the log, never for the client.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl From<ldap3::LdapError> for Unavailable {
    fn from(e: ldap3::LdapError) -> Unavailable {
        Unavailable(e.to_string())
    }
}

impl From<crate::store::StoreError> for Unavailable {
    fn from(e: crate::store::StoreError) -> Unavailable {
        Unavailable(format!("the store: {e}"))
    }
}

/// Why the directory turned a login down.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown name, several entries, disabled, or a wrong password: one answer for all.
    BadCredentials,
    /// The entry proved the password but cannot become an account (its username attribute is
    /// missing or not a valid username, or it has no stable id).
    UnusableEntry(String),
}

/// A configured directory.
pub struct Directory {
    config: config::Ldap,
    url: String,
    tls: Arc<rustls::ClientConfig>,
}

impl Directory {
    /// `None` while `auth.ldap.url` is unset. Reads `ca_file` and the system's roots once.
    pub fn new(config: &config::Ldap) -> Result<Option<Arc<Directory>>, String> {
        let Some(url) = &config.url else { return Ok(None) };
        if config.validate()? {
            tracing::warn!(%url, "auth.ldap.starttls is false: passwords go to the directory in clear text (allowed on loopback only)");
        }
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "some system certificates could not be read");
        }
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &config.ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| format!("auth.ldap.ca_file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("auth.ldap.ca_file {} holds no certificate", path.display()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| format!("auth.ldap.ca_file {}: {e}", path.display()))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(Arc::new(Directory { config: config.clone(), url: url.clone(), tls: Arc::new(tls) })))
    }

    pub fn sync_interval(&self) -> Duration {
        Duration::from_secs(self.config.sync_interval_secs)
    }

    fn op_timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs)
    }

    /// The deadline of a whole exchange: the connection and a handful of operations.
    fn exchange_deadline(&self) -> Duration {
        Duration::from_secs(self.config.connect_timeout_secs) * 2 + self.op_timeout() * 5
    }

    /// Connects, upgrades to TLS as configured, and binds as the service account.
    async fn service_connection(&self) -> Result<Ldap, Unavailable> {
        let starttls = self.url.starts_with("ldap://") && self.config.starttls;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(self.config.connect_timeout_secs))
            .set_starttls(starttls)
            .set_config(self.tls.clone());
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        });
        if let (Some(dn), Some(pw)) = (&self.config.bind_dn, &self.config.bind_password) {
            let res = ldap.with_timeout(self.op_timeout()).simple_bind(dn, pw).await?;
            if res.rc != 0 {
                return Err(Unavailable(format!("the service account's bind was refused: {res}")));
            }
        }
        Ok(ldap)
    }

    /// Checks a name and password against the directory.
    pub async fn authenticate(self: &Arc<Self>, username: &str, password: &str) -> Result<Result<DirectoryUser, Refusal>, Unavailable> {
        if password.is_empty() || username.trim().is_empty() {
            return Ok(Err(Refusal::BadCredentials));
        }
        let (dir, username, password) = (self.clone(), username.trim().to_owned(), password.to_owned());
        let deadline = self.exchange_deadline();
        let task = tokio::spawn(async move {
            let mut ldap = dir.service_connection().await?;
            let outcome = dir.login_exchange(&mut ldap, &username, &password).await;
            let _ = ldap.unbind().await;
            outcome
        });
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Err(Unavailable(format!("the LDAP exchange failed: {e}"))),
            Err(_) => Err(Unavailable(format!("no answer from the directory within {} s", deadline.as_secs()))),
        }
    }

    async fn login_exchange(&self, ldap: &mut Ldap, username: &str, password: &str) -> Result<Result<DirectoryUser, Refusal>, Unavailable> {
        let c = &self.config;
        let filter = filter::user_filter(&c.user_filter, username);
        let attrs = [&c.username_attribute, &c.display_name_attribute, &c.email_attribute, &c.id_attribute];
        let found = ldap
            .with_search_options(SearchOptions::new().sizelimit(2))
            .with_timeout(self.op_timeout())
            .search(&c.user_base, Scope::Subtree, &filter, attrs)
            .await?;
        if found.1.rc != 0 && found.1.rc != SIZE_LIMIT_EXCEEDED {
            return Err(Unavailable(format!("the user search failed: {}", found.1)));
        }
        let mut entries: Vec<SearchEntry> = found.0.into_iter().filter(|e| !e.is_ref()).map(SearchEntry::construct).collect();
        // No entry, or more than one: the same refusal as a wrong password. An empty DN would
        // make the bind below anonymous, which succeeds.
        if entries.len() != 1 || entries[0].dn.is_empty() {
            return Ok(Err(Refusal::BadCredentials));
        }
        let entry = entries.remove(0);
        if self.is_disabled(ldap, &entry.dn).await? {
            return Ok(Err(Refusal::BadCredentials));
        }
        // Read with the service account, before the connection is bound as the user.
        let admin = match &c.admin_group {
            Some(group) => Some(self.is_member(ldap, group, &entry.dn).await?),
            None => None,
        };
        let bind = ldap.with_timeout(self.op_timeout()).simple_bind(&entry.dn, password).await?;
        if REFUSED_BIND.contains(&bind.rc) {
            return Ok(Err(Refusal::BadCredentials));
        }
        if bind.rc != 0 {
            return Err(Unavailable(format!("the user's bind failed: {bind}")));
        }
        // Only now, with the password proven, may the answer say more than "refused".
        let Some(id) = binary_value(&entry, &c.id_attribute) else {
            return Ok(Err(Refusal::UnusableEntry(format!("the entry has no {} attribute", c.id_attribute))));
        };
        let Some(name) = text_value(&entry, &c.username_attribute).and_then(Username::parse) else {
            return Ok(Err(Refusal::UnusableEntry(format!(
                "the entry's {} is not a valid username (3 to 32 letters, digits, _ . -)",
                c.username_attribute
            ))));
        };
        let nickname = display_name(text_value(&entry, &c.display_name_attribute).unwrap_or_default(), name.as_str());
        let email = text_value(&entry, &c.email_attribute).and_then(|e| validate::email(e).ok());
        Ok(Ok(DirectoryUser { id: hex::encode(id), username: name.as_str().to_owned(), nickname, email, admin }))
    }

    /// Whether `group` lists `dn` as a member; a group that does not exist has no members.
    async fn is_member(&self, ldap: &mut Ldap, group: &str, dn: &str) -> Result<bool, Unavailable> {
        let found = ldap.with_timeout(self.op_timeout()).search(group, Scope::Base, &filter::member_of(dn), ["1.1"]).await?;
        match found.1.rc {
            0 => Ok(found.0.iter().any(|e| !e.is_ref())),
            NO_SUCH_OBJECT => {
                tracing::warn!(group, "auth.ldap.admin_group does not exist in the directory");
                Ok(false)
            }
            _ => Err(Unavailable(format!("reading the admin group failed: {}", found.1))),
        }
    }

    /// Whether the entry with this stable id (hex, as linked) still exists and is not disabled.
    async fn is_active(&self, ldap: &mut Ldap, id_hex: &str) -> Result<bool, Unavailable> {
        let id = hex::decode(id_hex).map_err(|e| Unavailable(format!("a stored LDAP id is not hex: {e}")))?;
        let c = &self.config;
        let found = ldap
            .with_timeout(self.op_timeout())
            .search(&c.user_base, Scope::Subtree, &filter::by_id(&c.id_attribute, &id), ["1.1"])
            .await?;
        if found.1.rc != 0 {
            return Err(Unavailable(format!("the recheck search failed: {}", found.1)));
        }
        let Some(entry) = found.0.into_iter().find(|e| !e.is_ref()).map(SearchEntry::construct) else { return Ok(false) };
        Ok(!self.is_disabled(ldap, &entry.dn).await?)
    }

    /// Whether the entry at `dn` matches the disabled filter. Asked as a filter of its own, on
    /// the entry alone, so that a directory that does not know the filter's attribute (no
    /// ppolicy, say) answers "not disabled" rather than hiding every entry, as `(!(...))`
    /// over an undefined attribute would.
    async fn is_disabled(&self, ldap: &mut Ldap, dn: &str) -> Result<bool, Unavailable> {
        if self.config.disabled_filter.is_empty() {
            return Ok(false);
        }
        let found = ldap.with_timeout(self.op_timeout()).search(dn, Scope::Base, &self.config.disabled_filter, ["1.1"]).await?;
        match found.1.rc {
            0 => Ok(found.0.iter().any(|e| !e.is_ref())),
            NO_SUCH_OBJECT => Ok(true),
            _ => Err(Unavailable(format!("the disabled check failed: {}", found.1))),
        }
    }
}

/// The first value of an attribute, whose name the directory may spell in another case.
fn text_value<'a>(entry: &'a SearchEntry, attr: &str) -> Option<&'a str> {
    entry.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(attr)).and_then(|(_, v)| v.first()).map(String::as_str)
}

/// The first value's bytes, text or binary (`objectGUID` arrives as binary).
fn binary_value<'a>(entry: &'a SearchEntry, attr: &str) -> Option<&'a [u8]> {
    text_value(entry, attr)
        .map(str::as_bytes)
        .or_else(|| entry.bin_attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(attr)).and_then(|(_, v)| v.first()).map(Vec::as_slice))
}

/// A directory's display name as a nickname: one line, no control characters, at most 64
/// characters; the username when nothing is left.
fn display_name(raw: &str, username: &str) -> String {
    let line: String = raw.lines().next().unwrap_or("").chars().filter(|c| !c.is_control()).take(64).collect();
    let line = line.trim();
    if line.is_empty() { username.to_owned() } else { line.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn display_names_become_one_clean_line() {
        assert_eq!(display_name("  Alice Liddell ", "alice"), "Alice Liddell");
        assert_eq!(display_name("", "alice"), "alice");
        assert_eq!(display_name("A\u{7}B\nsecond line", "alice"), "AB");
        assert_eq!(display_name(&"x".repeat(100), "alice").len(), 64);
        assert_eq!(display_name("王小明", "wang"), "王小明");
    }

    #[test]
    fn attributes_are_found_whatever_their_case_and_binary_ids_too() {
        let mut entry = SearchEntry { dn: "uid=a,dc=x".into(), attrs: HashMap::new(), bin_attrs: HashMap::new() };
        entry.attrs.insert("entryUUID".into(), vec!["5b1c".into()]);
        entry.bin_attrs.insert("objectGUID".into(), vec![vec![0xff, 0x00, 0x12]]);
        assert_eq!(text_value(&entry, "entryuuid"), Some("5b1c"));
        assert_eq!(binary_value(&entry, "ENTRYUUID"), Some(&b"5b1c"[..]));
        assert_eq!(binary_value(&entry, "objectguid").map(hex::encode).as_deref(), Some("ff0012"));
        assert_eq!(text_value(&entry, "mail"), None);
    }

    #[test]
    fn no_directory_without_a_url_and_a_missing_ca_file_stops_the_start() {
        assert!(Directory::new(&config::Ldap::default()).unwrap().is_none());
        let c = config::Ldap {
            url: Some("ldaps://dir.example.org".into()),
            user_base: "dc=example,dc=org".into(),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..config::Ldap::default()
        };
        assert!(Directory::new(&c).err().unwrap().contains("ca_file"));
        let c = config::Ldap { url: Some("ldap://dir.example.org".into()), starttls: false, ..c };
        assert!(Directory::new(&c).err().unwrap().contains("loopback"));
    }
}
