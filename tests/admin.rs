//! Server administration end to end: users, groups, live settings with invites, the
//! dashboard and the audit log; every change checked on the server.

mod common;

use common::TestServer;
use serde_json::json;

#[tokio::test]
async fn admins_manage_users_and_the_last_admin_stays() {
    let s = TestServer::start().await;
    let root = s.register("root").await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let http = s.http();
    assert_eq!(http.get("/api/admin/users", Some(&ann.token)).await.0, 403);
    let (st, page) = http.get("/api/admin/users?q=an&limit=10", Some(&root.token)).await;
    assert_eq!((st, page["total"].as_u64()), (200, Some(1)));
    assert_eq!(page["users"][0]["username"], "ann");
    let (_, page) = http.get("/api/admin/users?offset=1&limit=1", Some(&root.token)).await;
    assert_eq!((page["total"].as_u64(), page["users"][0]["username"].as_str()), (Some(3), Some("ann")));

    // The last administrator can neither demote nor delete themselves.
    let (st, body) = http.delete(&format!("/api/admin/users/{}/admin", root.id), Some(&root.token)).await;
    assert_eq!((st, body["error"]["code"].as_str()), (409, Some("last_admin")));
    assert_eq!(http.delete(&format!("/api/admin/users/{}", root.id), Some(&root.token)).await.0, 409);
    // Promote ann; now root may step down, and ann administers.
    assert_eq!(http.post(&format!("/api/admin/users/{}/admin", ann.id), Some(&root.token), json!({})).await.0, 200);
    assert_eq!(http.delete(&format!("/api/admin/users/{}/admin", root.id), Some(&root.token)).await.0, 200);
    assert_eq!(http.get("/api/admin/users", Some(&root.token)).await.0, 403);
    assert_eq!(http.get("/api/admin/users", Some(&ann.token)).await.0, 200);

    // Reset bob's password: his sessions end; the new password works.
    let mut bob_ws = s.ws(&bob).await;
    let (st, _) =
        http.post(&format!("/api/admin/users/{}/password", bob.id), Some(&ann.token), json!({"new_password":"reset-by-admin"})).await;
    assert_eq!(st, 204);
    assert_eq!(bob_ws.until_end(std::time::Duration::from_secs(2)).await, common::Ended::Closed(Some(4001)));
    assert_eq!(http.post("/api/auth/login", None, json!({"username":"bob","password":"reset-by-admin"})).await.0, 200);

    // Delete bob: he cannot log in, and his name stays taken.
    let (st, v) = http.delete(&format!("/api/admin/users/{}", bob.id), Some(&ann.token)).await;
    assert_eq!((st, v["deleted"].as_bool()), (200, Some(true)));
    assert_eq!(http.post("/api/auth/login", None, json!({"username":"bob","password":"reset-by-admin"})).await.0, 401);
    assert_eq!(http.post("/api/auth/register", None, json!({"username":"bob","password":"imposter-pw"})).await.0, 409);

    let (_, audit) = http.get("/api/admin/audit", Some(&ann.token)).await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["user.delete", "user.reset_password", "user.demote", "user.promote"]);
    s.stop().await;
}

#[tokio::test]
async fn disabled_groups_are_read_only_until_enabled() {
    let s = TestServer::start().await;
    let root = s.register("root").await;
    let ann = s.register("ann").await;
    let gid = s.group(&ann, "club", &[]).await;
    let conv = format!("g:{gid}");
    let http = s.http();
    let (_, page) = http.get("/api/admin/groups?q=clu", Some(&root.token)).await;
    assert_eq!((page["groups"][0]["id"].as_u64(), page["groups"][0]["status"].as_str()), (Some(gid), Some("active")));
    let mut ws = s.ws(&ann).await;
    assert_eq!(
        http.post(&format!("/api/admin/groups/{gid}/disable"), Some(&ann.token), json!({})).await.0,
        403,
        "group owners are not server admins"
    );
    assert_eq!(http.post(&format!("/api/admin/groups/{gid}/disable"), Some(&root.token), json!({})).await.0, 204);
    assert_eq!(ws.send_text("x", &conv, "hello").await["code"], "forbidden");
    assert_eq!(http.post(&format!("/api/admin/groups/{gid}/enable"), Some(&root.token), json!({})).await.0, 204);
    assert_eq!(ws.send_text("y", &conv, "hello again").await["type"], "ack");
    assert_eq!(http.delete(&format!("/api/admin/groups/{gid}"), Some(&root.token)).await.0, 204);
    assert_eq!(ws.send_text("z", &conv, "gone?").await["code"], "forbidden");
    s.stop().await;
}

#[tokio::test]
async fn registration_modes_and_invites_apply_live_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let root = s.register("root").await;
    let http = s.http();
    let (st, set) = http.patch("/api/admin/settings", Some(&root.token), json!({"registration":"closed"})).await;
    assert_eq!((st, set["registration"].as_str()), (200, Some("closed")));
    let (st, body) = http.post("/api/auth/register", None, json!({"username":"ann","password":"ann-password"})).await;
    assert_eq!((st, body["error"]["code"].as_str()), (403, Some("registration_closed")));
    assert_eq!(http.get("/api/auth/options", None).await.1["registration"], "closed");

    http.patch("/api/admin/settings", Some(&root.token), json!({"registration":"invite"})).await;
    let (st, invite) = http.post("/api/admin/invites", Some(&root.token), json!({"max_uses": 1, "expires_in_hours": 24})).await;
    assert_eq!(st, 201);
    let code = invite["code"].as_str().unwrap().to_owned();
    let (st, body) = http.post("/api/auth/register", None, json!({"username":"ann","password":"ann-password","invite":"wrong"})).await;
    assert_eq!((st, body["error"]["code"].as_str()), (403, Some("bad_invite")));
    assert_eq!(http.post("/api/auth/register", None, json!({"username":"ann","password":"ann-password","invite":code})).await.0, 201);
    assert_eq!(
        http.post("/api/auth/register", None, json!({"username":"bob","password":"bob-password","invite":code})).await.0,
        403,
        "used up"
    );
    let (_, list) = http.get("/api/admin/invites", Some(&root.token)).await;
    assert_eq!(list["invites"][0]["uses"], 1);
    assert_eq!(http.patch("/api/admin/settings", Some(&root.token), json!({"recall_window_secs": "soon"})).await.0, 400);
    // A window so long that it overflows in milliseconds is refused (ten years at most).
    assert_eq!(http.patch("/api/admin/settings", Some(&root.token), json!({"recall_window_secs": u64::MAX / 2})).await.0, 400);
    assert_eq!(http.patch("/api/admin/settings", Some(&root.token), json!({"is_admin": true})).await.0, 400);
    s.stop().await;

    // After a restart the stored setting is still in force.
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let (st, _) = s.http().post("/api/auth/register", None, json!({"username":"cat","password":"cat-password"})).await;
    assert_eq!(st, 403);
    let (_, dash) = s.http().get("/api/admin/dashboard", Some(&root.token)).await;
    assert_eq!(dash["users"], 2);
    assert!(dash["storage_bytes"].as_u64().unwrap() > 0);
    assert_eq!(dash["messages_per_day"].as_array().unwrap().len(), 14);
    s.stop().await;
}
