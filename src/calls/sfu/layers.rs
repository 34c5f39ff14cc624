//! Which simulcast layer of a video each receiver gets: the rule, pure and table-tested.
//!
//! A sender's camera comes in three layers (`rid` `q`, `h`, `f`: a quarter, half and full
//! resolution); a receiver asks for a layer per video it shows (`call_sfu_view`) and the SFU
//! estimates the bandwidth towards it. The receiver gets the largest layer that the sender is
//! sending now, that is not above what it asked for, and whose nominal bitrate fits its share
//! of the estimate; when none fits, the smallest one the sender sends (a small picture beats a
//! frozen one). A video it does not show gets nothing.

use crate::protocol::SfuLayer;

/// The layers in ascending order.
pub const LAYERS: [SfuLayer; 3] = [SfuLayer::Low, SfuLayer::Medium, SfuLayer::High];

/// The `rid` a layer is sent with (the web client's encodings, docs/protocol.md).
pub fn rid_of(layer: SfuLayer) -> &'static str {
    match layer {
        SfuLayer::Low => "q",
        SfuLayer::Medium => "h",
        SfuLayer::High => "f",
    }
}

/// The layer a `rid` names; `None` for a rid that is not one of ours.
pub fn layer_of(rid: &str) -> Option<SfuLayer> {
    match rid {
        "q" => Some(SfuLayer::Low),
        "h" => Some(SfuLayer::Medium),
        "f" => Some(SfuLayer::High),
        _ => None,
    }
}

/// What a layer costs, bits per second: the `maxBitrate` the web client gives each encoding.
pub fn nominal_bps(layer: SfuLayer) -> u64 {
    match layer {
        SfuLayer::Low => 150_000,
        SfuLayer::Medium => 500_000,
        SfuLayer::High => 1_500_000,
    }
}

/// The layer to forward. `wanted`: what the receiver asked for (`None`: it does not show this
/// video). `available`: the layers the sender sends now, any order. `budget_bps`: this video's
/// share of the bandwidth estimate towards the receiver (`None`: no estimate yet).
pub fn choose(wanted: Option<SfuLayer>, available: &[SfuLayer], budget_bps: Option<u64>) -> Option<SfuLayer> {
    let wanted = wanted?;
    let mut fitting = LAYERS.iter().copied().filter(|l| *l <= wanted && available.contains(l));
    let smallest = LAYERS.iter().copied().find(|l| available.contains(l))?;
    let best = match budget_bps {
        Some(budget) => fitting.rfind(|l| nominal_bps(*l) <= budget),
        None => fitting.next_back(),
    };
    Some(best.unwrap_or(smallest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use SfuLayer::{High, Low, Medium};

    /// (wanted, available, budget, expected)
    type Case<'a> = (Option<SfuLayer>, &'a [SfuLayer], Option<u64>, Option<SfuLayer>);

    #[test]
    fn the_largest_layer_not_above_the_wish_that_fits_the_budget() {
        let all = [Low, Medium, High];
        let cases: &[Case] = &[
            (None, &all, None, None),
            (Some(High), &all, None, Some(High)),
            (Some(Medium), &all, None, Some(Medium)),
            (Some(Low), &all, Some(10_000_000), Some(Low)),
            (Some(High), &all, Some(1_000_000), Some(Medium)),
            (Some(High), &all, Some(200_000), Some(Low)),
            // Nothing fits: the smallest the sender sends rather than nothing.
            (Some(High), &all, Some(50_000), Some(Low)),
            (Some(High), &[Medium, High], Some(50_000), Some(Medium)),
            // The sender dropped its top layer (its own bandwidth): the next one.
            (Some(High), &[Low, Medium], None, Some(Medium)),
            // Asked for low, the sender sends only high: high, better than nothing.
            (Some(Low), &[High], None, Some(High)),
            (Some(High), &[], None, None),
        ];
        for (wanted, available, budget, expect) in cases {
            assert_eq!(choose(*wanted, available, *budget), *expect, "{wanted:?} of {available:?} within {budget:?}");
        }
    }

    #[test]
    fn rids_and_layers_map_both_ways() {
        for l in LAYERS {
            assert_eq!(layer_of(rid_of(l)), Some(l));
        }
        assert_eq!(layer_of("x"), None);
        assert!(LAYERS.windows(2).all(|w| w[0] < w[1] && nominal_bps(w[0]) < nominal_bps(w[1])));
    }
}
