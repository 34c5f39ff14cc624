//! The `[auth]` settings: registration, one-time codes, login limits, and single sign-on
//! (LDAP, OpenID Connect) with the password sign-in policy.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// `open`, `invite` (invite codes from the admin panel) or `closed`.
    pub registration: Registration,
    /// `log` (the code goes to the server log), `webhook` (sent by POST to `otp_webhook_url`) or `off`.
    pub otp_sender: OtpSender,
    /// Receives `{"to","username","code","expires_in_secs"}` for every one-time code.
    pub otp_webhook_url: Option<String>,
    /// Sent as `Authorization: Bearer ...` to the webhook when set.
    pub otp_webhook_token: Option<String>,
    /// Address ranges (CIDR) the webhook may reach besides public addresses: a gateway on the
    /// LAN or on this machine. Like every outbound request, the webhook is refused on private,
    /// loopback and link-local addresses otherwise. Only in the file or the environment, not in
    /// the admin panel.
    pub otp_webhook_allow: Vec<String>,
    pub session_days: u64,
    /// Mark the session cookie `Secure` (set it when the server is reached over HTTPS).
    pub cookie_secure: bool,
    /// Failed logins per account in `failure_window_secs` before 429.
    pub failures_per_account: u32,
    /// Failed logins per client IP in `failure_window_secs` before 429.
    pub failures_per_ip: u32,
    pub failure_window_secs: u64,
    /// Registrations per client IP per hour.
    pub registrations_per_ip_per_hour: u32,
    /// Password hashes computed at once; each takes about 19 MiB while it runs.
    pub hash_concurrency: usize,
    /// Accept `POST /api/auth/register` (accounts with a password). May be turned off only when
    /// a single sign-on method is configured.
    pub password_registration: bool,
    /// Accept password login for people who are not server administrators (administrators
    /// always may, so that the first one keeps a way in). May be turned off only when a single
    /// sign-on method is configured.
    pub password_login: bool,
    /// Let an OpenID Connect login take over an existing local account whose e-mail matches the
    /// provider's `email` claim, when the provider says `email_verified: true`. Off: such a
    /// login gets a new account.
    pub oidc_link_by_email: bool,
    /// OpenID Connect providers (`[[auth.oidc]]`), each a "Sign in with ..." button.
    pub oidc: Vec<OidcProvider>,
    /// Sign-in through an LDAP directory or Active Directory (off while `auth.ldap.url` is unset).
    pub ldap: Ldap,
}

/// LDAP sign-in: `POST /api/auth/login` checks the directory for every name that is not a local
/// account. Only in the file or the environment, not in the admin panel.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ldap {
    /// `ldap://host[:port]` (upgraded with `StartTLS`) or `ldaps://host[:port]`; unset turns LDAP off.
    pub url: Option<String>,
    /// Upgrade an `ldap://` connection with `StartTLS`. `false` is accepted only for a loopback
    /// address (tests), and logged as a warning.
    pub starttls: bool,
    /// A PEM file of certificates to trust besides the system's roots (a company CA).
    pub ca_file: Option<PathBuf>,
    /// The service account that searches the directory; unset searches anonymously.
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    /// Where users are searched (subtree), e.g. `ou=people,dc=example,dc=org`.
    pub user_base: String,
    /// The search filter; `{username}` is replaced by the typed name, escaped (RFC 4515).
    /// Active Directory: `(&(objectClass=user)(sAMAccountName={username}))`.
    pub user_filter: String,
    /// Attributes that give the new account's username, display name and e-mail address.
    pub username_attribute: String,
    pub display_name_attribute: String,
    pub email_attribute: String,
    /// The attribute that identifies an entry for good, across renames: `entryUUID` (`OpenLDAP`),
    /// `objectGUID` (Active Directory, binary), `nsUniqueId` (389 DS).
    pub id_attribute: String,
    /// DN of a group whose members (`member` or `uniqueMember`) are server administrators;
    /// unset leaves the administrator role to Chinwag's own admin panel.
    pub admin_group: Option<String>,
    /// A filter matching accounts that are disabled in the directory: they cannot log in and lose
    /// their sessions. `OpenLDAP` with ppolicy: `(pwdAccountLockedTime=*)`; Active Directory:
    /// `(userAccountControl:1.2.840.113556.1.4.803:=2)`. Empty checks nothing.
    pub disabled_filter: String,
    /// Seconds between rechecks of every linked account (removed or disabled in the directory
    /// means its sessions end).
    pub sync_interval_secs: u64,
    /// Seconds to connect (TCP and TLS) to the directory.
    pub connect_timeout_secs: u64,
    /// Seconds each directory operation (bind, search) may take.
    pub timeout_secs: u64,
}

impl Default for Ldap {
    fn default() -> Self {
        Ldap {
            url: None,
            starttls: true,
            ca_file: None,
            bind_dn: None,
            bind_password: None,
            user_base: String::new(),
            user_filter: "(uid={username})".into(),
            username_attribute: "uid".into(),
            display_name_attribute: "cn".into(),
            email_attribute: "mail".into(),
            id_attribute: "entryUUID".into(),
            admin_group: None,
            disabled_filter: "(pwdAccountLockedTime=*)".into(),
            sync_interval_secs: 900,
            connect_timeout_secs: 5,
            timeout_secs: 10,
        }
    }
}

impl Ldap {
    /// Checks the settings when LDAP is on; `Ok(true)` means `StartTLS` is off on loopback, which
    /// the caller logs as a warning.
    pub fn validate(&self) -> Result<bool, String> {
        let Some(url) = &self.url else { return Ok(false) };
        let parsed = url::Url::parse(url).map_err(|e| format!("auth.ldap.url: {e}"))?;
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err("auth.ldap.url needs a host".into()),
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("auth.ldap.url must not carry a user name or password (use auth.ldap.bind_dn and bind_password)".into());
        }
        let plain = match parsed.scheme() {
            "ldap" => !self.starttls,
            "ldaps" => false,
            _ => return Err("auth.ldap.url must start with ldap:// or ldaps://".into()),
        };
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
        if plain && !loopback {
            return Err(
                "auth.ldap.starttls = false sends passwords in clear text; it is allowed only for a loopback directory (tests)".into()
            );
        }
        if self.user_base.trim().is_empty() {
            return Err("auth.ldap.user_base must name where users are searched".into());
        }
        for (name, filter) in [("user_filter", &self.user_filter), ("disabled_filter", &self.disabled_filter)] {
            if !(filter.is_empty() || (filter.starts_with('(') && filter.ends_with(')'))) {
                return Err(format!("auth.ldap.{name} must be a filter in parentheses"));
            }
        }
        if !self.user_filter.contains("{username}") {
            return Err("auth.ldap.user_filter must contain {username}".into());
        }
        let attrs = [&self.username_attribute, &self.display_name_attribute, &self.email_attribute, &self.id_attribute];
        if attrs.iter().any(|a| a.is_empty() || !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')) {
            return Err("auth.ldap: attribute names are letters, digits and dashes".into());
        }
        if self.bind_dn.is_some() != self.bind_password.is_some() {
            return Err("auth.ldap.bind_dn and auth.ldap.bind_password go together".into());
        }
        if self.sync_interval_secs == 0 || self.connect_timeout_secs == 0 || self.timeout_secs == 0 {
            return Err("auth.ldap.sync_interval_secs, connect_timeout_secs and timeout_secs must be at least 1".into());
        }
        Ok(plain)
    }
}

/// One OpenID Connect provider. The server fetches its discovery document and keys from
/// `issuer` (and only from its host, or hosts listed in `allow_hosts`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// Short name in URLs: `/api/auth/oidc/{id}/callback` (letters, digits, `-`, `_`).
    pub id: String,
    /// Shown on the button: "Sign in with {name}".
    pub name: String,
    /// The issuer URL exactly as the provider's discovery document states it. `https://` only,
    /// except `http://` on a loopback address (tests).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Scopes asked for besides `openid`; default `["profile", "email"]`.
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// A claim of the ID token that makes a server administrator when it equals `admin_value`
    /// (or is a list containing it), e.g. `groups` and `chinwag-admins`. Re-checked at each
    /// login; without it, logins through this provider never change who is an administrator.
    #[serde(default)]
    pub admin_claim: Option<String>,
    #[serde(default)]
    pub admin_value: Option<String>,
    /// Other `https` hosts the provider's discovery document may name for its token endpoint and
    /// keys (Google: `oauth2.googleapis.com`, `www.googleapis.com`). Requests to other hosts are
    /// refused.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
}

pub(super) fn default_oidc_scopes() -> Vec<String> {
    vec!["profile".into(), "email".into()]
}

impl Auth {
    /// Whether a single sign-on method is configured, so that password sign-in may be turned off.
    pub fn sso_configured(&self) -> bool {
        !self.oidc.is_empty() || self.ldap.url.is_some()
    }
}

/// Why an OpenID Connect issuer URL is not accepted: only `https`, or `http` on loopback.
pub fn check_issuer(issuer: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(issuer).map_err(|e| format!("`{issuer}` is not a URL: {e}"))?;
    if !u.username().is_empty() || u.password().is_some() || u.query().is_some() || u.fragment().is_some() {
        return Err(format!("`{issuer}` must not carry a user name, a query or a fragment"));
    }
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => return Err(format!("`{issuer}` has no host")),
    };
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback => Ok(u),
        _ => Err(format!("`{issuer}` must be an https:// URL (http:// only on a loopback address)")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// Anyone may register.
    Open,
    /// Registration needs an invite code from an administrator.
    Invite,
    /// Nobody may register (administrators create accounts with `chinwag admin create-user`).
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OtpSender {
    Off,
    Log,
    Webhook,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            registration: Registration::Open,
            otp_sender: OtpSender::Log,
            otp_webhook_url: None,
            otp_webhook_token: None,
            otp_webhook_allow: Vec::new(),
            session_days: 30,
            cookie_secure: false,
            failures_per_account: 5,
            failures_per_ip: 50,
            failure_window_secs: 15 * 60,
            registrations_per_ip_per_hour: 30,
            hash_concurrency: 2,
            ldap: Ldap::default(),
            password_registration: true,
            password_login: true,
            oidc_link_by_email: false,
            oidc: Vec::new(),
        }
    }
}
