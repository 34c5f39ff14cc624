//! LDAP sign-in against a real directory: Debian's `slapd`, started by each test on loopback
//! ports with its own generated `slapd.conf`, data (users, an admin group, a user locked by
//! ppolicy) and TLS certificate. No system service and no global file is used; a missing
//! `slapd` fails the tests (scripts/test installs it).

mod common;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chinwag::config::{Config, Ldap};
use common::{Ended, TestServer, WAIT};
use ldap3::{LdapConnAsync, Mod};
use serde_json::{Value, json};

const SUFFIX: &str = "dc=example,dc=org";
const ROOT_DN: &str = "cn=root,dc=example,dc=org";
const ROOT_PW: &str = "rootsecret";
const ADMINS: &str = "cn=chinwag-admins,ou=groups,dc=example,dc=org";

/// A running `slapd` with its own directory under a temporary dir; killed on drop.
struct Slapd {
    dir: tempfile::TempDir,
    ldap_port: u16,
    ldaps_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn slapd_bin(name: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.exists() { sbin } else { PathBuf::from(name) }
}

fn person(uid: &str, cn: &str, mail: Option<&str>, extra: &str) -> String {
    let mail = mail.map(|m| format!("mail: {m}\n")).unwrap_or_default();
    format!(
        "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {uid}\n{mail}userPassword: {uid}-dirpw\n{extra}\n"
    )
}

impl Slapd {
    fn start() -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        // A certificate for localhost, trusted by the server through auth.ldap.ca_file.
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(d.join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(d.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile {d}/slapd.pid
TLSCertificateFile {d}/cert.pem
TLSCertificateKeyFile {d}/key.pem
database mdb
maxsize 10485760
suffix \"{SUFFIX}\"
rootdn \"{ROOT_DN}\"
rootpw {ROOT_PW}
directory {d}/db
overlay ppolicy
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact=\"cn=chinwag,{SUFFIX}\" read by * none
",
            d = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        let mut ldif = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n
dn: cn=chinwag,{SUFFIX}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: chinwag\nuserPassword: servicepw\n
dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n
dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n
dn: {ADMINS}\nobjectClass: groupOfNames\ncn: chinwag-admins\nmember: uid=carol,ou=people,{SUFFIX}\n
"
        );
        ldif += &person("alice", "Alice Liddell", Some("alice@example.org"), "");
        ldif += &person("bob", "Bob", None, "");
        ldif += &person("carol", "Carol Admin", Some("carol@example.org"), "");
        ldif += &person("dave", "Dave Locked", None, "pwdAccountLockedTime: 000001010000Z\n");
        ldif += &person("erin", "Erin", None, "");
        ldif += &person("root", "Not The Local Root", None, "");
        // Two entries a wildcard would match at once.
        ldif += &person("twin1", "Twin", None, "");
        ldif += &person("twin2", "Twin", None, "");
        std::fs::write(d.join("data.ldif"), ldif).unwrap();
        let out = Command::new(slapd_bin("slapadd"))
            .args(["-f", "slapd.conf", "-l", "data.ldif"])
            .current_dir(d)
            .output()
            .expect("slapadd runs: install Debian's slapd (scripts/test does)");
        assert!(out.status.success(), "slapadd: {}", String::from_utf8_lossy(&out.stderr));
        let (ldap_port, ldaps_port) = (free_port(), free_port());
        let mut s = Slapd { dir, ldap_port, ldaps_port, child: None };
        s.run();
        s
    }

    fn run(&mut self) {
        let urls = format!("ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/", self.ldap_port, self.ldaps_port);
        let child = Command::new(slapd_bin("slapd"))
            .args(["-f", "slapd.conf", "-h", &urls, "-d", "0"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("slapd starts: install Debian's slapd (scripts/test does)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.ldap_port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(self.child.as_mut().unwrap().stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("slapd exited with {status}: {err}");
            }
            assert!(std::time::Instant::now() < deadline, "slapd did not listen within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The server's settings for this directory: plain `ldap://` on loopback.
    fn settings(&self) -> Ldap {
        Ldap {
            url: Some(format!("ldap://127.0.0.1:{}", self.ldap_port)),
            starttls: false,
            bind_dn: Some(format!("cn=chinwag,{SUFFIX}")),
            bind_password: Some("servicepw".into()),
            user_base: format!("ou=people,{SUFFIX}"),
            admin_group: Some(ADMINS.into()),
            connect_timeout_secs: 2,
            timeout_secs: 5,
            ..Ldap::default()
        }
    }

    /// A connection bound as the directory's root, to change entries as an administrator would.
    async fn admin(&self) -> ldap3::Ldap {
        let (conn, mut ldap) = LdapConnAsync::new(&format!("ldap://127.0.0.1:{}", self.ldap_port)).await.unwrap();
        ldap3::drive!(conn);
        ldap.simple_bind(ROOT_DN, ROOT_PW).await.unwrap().success().unwrap();
        ldap
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn server(slapd: &Slapd, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let ldap = slapd.settings();
    TestServer::start_with(move |c| {
        c.auth.ldap = ldap;
        tweak(c);
    })
    .await
}

async fn login(s: &TestServer, username: &str, password: &str) -> (u16, Value) {
    s.http().post("/api/auth/login", None, json!({"username": username, "password": password})).await
}

fn dn(uid: &str) -> String {
    format!("uid={uid},ou=people,{SUFFIX}")
}

#[tokio::test]
async fn directory_users_get_an_account_at_first_login_and_are_resynced_at_each_one() {
    let slapd = Slapd::start();
    let s = server(&slapd, |_| {}).await;
    // The server's first account is a local one: it stays the administrator.
    let root = s.register("admin").await;

    let (st, body) = login(&s, "Alice", "alice-dirpw").await;
    assert_eq!(st, 200, "{body}");
    let alice = &body["user"];
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["nickname"], "Alice Liddell");
    assert_eq!(alice["email"], "alice@example.org");
    assert_eq!(alice["is_admin"], false);
    assert_eq!(alice["ldap"], true, "the own view says the password is the directory's");
    let token = body["token"].as_str().unwrap().to_owned();
    let (st, me) = s.http().get("/api/me", Some(&token)).await;
    assert_eq!((st, &me["id"]), (200, &alice["id"]));
    let (_, root_me) = s.http().get("/api/me", Some(&root.token)).await;
    assert!(root_me.get("ldap").is_none(), "local accounts carry no flag: {root_me}");

    // The password is the directory's: changing it here is refused with a clear code.
    let (st, body) =
        s.http().post("/api/me/password", Some(&token), json!({"old_password": "alice-dirpw", "new_password": "something-new-1"})).await;
    assert_eq!((st, body["error"]["code"].as_str()), (403, Some("password_in_directory")), "{body}");

    // A change in the directory reaches the account at the next login, which keeps its id.
    let mut ldap = slapd.admin().await;
    ldap.modify(&dn("alice"), vec![Mod::Replace("cn", HashSet::from(["Alice Pleasance"]))]).await.unwrap().success().unwrap();
    ldap.modify(&dn("alice"), vec![Mod::Replace("mail", HashSet::from(["alice.l@example.org"]))]).await.unwrap().success().unwrap();
    let (st, body) = login(&s, "alice", "alice-dirpw").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["user"]["id"], alice["id"]);
    assert_eq!(body["user"]["nickname"], "Alice Pleasance");
    assert_eq!(body["user"]["email"], "alice.l@example.org");
    // The new address is a login name of the same account; the old one no longer is.
    let (st, body) = login(&s, "alice.l@example.org", "alice-dirpw").await;
    assert_eq!((st, &body["user"]["id"]), (200, &alice["id"]), "{body}");

    // The admin group makes an administrator, and leaving it unmakes one.
    let (st, body) = login(&s, "carol", "carol-dirpw").await;
    assert_eq!((st, &body["user"]["is_admin"]), (200, &json!(true)), "{body}");
    let carol = body["token"].as_str().unwrap().to_owned();
    assert_eq!(s.http().get("/api/admin/users", Some(&carol)).await.0, 200, "carol administers the server");
    ldap.modify(ADMINS, vec![Mod::Add("member", HashSet::from([dn("bob").as_str()]))]).await.unwrap().success().unwrap();
    ldap.modify(ADMINS, vec![Mod::Delete("member", HashSet::from([dn("carol").as_str()]))]).await.unwrap().success().unwrap();
    let (st, body) = login(&s, "carol", "carol-dirpw").await;
    assert_eq!((st, &body["user"]["is_admin"]), (200, &json!(false)), "{body}");
    let (st, body) = login(&s, "bob", "bob-dirpw").await;
    assert_eq!((st, &body["user"]["is_admin"]), (200, &json!(true)), "{body}");
    assert_eq!(body["user"]["email"], Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn wrong_passwords_unknown_names_and_filter_injections_get_the_same_refusal() {
    let slapd = Slapd::start();
    let s = server(&slapd, |c| c.auth.failures_per_account = 100).await;
    let (st, wrong) = login(&s, "alice", "not-her-password").await;
    assert_eq!(st, 401, "{wrong}");
    assert_eq!(wrong["error"]["code"], "bad_credentials");
    let (st, unknown) = login(&s, "nobody-here", "alice-dirpw").await;
    assert_eq!((st, &unknown), (401, &wrong), "an unknown name reads exactly like a wrong password");
    // An empty password would be an anonymous bind, which a directory accepts.
    assert_eq!(login(&s, "alice", "").await, (401, wrong.clone()));
    // A locked account (ppolicy) cannot sign in, even with its password.
    assert_eq!(login(&s, "dave", "dave-dirpw").await, (401, wrong.clone()));
    // Two entries for one name: refused rather than picking one.
    ldap_set_uid(&slapd, "twin2", "twin1").await;
    assert_eq!(login(&s, "twin1", "twin1-dirpw").await, (401, wrong.clone()));
    // Typed filter syntax stays a literal name. Unescaped, `al*ce` would find alice alone and
    // her password would sign in.
    for name in ["*", "al*ce", "al*", ")(uid=*", "admin)(|(uid=*", "alice)(uid=alice", "alice\\2a", "alice\u{0}"] {
        assert_eq!(login(&s, name, "alice-dirpw").await, (401, wrong.clone()), "{name:?}");
    }
    assert_eq!(login(&s, "alice", "alice-dirpw").await.0, 200, "alice herself still signs in");
    s.stop().await;

    // Failed directory logins count toward the per-account limit like local ones.
    let s = server(&slapd, |c| c.auth.failures_per_account = 3).await;
    for _ in 0..3 {
        assert_eq!(login(&s, "erin", "wrong-password").await.0, 401);
    }
    let (st, body) = login(&s, "erin", "erin-dirpw").await;
    assert_eq!(st, 429, "the right password waits too: {body}");
    s.stop().await;
}

/// Gives `uid` to a second entry too (a directory where a name is not unique).
async fn ldap_set_uid(slapd: &Slapd, entry: &str, uid: &str) {
    let mut ldap = slapd.admin().await;
    ldap.modify(&dn(entry), vec![Mod::Add("uid", HashSet::from([uid]))]).await.unwrap().success().unwrap();
}

#[tokio::test]
async fn a_local_account_keeps_its_name_and_works_while_the_directory_is_down() {
    let mut slapd = Slapd::start();
    let s = server(&slapd, |_| {}).await;
    let root = s.register("root").await;
    // The directory has a `root` too: its password does not take the local account over.
    let (st, body) = login(&s, "root", "root-dirpw").await;
    assert_eq!((st, body["error"]["code"].as_str()), (409, Some("local_account_exists")), "{body}");
    let (st, body) = login(&s, "root", "root-password").await;
    assert_eq!((st, &body["user"]["id"]), (200, &json!(root.id)), "{body}");
    assert_eq!(body["user"]["is_admin"], true);
    assert!(body["user"].get("ldap").is_none());
    assert_eq!(login(&s, "erin", "erin-dirpw").await.0, 200);

    slapd.stop();
    let (st, body) = login(&s, "erin", "erin-dirpw").await;
    assert_eq!((st, body["error"]["code"].as_str()), (503, Some("directory_unavailable")), "{body}");
    let (st, body) = login(&s, "root", "root-password").await;
    assert_eq!(st, 200, "the local administrator still signs in: {body}");
    s.stop().await;
}

#[tokio::test]
async fn directory_users_removed_or_disabled_lose_their_sessions_within_the_sync_interval() {
    let slapd = Slapd::start();
    let s = server(&slapd, |c| c.auth.ldap.sync_interval_secs = 1).await;
    let mut tokens = Vec::new();
    for name in ["bob", "erin", "alice"] {
        let (st, body) = login(&s, name, &format!("{name}-dirpw")).await;
        assert_eq!(st, 200, "{body}");
        tokens.push(body["token"].as_str().unwrap().to_owned());
    }
    let user = |i: usize| common::User { id: 0, token: tokens[i].clone(), name: String::new() };
    let mut bob_ws = s.ws(&user(0)).await;

    let mut ldap = slapd.admin().await;
    ldap.modify(&dn("bob"), vec![Mod::Add("pwdAccountLockedTime", HashSet::from(["000001010000Z"]))]).await.unwrap().success().unwrap();
    ldap.delete(&dn("erin")).await.unwrap().success().unwrap();

    assert!(matches!(bob_ws.until_end(WAIT).await, Ended::Closed(Some(4001))), "bob's socket is closed as revoked");
    for token in &tokens[..2] {
        let deadline = tokio::time::Instant::now() + WAIT;
        while s.http().get("/api/me", Some(token)).await.0 != 401 {
            assert!(tokio::time::Instant::now() < deadline, "the session ends within the interval");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(s.http().get("/api/me", Some(&tokens[2])).await.0, 200, "alice is untouched");
    assert_eq!(login(&s, "bob", "bob-dirpw").await.0, 401);
    assert_eq!(login(&s, "erin", "erin-dirpw").await.0, 401);
    s.stop().await;
}

#[tokio::test]
async fn tls_to_the_directory_trusts_the_configured_ca_and_nothing_else() {
    let slapd = Slapd::start();
    let tls = |url: String, ca: Option<PathBuf>| {
        move |c: &mut Config| {
            c.auth.ldap.url = Some(url);
            c.auth.ldap.starttls = true;
            c.auth.ldap.ca_file = ca;
        }
    };
    // StartTLS on ldap://, then ldaps://, both with the test CA.
    for url in [format!("ldap://localhost:{}", slapd.ldap_port), format!("ldaps://localhost:{}", slapd.ldaps_port)] {
        let s = server(&slapd, tls(url.clone(), Some(slapd.ca_file()))).await;
        let (st, body) = login(&s, "alice", "alice-dirpw").await;
        assert_eq!(st, 200, "{url}: {body}");
        s.stop().await;
        // Without the CA the certificate is not trusted: no password is sent, and it is a 503.
        let s = server(&slapd, tls(url.clone(), None)).await;
        let (st, body) = login(&s, "alice", "alice-dirpw").await;
        assert_eq!((st, body["error"]["code"].as_str()), (503, Some("directory_unavailable")), "{url}: {body}");
        s.stop().await;
    }
}
