//! The length of an Ogg (Opus, Vorbis) or `WebM` recording from its own data, read cheaply: the
//! last Ogg page's granule position, or the last block timestamp of a `WebM` file. Used to check
//! the duration a voice message claims; nothing here decodes audio.

/// Largest recording that is parsed; longer files are not voice messages.
pub const MAX_PARSE_BYTES: usize = 8 * 1024 * 1024;

/// What a recording's container says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioInfo {
    /// From the first to the last sample, milliseconds.
    pub duration_ms: u64,
}

/// The length of an audio-only recording of type `mime` (as sniffed), or `None` when the
/// container is not one this reads, holds video, or is damaged.
pub fn probe(mime: &str, data: &[u8]) -> Option<AudioInfo> {
    if data.len() > MAX_PARSE_BYTES {
        return None;
    }
    let duration_ms = match mime {
        "audio/ogg" => ogg_duration_ms(data)?,
        "video/webm" => webm_duration_ms(data)?,
        _ => return None,
    };
    Some(AudioInfo { duration_ms })
}

/// Ogg: the codec's sample rate from the first packet (`OpusHead` is always 48 kHz with a
/// pre-skip; Vorbis names its rate), the sample count from the last page's granule position.
fn ogg_duration_ms(data: &[u8]) -> Option<u64> {
    if !data.starts_with(b"OggS") || data.len() < 28 {
        return None;
    }
    let segments = usize::from(data[26]);
    let packet = data.get(27 + segments..)?;
    let (rate, skip) = if packet.starts_with(b"OpusHead") {
        (48_000u64, u64::from(u16::from_le_bytes([*packet.get(10)?, *packet.get(11)?])))
    } else if packet.starts_with(b"\x01vorbis") {
        (u64::from(u32::from_le_bytes(packet.get(12..16)?.try_into().ok()?)), 0)
    } else {
        return None;
    };
    if rate == 0 {
        return None;
    }
    let tail_from = data.len().saturating_sub(65_536);
    let last = data[tail_from..].windows(4).rposition(|w| w == b"OggS")? + tail_from;
    let granule = i64::from_le_bytes(data.get(last + 6..last + 14)?.try_into().ok()?);
    let samples = u64::try_from(granule).ok()?.saturating_sub(skip);
    Some(samples.saturating_mul(1000) / rate)
}

const SEGMENT: u32 = 0x1853_8067;
const CLUSTER: u32 = 0x1F43_B675;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_TYPE: u32 = 0x83;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const CLUSTER_TIMECODE: u32 = 0xE7;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const SIMPLE_BLOCK: u32 = 0xA3;

/// An EBML element id (marker bits kept) and its length in bytes.
fn ebml_id(data: &[u8], pos: usize) -> Option<(u32, usize)> {
    let first = *data.get(pos)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return None;
    }
    let bytes = data.get(pos..pos + len)?;
    Some((bytes.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)), len))
}

/// An EBML size (`None` inside: unknown, as live recorders write) and its length in bytes.
fn ebml_size(data: &[u8], pos: usize) -> Option<(Option<u64>, usize)> {
    let first = *data.get(pos)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = data.get(pos..pos + len)?;
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let mut value = u64::from(first & mask);
    let mut all_ones = first & mask == mask;
    for b in &bytes[1..] {
        value = value << 8 | u64::from(*b);
        all_ones &= *b == 0xFF;
    }
    Some((if all_ones { None } else { Some(value) }, len))
}

fn uint(bytes: &[u8]) -> u64 {
    bytes.iter().take(8).fold(0u64, |acc, b| acc << 8 | u64::from(*b))
}

/// `WebM`: walks the elements, entering the segment, tracks, clusters and block groups and
/// skipping everything else by its size. The duration is the segment's `Duration` when the
/// writer knew it, else the latest block timestamp (`MediaRecorder` writes no duration). A file
/// with a video track, or with no audio track, is refused.
fn webm_duration_ms(data: &[u8]) -> Option<u64> {
    let (mut scale, mut cluster_tc, mut latest, mut declared) = (1_000_000u64, 0u64, None::<u64>, None::<f64>);
    let (mut audio, mut video) = (false, false);
    let mut pos = 0;
    while pos < data.len() {
        let (id, id_len) = ebml_id(data, pos)?;
        let (size, size_len) = ebml_size(data, pos + id_len)?;
        let body = pos + id_len + size_len;
        if matches!(id, SEGMENT | CLUSTER | TRACKS | TRACK_ENTRY | INFO | BLOCK_GROUP) {
            pos = body;
            continue;
        }
        // Only the masters above may have an unknown size.
        let size = usize::try_from(size?).ok()?;
        let end = body.checked_add(size)?;
        let Some(value) = data.get(body..end) else {
            // A recording cut short in its last element still counts up to there.
            break;
        };
        match id {
            TIMECODE_SCALE => scale = uint(value),
            DURATION => {
                declared = match value.len() {
                    4 => Some(f64::from(f32::from_be_bytes(value.try_into().ok()?))),
                    8 => Some(f64::from_be_bytes(value.try_into().ok()?)),
                    _ => None,
                };
            }
            CLUSTER_TIMECODE => cluster_tc = uint(value),
            TRACK_TYPE => match uint(value) {
                1 => video = true,
                2 => audio = true,
                _ => {}
            },
            SIMPLE_BLOCK | BLOCK => {
                let (_, track_len) = ebml_size(value, 0)?;
                let rel = i16::from_be_bytes(value.get(track_len..track_len + 2)?.try_into().ok()?);
                let at = cluster_tc.saturating_add_signed(i64::from(rel));
                latest = Some(latest.map_or(at, |l: u64| l.max(at)));
            }
            _ => {}
        }
        pos = end;
    }
    if video || !audio || scale == 0 {
        return None;
    }
    let ticks = match declared {
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a checked, non-negative float of ticks")]
        Some(d) if (0.0..1e15).contains(&d) => d as u64,
        _ => latest?,
    };
    u64::try_from(u128::from(ticks) * u128::from(scale) / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ogg page: header, segment table, body (one packet per page here).
    fn page(granule: i64, seq: u32, packet: &[u8]) -> Vec<u8> {
        let mut p = b"OggS\0\0".to_vec();
        p.extend_from_slice(&granule.to_le_bytes());
        p.extend_from_slice(&[1, 0, 0, 0]);
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        let mut lacing = vec![255u8; packet.len() / 255];
        lacing.push(u8::try_from(packet.len() % 255).unwrap());
        p.push(u8::try_from(lacing.len()).unwrap());
        p.extend_from_slice(&lacing);
        p.extend_from_slice(packet);
        p
    }

    #[test]
    fn ogg_opus_length_comes_from_the_last_granule() {
        let mut head = b"OpusHead\x01\x01".to_vec();
        head.extend_from_slice(&312u16.to_le_bytes());
        head.extend_from_slice(&[0x80, 0xBB, 0, 0, 0, 0, 0]);
        let mut f = page(0, 0, &head);
        f.extend(page(0, 1, b"OpusTags\0\0\0\0\0\0\0\0"));
        f.extend(page(312 + 48_000 * 7, 2, &[0xF8]));
        assert_eq!(probe("audio/ogg", &f), Some(AudioInfo { duration_ms: 7000 }));
        assert_eq!(probe("audio/ogg", b"OggS nonsense"), None);
        assert_eq!(probe("audio/mpeg", &f), None);
    }

    #[test]
    fn webm_length_is_the_latest_block_and_video_is_refused() {
        // EBML header, then a segment and a cluster of unknown size, as MediaRecorder writes.
        let mut f = vec![0x1A, 0x45, 0xDF, 0xA3, 0x84, b'w', b'e', b'b', b'm'];
        f.extend([0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        f.extend([0x16, 0x54, 0xAE, 0x6B, 0x85, 0xAE, 0x83, 0x83, 0x81, 0x02]);
        f.extend([0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x82, 0x13, 0x88]);
        f.extend([0xA3, 0x84, 0x81, 0x0B, 0xB8, 0x80]);
        assert_eq!(probe("video/webm", &f), Some(AudioInfo { duration_ms: 8000 }));
        let video = [&f[..30], &[0x01], &f[31..]].concat();
        assert_eq!(probe("video/webm", &video), None);
        assert_eq!(probe("video/webm", &f[..21]), None, "no audio track");
    }
}
