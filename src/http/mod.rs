//! HTTP plumbing every feature shares: the error type, the JSON and auth extractors, the Origin
//! check, and rate limiting.

pub mod auth;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod origin;
pub mod ratelimit;

pub use auth::AuthUser;
pub use error::ApiError;
pub use extract::{ApiJson, ApiPath, ApiQuery};
