//! Who may register: the server's registration mode and invite codes, as a pure rule over the
//! state the store loads inside the account-creating write (like the rules of `social::groups`).

use crate::config::Registration;
use crate::store::admin::Invite;
use crate::store::users::{Admission, CreateRefusal};

/// Whether a new account may be created under `mode`. The very first account of a server is
/// always admitted, so that a fresh server can get its administrator. In `invite` mode the code
/// the user gave must name an `invite` that has not expired at `now` (ms) and has uses left;
/// admitting spends one of them.
pub fn admit(mode: Registration, first_account: bool, invite: Option<&Invite>, now: u64) -> Result<Admission, CreateRefusal> {
    if first_account {
        return Ok(Admission::Admit);
    }
    match mode {
        Registration::Open => Ok(Admission::Admit),
        Registration::Closed => Err(CreateRefusal::Closed),
        Registration::Invite => match invite {
            Some(i) if i.expires_at > now && i.uses < i.max_uses => Ok(Admission::SpendInvite),
            _ => Err(CreateRefusal::BadInvite),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    const NOW: u64 = 1_000_000;

    fn invite(expires_at: u64, uses: u32, max_uses: u32) -> Invite {
        Invite { code: "c0de".into(), created_by: UserId(1), created_at: 0, expires_at, max_uses, uses }
    }

    #[test]
    fn the_first_account_is_admitted_whatever_the_mode() {
        for mode in [Registration::Open, Registration::Invite, Registration::Closed] {
            assert_eq!(admit(mode, true, None, NOW), Ok(Admission::Admit), "{mode:?}");
        }
    }

    #[test]
    fn open_admits_and_closed_refuses() {
        assert_eq!(admit(Registration::Open, false, None, NOW), Ok(Admission::Admit));
        assert_eq!(admit(Registration::Closed, false, Some(&invite(NOW + 1, 0, 5)), NOW), Err(CreateRefusal::Closed));
    }

    #[test]
    fn a_live_invite_with_uses_left_admits_and_is_spent() {
        assert_eq!(admit(Registration::Invite, false, Some(&invite(NOW + 1, 4, 5)), NOW), Ok(Admission::SpendInvite));
    }

    #[test]
    fn a_missing_expired_or_used_up_invite_is_refused() {
        assert_eq!(admit(Registration::Invite, false, None, NOW), Err(CreateRefusal::BadInvite));
        assert_eq!(admit(Registration::Invite, false, Some(&invite(NOW, 0, 5)), NOW), Err(CreateRefusal::BadInvite), "expired");
        assert_eq!(admit(Registration::Invite, false, Some(&invite(NOW + 1, 5, 5)), NOW), Err(CreateRefusal::BadInvite), "used up");
    }
}
