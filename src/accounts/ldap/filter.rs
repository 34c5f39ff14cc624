//! LDAP search filters built from what a user typed (RFC 4515), pure and unit-tested: a name
//! can never change the shape of the filter it is put into.

/// Escapes a value for the inside of a filter's assertion (RFC 4515, section 3): `*`, `(`, `)`,
/// `\` and NUL must be escaped; every other byte outside printable ASCII is escaped too, so
/// that binary values (Active Directory's `objectGUID`) and control characters travel as
/// `\hh` and nothing reaches the directory unescaped but letters, digits and punctuation.
pub fn escape_value(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value {
        if (b.is_ascii_graphic() && !matches!(b, b'*' | b'(' | b')' | b'\\')) || b == b' ' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:02x}"));
        }
    }
    out
}

/// The configured filter with every `{username}` replaced by the escaped name.
pub fn user_filter(template: &str, username: &str) -> String {
    template.replace("{username}", &escape_value(username.as_bytes()))
}

/// Finds a linked entry again by its stable id (raw bytes).
pub fn by_id(id_attribute: &str, id: &[u8]) -> String {
    format!("({id_attribute}={})", escape_value(id))
}

/// Whether a group (read with a base search) lists a DN among its members, as `member`
/// (`groupOfNames`, Active Directory) or `uniqueMember` (`groupOfUniqueNames`).
pub fn member_of(dn: &str) -> String {
    let dn = escape_value(dn.as_bytes());
    format!("(|(member={dn})(uniqueMember={dn}))")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_unchanged() {
        assert_eq!(user_filter("(uid={username})", "alice"), "(uid=alice)");
        assert_eq!(
            user_filter("(&(objectClass=user)(sAMAccountName={username}))", "j.doe-2"),
            "(&(objectClass=user)(sAMAccountName=j.doe-2))"
        );
        assert_eq!(user_filter("(|(uid={username})(mail={username}))", "a@b.org"), "(|(uid=a@b.org)(mail=a@b.org))");
    }

    #[test]
    fn injection_attempts_become_literal_values() {
        assert_eq!(user_filter("(uid={username})", "*"), "(uid=\\2a)");
        assert_eq!(user_filter("(uid={username})", ")(uid=*"), "(uid=\\29\\28uid=\\2a)");
        assert_eq!(user_filter("(uid={username})", "admin)(|(uid=*"), "(uid=admin\\29\\28|\\28uid=\\2a)");
        assert_eq!(user_filter("(uid={username})", "a\\2a"), "(uid=a\\5c2a)", "a typed escape is itself escaped");
        assert_eq!(user_filter("(uid={username})", "a\0b"), "(uid=a\\00b)");
    }

    #[test]
    fn non_ascii_and_binary_values_are_escaped_byte_by_byte() {
        assert_eq!(escape_value("王".as_bytes()), "\\e7\\8e\\8b");
        assert_eq!(escape_value(&[0x01, 0xff, b'a']), "\\01\\ffa");
        assert_eq!(escape_value(b"line\nbreak"), "line\\0abreak");
    }

    #[test]
    fn every_escaped_value_keeps_the_filter_balanced() {
        // Whatever is typed, the filter has exactly the template's parentheses and no wildcard.
        for typed in ["*", ")(", "((((", "\\", "a)(objectClass=*", "x*y", "\u{0}", "( )"] {
            let f = user_filter("(uid={username})", typed);
            assert_eq!(f.matches('(').count(), 1, "{f}");
            assert_eq!(f.matches(')').count(), 1, "{f}");
            assert!(!f.contains('*'), "{f}");
        }
    }

    #[test]
    fn ids_and_member_dns_are_escaped_too() {
        assert_eq!(by_id("objectGUID", &[0x12, 0xab, b'(']), "(objectGUID=\\12\\ab\\28)");
        assert_eq!(by_id("entryUUID", b"5b1c-x"), "(entryUUID=5b1c-x)");
        assert_eq!(member_of("uid=a(1),dc=x"), "(|(member=uid=a\\281\\29,dc=x)(uniqueMember=uid=a\\281\\29,dc=x))");
    }
}
