//! Settings: defaults, then an optional TOML file, then `CHINWAG_*` environment variables, then
//! command-line flags, each layer overriding the one before.
//!
//! Loading has no side effects: nothing is created or written here. Nested keys map to
//! environment variables with a double underscore: `auth.otp_sender` is `CHINWAG_AUTH__OTP_SENDER`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

mod auth;
pub use auth::{Auth, Ldap, OidcProvider, OtpSender, Registration, check_issuer};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port of the HTTP and WebSocket listener.
    pub listen: SocketAddr,
    /// Where the database and file blobs live.
    pub data_dir: PathBuf,
    /// The address people reach this server at, e.g. `https://chat.example.org` (no trailing
    /// slash). Sign-in providers send people back to URLs built on it (OpenID Connect needs it);
    /// the server never takes that address from a request.
    pub public_url: Option<String>,
    /// Origins besides the server's own that may open the WebSocket and post forms, e.g. a
    /// reverse proxy's public `https://chat.example.org`. The request's own Host is always allowed.
    pub allowed_origins: Vec<String>,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    pub limits: Limits,
    pub auth: Auth,
    pub chat: Chat,
    pub groups: Groups,
    pub metrics: MetricsConfig,
    pub media: Media,
    pub calls: Calls,
    pub turn: Turn,
    pub push: Push,
    pub links: Links,
}

/// Link previews: the server fetches a linked page (and its image) so that clients never
/// contact the site themselves.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Links {
    /// Serve `GET /api/link-preview`; false answers it with `previews_disabled`.
    pub previews: bool,
    /// Address ranges pages may be fetched from although they are private or local, e.g.
    /// `["192.168.1.0/24"]` for a LAN wiki or `["127.0.0.1/32"]` for tests. Everything that is
    /// not public is refused otherwise.
    pub allow: Vec<String>,
    /// Page fetches (cache misses) one user may cause per minute.
    pub fetches_per_minute: u32,
}

impl Default for Links {
    fn default() -> Self {
        Links { previews: true, allow: Vec::new(), fetches_per_minute: 20 }
    }
}

/// Web Push (RFC 8030, 8291, 8292) to devices whose app is closed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Push {
    pub enabled: bool,
    /// The contact push services see in the VAPID token (`sub`): a `mailto:` or `https:` URL of
    /// whoever runs this server. Apple's push service refuses tokens without a real one.
    pub subject: String,
    /// Accept plain `http://` endpoints (tests, closed LANs). Browsers' push services are https.
    pub allow_http: bool,
    /// Address ranges endpoints may resolve to although they are private or local, e.g.
    /// `["127.0.0.1/32"]` for tests. Everything that is not public is refused otherwise.
    pub endpoint_allow: Vec<String>,
    /// Deliveries waiting at once; more are dropped (and counted) rather than slow chat down.
    pub queue: usize,
    /// Deliveries in flight at once.
    pub workers: usize,
    /// Seconds one delivery may take (connect, TLS, request, answer).
    pub timeout_secs: u64,
}

impl Default for Push {
    fn default() -> Self {
        Push {
            enabled: true,
            subject: "mailto:admin@chinwag.invalid".into(),
            allow_http: false,
            endpoint_allow: Vec::new(),
            queue: 10_000,
            workers: 16,
            timeout_secs: 10,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Calls {
    /// How long a call rings before it ends unanswered (logged as missed), seconds.
    pub ring_timeout_secs: u64,
    /// Most people in one group call (a mesh: every participant sends to every other).
    pub max_group_participants: usize,
    /// TURN credential fetches (`GET /api/calls/ice-servers`) per user per 10 minutes.
    pub ice_servers_per_10_min: u32,
    /// Send all call media through the TURN relay (`ice_transport_policy: "relay"` in
    /// `GET /api/calls/ice-servers`): people in a call never learn each other's IP addresses, at
    /// the cost of relay bandwidth and a little latency. Needs the relay (`turn.enabled`).
    pub relay_only: bool,
    /// Group calls go through the server's selective forwarding unit: each participant sends
    /// once, to the server, which forwards to the others (docs/protocol.md).
    pub sfu: bool,
    /// Groups with at least this many members call through the SFU (2: every group); smaller
    /// ones call as a mesh.
    pub sfu_from_members: usize,
    /// Most people in one video call through the SFU.
    pub sfu_max_video: usize,
    /// Most people in one audio call through the SFU.
    pub sfu_max_audio: usize,
    /// Most kilobits per second one sender may send; past it, its largest layer is not forwarded.
    pub sfu_max_kbps: u64,
    /// Most people in all SFU calls of the server at once.
    pub sfu_max_participants: usize,
    /// Lower the simulcast layer a receiver gets when the bandwidth estimated towards it is too
    /// small for what it asked for. Off: every receiver gets the layers it asks for (a LAN
    /// where bandwidth is plentiful, or a test that needs exact layers).
    pub sfu_adapt_to_bandwidth: bool,
    /// Also accept ICE over TCP on the same port number as `media_listen` (for clients whose
    /// network blocks UDP).
    pub media_tcp: bool,
    /// The one UDP port (and address) of all SFU media. Clients are told `turn.public_ip`, else
    /// this address, as the place to reach it.
    pub media_listen: SocketAddr,
}

impl Default for Calls {
    fn default() -> Self {
        Calls {
            ring_timeout_secs: 45,
            max_group_participants: 4,
            ice_servers_per_10_min: 100,
            relay_only: false,
            sfu: true,
            sfu_from_members: 2,
            sfu_max_video: 16,
            sfu_max_audio: 50,
            sfu_max_kbps: 6000,
            sfu_max_participants: 200,
            sfu_adapt_to_bandwidth: true,
            media_tcp: true,
            media_listen: SocketAddr::from(([0, 0, 0, 0], 3479)),
        }
    }
}

/// The embedded TURN/STUN server (UDP, TCP and optionally TLS) that relays call media between
/// people behind NATs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Turn {
    pub enabled: bool,
    /// UDP address the TURN/STUN server listens on.
    pub listen: SocketAddr,
    /// Also serve TURN over TCP on the same address and port as `listen` (for clients whose
    /// network blocks UDP). The relayed side stays UDP.
    pub tcp: bool,
    /// Address for TURN over TLS (`turns:` URLs), e.g. `0.0.0.0:5349`; off when unset. Needs
    /// `tls_cert` and `tls_key`, and `public_host` set to a name the certificate is valid for.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for TURN over TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for TURN over TLS.
    pub tls_key: Option<PathBuf>,
    /// TCP and TLS connections one client address (an IPv6 /64) may hold at once.
    pub stream_connections_per_ip: usize,
    /// TCP and TLS connections the server holds at once.
    pub stream_connections: usize,
    /// Seconds a new TCP or TLS connection has to finish its TLS handshake and send a valid
    /// STUN message; it is closed otherwise.
    pub stream_handshake_secs: u64,
    /// The address clients reach this server at (relay addresses are given out on it). Without
    /// it, calls between people behind different NATs may fail; a warning says so at start.
    pub public_ip: Option<std::net::IpAddr>,
    /// Host name put in the `turn:` URLs given to clients; defaults to `public_ip`, then to the
    /// host the client used for the HTTP request.
    pub public_host: Option<String>,
    /// UDP ports relay sockets are opened on (inclusive).
    pub relay_min_port: u16,
    pub relay_max_port: u16,
    /// Peer ranges relaying is allowed to although they are private or local, e.g.
    /// `["192.168.1.0/24"]` for a LAN install. Everything private, local, multicast and
    /// reserved is refused otherwise.
    pub allow_peers: Vec<String>,
    /// How long TURN credentials stay valid, seconds.
    pub credential_ttl_secs: u64,
    /// Allocations one user may hold at once.
    pub user_quota: usize,
    /// Allocations the server holds at once.
    pub total_quota: usize,
    /// UDP sockets (with `SO_REUSEPORT`) reading the listen port, each with its own task; 0: one
    /// per CPU.
    pub sockets: usize,
}

impl Default for Turn {
    fn default() -> Self {
        Turn {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 3478)),
            tcp: true,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            stream_connections_per_ip: 64,
            stream_connections: 2048,
            stream_handshake_secs: 10,
            public_ip: None,
            public_host: None,
            relay_min_port: 49152,
            relay_max_port: 65535,
            allow_peers: Vec::new(),
            credential_ttl_secs: 86_400,
            user_quota: 32,
            total_quota: 1200,
            sockets: 0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Media {
    /// Largest file one upload may carry, bytes; a bigger upload is cut off at this point (413).
    pub max_upload_bytes: u64,
    /// Total bytes of the files one user may upload (413 `quota_exceeded` past it).
    pub user_quota_bytes: u64,
}

impl Default for Media {
    fn default() -> Self {
        Media { max_upload_bytes: 25 * 1024 * 1024, user_quota_bytes: 1024 * 1024 * 1024 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Chat {
    /// Who may start a 1:1 chat with a user: `anyone` logged in, or `contacts` only.
    /// Blocked users can never write, whatever this says.
    pub direct_policy: DirectPolicy,
    /// How long senders may recall their message, seconds. Group owners and admins may recall
    /// any message at any time.
    pub recall_window_secs: u64,
    /// How long senders may edit their text messages, seconds.
    pub edit_window_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectPolicy {
    Anyone,
    Contacts,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics.
    pub enabled: bool,
    /// A separate address for `/metrics` (e.g. `127.0.0.1:9090`). Without it, `/metrics` is
    /// served on the main port to loopback clients only.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true, listen: None }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Groups {
    pub max_members: usize,
    pub max_groups_per_user: usize,
    /// Whether people who join a group can read what was said before they joined.
    pub history_for_new_members: bool,
}

impl Default for Chat {
    fn default() -> Self {
        Chat { direct_policy: DirectPolicy::Anyone, recall_window_secs: 120, edit_window_secs: 86_400 }
    }
}

impl Default for Groups {
    fn default() -> Self {
        Groups { max_members: 2000, max_groups_per_user: 500, history_for_new_members: false }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest WebSocket message a client may send.
    pub max_frame_bytes: usize,
    /// Largest JSON body of an HTTP request.
    pub max_body_bytes: usize,
    /// Frames queued for one connection before it counts as too slow and is closed (4008).
    pub outbound_queue: usize,
    /// Writes waiting for the group-commit writer before callers wait for room.
    pub write_queue: usize,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Memory the database may use to cache pages, MiB. The server's memory grows with the data
    /// read and written up to about this much, then stays.
    pub db_cache_mib: usize,
    /// Seconds a socket may stay blocked on a write before it is dropped.
    pub write_timeout_secs: u64,
    /// Seconds a new connection has to send a complete request head before it is closed.
    pub header_timeout_secs: u64,
    /// Open connections (HTTP and WebSocket) one client address may have; loopback (a reverse
    /// proxy) is exempt.
    pub connections_per_ip: usize,
    /// Longest voice message, seconds; checked against the client's claim and, for Ogg and
    /// `WebM` recordings, against the file's own timestamps.
    pub voice_max_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            data_dir: PathBuf::from("chinwag-data"),
            public_url: None,
            allowed_origins: Vec::new(),
            log_format: LogFormat::Text,
            limits: Limits::default(),
            auth: Auth::default(),
            chat: Chat::default(),
            groups: Groups::default(),
            metrics: MetricsConfig::default(),
            media: Media::default(),
            calls: Calls::default(),
            turn: Turn::default(),
            push: Push::default(),
            links: Links::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            outbound_queue: 512,
            write_queue: 8192,
            max_batch: 2048,
            db_cache_mib: 128,
            write_timeout_secs: 10,
            header_timeout_secs: 10,
            connections_per_ip: 256,
            voice_max_secs: 60,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers in force.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

const ENV_PREFIX: &str = "CHINWAG_";
/// Longest recall and edit window, in seconds (ten years).
pub const MAX_WINDOW_SECS: u64 = 10 * 365 * 86_400;
/// Variables that belong to the CLI, not to the settings tree.
const ENV_NOT_SETTINGS: &[&str] = &["CHINWAG_CONFIG", "CHINWAG_LOG"];

impl Config {
    /// Relays one person in the largest group call may need: one per other person and TURN URL
    /// (UDP, TCP, TLS), which browsers take for each person they call.
    pub fn relays_per_call(&self) -> usize {
        let urls = 1 + usize::from(self.turn.tcp) + usize::from(self.turn.tls_listen.is_some());
        self.calls.max_group_participants.saturating_sub(1) * urls
    }

    /// A warning when `turn.user_quota` is too small for the largest group call.
    pub fn turn_quota_warning(&self) -> Option<String> {
        let need = self.relays_per_call();
        (self.turn.enabled && self.turn.user_quota < need).then(|| {
            format!(
                "turn.user_quota ({}) is below the {need} relays one person may need in a call of calls.max_group_participants ({}); some calls will fail to connect",
                self.turn.user_quota, self.calls.max_group_participants
            )
        })
    }

    /// Builds the effective configuration from all layers.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut tree = toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
            let file_tree: toml::Table = text.parse().map_err(|source| ConfigError::Parse { path: path.into(), source })?;
            merge(&mut tree, file_tree);
            // Check the file alone first so that its typos are reported against the file.
            Config::deserialize(toml::Value::Table(tree.clone())).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        }
        for (var, raw) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_NOT_SETTINGS.contains(&var.as_str()) || rest.is_empty() {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            set_path(&mut tree, &path, env_value(&raw)).map_err(|message| ConfigError::Env { var: var.clone(), message })?;
            Config::deserialize(toml::Value::Table(tree.clone()))
                .map_err(|e| ConfigError::Env { var: var.clone(), message: e.message().to_string() })?;
        }
        let mut config = Config::deserialize(toml::Value::Table(tree)).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(dir) = &overrides.data_dir {
            config.data_dir.clone_from(dir);
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.auth.otp_sender == OtpSender::Webhook && self.auth.otp_webhook_url.is_none() {
            return bad("auth.otp_sender = \"webhook\" needs auth.otp_webhook_url");
        }
        if let Some(url) = &self.auth.otp_webhook_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return bad("auth.otp_webhook_url must be an http:// or https:// URL");
        }
        if self.limits.max_frame_bytes < 1024
            || self.limits.outbound_queue == 0
            || self.limits.write_queue == 0
            || self.limits.max_batch == 0
            || self.limits.db_cache_mib == 0
        {
            return bad("limits: max_frame_bytes >= 1024, outbound_queue, write_queue, max_batch and db_cache_mib >= 1");
        }
        if self.limits.voice_max_secs == 0 || self.limits.voice_max_secs > 3600 {
            return bad("limits.voice_max_secs must be 1 to 3600");
        }
        self.validate_sso()?;
        if self.auth.hash_concurrency == 0 || self.auth.session_days == 0 {
            return bad("auth.hash_concurrency and auth.session_days must be at least 1");
        }
        if self.push.queue == 0 || self.push.workers == 0 || self.push.timeout_secs == 0 {
            return bad("push.queue, push.workers and push.timeout_secs must be at least 1");
        }
        self.auth.ldap.validate().map_err(ConfigError::Invalid)?;
        if let Err(e) = crate::address::AddressPolicy::parse("auth.otp_webhook_allow", &self.auth.otp_webhook_allow) {
            return bad(&e);
        }
        if let Err(e) = crate::address::AddressPolicy::parse("push.endpoint_allow", &self.push.endpoint_allow) {
            return Err(ConfigError::Invalid(e));
        }
        if let Err(e) = crate::address::AddressPolicy::parse("links.allow", &self.links.allow) {
            return Err(ConfigError::Invalid(e));
        }
        if self.links.fetches_per_minute == 0 {
            return bad("links.fetches_per_minute must be at least 1");
        }
        if self.media.max_upload_bytes == 0 {
            return bad("media.max_upload_bytes must be at least 1");
        }
        // The windows are multiplied into milliseconds; ten years is far past any use and keeps
        // that from overflowing.
        if self.chat.recall_window_secs > MAX_WINDOW_SECS || self.chat.edit_window_secs > MAX_WINDOW_SECS {
            return bad("chat.recall_window_secs and chat.edit_window_secs must be at most 315360000 (ten years)");
        }
        if self.calls.ring_timeout_secs == 0 || !(2..=16).contains(&self.calls.max_group_participants) {
            return bad("calls.ring_timeout_secs must be at least 1 and calls.max_group_participants 2 to 16");
        }
        if !(2..=64).contains(&self.calls.sfu_max_video)
            || !(2..=500).contains(&self.calls.sfu_max_audio)
            || self.calls.sfu_max_participants < 2
            || self.calls.sfu_max_kbps < 200
        {
            return bad(
                "calls.sfu_max_video must be 2 to 64, calls.sfu_max_audio 2 to 500, calls.sfu_max_participants at least 2 and calls.sfu_max_kbps at least 200",
            );
        }
        if self.turn.relay_min_port == 0 || self.turn.relay_max_port < self.turn.relay_min_port {
            return bad("turn.relay_min_port must be at least 1 and at most turn.relay_max_port");
        }
        if self.turn.credential_ttl_secs == 0 || self.turn.user_quota == 0 || self.turn.total_quota == 0 {
            return bad("turn.credential_ttl_secs, turn.user_quota and turn.total_quota must be at least 1");
        }
        let t = &self.turn;
        if t.stream_connections_per_ip == 0 || t.stream_connections == 0 || t.stream_handshake_secs == 0 {
            return bad("turn.stream_connections_per_ip, turn.stream_connections and turn.stream_handshake_secs must be at least 1");
        }
        let tls = [t.tls_listen.is_some(), t.tls_cert.is_some(), t.tls_key.is_some()];
        if tls.contains(&true) && tls.contains(&false) {
            return bad("TURN over TLS needs all three of turn.tls_listen, turn.tls_cert and turn.tls_key (or none of them)");
        }
        Ok(())
    }

    fn validate_sso(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if (!self.auth.password_login || !self.auth.password_registration) && !self.auth.sso_configured() {
            return bad("auth.password_login and auth.password_registration can be turned off only when a single sign-on method (auth.oidc or auth.ldap) is configured".into());
        }
        if let Some(u) = &self.public_url {
            let ok = url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some() && p.query().is_none());
            if !ok || u.ends_with('/') {
                return bad(format!("public_url `{u}` must be an http:// or https:// URL without a trailing slash"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.auth.oidc {
            let id_ok = (1..=32).contains(&p.id.len()) && p.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !id_ok || !seen.insert(p.id.as_str()) {
                return bad(format!("auth.oidc id `{}` must be unique, 1 to 32 letters, digits, - or _", p.id));
            }
            if p.name.trim().is_empty() || p.name.chars().count() > 64 || p.client_id.is_empty() {
                return bad(format!("auth.oidc `{}`: name (1 to 64 characters) and client_id are required", p.id));
            }
            if let Err(e) = check_issuer(&p.issuer) {
                return bad(format!("auth.oidc `{}` issuer: {e}", p.id));
            }
            if p.admin_claim.is_some() != p.admin_value.is_some() {
                return bad(format!("auth.oidc `{}`: admin_claim and admin_value go together", p.id));
            }
            if self.public_url.is_none() {
                return bad(
                    "auth.oidc needs public_url, the address people reach this server at (the provider sends them back to it)".into()
                );
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML, with secrets replaced by `"<hidden>"`.
    pub fn to_toml_redacted(&self) -> String {
        let mut shown = self.clone();
        let hide = |v: &mut Option<String>| {
            if v.is_some() {
                *v = Some("<hidden>".into());
            }
        };
        hide(&mut shown.auth.otp_webhook_token);
        // A webhook URL often carries an API key in its query string.
        hide(&mut shown.auth.otp_webhook_url);
        hide(&mut shown.auth.ldap.bind_password);
        for p in &mut shown.auth.oidc {
            p.client_secret = "<hidden>".into();
        }
        let text = match toml::to_string_pretty(&shown) {
            Ok(t) => t,
            Err(e) => return format!("# cannot render config: {e}\n"),
        };
        // TOML has no null: unset optional settings would vanish from the listing, and
        // operators would not find them (`turn.public_ip`). They are listed as comments.
        let unset = serde_json::to_value(&shown).map(|v| unset_settings(&v)).unwrap_or_default();
        with_unset_comments(&text, &unset)
    }
}

/// Why some unset settings matter, said next to them in `chinwag config`.
fn unset_hint(table: &str, key: &str) -> &'static str {
    match (table, key) {
        ("turn", "public_ip") => "the address clients reach the relay at; calls between people behind different NATs need it",
        ("turn", "public_host") => "host name in the turn: URLs; defaults to public_ip, then to the host of each request",
        ("turn", "tls_listen") => "TURN over TLS (turns:) is off",
        ("", "public_url") => "the address people reach this server at; OpenID Connect needs it",
        _ => "",
    }
}

/// `(table, key)` of every optional setting that is unset (a JSON null), tables dotted, in the
/// order they are declared; arrays (such as `auth.oidc`) are left out.
fn unset_settings(v: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(table: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        let serde_json::Value::Object(map) = v else { return };
        for (k, v) in map {
            match v {
                serde_json::Value::Null => out.push((table.to_owned(), k.clone())),
                serde_json::Value::Object(_) => walk(&if table.is_empty() { k.clone() } else { format!("{table}.{k}") }, v, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

/// `text` (TOML) with a comment line per unset setting under its table's header (a table
/// that is missing gets its header added at the end).
fn with_unset_comments(text: &str, unset: &[(String, String)]) -> String {
    let comments = |table: &str| -> String {
        unset
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(t, k)| match unset_hint(t, k) {
                "" => format!("# {k} = \"\"  # unset\n"),
                hint => format!("# {k} = \"\"  # unset: {hint}\n"),
            })
            .collect()
    };
    let mut out = comments("");
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(table) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')).filter(|t| !t.starts_with('[')) {
            out.push_str(&comments(table));
            seen.insert(table.to_owned());
        }
    }
    let mut missing: Vec<&str> = unset.iter().map(|(t, _)| t.as_str()).filter(|t| !t.is_empty() && !seen.contains(*t)).collect();
    missing.dedup();
    for table in missing {
        out.push_str(&format!("\n[{table}]\n{}", comments(table)));
    }
    out
}

/// The configuration in force, which administrators can change while the server runs. Handlers
/// take a snapshot (`get`) per request, so one request never sees two versions.
#[derive(Clone, Debug)]
pub struct LiveConfig(Arc<RwLock<Arc<Config>>>);

impl LiveConfig {
    pub fn new(config: Config) -> LiveConfig {
        LiveConfig(Arc::new(RwLock::new(Arc::new(config))))
    }

    pub fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn set(&self, config: Config) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn set_path(tree: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty name")?;
    let mut node = tree;
    for p in parents {
        node = match node.get_mut(p) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(format!("no settings section `{p}`")),
        };
    }
    if !node.contains_key(last)
        && !matches!(
            last.as_str(),
            "otp_webhook_url"
                | "otp_webhook_token"
                | "public_url"
                | "listen"
                | "public_ip"
                | "public_host"
                | "tls_listen"
                | "tls_cert"
                | "tls_key"
                | "url"
                | "ca_file"
                | "bind_dn"
                | "bind_password"
                | "admin_group"
        )
    {
        return Err(format!("unknown setting `{}`", path.join(".")));
    }
    node.insert(last.clone(), value);
    Ok(())
}

/// An environment value is read as a TOML value when it parses as one (numbers, booleans,
/// arrays), and as a plain string otherwise.
fn env_value(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match probe.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

#[cfg(test)]
mod tests;
