//! Link previews: the server fetches a linked page and its image so that clients never contact
//! the site (which would tell it who reads the chat, and when).
//!
//! Architecture invariants:
//! - Every fetch goes through [`crate::outbound`] with the address verdict of `links.allow`:
//!   the URL is resolved once, every address judged, the checked address connected to, and each
//!   redirect (at most 3) is a new URL judged the same way. 3 s to connect, 5 s in all, at most
//!   512 KiB of `text/html`; the image is `image/*` under its own cap.
//! - The image is decoded under the media limits and only its re-encoded thumbnail is stored
//!   (no metadata survives), as a file readable by everyone logged in and by nothing else.
//! - Previews and failures are cached per URL (`store::links`): a day for a preview, minutes for
//!   a failure; concurrent requests for one URL share one fetch; cache misses are rate-limited
//!   per user.

pub mod parse;
pub mod routes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::address::AddressPolicy;
use crate::config::Config;
use crate::http::ratelimit::Limiter;
use crate::ids::UserId;
use crate::media::{Media, images, sniff};
use crate::outbound::{GetRules, Outbound, OutboundError};
use crate::store::links::{CachedPreview, LinkPreview};
use crate::store::media::{FileRecord, ImageMeta};
use crate::store::{Store, now_ms};

/// How long a preview is served from the cache.
pub const PREVIEW_TTL_MS: u64 = 24 * 3600 * 1000;
/// How long a failed fetch is remembered, so that a bad URL is not fetched in a loop.
pub const FAILURE_TTL_MS: u64 = 10 * 60 * 1000;
/// Longest URL accepted.
pub const MAX_URL: usize = 2048;

const PAGE: GetRules = GetRules {
    max_redirects: 3,
    accept: &["text/html", "application/xhtml+xml"],
    max_bytes: 512 * 1024,
    truncate: true,
    connect_timeout: Duration::from_secs(3),
    total_timeout: Duration::from_secs(5),
    accept_header: "text/html,application/xhtml+xml;q=0.9",
};

const IMAGE: GetRules = GetRules {
    max_redirects: 3,
    accept: &["image/"],
    max_bytes: 5 * 1024 * 1024,
    truncate: false,
    connect_timeout: Duration::from_secs(3),
    total_timeout: Duration::from_secs(5),
    accept_header: "image/png,image/jpeg,image/webp,image/gif;q=0.8",
};

/// Why there is no preview. Cached (as its code) like a preview, for a shorter time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    /// Not an http(s) URL, or it reaches an address that is not public: nothing was sent there.
    #[error("this address is not allowed")]
    Refused,
    #[error("the page could not be reached")]
    Unreachable,
    #[error("the link is not a web page")]
    NotHtml,
    #[error("the link redirects too many times")]
    Redirects,
}

impl PreviewError {
    pub fn code(&self) -> &'static str {
        match self {
            PreviewError::Refused => "url_refused",
            PreviewError::Unreachable => "unreachable",
            PreviewError::NotHtml => "not_html",
            PreviewError::Redirects => "too_many_redirects",
        }
    }

    fn from_code(code: &str) -> PreviewError {
        match code {
            "url_refused" => PreviewError::Refused,
            "not_html" => PreviewError::NotHtml,
            "too_many_redirects" => PreviewError::Redirects,
            _ => PreviewError::Unreachable,
        }
    }
}

impl From<OutboundError> for PreviewError {
    fn from(e: OutboundError) -> Self {
        match e {
            OutboundError::Refused(_) => PreviewError::Refused,
            OutboundError::Type(_) => PreviewError::NotHtml,
            OutboundError::Redirects => PreviewError::Redirects,
            OutboundError::Timeout | OutboundError::Failed(_) | OutboundError::Status(_) | OutboundError::TooLarge(_) => {
                PreviewError::Unreachable
            }
        }
    }
}

/// Counters for `/metrics` (`chinwag_link_previews_*`).
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Pages fetched into a preview.
    pub fetched: AtomicU64,
    /// URLs refused by the address verdict or the scheme check.
    pub refused: AtomicU64,
    /// Fetches that failed otherwise (unreachable, not html, redirects).
    pub failed: AtomicU64,
    /// Answers served from the cache.
    pub cached: AtomicU64,
}

type Shared = Arc<OnceCell<Result<LinkPreview, PreviewError>>>;

/// The link preview feature's part of the application state.
pub struct Links {
    outbound: Outbound,
    fetches: Limiter,
    /// Fetches under way, by URL: later requests for the same URL wait for the first.
    inflight: Mutex<HashMap<String, Shared>>,
    pub stats: LinkStats,
}

impl Links {
    /// # Panics
    /// Never for a validated configuration (`links.allow` is checked when it is loaded).
    pub fn new(config: &Config) -> Arc<Links> {
        let policy = AddressPolicy::parse("links.allow", &config.links.allow).expect("links.allow was validated");
        Arc::new(Links {
            outbound: Outbound::new(policy, true, PAGE.total_timeout),
            fetches: Limiter::new(config.links.fetches_per_minute, Duration::from_secs(60)),
            inflight: Mutex::new(HashMap::new()),
            stats: LinkStats::default(),
        })
    }

    /// The preview of `url` (already normalized), from the cache or fetched; `Err(Ok(seconds))`
    /// when `user` must wait before causing another fetch.
    pub async fn preview(
        self: &Arc<Self>,
        store: &Store,
        media: &Arc<Media>,
        user: UserId,
        url: &str,
    ) -> Result<Result<LinkPreview, PreviewError>, PreviewFailure> {
        let now = now_ms();
        if let Some(c) = store.cached_link_preview(url.to_owned()).await.map_err(PreviewFailure::Store)? {
            let fresh = |ttl: u64| now.saturating_sub(c.fetched_at) < ttl;
            match (&c.preview, &c.error) {
                (Some(p), _) if fresh(PREVIEW_TTL_MS) => {
                    self.stats.cached.fetch_add(1, Ordering::Relaxed);
                    return Ok(Ok(p.clone()));
                }
                (None, Some(code)) if fresh(FAILURE_TTL_MS) => {
                    self.stats.cached.fetch_add(1, Ordering::Relaxed);
                    return Ok(Err(PreviewError::from_code(code)));
                }
                _ => {}
            }
        }
        let cell = {
            let mut map = self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match map.get(url) {
                Some(cell) => cell.clone(),
                None => {
                    // Only the request that starts a fetch counts against the user's limit.
                    self.fetches.take(&user.0.to_string(), Instant::now()).map_err(PreviewFailure::RateLimited)?;
                    let cell: Shared = Arc::default();
                    map.insert(url.to_owned(), cell.clone());
                    cell
                }
            }
        };
        let this = self.clone();
        let (store2, media2, url2) = (store.clone(), media.clone(), url.to_owned());
        // The fetch runs as its own task, so that a client that goes away does not cancel it for
        // the others waiting on it.
        let out = cell
            .get_or_init(|| async move {
                let task = tokio::spawn(async move { this.fetch_and_cache(&store2, &media2, &url2).await });
                task.await.unwrap_or(Err(PreviewError::Unreachable))
            })
            .await
            .clone();
        let mut map = self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.get(url).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            map.remove(url);
        }
        Ok(out)
    }

    async fn fetch_and_cache(&self, store: &Store, media: &Arc<Media>, url: &str) -> Result<LinkPreview, PreviewError> {
        let out = self.fetch(media, url).await;
        let (entry, image) = match &out {
            Ok((p, image)) => {
                self.stats.fetched.fetch_add(1, Ordering::Relaxed);
                (CachedPreview { fetched_at: now_ms(), preview: Some(p.clone()), error: None }, image.clone())
            }
            Err(e) => {
                let counter = if *e == PreviewError::Refused { &self.stats.refused } else { &self.stats.failed };
                counter.fetch_add(1, Ordering::Relaxed);
                (CachedPreview { fetched_at: now_ms(), preview: None, error: Some(e.code().into()) }, None)
            }
        };
        if let Err(e) = store.put_link_preview(url.to_owned(), entry, image).await {
            tracing::warn!(error = %e, "a link preview could not be cached");
            if out.as_ref().is_ok_and(|(p, _)| p.image.is_some()) {
                // The image's record was not stored: the preview must not name it.
                return out.map(|(p, _)| LinkPreview { image: None, ..p });
            }
        }
        out.map(|(p, _)| p)
    }

    async fn fetch(&self, media: &Arc<Media>, url: &str) -> Result<(LinkPreview, Option<FileRecord>), PreviewError> {
        let page = self.outbound.get(url, &PAGE).await?;
        let base = url::Url::parse(&page.url).map_err(|_| PreviewError::Unreachable)?;
        let info = tokio::task::spawn_blocking(move || parse::parse(&parse::decode(&page.body, page.charset.as_deref()), &base))
            .await
            .map_err(|_| PreviewError::Unreachable)?;
        let image = match &info.image {
            Some(image_url) => self.thumbnail(media, image_url).await,
            None => None,
        };
        let preview = LinkPreview {
            url: url.to_owned(),
            title: info.title,
            description: info.description,
            site_name: info.site_name,
            image: image.as_ref().map(|r| r.id.clone()),
        };
        Ok((preview, image))
    }

    /// Fetches the image the same way as the page and stores its thumbnail; a preview without
    /// its image is still a preview, so failures only log.
    async fn thumbnail(&self, media: &Arc<Media>, url: &str) -> Option<FileRecord> {
        let fetched = match self.outbound.get(url, &IMAGE).await {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "a link preview's image was not fetched");
                return None;
            }
        };
        // The bytes decide the type, not the site's header.
        let mime = sniff::sniff(&fetched.body[..fetched.body.len().min(sniff::HEAD_BYTES)]);
        let format = images::format_of(mime)?;
        let permit = media.decoding.acquire().await.ok()?;
        let m = media.clone();
        let stored = tokio::task::spawn_blocking(move || -> Option<(String, usize, &'static str, (u32, u32))> {
            let decoded = images::decode(format, &fetched.body).ok()?;
            let dims = image::ImageReader::new(std::io::Cursor::new(&decoded.thumb)).with_guessed_format().ok()?.into_dimensions().ok()?;
            let sha = m.blobs.put(&decoded.thumb).ok()?;
            Some((sha, decoded.thumb.len(), decoded.thumb_mime, dims))
        })
        .await
        .ok()
        .flatten();
        drop(permit);
        let (sha, size, thumb_mime, (width, height)) = stored?;
        let mut id = [0u8; 16];
        rand::fill(&mut id);
        let ext = if thumb_mime == "image/png" { "png" } else { "jpg" };
        Some(FileRecord {
            id: hex::encode(id),
            sha256: sha.clone(),
            size: size as u64,
            mime: thumb_mime.into(),
            name: format!("preview.{ext}"),
            uploader: UserId(0),
            created_at: now_ms(),
            image: Some(ImageMeta { width, height, thumb_sha256: sha, thumb_mime: thumb_mime.into() }),
            audio: None,
        })
    }
}

/// A request that could not be answered with a preview or a preview error.
#[derive(Debug)]
pub enum PreviewFailure {
    /// Seconds to wait.
    RateLimited(u64),
    Store(crate::store::StoreError),
}

/// The cache key of a URL: parsed, only http(s), no user info, no fragment, at most 2,048 bytes.
pub fn normalize(raw: &str) -> Result<String, PreviewError> {
    let raw = raw.trim();
    if raw.len() > MAX_URL {
        return Err(PreviewError::Refused);
    }
    let mut u = url::Url::parse(raw).map_err(|_| PreviewError::Refused)?;
    if !matches!(u.scheme(), "http" | "https")
        || u.host_str().is_none_or(str::is_empty)
        || !u.username().is_empty()
        || u.password().is_some()
    {
        return Err(PreviewError::Refused);
    }
    u.set_fragment(None);
    let s = u.to_string();
    if s.len() > MAX_URL {
        return Err(PreviewError::Refused);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized_and_odd_ones_refused() {
        assert_eq!(normalize(" HTTPS://Example.ORG/a b#frag ").unwrap(), "https://example.org/a%20b");
        assert_eq!(normalize("http://example.org").unwrap(), "http://example.org/");
        for bad in [
            "ftp://example.org/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pw@example.org/",
            "not a url",
            "data:text/html,hi",
        ] {
            assert_eq!(normalize(bad), Err(PreviewError::Refused), "{bad}");
        }
        assert!(normalize(&format!("https://example.org/{}", "a".repeat(MAX_URL))).is_err());
    }

    #[test]
    fn error_codes_round_trip_through_the_cache() {
        for e in [PreviewError::Refused, PreviewError::Unreachable, PreviewError::NotHtml, PreviewError::Redirects] {
            assert_eq!(PreviewError::from_code(e.code()), e);
        }
    }
}
