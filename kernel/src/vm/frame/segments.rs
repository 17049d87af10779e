//! The segment table: which frame numbers are managed, and where their records are.
//!
//! The memory map is reduced to a sorted list of disjoint, non-adjacent runs of
//! whole usable frames ("segments"). Records of one segment are consecutive in the
//! page array, segments follow each other in address order, so a frame's record is
//! at `segment.base + (pfn - segment.start)` once its segment is found by binary
//! search. The table is fixed-size so that it needs no heap at boot.

use super::PhysRange;
use crate::vm::page::{PAGE_SHIFT, PAGE_SIZE};

/// Most segments kept. When the map has more disjoint runs, the smallest are left
/// unused (real maps have a few dozen at most).
pub const MAX_SEGMENTS: usize = 64;

/// One past the highest managed frame number: frame numbers are stored in 32 bits.
const FRAME_LIMIT: u64 = 1 << 32;

/// A run of usable frames `start..end` whose records start at array index `base`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Segment {
    /// First frame number.
    pub start: u64,
    /// One past the last frame number.
    pub end: u64,
    /// Array index of the record of `start`.
    pub base: usize,
}

impl Segment {
    /// Number of frames in the segment.
    pub fn frames(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether frames `first..first + count` all lie in this segment.
    pub fn holds(&self, first: u64, count: u64) -> bool {
        first >= self.start && first.checked_add(count).is_some_and(|end| end <= self.end)
    }

    /// Array index of frame `pfn`, which must be in the segment.
    pub fn index(&self, pfn: u64) -> usize {
        self.base + (pfn - self.start) as usize
    }
}

/// The managed frames, as sorted disjoint segments.
#[derive(Clone, Debug)]
pub(super) struct SegmentTable {
    segments: [Segment; MAX_SEGMENTS],
    len: usize,
}

impl SegmentTable {
    /// Builds the table from a memory map: trims each range inward to whole pages,
    /// drops frame 0 and frames above the 32-bit frame-number limit, and merges
    /// overlapping or touching ranges. Deterministic for a given map.
    pub fn from_ranges(usable: &[PhysRange]) -> SegmentTable {
        let mut runs = Runs::default();
        for range in usable {
            if let Some((start, end)) = whole_frames(range) {
                runs.insert(start, end);
            }
        }
        let mut table =
            SegmentTable { segments: [Segment::default(); MAX_SEGMENTS], len: runs.len };
        let mut base = 0;
        for (slot, &(start, end)) in table.segments.iter_mut().zip(&runs.runs[..runs.len]) {
            *slot = Segment { start, end, base };
            base += (end - start) as usize;
        }
        table
    }

    /// The segments, sorted by address.
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.len]
    }

    /// Total managed frames: the length of the page array.
    pub fn frames(&self) -> usize {
        self.segments().last().map_or(0, |last| last.base + last.frames())
    }

    /// The segment holding frame `pfn`, if it is managed.
    pub fn find(&self, pfn: u64) -> Option<&Segment> {
        let segments = self.segments();
        let position = segments.partition_point(|segment| segment.end <= pfn);
        segments.get(position).filter(|segment| segment.start <= pfn)
    }
}

/// The whole frames inside a byte range, without frame 0 and frames past the limit.
fn whole_frames(range: &PhysRange) -> Option<(u64, u64)> {
    let start = range.start.div_ceil(PAGE_SIZE).max(1);
    let end = (range.end >> PAGE_SHIFT).min(FRAME_LIMIT);
    (start < end).then_some((start, end))
}

/// Sorted, disjoint, non-touching frame runs, with one slot of overflow.
struct Runs {
    runs: [(u64, u64); MAX_SEGMENTS + 1],
    len: usize,
}

impl Default for Runs {
    fn default() -> Self {
        Runs { runs: [(0, 0); MAX_SEGMENTS + 1], len: 0 }
    }
}

impl Runs {
    /// Adds `start..end`, merging every run it overlaps or touches; drops the
    /// smallest run if the table overflows.
    fn insert(&mut self, start: u64, end: u64) {
        let runs = &self.runs[..self.len];
        let first = runs.partition_point(|&(_, run_end)| run_end < start);
        let after = runs.partition_point(|&(run_start, _)| run_start <= end);
        let merged = if first < after {
            (start.min(runs[first].0), end.max(runs[after - 1].1))
        } else {
            (start, end)
        };
        // Replace runs[first..after] (possibly empty) with the merged run.
        let removed = after - first;
        self.runs.copy_within(after..self.len, first + 1);
        self.runs[first] = merged;
        self.len = self.len + 1 - removed;
        if self.len > MAX_SEGMENTS {
            self.drop_smallest();
        }
    }

    /// Removes the smallest run (the lowest one among equals).
    fn drop_smallest(&mut self) {
        let runs = &self.runs[..self.len];
        let smallest = (0..runs.len()).min_by_key(|&i| runs[i].1 - runs[i].0).unwrap_or(0);
        self.runs.copy_within(smallest + 1..self.len, smallest);
        self.len -= 1;
    }
}
