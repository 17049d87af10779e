//! Property tests: random sequences of writes, reads and discards on the pool
//! and on a plain map of slot to page must agree step by step.

use super::*;
use alloc::collections::BTreeMap;
use proptest::prelude::*;

/// Slots in the pools under test.
const SLOTS: u32 = 48;

/// One call on the device.
#[derive(Clone, Copy, Debug)]
enum Operation {
    Write { slot: u32, content: Content, seed: u64 },
    Read(u32),
    Discard(u32),
}

fn content() -> impl Strategy<Value = Content> {
    proptest::sample::select(Content::ALL.to_vec())
}

fn operation() -> impl Strategy<Value = Operation> {
    let slot = 0..SLOTS + 2;
    prop_oneof![
        3 => (slot.clone(), content(), any::<u64>())
            .prop_map(|(slot, content, seed)| Operation::Write { slot, content, seed }),
        2 => slot.clone().prop_map(Operation::Read),
        2 => slot.prop_map(Operation::Discard),
    ]
}

/// Runs `operations` on a pool of `capacity` frames and on the model.
fn run(capacity: usize, operations: &[Operation]) {
    with_pool(capacity, SLOTS, |frames, pool| {
        let free = frames.counters().free;
        let mut model: BTreeMap<u32, PageBytes> = BTreeMap::new();
        for &operation in operations {
            match operation {
                Operation::Write { slot, content, seed } => {
                    let page = page_of(content, seed);
                    let refused_full = pool.statistics().refused_full;
                    let result = write_page(frames, pool, slot, &page);
                    model.remove(&slot);
                    if slot >= SLOTS {
                        assert_eq!(result, Err(VmError::InvalidArgument));
                    } else if !content.compresses() {
                        assert_eq!(result, Err(VmError::OutOfMemory));
                    } else if result.is_ok() {
                        model.insert(slot, page);
                    } else {
                        // Only a pool without room for another span refuses
                        // a page that compresses.
                        assert_eq!(result, Err(VmError::OutOfMemory));
                        assert!(pool.frames_held() + blocks::SPAN_MAX > capacity);
                        assert_eq!(pool.statistics().refused_full, refused_full + 1);
                    }
                }
                Operation::Read(slot) => {
                    let expected = model.get(&slot).copied().ok_or(VmError::InvalidArgument);
                    assert!(read_back(frames, pool, slot) == expected, "slot {slot}");
                }
                Operation::Discard(slot) => {
                    pool.discard(frames, slot);
                    model.remove(&slot);
                }
            }
            let statistics = pool.statistics();
            assert_eq!(statistics.pages, model.len() as u64);
            assert!(statistics.frames_held <= capacity);
            assert_eq!(frames.counters().free, free - statistics.frames_held);
        }
        for (&slot, page) in &model {
            assert!(read_back(frames, pool, slot) == Ok(*page), "slot {slot} at the end");
        }
        for slot in 0..SLOTS {
            pool.discard(frames, slot);
        }
        assert_eq!(frames.counters().free, free);
        assert_eq!(
            pool.statistics(),
            PoolStatistics {
                capacity_frames: capacity,
                refused_incompressible: pool.statistics().refused_incompressible,
                refused_full: pool.statistics().refused_full,
                ..PoolStatistics::default()
            }
        );
    });
}

proptest! {
    #[test]
    fn the_pool_agrees_with_a_map(
        capacity in 0usize..24,
        operations in proptest::collection::vec(operation(), 1..120),
    ) {
        run(capacity, &operations);
    }
}
