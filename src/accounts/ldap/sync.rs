//! The recheck of linked accounts: every `auth.ldap.sync_interval_secs`, each account linked to
//! a directory entry is looked up by its stable id with the service account; an entry that is
//! gone, or that the disabled filter matches, loses every session (and its sockets). A directory
//! that cannot be reached ends nothing: the next round tries again.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Directory, Unavailable};
use crate::hub::Hub;
use crate::protocol::close;
use crate::store::Store;

/// Starts the recheck task; it stops with `shutdown`.
pub fn spawn_sync(dir: Arc<Directory>, store: Store, hub: Arc<Hub>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(dir.sync_interval());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = every.tick() => {
                    let round = tokio::spawn(recheck(dir.clone(), store.clone(), hub.clone()));
                    match round.await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => tracing::info!(accounts = n, "ended the sessions of accounts removed or disabled in the directory"),
                        Ok(Err(Unavailable(e))) => tracing::warn!(error = %e, "cannot recheck LDAP accounts; trying again next round"),
                        Err(e) => tracing::warn!(error = %e, "the LDAP recheck failed"),
                    }
                }
            }
        }
    })
}

/// One round; returns how many accounts lost their sessions.
async fn recheck(dir: Arc<Directory>, store: Store, hub: Arc<Hub>) -> Result<usize, Unavailable> {
    let links = store.ldap_links().await?;
    if links.is_empty() {
        return Ok(0);
    }
    let mut ldap = dir.service_connection().await?;
    let mut ended = 0;
    for (id, user) in links {
        let active = tokio::time::timeout(dir.exchange_deadline(), dir.is_active(&mut ldap, &id))
            .await
            .map_err(|_| Unavailable("no answer from the directory in time".into()))??;
        if active {
            continue;
        }
        let revoked = store.delete_user_sessions(user, None).await?;
        if !revoked.is_empty() {
            hub.close_sessions(&revoked, close::SESSION_REVOKED);
            tracing::info!(%user, sessions = revoked.len(), "signed out: removed or disabled in the directory");
            ended += 1;
        }
    }
    let _ = ldap.unbind().await;
    Ok(ended)
}
