//! Operator commands for headless servers (`chinwag admin ...`, `backup`, `export`), run
//! against a store: directly when no server holds the data dir, or inside the running server
//! through its control socket (`<data_dir>/control.sock`, owner-only), so they work the same
//! either way. Whoever can open the data dir may run them; that is the trust boundary.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::accounts::registration::admit;
use crate::config::Registration;
use crate::hub::Hub;
use crate::ids::{ConvId, UserId, Username};
use crate::protocol::close;
use crate::store::users::CreateRefusal;
use crate::store::{NewUser, Store, now_ms};

pub const SOCKET: &str = "control.sock";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    Backup,
    Export { user: Option<String> },
    CreateUser { username: String, password: String, admin: bool },
    SetAdmin { username: String, admin: bool },
    ResetPassword { username: String, password: String },
    ListUsers,
}

/// Runs a command that answers with JSON (everything but `Backup`).
pub async fn execute(store: &Store, hub: Option<&Arc<Hub>>, cmd: Command) -> anyhow::Result<Value> {
    let console = UserId(0);
    match cmd {
        Command::Backup => anyhow::bail!("backup streams an archive; use the backup path"),
        Command::Export { user } => export(store, user).await,
        Command::CreateUser { username, password, admin } => {
            let name =
                Username::parse(&username).ok_or_else(|| anyhow::anyhow!("a username has 3 to 32 characters: letters, digits, _ . -"))?;
            crate::accounts::validate::password(&password).map_err(|e| anyhow::anyhow!(e.message))?;
            let hash = hash(password).await?;
            let new = NewUser {
                username: name.as_str().into(),
                password_hash: hash,
                nickname: username.trim().into(),
                phone: None,
                email: None,
                invite: None,
            };
            // Administrators create accounts whatever the registration mode.
            let user = match store.create_user(new, |first, invite| admit(Registration::Open, first, invite, now_ms())).await? {
                Ok(u) => u,
                Err(CreateRefusal::Taken(_)) => anyhow::bail!("the username {} is taken", name.as_str()),
                Err(r) => anyhow::bail!("cannot create the user: {r:?}"),
            };
            let user =
                if admin && !user.is_admin { store.set_admin(user.id, true).await?.map_err(|r| anyhow::anyhow!("{r:?}"))? } else { user };
            store.audit(console, "user.create", format!("user:{}", user.id), "console".into()).await?;
            Ok(json!({"id": user.id, "username": user.username, "is_admin": user.is_admin}))
        }
        Command::SetAdmin { username, admin } => {
            let user = find(store, &username).await?;
            let user = store.set_admin(user.id, admin).await?.map_err(|r| anyhow::anyhow!("cannot change {username}: {r:?}"))?;
            store.audit(console, if admin { "user.promote" } else { "user.demote" }, format!("user:{}", user.id), "console".into()).await?;
            Ok(json!({"id": user.id, "username": user.username, "is_admin": user.is_admin}))
        }
        Command::ResetPassword { username, password } => {
            crate::accounts::validate::password(&password).map_err(|e| anyhow::anyhow!(e.message))?;
            let user = find(store, &username).await?;
            store.set_password_hash(user.id, hash(password).await?).await?;
            let revoked = store.delete_user_sessions(user.id, None).await?;
            if let Some(hub) = hub {
                hub.close_sessions(&revoked, close::SESSION_REVOKED);
            }
            store.audit(console, "user.reset_password", format!("user:{}", user.id), "console".into()).await?;
            Ok(json!({"id": user.id, "username": user.username, "sessions_ended": revoked.len()}))
        }
        Command::ListUsers => {
            let (users, total) = store.list_users(None, 0, usize::MAX).await?;
            let rows: Vec<Value> = users
                .iter()
                .map(|u| json!({"id": u.id, "username": u.username, "nickname": u.nickname, "is_admin": u.is_admin, "disabled": u.disabled, "created_at": u.created_at}))
                .collect();
            Ok(json!({"total": total, "users": rows}))
        }
    }
}

async fn hash(password: String) -> anyhow::Result<String> {
    use argon2::password_hash::PasswordHasher;
    tokio::task::spawn_blocking(move || argon2::Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()))
        .await?
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

async fn find(store: &Store, username: &str) -> anyhow::Result<crate::store::UserRecord> {
    store.user_by_login(username.trim().to_lowercase()).await?.ok_or_else(|| anyhow::anyhow!("no user {username}"))
}

/// Everything of one user (profile, contacts, groups, conversations with their messages), or
/// of the whole server (users without password hashes, groups, every conversation).
pub async fn export(store: &Store, user: Option<String>) -> anyhow::Result<Value> {
    async fn messages(store: &Store, conv: ConvId, first: u64) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after = first.saturating_sub(1);
        loop {
            let (page, more) = store.history(conv, None, Some(after), 100, first).await?;
            if let Some(last) = page.last() {
                after = last.seq;
            }
            out.extend(page.into_iter().map(|m| serde_json::to_value(m).unwrap_or(Value::Null)));
            if !more {
                return Ok(out);
            }
        }
    }
    let now = crate::store::now_ms();
    match user {
        Some(name) => {
            let u = find(store, &name).await?;
            let mut contacts = Vec::new();
            for (other, mine, theirs) in store.contacts_of(u.id).await? {
                contacts.push(json!({"user": other, "contact": mine.contact, "blocked": mine.blocked, "they_have_you": theirs.contact}));
            }
            let mut convs = Vec::new();
            for h in store.conversation_heads(u.id).await? {
                convs.push(json!({"id": h.conv, "messages": messages(store, h.conv, h.first_seq.max(1)).await?}));
            }
            Ok(json!({"format": 1, "exported_at": now, "user": u.own_view(), "contacts": contacts, "conversations": convs}))
        }
        None => {
            let (users, _) = store.list_users(None, 0, usize::MAX).await?;
            let users: Vec<Value> =
                users.iter().map(|u| json!({"profile": u.own_view(), "disabled": u.disabled, "deleted": u.deleted})).collect();
            let mut groups = Vec::new();
            for g in store.all_groups().await? {
                if let Some(state) = store.group(g.id).await? {
                    let members: Vec<Value> =
                        state.members.iter().map(|(u, m)| json!({"user": u, "role": m.role, "joined_at": m.joined_at})).collect();
                    groups.push(json!({"id": g.id, "name": g.name, "notice": g.notice, "owner": g.owner, "created_at": g.created_at, "members": members}));
                }
            }
            let mut convs = Vec::new();
            for conv in store.all_conversations().await? {
                convs.push(json!({"id": conv, "messages": messages(store, conv, 1).await?}));
            }
            Ok(json!({"format": 1, "exported_at": now, "users": users, "groups": groups, "conversations": convs}))
        }
    }
}

/// Serves the control socket until `shutdown`. The socket file is owner-only.
pub async fn serve(data_dir: PathBuf, store: Store, hub: Arc<Hub>, shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = data_dir.join(SOCKET);
        // We hold the database lock, so no other server owns a socket file left here.
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        loop {
            let stream = tokio::select! {
                () = shutdown.cancelled() => break,
                s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => continue },
            };
            let (store, hub, data_dir) = (store.clone(), hub.clone(), data_dir.clone());
            tokio::spawn(async move {
                if let Err(e) = handle(stream, &store, &hub, &data_dir).await {
                    tracing::warn!(error = %e, "control connection failed");
                }
            });
        }
        let _ = std::fs::remove_file(&path);
    }
    #[cfg(not(unix))]
    let _ = (data_dir, store, hub, shutdown);
    Ok(())
}

#[cfg(unix)]
async fn handle(stream: tokio::net::UnixStream, store: &Store, hub: &Arc<Hub>, data_dir: &Path) -> anyhow::Result<()> {
    let std_stream = stream.into_std()?;
    std_stream.set_nonblocking(false)?;
    let mut reader = BufReader::new(std_stream.try_clone()?);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        (&mut reader).take(64 * 1024).read_line(&mut line).map(|_| line)
    })
    .await??;
    let mut out = std_stream;
    let cmd: Command = match serde_json::from_str(line.trim()) {
        Ok(c) => c,
        Err(e) => {
            writeln!(out, "{}", json!({"ok": false, "error": format!("bad command: {e}")}))?;
            return Ok(());
        }
    };
    tracing::info!(?cmd, "control command");
    if matches!(cmd, Command::Backup) {
        writeln!(out, "{}", json!({"ok": true}))?;
        crate::backup::create(store, data_dir, out, Box::new(|_, _, _| {})).await?;
        return Ok(());
    }
    let reply = match execute(store, Some(hub), cmd).await {
        Ok(v) => json!({"ok": true, "result": v}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    writeln!(out, "{reply}")?;
    Ok(())
}

use std::io::Read as _;

/// Sends `cmd` to the server running on `data_dir`; returns its header and the stream, from
/// which a backup's archive follows.
#[cfg(unix)]
pub fn call(data_dir: &Path, cmd: &Command) -> anyhow::Result<(Value, BufReader<std::os::unix::net::UnixStream>)> {
    let path = data_dir.join(SOCKET);
    let mut s = std::os::unix::net::UnixStream::connect(&path)
        .map_err(|e| anyhow::anyhow!("the data dir is in use, but the server's control socket {} does not answer: {e}", path.display()))?;
    writeln!(s, "{}", serde_json::to_string(cmd)?)?;
    let mut r = BufReader::new(s);
    let mut header = String::new();
    r.read_line(&mut header)?;
    let v: Value = serde_json::from_str(header.trim()).map_err(|_| anyhow::anyhow!("the server gave no answer"))?;
    if v["ok"] != true {
        anyhow::bail!("{}", v["error"].as_str().unwrap_or("the server refused"));
    }
    Ok((v, r))
}
