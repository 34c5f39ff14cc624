//! What a page says about itself: `OpenGraph` (`og:*`), Twitter cards, `<title>` and
//! `<meta name=description>`, read with a spec-following HTML parser (html5ever, through
//! `scraper`) that decodes entities. Pure: no I/O, tested on strings.

use scraper::{Html, Selector};

/// Longest title kept, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest description kept, in characters.
pub const MAX_DESCRIPTION: usize = 400;
/// Longest site name kept, in characters.
pub const MAX_SITE_NAME: usize = 80;

/// The fields of a preview, cleaned and capped; `image` is an absolute http(s) URL.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PageInfo {
    pub title: Option<String>,
    pub description: Option<String>,
    pub site_name: Option<String>,
    pub image: Option<String>,
}

/// Turns the page's bytes into text: the charset of `Content-Type`, else one declared in the
/// first kilobyte (`<meta charset>`), else a byte-order mark, else UTF-8. Bad bytes become U+FFFD.
pub fn decode(bytes: &[u8], charset: Option<&str>) -> String {
    let declared = charset.and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes())).or_else(|| {
        let head = &bytes[..bytes.len().min(1024)];
        let lower = head.to_ascii_lowercase();
        let at = lower.windows(8).position(|w| w == b"charset=")? + 8;
        let label: Vec<u8> = lower[at..]
            .iter()
            .skip_while(|b| **b == b'"' || **b == b'\'')
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
            .copied()
            .collect();
        encoding_rs::Encoding::for_label(&label)
    });
    let (text, _, _) = declared.unwrap_or(encoding_rs::UTF_8).decode(bytes);
    text.into_owned()
}

/// Reads the preview fields of `html`, found at `base` (for relative image URLs).
///
/// # Panics
/// Never: the selectors are constants that parse.
pub fn parse(html: &str, base: &url::Url) -> PageInfo {
    let doc = Html::parse_document(html);
    let meta = Selector::parse("meta[content]").expect("a valid selector");
    let title_sel = Selector::parse("title").expect("a valid selector");
    let mut og_title = None;
    let mut tw_title = None;
    let mut og_desc = None;
    let mut tw_desc = None;
    let mut desc = None;
    let mut site = None;
    let mut og_image = None;
    let mut tw_image = None;
    for el in doc.select(&meta) {
        let v = el.value();
        let Some(key) = v.attr("property").or_else(|| v.attr("name")) else { continue };
        let content = v.attr("content").unwrap_or_default();
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "og:title" => &mut og_title,
            "twitter:title" => &mut tw_title,
            "og:description" => &mut og_desc,
            "twitter:description" => &mut tw_desc,
            "description" => &mut desc,
            "og:site_name" | "application-name" => &mut site,
            "og:image" | "og:image:url" | "og:image:secure_url" => &mut og_image,
            "twitter:image" | "twitter:image:src" => &mut tw_image,
            _ => continue,
        };
        if slot.is_none() && !content.trim().is_empty() {
            *slot = Some(content.to_owned());
        }
    }
    let doc_title = doc.select(&title_sel).next().map(|t| t.text().collect::<String>());
    let host = base.host_str().map(|h| h.trim_start_matches("www.").to_owned());
    PageInfo {
        title: og_title.or(tw_title).or(doc_title).and_then(|t| clean(&t, MAX_TITLE)),
        description: og_desc.or(tw_desc).or(desc).and_then(|d| clean(&d, MAX_DESCRIPTION)),
        site_name: site.and_then(|s| clean(&s, MAX_SITE_NAME)).or_else(|| host.and_then(|h| clean(&h, MAX_SITE_NAME))),
        image: og_image.or(tw_image).and_then(|i| absolute(&i, base)),
    }
}

/// One line of text: whitespace runs become one space, control characters go, and past `max`
/// characters the text is cut with an ellipsis. Empty text is `None`.
pub fn clean(s: &str, max: usize) -> Option<String> {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let text: String = one_line.chars().filter(|c| !c.is_control()).collect();
    if text.is_empty() {
        return None;
    }
    if text.chars().count() <= max {
        return Some(text);
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    Some(cut)
}

/// An image reference made absolute against the page; only http(s) URLs are kept.
fn absolute(reference: &str, base: &url::Url) -> Option<String> {
    let mut u = base.join(reference.trim()).ok()?;
    u.set_fragment(None);
    (matches!(u.scheme(), "http" | "https") && u.as_str().len() <= 2048).then(|| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> url::Url {
        url::Url::parse("https://www.example.org/articles/1?x=1").unwrap()
    }

    #[test]
    fn opengraph_wins_over_title_and_description_and_entities_are_decoded() {
        let html = r#"<!doctype html><html><head>
            <title>Plain &amp; simple</title>
            <meta name="description" content="The plain description">
            <meta property="og:title" content="  Fish &amp; Chips
                 &#x1F41F; &quot;today&quot; ">
            <meta property="og:description" content="Crispy &lt;b&gt;batter&lt;/b&gt;">
            <meta property="og:site_name" content="Example&nbsp;News">
            <meta property="og:image" content="/img/fish.png#top">
            </head><body><p>hi</p></body></html>"#;
        let info = parse(html, &base());
        assert_eq!(info.title.as_deref(), Some("Fish & Chips 🐟 \"today\""));
        assert_eq!(info.description.as_deref(), Some("Crispy <b>batter</b>"));
        assert_eq!(info.site_name.as_deref(), Some("Example News"));
        assert_eq!(info.image.as_deref(), Some("https://www.example.org/img/fish.png"));
    }

    #[test]
    fn falls_back_to_title_meta_description_and_host() {
        let html = "<title>\n  Hello\tworld </title><meta name=Description content='About &eacute;t&eacute;'><meta property=og:image content='javascript:alert(1)'>";
        let info = parse(html, &base());
        assert_eq!(info.title.as_deref(), Some("Hello world"));
        assert_eq!(info.description.as_deref(), Some("About été"));
        assert_eq!(info.site_name.as_deref(), Some("example.org"));
        assert_eq!(info.image, None, "only http(s) images");
    }

    #[test]
    fn broken_html_and_empty_pages_give_what_they_can() {
        let info = parse("<html><head><title>Unclosed <meta property='og:title' content=''", &base());
        assert!(info.title.is_none() || info.title.as_deref().is_some_and(|t| t.starts_with("Unclosed")));
        assert_eq!(parse("", &base()).title, None);
        assert_eq!(parse("\u{0}\u{1}<<<>>>", &base()).description, None);
    }

    #[test]
    fn long_fields_are_cut_with_an_ellipsis() {
        let long = "word ".repeat(200);
        let out = clean(&long, MAX_TITLE).unwrap();
        assert_eq!(out.chars().count(), MAX_TITLE);
        assert!(out.ends_with('…'));
        assert_eq!(clean(" \n\t ", 10), None);
        assert_eq!(clean("a\u{7}b", 10).as_deref(), Some("ab"));
    }

    #[test]
    fn charsets_come_from_the_header_or_the_page() {
        let (gbk, _, _) = encoding_rs::GBK.encode("<title>你好</title>");
        assert_eq!(decode(&gbk, Some("gbk")), "<title>你好</title>");
        let mut page = b"<meta charset=\"gbk\">".to_vec();
        page.extend_from_slice(&gbk);
        assert!(decode(&page, None).contains("你好"));
        assert_eq!(decode("<title>é</title>".as_bytes(), None), "<title>é</title>");
    }
}
