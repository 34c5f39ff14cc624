//! Tests of the settings: layering, validation, redaction.

use super::auth::default_oidc_scopes;
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
}

#[test]
fn defaults_need_no_file() {
    let c = Config::load(None, env(&[]), &Overrides::default()).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.limits.max_frame_bytes, 65536);
}

#[test]
fn the_turn_quota_covers_the_largest_group_call_or_is_warned_about() {
    let mut c = Config::load(None, env(&[]), &Overrides::default()).unwrap();
    // 4 people, UDP and TCP: 3 others x 2 URLs, and room for a second network or device.
    assert_eq!(c.relays_per_call(), 6);
    assert!(c.turn.user_quota >= 2 * c.relays_per_call());
    assert_eq!(c.turn_quota_warning(), None);
    c.calls.max_group_participants = 16;
    c.turn.tls_listen = Some("0.0.0.0:5349".parse().unwrap());
    assert_eq!(c.relays_per_call(), 45);
    assert!(c.turn_quota_warning().unwrap().contains("turn.user_quota (32) is below the 45 relays"));
    c.turn.enabled = false;
    assert_eq!(c.turn_quota_warning(), None);
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:1000\"\ndata_dir = \"/from/file\"\n[limits]\noutbound_queue = 7\nmax_batch = 9\n").unwrap();
    let e = env(&[("CHINWAG_LISTEN", "127.0.0.1:2000"), ("CHINWAG_LIMITS__OUTBOUND_QUEUE", "8"), ("HOME", "/x")]);
    let c = Config::load(Some(&file), e.clone(), &Overrides::default()).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:2000");
    assert_eq!(c.data_dir, PathBuf::from("/from/file"));
    assert_eq!(c.limits.outbound_queue, 8);
    assert_eq!(c.limits.max_batch, 9);
    let o = Overrides { listen: Some("127.0.0.1:3000".parse().unwrap()), data_dir: None };
    assert_eq!(Config::load(Some(&file), e, &o).unwrap().listen.to_string(), "127.0.0.1:3000");
}

#[test]
fn typos_are_reported_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "lisen = \"127.0.0.1:1000\"\n").unwrap();
    assert!(matches!(Config::load(Some(&file), env(&[]), &Overrides::default()), Err(ConfigError::Parse { .. })));
    let err = Config::load(None, env(&[("CHINWAG_LIMITS__NOPE", "1")]), &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("CHINWAG_LIMITS__NOPE"), "{err}");
    let err = Config::load(None, env(&[("CHINWAG_LIMITS__OUTBOUND_QUEUE", "many")]), &Overrides::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Env { .. }), "{err}");
}

#[test]
fn password_sign_in_goes_off_only_with_sso_and_oidc_needs_a_public_url() {
    let off = env(&[("CHINWAG_AUTH__PASSWORD_LOGIN", "false")]);
    let err = Config::load(None, off, &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("only when a single sign-on method"), "{err}");
    let mut c = Config::default();
    c.auth.oidc = vec![OidcProvider {
        id: "corp".into(),
        name: "Corp".into(),
        issuer: "https://id.example.org".into(),
        client_id: "c".into(),
        client_secret: "s".into(),
        scopes: default_oidc_scopes(),
        admin_claim: None,
        admin_value: None,
        allow_hosts: Vec::new(),
    }];
    assert!(c.validate().unwrap_err().to_string().contains("needs public_url"));
    c.public_url = Some("https://chat.example.org/".into());
    assert!(c.validate().unwrap_err().to_string().contains("without a trailing slash"));
    c.public_url = Some("https://chat.example.org".into());
    c.auth.password_login = false;
    assert!(c.validate().is_ok());
    c.auth.oidc[0].id = "bad id".into();
    assert!(c.validate().is_err());
}

#[test]
fn secrets_are_hidden_when_printed() {
    let e = env(&[
        ("CHINWAG_AUTH__OTP_SENDER", "webhook"),
        ("CHINWAG_AUTH__OTP_WEBHOOK_URL", "https://sms.example/send?key=s3cret"),
        ("CHINWAG_AUTH__OTP_WEBHOOK_TOKEN", "t0ken"),
    ]);
    let shown = Config::load(None, e, &Overrides::default()).unwrap().to_toml_redacted();
    assert!(!shown.contains("s3cret") && !shown.contains("t0ken"), "{shown}");
    assert!(shown.contains("otp_sender = \"webhook\""));
    let e = env(&[
        ("CHINWAG_AUTH__LDAP__URL", "ldaps://dir.example.org"),
        ("CHINWAG_AUTH__LDAP__USER_BASE", "ou=people,dc=example,dc=org"),
        ("CHINWAG_AUTH__LDAP__BIND_DN", "cn=chinwag,dc=example,dc=org"),
        ("CHINWAG_AUTH__LDAP__BIND_PASSWORD", "b1ndpw"),
    ]);
    let shown = Config::load(None, e, &Overrides::default()).unwrap().to_toml_redacted();
    assert!(!shown.contains("b1ndpw") && shown.contains("bind_dn = \"cn=chinwag,dc=example,dc=org\""), "{shown}");
}

#[test]
fn ldap_without_tls_is_refused_unless_the_directory_is_on_loopback() {
    let ldap =
        |url: &str, starttls: bool| Ldap { url: Some(url.into()), starttls, user_base: "dc=example,dc=org".into(), ..Ldap::default() };
    assert_eq!(Ldap::default().validate(), Ok(false), "off by default");
    assert_eq!(ldap("ldap://dir.example.org", true).validate(), Ok(false));
    assert_eq!(ldap("ldaps://dir.example.org:636", false).validate(), Ok(false), "ldaps is TLS whatever starttls says");
    assert!(ldap("ldap://dir.example.org", false).validate().unwrap_err().contains("loopback"));
    assert!(ldap("ldap://10.0.0.5", false).validate().is_err());
    assert_eq!(ldap("ldap://127.0.0.1:3890", false).validate(), Ok(true), "allowed, with a warning");
    assert_eq!(ldap("ldap://[::1]:3890", false).validate(), Ok(true));
    assert_eq!(ldap("ldap://localhost", false).validate(), Ok(true));
    assert!(ldap("http://dir.example.org", true).validate().is_err());
    assert!(Ldap { user_filter: "(uid=alice)".into(), ..ldap("ldaps://d", true) }.validate().is_err(), "no {{username}}");
    assert!(Ldap { user_base: String::new(), ..ldap("ldaps://d", true) }.validate().is_err());
    assert!(Ldap { bind_dn: Some("cn=x".into()), ..ldap("ldaps://d", true) }.validate().is_err(), "a bind DN without password");
}

#[test]
fn the_printed_config_lists_unset_optional_settings_as_comments() {
    let shown = Config::load(None, env(&[]), &Overrides::default()).unwrap().to_toml_redacted();
    let turn = shown.split("\n[turn]\n").nth(1).unwrap_or_else(|| panic!("a [turn] table: {shown}"));
    let turn = turn.split("\n[").next().unwrap();
    assert!(
        turn.contains("# public_ip = \"\"  # unset: the address clients reach the relay at"),
        "turn.public_ip is listed, under [turn]: {turn}"
    );
    assert!(turn.contains("# public_host = \"\"  # unset"), "{turn}");
    assert!(shown.starts_with("# public_url = \"\"  # unset"), "root settings come first: {shown}");
    // The listing is still the configuration: it parses, and gives back what was loaded.
    let back: Config = toml::from_str(&shown).unwrap();
    assert_eq!(back.turn.public_ip, None);
    // A set one is a setting, not a comment.
    let set = Config::load(None, env(&[("CHINWAG_TURN__PUBLIC_IP", "203.0.113.5")]), &Overrides::default()).unwrap().to_toml_redacted();
    assert!(set.contains("public_ip = \"203.0.113.5\"") && !set.contains("# public_ip"), "{set}");
    // Every unset optional setting is somewhere in the listing.
    for (table, key) in super::unset_settings(&serde_json::to_value(Config::default()).unwrap()) {
        assert!(shown.contains(&format!("# {key} = ")), "{table}.{key} is missing: {shown}");
    }
}
