//! Allocate VMID: the lowest VMID of the node's range that nobody uses — not a guest in the
//! cluster, not the cache, not a VMID another container has recorded but not created yet.
//! The driver confirms the pick with `/cluster/nextid?vmid=` under the allocation lock.

use std::collections::BTreeSet;

use crate::crd::node::VmidRange;

/// Proxmox's own bounds of a VMID.
pub const DEFAULT_RANGE: (u32, u32) = (100, 999_999_999);

/// The range of a node (Proxmox's bounds without one).
pub fn range(r: Option<&VmidRange>) -> (u32, u32) {
    r.map_or(DEFAULT_RANGE, |r| {
        (
            u32::try_from(r.min).unwrap_or(DEFAULT_RANGE.0),
            u32::try_from(r.max).unwrap_or(DEFAULT_RANGE.1),
        )
    })
}

/// The lowest free VMID in `range` (inclusive), or `None` when the range is full.
pub fn pick_free((min, max): (u32, u32), taken: &BTreeSet<u32>) -> Option<u32> {
    let mut candidate = min;
    for &t in taken.range(min..=max) {
        if t > candidate {
            break;
        }
        candidate = t.checked_add(1)?;
    }
    (candidate <= max).then_some(candidate)
}

/// Whether `vmid` lies in `range`.
pub fn in_range((min, max): (u32, u32), vmid: u32) -> bool {
    (min..=max).contains(&vmid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_gap_is_taken_and_a_full_range_says_so() {
        let taken: BTreeSet<u32> = [99, 100, 101, 103, 2000].into();
        assert_eq!(pick_free((100, 200), &taken), Some(102));
        assert_eq!(pick_free((103, 200), &taken), Some(104));
        assert_eq!(pick_free((500, 500), &taken), Some(500));
        assert_eq!(pick_free((100, 101), &taken), None);
        assert_eq!(pick_free((2000, 2000), &taken), None);
        assert_eq!(pick_free((u32::MAX, u32::MAX), &[u32::MAX].into()), None);
    }

    #[test]
    fn ranges_default_to_proxmox_bounds() {
        assert_eq!(range(None), (100, 999_999_999));
        assert_eq!(range(Some(&VmidRange { min: 5000, max: 5999 })), (5000, 5999));
        assert!(in_range((5000, 5999), 5999) && !in_range((5000, 5999), 6000));
    }
}
