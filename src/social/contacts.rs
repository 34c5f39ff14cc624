//! Contacts: requests with a message, accept / refuse / block the applicant, delete, block and
//! unblock. Each side keeps its own state, so "deleted" and "deleted by" are distinct.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, ApiPath, AuthUser};
use crate::hub::Hub;
use crate::ids::{ConvId, UserId};
use crate::outcome::Refusal;
use crate::protocol::{ContactState, ContactView, Message, RequestStatus, RequestView, ServerFrame, UserView};
use crate::store::social::{ContactSide, Relation, RelationChange, RequestRecord};
use crate::store::{Store, UserRecord, now_ms};

/// The state `me` sees, from the relation seen from `me`.
pub fn state_of(rel: &Relation) -> ContactState {
    match (rel.mine, rel.theirs) {
        (m, _) if m.blocked => ContactState::Blocked,
        (_, t) if t.blocked => ContactState::BlockedBy,
        (m, t) if m.contact && t.contact => ContactState::Normal,
        (m, _) if m.contact => ContactState::DeletedBy,
        (_, t) if t.contact => ContactState::Deleted,
        _ => ContactState::None,
    }
}

/// Whether either side blocks the other.
pub fn blocked_either_way(rel: &Relation) -> bool {
    rel.mine.blocked || rel.theirs.blocked
}

fn side(s: ContactSide, contact: bool, blocked: bool, now: u64) -> ContactSide {
    ContactSide { contact, blocked, since: if s.contact == contact && s.blocked == blocked { s.since } else { now } }
}

fn answered(r: &RequestRecord, status: RequestStatus, now: u64) -> RequestRecord {
    RequestRecord { status, updated_at: now, ..r.clone() }
}

/// Asking `other` to become a contact. A pending request from them is accepted instead; if they
/// still have me as a contact (I had deleted them), I simply add them back.
pub fn request(rel: &Relation, message: &str, now: u64) -> Result<RelationChange, Refusal> {
    if rel.theirs.blocked {
        return Err(Refusal::Forbidden("This user does not accept your requests."));
    }
    if rel.mine.blocked {
        return Err(Refusal::Conflict("You blocked this user; unblock them first."));
    }
    if rel.mine.contact && rel.theirs.contact {
        return Err(Refusal::Conflict("You are already contacts."));
    }
    if rel.theirs.contact {
        return Ok(RelationChange { mine: Some(side(rel.mine, true, false, now)), ..RelationChange::default() });
    }
    if let Some(incoming) = rel.incoming.as_ref().filter(|r| r.status == RequestStatus::Pending) {
        return Ok(RelationChange {
            mine: Some(side(rel.mine, true, false, now)),
            theirs: Some(side(rel.theirs, true, false, now)),
            incoming: Some(Some(answered(incoming, RequestStatus::Accepted, now))),
            became_contacts: true,
            ..RelationChange::default()
        });
    }
    let created_at = rel.outgoing.as_ref().filter(|r| r.status == RequestStatus::Pending).map_or(now, |r| r.created_at);
    Ok(RelationChange {
        outgoing: Some(Some(RequestRecord { message: message.to_owned(), status: RequestStatus::Pending, created_at, updated_at: now })),
        ..RelationChange::default()
    })
}

fn pending_incoming(rel: &Relation) -> Result<&RequestRecord, Refusal> {
    rel.incoming.as_ref().filter(|r| r.status == RequestStatus::Pending).ok_or(Refusal::NotFound("No pending request from this user."))
}

pub fn accept(rel: &Relation, now: u64) -> Result<RelationChange, Refusal> {
    let req = pending_incoming(rel)?;
    if rel.theirs.blocked {
        return Err(Refusal::Forbidden("This user does not accept your requests."));
    }
    Ok(RelationChange {
        mine: Some(side(rel.mine, true, false, now)),
        theirs: Some(side(rel.theirs, true, false, now)),
        incoming: Some(Some(answered(req, RequestStatus::Accepted, now))),
        became_contacts: true,
        ..RelationChange::default()
    })
}

pub fn refuse(rel: &Relation, now: u64) -> Result<RelationChange, Refusal> {
    let req = pending_incoming(rel)?;
    Ok(RelationChange { incoming: Some(Some(answered(req, RequestStatus::Refused, now))), ..RelationChange::default() })
}

/// Refuses the request and blocks its sender.
pub fn block_applicant(rel: &Relation, now: u64) -> Result<RelationChange, Refusal> {
    let req = pending_incoming(rel)?;
    Ok(RelationChange {
        mine: Some(side(rel.mine, rel.mine.contact, true, now)),
        incoming: Some(Some(answered(req, RequestStatus::Blocked, now))),
        ..RelationChange::default()
    })
}

pub fn delete(rel: &Relation, now: u64) -> Result<RelationChange, Refusal> {
    if !rel.mine.contact {
        return Err(Refusal::NotFound("This user is not in your contacts."));
    }
    Ok(RelationChange { mine: Some(side(rel.mine, false, rel.mine.blocked, now)), ..RelationChange::default() })
}

pub fn block(rel: &Relation, now: u64) -> Result<RelationChange, Refusal> {
    if rel.mine.blocked {
        return Err(Refusal::Conflict("You already blocked this user."));
    }
    // A pending request from them is answered as blocked; mine to them is withdrawn.
    let incoming =
        rel.incoming.as_ref().filter(|r| r.status == RequestStatus::Pending).map(|r| Some(answered(r, RequestStatus::Blocked, now)));
    let outgoing = rel.outgoing.as_ref().filter(|r| r.status == RequestStatus::Pending).map(|_| None);
    Ok(RelationChange { mine: Some(side(rel.mine, rel.mine.contact, true, now)), incoming, outgoing, ..RelationChange::default() })
}

pub fn unblock(rel: &Relation, now: u64) -> Result<RelationChange, Refusal> {
    if !rel.mine.blocked {
        return Err(Refusal::Conflict("This user is not blocked."));
    }
    Ok(RelationChange { mine: Some(side(rel.mine, rel.mine.contact, false, now)), ..RelationChange::default() })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    pub user: UserId,
    /// Shown to the other user, up to 200 characters.
    #[serde(default)]
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct ContactList {
    pub contacts: Vec<ContactView>,
}

#[derive(Serialize, ToSchema)]
pub struct RequestLists {
    pub incoming: Vec<RequestView>,
    pub outgoing: Vec<RequestView>,
}

#[derive(Serialize, ToSchema)]
pub struct RelationAnswer {
    pub contact: ContactView,
    /// The request this touched, if any.
    pub request: Option<RequestView>,
}

async fn other_user(store: &Store, me: UserId, id: UserId) -> Result<UserRecord, ApiError> {
    if id == me {
        return Err(ApiError::bad_request("invalid", "That is you."));
    }
    store.user(id).await?.filter(|u| !u.disabled).ok_or_else(|| ApiError::not_found("No such user."))
}

fn request_view(from: &UserRecord, to: &UserRecord, r: &RequestRecord) -> RequestView {
    RequestView {
        from: from.public_view(),
        to: to.public_view(),
        message: r.message.clone(),
        status: r.status,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

fn contact_view(user: UserView, rel: &Relation, remark: Option<String>) -> ContactView {
    let since = rel.mine.since.max(rel.theirs.since);
    ContactView { user, state: state_of(rel), since, remark }
}

fn flip(rel: &Relation) -> Relation {
    Relation { mine: rel.theirs, theirs: rel.mine, outgoing: rel.incoming.clone(), incoming: rel.outgoing.clone() }
}

/// Applies `rule` between the caller and `other`, then tells both users' devices.
async fn change(
    store: &Store,
    hub: &Arc<Hub>,
    me: &UserRecord,
    other: UserId,
    rule: impl FnOnce(&Relation, u64) -> Result<RelationChange, Refusal> + Send + 'static,
) -> Result<Json<RelationAnswer>, ApiError> {
    let other = other_user(store, me.id, other).await?;
    let before = store.relation(me.id, other.id).await?;
    let (hub2, ids) = (hub.clone(), [me.id, other.id]);
    let (mine_view, other_view, sides) = (me.public_view(), other.public_view(), (before.mine, before.theirs));
    // Remarks are private: each side's frame carries only its own.
    let (my_remark, their_remark) = (store.remark(me.id, other.id).await?, store.remark(other.id, me.id).await?);
    let answer_remark = my_remark.clone();
    // In commit order with messages: a device sees a block before any message refused by it.
    let after = move |rel: &Relation, msg: Option<&Message>| {
        if let Some(conv) = crate::ids::ConvId::direct(ids[0], ids[1]) {
            hub2.access_changed(conv);
        }
        if let Some(m) = msg {
            hub2.send(&ids, &ServerFrame::Message { message: m.clone() });
        }
        if (rel.mine, rel.theirs) != sides {
            hub2.send(&ids[..1], &ServerFrame::Contact { contact: contact_view(other_view, rel, my_remark) });
            hub2.send(&ids[1..], &ServerFrame::Contact { contact: contact_view(mine_view, &flip(rel), their_remark) });
        }
    };
    let now = now_ms();
    let (rel, _) = store.change_relation(me.id, other.id, move |rel| rule(rel, now), after).await??;
    // Tell both sides about a request that this change made or answered.
    let touched = if rel.outgoing != before.outgoing {
        rel.outgoing.as_ref().map(|r| request_view(me, &other, r))
    } else if rel.incoming != before.incoming {
        rel.incoming.as_ref().map(|r| request_view(&other, me, r))
    } else {
        None
    };
    if let Some(r) = &touched {
        hub.send(&[me.id, other.id], &ServerFrame::ContactRequest { request: r.clone() });
    }
    Ok(Json(RelationAnswer { contact: contact_view(other.public_view(), &rel, answer_remark), request: touched }))
}

#[utoipa::path(get, path = "/api/contacts", tag = "contacts", responses((status = 200, body = ContactList), (status = 401, body = ErrorBody)))]
pub async fn list(auth: AuthUser, State(store): State<Store>) -> Result<Json<ContactList>, ApiError> {
    let mut remarks = store.remarks_of(auth.user.id).await?;
    let mut contacts = Vec::new();
    for (other, mine, theirs) in store.contacts_of(auth.user.id).await? {
        let rel = Relation { mine, theirs, outgoing: None, incoming: None };
        if state_of(&rel) == ContactState::None || (!mine.contact && !mine.blocked) {
            continue;
        }
        if let Some(u) = store.user(other).await? {
            contacts.push(contact_view(u.public_view(), &rel, remarks.remove(&other)));
        }
    }
    contacts.sort_by_key(|c| c.user.nickname.to_lowercase());
    Ok(Json(ContactList { contacts }))
}

#[utoipa::path(get, path = "/api/contacts/requests", tag = "contacts", responses((status = 200, body = RequestLists), (status = 401, body = ErrorBody)))]
pub async fn requests(auth: AuthUser, State(store): State<Store>) -> Result<Json<RequestLists>, ApiError> {
    let (inc, out) = store.requests_of(auth.user.id).await?;
    let mut lists = RequestLists { incoming: Vec::new(), outgoing: Vec::new() };
    for (other, r) in inc {
        if let Some(u) = store.user(other).await? {
            lists.incoming.push(request_view(&u, &auth.user, &r));
        }
    }
    for (other, r) in out {
        if let Some(u) = store.user(other).await? {
            lists.outgoing.push(request_view(&auth.user, &u, &r));
        }
    }
    lists.incoming.sort_by_key(|r| std::cmp::Reverse(r.updated_at));
    lists.outgoing.sort_by_key(|r| std::cmp::Reverse(r.updated_at));
    Ok(Json(lists))
}

#[utoipa::path(post, path = "/api/contacts/requests", tag = "contacts", request_body = NewRequest,
    responses((status = 200, body = RelationAnswer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn send_request(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(push): State<Arc<crate::push::Push>>,
    ApiJson(req): ApiJson<NewRequest>,
) -> Result<Json<RelationAnswer>, ApiError> {
    let message = req.message.trim().to_owned();
    if message.chars().count() > 200 {
        return Err(ApiError::bad_request("invalid", "The message can be at most 200 characters."));
    }
    let to = req.user;
    let answer = change(&store, &hub, &auth.user, to, move |rel, now| request(rel, &message, now)).await?;
    if answer.request.as_ref().is_some_and(|r| r.status == RequestStatus::Pending) {
        push.contact_request(to, auth.user.id);
    }
    Ok(answer)
}

macro_rules! relation_route {
    ($name:ident, $method:ident, $path:literal, $rule:path, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path($method, path = $path, tag = "contacts", params(("user" = u64, Path)),
                    responses((status = 200, body = RelationAnswer), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
        pub async fn $name(
            auth: AuthUser,
            State(store): State<Store>,
            State(hub): State<Arc<Hub>>,
            ApiPath(user): ApiPath<u64>,
        ) -> Result<Json<RelationAnswer>, ApiError> {
            change(&store, &hub, &auth.user, UserId(user), $rule).await
        }
    };
}

relation_route!(accept_request, post, "/api/contacts/requests/{user}/accept", accept, "Accepts the pending request from `user`.");
relation_route!(refuse_request, post, "/api/contacts/requests/{user}/refuse", refuse, "Refuses the pending request from `user`.");
relation_route!(
    block_request,
    post,
    "/api/contacts/requests/{user}/block",
    block_applicant,
    "Refuses the request from `user` and blocks them."
);
relation_route!(
    delete_contact,
    delete,
    "/api/contacts/{user}",
    delete,
    "Removes `user` from your contacts (they keep you in theirs until they remove you)."
);
relation_route!(block_user, post, "/api/contacts/{user}/block", block, "Blocks `user`: they can no longer message you or send requests.");
relation_route!(unblock_user, delete, "/api/contacts/{user}/block", unblock, "Unblocks `user`.");

/// Longest remark, in characters.
pub const MAX_REMARK_CHARS: usize = 32;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemarkRequest {
    /// Your private name for the user, one line of at most 32 characters; empty clears it.
    pub remark: String,
}

#[derive(Serialize, ToSchema)]
pub struct RemarkAnswer {
    pub user: UserId,
    /// Null when cleared.
    pub remark: Option<String>,
}

/// A remark as stored: trimmed, one line, at most [`MAX_REMARK_CHARS`]; empty means none.
pub fn clean_remark(remark: &str) -> Result<String, Refusal> {
    let r = remark.trim();
    if r.chars().count() > MAX_REMARK_CHARS || r.chars().any(char::is_control) {
        return Err(Refusal::Invalid("A remark is one line of at most 32 characters.".into()));
    }
    Ok(r.to_owned())
}

#[utoipa::path(put, path = "/api/contacts/{user}/remark", tag = "contacts", params(("user" = u64, Path)), request_body = RemarkRequest,
    responses((status = 200, body = RemarkAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "not in your contacts")))]
/// Sets your private name for a contact, shown only to you (on all your devices).
pub async fn set_remark(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(user): ApiPath<u64>,
    ApiJson(req): ApiJson<RemarkRequest>,
) -> Result<Json<RemarkAnswer>, ApiError> {
    let me = auth.user.id;
    let other = UserId(user);
    let remark = clean_remark(&req.remark)?;
    if other == me {
        return Err(ApiError::bad_request("invalid", "That is you."));
    }
    store.set_remark(me, other, remark.clone()).await??;
    let remark = (!remark.is_empty()).then_some(remark);
    hub.send(&[me], &ServerFrame::Remark { user: other, remark: remark.clone() });
    Ok(Json(RemarkAnswer { user: other, remark }))
}

/// Whether `a` and `b` may see each other's presence: contacts, or partners in a 1:1 chat.
pub async fn related(store: &Store, a: UserId, b: UserId) -> Result<bool, ApiError> {
    let rel = store.relation(a, b).await?;
    if blocked_either_way(&rel) {
        return Ok(false);
    }
    if rel.mine.contact || rel.theirs.contact {
        return Ok(true);
    }
    Ok(match ConvId::direct(a, b) {
        Some(c) => store.user_conv(a, c).await?.is_some(),
        None => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel() -> Relation {
        Relation::default()
    }

    fn apply(mut r: Relation, c: RelationChange) -> Relation {
        if let Some(m) = c.mine {
            r.mine = m;
        }
        if let Some(t) = c.theirs {
            r.theirs = t;
        }
        if let Some(o) = c.outgoing {
            r.outgoing = o;
        }
        if let Some(i) = c.incoming {
            r.incoming = i;
        }
        r
    }

    #[test]
    fn a_remark_is_one_trimmed_line_of_at_most_32_characters() {
        assert_eq!(clean_remark("  Mum  ").unwrap(), "Mum");
        assert_eq!(clean_remark("").unwrap(), "");
        assert_eq!(clean_remark(&"妈".repeat(32)).unwrap().chars().count(), 32);
        assert!(clean_remark(&"x".repeat(33)).is_err());
        assert!(clean_remark("two\nlines").is_err());
    }

    #[test]
    fn request_accept_delete_and_re_add() {
        let a_view = apply(rel(), request(&rel(), "hi", 1).unwrap());
        assert_eq!(a_view.outgoing.as_ref().unwrap().status, RequestStatus::Pending);
        let b_view = flip(&a_view);
        let change = accept(&b_view, 2).unwrap();
        assert!(change.became_contacts);
        let b_view = apply(b_view, change);
        assert_eq!(state_of(&b_view), ContactState::Normal);
        // a deletes b: a sees "deleted", b sees "deleted by".
        let a_view = apply(flip(&b_view), delete(&flip(&b_view), 3).unwrap());
        assert_eq!(state_of(&a_view), ContactState::Deleted);
        assert_eq!(state_of(&flip(&a_view)), ContactState::DeletedBy);
        // b still has a, so a re-adds without a new request.
        let again = request(&a_view, "", 4).unwrap();
        assert!(again.outgoing.is_none());
        assert_eq!(state_of(&apply(a_view, again)), ContactState::Normal);
    }

    #[test]
    fn crossing_requests_accept_each_other() {
        let a_view = apply(rel(), request(&rel(), "", 1).unwrap());
        let c = request(&flip(&a_view), "", 2).unwrap();
        assert!(c.became_contacts);
        assert_eq!(state_of(&apply(flip(&a_view), c)), ContactState::Normal);
    }

    #[test]
    fn blocks_stop_requests_both_ways_until_unblocked() {
        let a_view = apply(rel(), request(&rel(), "", 1).unwrap());
        let b_view = apply(flip(&a_view), block_applicant(&flip(&a_view), 2).unwrap());
        assert_eq!(b_view.incoming.as_ref().unwrap().status, RequestStatus::Blocked);
        assert_eq!(state_of(&b_view), ContactState::Blocked);
        assert_eq!(state_of(&flip(&b_view)), ContactState::BlockedBy);
        assert!(matches!(request(&flip(&b_view), "again", 3), Err(Refusal::Forbidden(_))));
        assert!(matches!(request(&b_view, "", 3), Err(Refusal::Conflict(_))));
        let b_view = apply(b_view.clone(), unblock(&b_view, 4).unwrap());
        assert_eq!(state_of(&b_view), ContactState::None);
        assert!(request(&flip(&b_view), "", 5).is_ok());
    }

    #[test]
    fn answers_need_a_pending_request() {
        assert!(matches!(accept(&rel(), 1), Err(Refusal::NotFound(_))));
        assert!(matches!(refuse(&rel(), 1), Err(Refusal::NotFound(_))));
        assert!(matches!(delete(&rel(), 1), Err(Refusal::NotFound(_))));
        assert!(matches!(unblock(&rel(), 1), Err(Refusal::Conflict(_))));
    }
}
