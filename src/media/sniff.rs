//! What a file is, from its first bytes (never from the client's say-so), how its name is made
//! safe to show and to put in a header, and which types a browser may show inline.

/// Bytes of the start of a file that sniffing looks at.
pub const HEAD_BYTES: usize = 8192;

/// Image types a browser may show inline: decoders for them have no script or active content.
/// SVG is deliberately not here (it can carry script).
pub const INLINE_IMAGES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Types the browser shows inline with its own players and PDF viewer (for the in-app viewer),
/// still under `nosniff` and a CSP with `default-src 'none'`.
pub const INLINE_MEDIA: &[&str] =
    &["application/pdf", "audio/mpeg", "audio/ogg", "audio/flac", "audio/wav", "audio/mp4", "video/mp4", "video/quicktime", "video/webm"];

/// Whether a file of this sniffed type is served inline; `decoded_image` says whether it
/// decoded as an image.
pub fn served_inline(mime: &str, decoded_image: bool) -> bool {
    (decoded_image && INLINE_IMAGES.contains(&mime)) || INLINE_MEDIA.contains(&mime)
}

/// Types served under their own name; anything else is served as `application/octet-stream`,
/// always as an attachment.
const PASSIVE: &[&str] = &[
    "application/pdf",
    "application/zip",
    "application/gzip",
    "application/x-7z-compressed",
    "application/vnd.rar",
    "audio/mpeg",
    "audio/ogg",
    "audio/flac",
    "audio/wav",
    "audio/mp4",
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "image/bmp",
    "image/tiff",
    "image/heic",
    "text/plain",
];

/// The MIME type of a file from its first bytes.
pub fn sniff(head: &[u8]) -> &'static str {
    let starts = |sig: &[u8]| head.starts_with(sig);
    if starts(b"\x89PNG\r\n\x1a\n") {
        return "image/png";
    }
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return "image/jpeg";
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return "image/gif";
    }
    if head.len() >= 12 && starts(b"RIFF") {
        match &head[8..12] {
            b"WEBP" => return "image/webp",
            b"WAVE" => return "audio/wav",
            _ => {}
        }
    }
    if starts(b"%PDF-") {
        return "application/pdf";
    }
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        return "application/zip";
    }
    if starts(&[0x1F, 0x8B]) {
        return "application/gzip";
    }
    if starts(&[0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C]) {
        return "application/x-7z-compressed";
    }
    if starts(b"Rar!\x1a\x07") {
        return "application/vnd.rar";
    }
    if starts(b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 && head[1] & 0x06 != 0) {
        return "audio/mpeg";
    }
    if starts(b"OggS") {
        return "audio/ogg";
    }
    if starts(b"fLaC") {
        return "audio/flac";
    }
    if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return "video/webm";
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return match &head[8..12] {
            b"qt  " => "video/quicktime",
            b"M4A " | b"M4B " => "audio/mp4",
            b"heic" | b"heix" | b"mif1" | b"msf1" => "image/heic",
            _ => "video/mp4",
        };
    }
    if starts(b"BM") && head.len() >= 14 {
        return "image/bmp";
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return "image/tiff";
    }
    if let Some(markup) = markup(head) {
        return markup;
    }
    if !head.contains(&0) && text_prefix(head) {
        return "text/plain";
    }
    "application/octet-stream"
}

/// HTML, SVG and XML, which browsers would run or render: recognized so that they are never
/// served as anything but a download.
fn markup(head: &[u8]) -> Option<&'static str> {
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    let lower: Vec<u8> = text[start..].iter().take(1024).map(u8::to_ascii_lowercase).collect();
    if lower.windows(4).any(|w| w == b"<svg") && (lower.starts_with(b"<svg") || lower.starts_with(b"<?xml") || lower.starts_with(b"<!")) {
        return Some("image/svg+xml");
    }
    for tag in [&b"<!doctype html"[..], b"<html", b"<head", b"<body", b"<script", b"<iframe", b"<!--"] {
        if lower.starts_with(tag) {
            return Some("text/html");
        }
    }
    if lower.starts_with(b"<?xml") {
        return Some("application/xml");
    }
    None
}

/// Whether the bytes are UTF-8 text, allowing a character cut at the end of the sample.
fn text_prefix(head: &[u8]) -> bool {
    match std::str::from_utf8(head) {
        Ok(_) => !head.is_empty(),
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// The `Content-Type` a stored file is served with.
pub fn served_type(mime: &str) -> &str {
    if INLINE_IMAGES.contains(&mime) || PASSIVE.contains(&mime) { mime } else { "application/octet-stream" }
}

/// Longest stored name, in bytes.
const MAX_NAME_BYTES: usize = 200;

/// A client's file name made safe to store and show: the last path component only, no control
/// or direction-changing characters, no characters that are special in file systems, no
/// leading dots, at most 200 bytes (keeping the extension), and never empty. It is only ever
/// shown, never used as a path.
pub fn sanitize_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
        })
        .map(|c| if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut name = if trimmed.is_empty() { "file".to_owned() } else { trimmed.to_owned() };
    if name.len() > MAX_NAME_BYTES {
        let ext = match name.rfind('.') {
            Some(i) if name.len() - i <= 16 => name[i..].to_owned(),
            _ => String::new(),
        };
        let mut cut = MAX_NAME_BYTES - ext.len();
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        name.push_str(&ext);
    }
    name
}

/// `Content-Disposition` for a stored name (RFC 6266): a plain ASCII `filename` for old clients
/// and the exact name as `filename*=UTF-8''...`.
pub fn content_disposition(inline: bool, name: &str) -> String {
    let ascii: String = name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(clippy::case_sensitive_file_extension_comparisons, reason = "the long name must keep its extension exactly")]
    fn names_lose_their_paths_and_control_characters() {
        let cases = [
            ("../../etc/passwd", "passwd"),
            ("..\\x", "x"),
            ("C:\\Windows\\system.ini", "system.ini"),
            ("/abs/path.txt", "path.txt"),
            ("a\0b\nc.txt", "abc.txt"),
            ("..", "file"),
            ("", "file"),
            ("   ", "file"),
            (".bashrc", "bashrc"),
            ("%2e%2e%2f", "%2e%2e%2f"),
            ("evil\u{202E}gpj.exe", "evilgpj.exe"),
            ("报告.pdf", "报告.pdf"),
            ("a<b>:c.txt", "a_b__c.txt"),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize_name(raw), want, "{raw:?}");
        }
        let long = format!("{}.pdf", "字".repeat(200));
        let s = sanitize_name(&long);
        assert!(s.len() <= 200 && s.ends_with(".pdf"), "{s}");
    }

    #[test]
    fn disposition_is_ascii_and_quoted_safely() {
        let d = content_disposition(false, "a \"b\"; 报告.pdf");
        assert_eq!(d, "attachment; filename=\"a _b_; __.pdf\"; filename*=UTF-8''a%20%22b%22%3B%20%E6%8A%A5%E5%91%8A.pdf");
        assert!(d.is_ascii());
    }

    #[test]
    fn sniffing_knows_images_and_markup() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), "image/png");
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), "image/jpeg");
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(sniff(b"  <!DOCTYPE html><p>x"), "text/html");
        assert_eq!(sniff(b"<?xml version=\"1.0\"?><svg xmlns=\"\">"), "image/svg+xml");
        assert_eq!(sniff(b"<svg onload=alert(1)>"), "image/svg+xml");
        assert_eq!(sniff(b"hello, world"), "text/plain");
        assert_eq!(sniff(&[0, 1, 2, 3]), "application/octet-stream");
        assert_eq!(served_type("text/html"), "application/octet-stream");
        assert_eq!(served_type("image/svg+xml"), "application/octet-stream");
        assert_eq!(served_type("image/png"), "image/png");
    }

    #[test]
    fn only_passive_media_is_inline() {
        for mime in ["application/pdf", "audio/ogg", "video/webm", "video/mp4", "audio/mpeg"] {
            assert!(served_inline(mime, false), "{mime}");
        }
        assert!(served_inline("image/png", true));
        assert!(!served_inline("image/png", false), "an image that did not decode is a download");
        for mime in ["text/html", "image/svg+xml", "application/xml", "text/plain", "application/zip", "application/octet-stream"] {
            assert!(!served_inline(mime, true), "{mime}");
        }
    }
}
