//! Images: metadata stripping (EXIF, XMP, IPTC, comments: location and camera data never leave
//! the server), decoding under size limits (decompression bombs), dimensions, EXIF orientation
//! and thumbnails. Everything here is blocking; callers run it on the blocking pool.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// Largest width or height decoded.
pub const MAX_SIDE: u32 = 12_000;
/// Most memory one decode may take for its pixels.
pub const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
/// Longest side of a thumbnail.
pub const THUMB_SIDE: u32 = 320;

/// The image metadata could not be parsed: the file is damaged, and is refused rather than
/// stored with metadata that could not be removed.
#[derive(Debug, PartialEq, Eq)]
pub struct Damaged;

pub fn format_of(mime: &str) -> Option<ImageFormat> {
    match mime {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// The bytes without metadata segments, or `None` when there was nothing to remove.
pub fn strip_metadata(format: ImageFormat, data: &[u8]) -> Result<Option<Vec<u8>>, Damaged> {
    let out = match format {
        ImageFormat::Jpeg => strip_jpeg(data)?,
        ImageFormat::Png => strip_png(data)?,
        ImageFormat::WebP => strip_webp(data)?,
        _ => return Ok(None),
    };
    Ok((out != data).then_some(out))
}

/// Keeps every JPEG segment except APP1 (EXIF, XMP), APP13 (IPTC) and comments, and drops
/// whatever follows the end-of-image marker (embedded second images, appended archives).
fn strip_jpeg(d: &[u8]) -> Result<Vec<u8>, Damaged> {
    if !d.starts_with(&[0xFF, 0xD8]) {
        return Err(Damaged);
    }
    let mut out = Vec::with_capacity(d.len());
    out.extend_from_slice(&d[..2]);
    let mut i = 2;
    loop {
        // Markers may be preceded by fill bytes.
        while d.get(i) == Some(&0xFF) && d.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if d.get(i) != Some(&0xFF) {
            return Err(Damaged);
        }
        let marker = *d.get(i + 1).ok_or(Damaged)?;
        match marker {
            0xD9 => {
                out.extend_from_slice(&d[i..i + 2]);
                return Ok(out);
            }
            0x01 | 0xD0..=0xD7 => {
                out.extend_from_slice(&d[i..i + 2]);
                i += 2;
                continue;
            }
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*d.get(i + 2).ok_or(Damaged)?, *d.get(i + 3).ok_or(Damaged)?]));
        let end = i + 2 + len;
        if len < 2 || end > d.len() {
            return Err(Damaged);
        }
        if !matches!(marker, 0xE1 | 0xED | 0xFE) {
            out.extend_from_slice(&d[i..end]);
        }
        i = end;
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a
            // restart marker; progressive images have several scans.
            let start = i;
            loop {
                let ff = d[i..].iter().position(|b| *b == 0xFF).ok_or(Damaged)? + i;
                let next = *d.get(ff + 1).ok_or(Damaged)?;
                if next == 0x00 || (0xD0..=0xD7).contains(&next) || next == 0xFF {
                    i = ff + 1;
                    continue;
                }
                i = ff;
                break;
            }
            out.extend_from_slice(&d[start..i]);
        }
    }
}

/// Drops PNG text, time and EXIF chunks and anything after `IEND`.
fn strip_png(d: &[u8]) -> Result<Vec<u8>, Damaged> {
    const SIG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !d.starts_with(SIG) {
        return Err(Damaged);
    }
    let mut out = Vec::with_capacity(d.len());
    out.extend_from_slice(SIG);
    let mut i = SIG.len();
    loop {
        let header = d.get(i..i + 8).ok_or(Damaged)?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        let end = i.checked_add(12).and_then(|v| v.checked_add(len)).ok_or(Damaged)?;
        if end > d.len() {
            return Err(Damaged);
        }
        if !matches!(kind, b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt" | b"tIME") {
            out.extend_from_slice(&d[i..end]);
        }
        i = end;
        if kind == b"IEND" {
            return Ok(out);
        }
    }
}

/// Drops WebP `EXIF` and `XMP ` chunks (clearing their flags in `VP8X`) and anything after the
/// RIFF container.
fn strip_webp(d: &[u8]) -> Result<Vec<u8>, Damaged> {
    if d.len() < 12 || &d[..4] != b"RIFF" || &d[8..12] != b"WEBP" {
        return Err(Damaged);
    }
    let riff_end = (u32::from_le_bytes([d[4], d[5], d[6], d[7]]) as usize).checked_add(8).ok_or(Damaged)?;
    if riff_end > d.len() {
        return Err(Damaged);
    }
    let mut out = Vec::with_capacity(riff_end);
    out.extend_from_slice(&d[..12]);
    let mut i = 12;
    while i < riff_end {
        let header = d.get(i..i + 8).ok_or(Damaged)?;
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let end = i.checked_add(8 + len + (len & 1)).ok_or(Damaged)?;
        if end > riff_end {
            return Err(Damaged);
        }
        match &header[..4] {
            b"EXIF" | b"XMP " => {}
            b"VP8X" => {
                let at = out.len();
                out.extend_from_slice(&d[i..end]);
                if let Some(flags) = out.get_mut(at + 8) {
                    *flags &= !(0x08 | 0x04);
                }
            }
            _ => out.extend_from_slice(&d[i..end]),
        }
        i = end;
    }
    let size = u32::try_from(out.len() - 8).map_err(|_| Damaged)?;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    Ok(out)
}

/// What decoding found.
#[derive(Debug)]
pub struct Decoded {
    /// As displayed, after the EXIF orientation.
    pub width: u32,
    pub height: u32,
    pub thumb: Vec<u8>,
    pub thumb_mime: &'static str,
    /// A JPEG whose EXIF said to rotate or flip is re-encoded upright, since stripping the EXIF
    /// loses that instruction.
    pub upright: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the image is larger than {MAX_SIDE} pixels on a side or needs too much memory")]
    TooBig,
    #[error(transparent)]
    Image(#[from] image::ImageError),
}

/// Decodes `data` (the bytes as uploaded, so that the EXIF orientation can still be read) under
/// the limits, and makes the thumbnail.
pub fn decode(format: ImageFormat, data: &[u8]) -> Result<Decoded, DecodeError> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(DecodeError::TooBig);
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    let upright = if format == ImageFormat::Jpeg && orientation != Orientation::NoTransforms { Some(jpeg(&img, 90)?) } else { None };
    let small = if img.width() > THUMB_SIDE || img.height() > THUMB_SIDE { img.thumbnail(THUMB_SIDE, THUMB_SIDE) } else { img.clone() };
    let (thumb, thumb_mime) = if small.color().has_alpha() {
        let mut out = Vec::new();
        DynamicImage::ImageRgba8(small.to_rgba8()).write_with_encoder(PngEncoder::new(&mut out))?;
        (out, "image/png")
    } else {
        (jpeg(&small, 80)?, "image/jpeg")
    };
    Ok(Decoded { width: img.width(), height: img.height(), thumb, thumb_mime, upright })
}

fn jpeg(img: &DynamicImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img.to_rgb8()).write_with_encoder(JpegEncoder::new_with_quality(&mut out, quality))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_jpeg() -> Vec<u8> {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(40, 20, |x, y| image::Rgb([x as u8 * 6, y as u8 * 12, 90])));
        jpeg(&img, 85).unwrap()
    }

    /// A JPEG with an EXIF segment (orientation 6: rotate 90° clockwise) and a comment after SOI.
    fn with_exif(jpeg: &[u8]) -> Vec<u8> {
        let mut tiff = b"MM\0*\0\0\0\x08".to_vec();
        tiff.extend_from_slice(&[0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&u16::try_from(app1.len() + 2).unwrap().to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&[0xFF, 0xFE, 0, 7, b'G', b'P', b'S', b'!', b'!']);
        out.extend_from_slice(&jpeg[2..]);
        out.extend_from_slice(b"trailing secrets");
        out
    }

    #[test]
    fn jpeg_metadata_and_trailing_bytes_are_removed() {
        let plain = sample_jpeg();
        let tagged = with_exif(&plain);
        let stripped = strip_metadata(ImageFormat::Jpeg, &tagged).unwrap().unwrap();
        assert_eq!(stripped, plain);
        assert_eq!(strip_metadata(ImageFormat::Jpeg, &plain).unwrap(), None);
        assert_eq!(strip_jpeg(&tagged[..40]), Err(Damaged));
    }

    #[test]
    fn exif_orientation_is_applied_and_the_image_reencoded() {
        let d = decode(ImageFormat::Jpeg, &with_exif(&sample_jpeg())).unwrap();
        assert_eq!((d.width, d.height), (20, 40));
        let upright = d.upright.unwrap();
        assert_eq!(strip_metadata(ImageFormat::Jpeg, &upright).unwrap(), None, "the re-encoded image has no metadata");
    }

    #[test]
    fn png_text_chunks_are_removed() {
        let mut png = Vec::new();
        DynamicImage::ImageRgba8(image::RgbaImage::new(4, 4)).write_with_encoder(PngEncoder::new(&mut png)).unwrap();
        let mut tagged = png[..33].to_vec();
        let data = b"Comment\0at home";
        tagged.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        tagged.extend_from_slice(b"tEXt");
        tagged.extend_from_slice(data);
        tagged.extend_from_slice(&[0, 0, 0, 0]);
        tagged.extend_from_slice(&png[33..]);
        assert_eq!(strip_metadata(ImageFormat::Png, &tagged).unwrap().unwrap(), png);
    }

    #[test]
    fn huge_dimensions_are_refused_before_decoding() {
        // A PNG header claiming 100,000 x 100,000 pixels.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(decode(ImageFormat::Png, &png).is_err());
    }
}
