//! Property tests: random operation sequences over random memory maps, run on the
//! allocator and on a set-based reference model, must agree step by step.

use super::*;
use alloc::collections::{BTreeMap, BTreeSet};
use proptest::prelude::*;

/// Which frame an operation targets.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The n-th allocated frame (modulo their number), or frame n if none is.
    Allocated(usize),
    /// Any frame number, managed or not.
    Any(u64),
}

/// One allocator call.
#[derive(Clone, Copy, Debug)]
enum Operation {
    Alloc,
    AllocContiguous(u32),
    Free(Target),
    /// Target, order, and whether to align the target down to the order.
    FreeContiguous(Target, u32, bool),
    AddRef(Target),
    Release(Target),
    Pin(Target),
    Unpin(Target),
    Reserve(Target),
    /// Later calls run on this processor (its cache).
    Processor(usize),
    /// Processor caches of this limit (0: off).
    Caches(u32),
    /// Every cache is given back.
    Drain,
}

/// The model's view of an allocated frame.
#[derive(Clone, Copy, Debug)]
struct Holding {
    references: u16,
    pins: u32,
}

/// The reference model: plain sets of frames.
struct Model {
    usable: BTreeSet<u64>,
    allocated: BTreeMap<u64, Holding>,
    reserved: BTreeSet<u64>,
}

impl Model {
    /// The model of a fresh allocator over `map`: whole frames, frame 0 excluded.
    fn new(map: &[PhysRange]) -> Model {
        let usable = map
            .iter()
            .flat_map(|range| range.start.div_ceil(4096)..range.end / 4096)
            .filter(|&pfn| pfn != 0)
            .collect();
        Model { usable, allocated: BTreeMap::new(), reserved: BTreeSet::new() }
    }

    fn is_free(&self, pfn: u64) -> bool {
        self.usable.contains(&pfn)
            && !self.allocated.contains_key(&pfn)
            && !self.reserved.contains(&pfn)
    }

    /// Whether some aligned block of `2^order` frames is entirely free.
    fn has_free_block(&self, order: u32) -> bool {
        let size = 1u64 << order;
        let last = self.usable.last().copied().unwrap_or(0);
        (0..=last / size)
            .any(|block| (block * size..(block + 1) * size).all(|pfn| self.is_free(pfn)))
    }

    fn resolve(&self, target: Target) -> u64 {
        match target {
            Target::Allocated(n) if !self.allocated.is_empty() => {
                *self.allocated.keys().nth(n % self.allocated.len()).unwrap()
            }
            Target::Allocated(n) => (n % 1000) as u64,
            Target::Any(pfn) => pfn,
        }
    }

    fn counters(&self) -> FrameCounters {
        let total = self.usable.len();
        let allocated = self.allocated.len();
        let reserved = self.reserved.len();
        let pinned = self.allocated.values().filter(|holding| holding.pins > 0).count();
        FrameCounters { total, free: total - allocated - reserved, allocated, pinned, reserved }
    }

    fn holding(&mut self, pfn: u64) -> Result<&mut Holding, VmError> {
        self.allocated.get_mut(&pfn).ok_or(VmError::BadFrame)
    }

    /// The model's result of freeing `2^order` frames at `first`, applied if Ok.
    fn free_contiguous(&mut self, first: u64, order: u32) -> Result<(), VmError> {
        if order > MAX_ORDER || !first.is_multiple_of(1 << order) {
            return Err(VmError::InvalidArgument);
        }
        let block = first..first + (1 << order);
        let sole =
            |pfn| matches!(self.allocated.get(&pfn), Some(Holding { references: 1, pins: 0 }));
        if !block.clone().all(sole) {
            return Err(VmError::BadFrame);
        }
        block.for_each(|pfn| {
            self.allocated.remove(&pfn);
        });
        Ok(())
    }

    fn release(&mut self, pfn: u64) -> Result<bool, VmError> {
        let holding = self.holding(pfn)?;
        match (holding.references, holding.pins) {
            (1, 0) => Ok(self.allocated.remove(&pfn).is_some()),
            (1, _) => Err(VmError::BadFrame),
            _ => {
                holding.references -= 1;
                Ok(false)
            }
        }
    }

    fn unpin(&mut self, pfn: u64) -> Result<(), VmError> {
        let holding = self.holding(pfn)?;
        holding.pins = holding.pins.checked_sub(1).ok_or(VmError::BadFrame)?;
        Ok(())
    }

    fn reserve(&mut self, pfn: u64) -> Result<(), VmError> {
        if !self.is_free(pfn) {
            return Err(VmError::BadFrame);
        }
        self.reserved.insert(pfn);
        Ok(())
    }
}

/// Runs `operation` on both, checking that the allocator did what the model says.
fn step(
    allocator: &mut FrameAllocator<'_>,
    model: &mut Model,
    operation: Operation,
) -> Result<(), TestCaseError> {
    let touched = match operation {
        Operation::Alloc => alloc_block(allocator, model, 0)?,
        Operation::AllocContiguous(order) => alloc_block(allocator, model, order)?,
        Operation::Free(target) => {
            let pfn = model.resolve(target);
            prop_assert_eq!(allocator.free(Pfn(pfn)), model.free_contiguous(pfn, 0));
            pfn
        }
        Operation::FreeContiguous(target, order, align) => {
            let pfn = model.resolve(target);
            let first = if align { pfn & !((1 << order.min(MAX_ORDER)) - 1) } else { pfn };
            prop_assert_eq!(
                allocator.free_contiguous(Pfn(first), order),
                model.free_contiguous(first, order)
            );
            first
        }
        Operation::AddRef(target) => {
            let pfn = model.resolve(target);
            let expected = model.holding(pfn).map(|holding| {
                holding.references += 1;
                holding.references
            });
            prop_assert_eq!(allocator.add_ref(Pfn(pfn)), expected);
            pfn
        }
        Operation::Release(target) => {
            let pfn = model.resolve(target);
            prop_assert_eq!(allocator.release(Pfn(pfn)), model.release(pfn));
            pfn
        }
        Operation::Pin(target) => {
            let pfn = model.resolve(target);
            let expected = model.holding(pfn).map(|holding| holding.pins += 1);
            prop_assert_eq!(allocator.pin(Pfn(pfn)), expected);
            pfn
        }
        Operation::Unpin(target) => {
            let pfn = model.resolve(target);
            prop_assert_eq!(allocator.unpin(Pfn(pfn)), model.unpin(pfn));
            pfn
        }
        Operation::Reserve(target) => {
            let pfn = model.resolve(target);
            prop_assert_eq!(allocator.reserve(Pfn(pfn)), model.reserve(pfn));
            pfn
        }
        // Caches change which frame a call gets, never what the model sees.
        Operation::Processor(processor) => {
            allocator.set_processor(processor);
            0
        }
        Operation::Caches(limit) => {
            allocator.set_frame_caches(limit);
            0
        }
        Operation::Drain => {
            allocator.drain_caches();
            prop_assert_eq!(allocator.cache_statistics().cached, 0);
            0
        }
    };
    agree(allocator, model, touched)
}

/// Allocates a block on both; the allocator must fail exactly when the model has
/// no aligned free block, and otherwise return an aligned block of free frames.
fn alloc_block(
    allocator: &mut FrameAllocator<'_>,
    model: &mut Model,
    order: u32,
) -> Result<u64, TestCaseError> {
    let result = allocator.alloc_contiguous(order);
    if order > MAX_ORDER {
        prop_assert_eq!(result, Err(VmError::InvalidArgument));
        return Ok(0);
    }
    if !model.has_free_block(order) {
        prop_assert_eq!(result, Err(VmError::OutOfMemory));
        return Ok(0);
    }
    let first =
        result.map_err(|error| TestCaseError::fail(format!("{error} with a free block")))?.0;
    prop_assert_eq!(first % (1 << order), 0);
    for pfn in first..first + (1 << order) {
        prop_assert!(model.is_free(pfn), "frame {} handed out twice or unusable", pfn);
        model.allocated.insert(pfn, Holding { references: 1, pins: 0 });
    }
    Ok(first)
}

/// The accounting check passes, and counters and the touched frame match the model.
fn agree(allocator: &FrameAllocator<'_>, model: &Model, touched: u64) -> Result<(), TestCaseError> {
    prop_assert_eq!(allocator.check(), Ok(()));
    prop_assert_eq!(allocator.counters(), model.counters());
    let holding = model.allocated.get(&touched);
    prop_assert_eq!(
        allocator.ref_count(Pfn(touched)),
        holding.map_or(0, |holding| holding.references)
    );
    let pinned = holding.is_some_and(|holding| holding.pins > 0);
    prop_assert_eq!(allocator.flags(Pfn(touched)).contains(PageFlags::PINNED), pinned);
    prop_assert_eq!(allocator.contains(Pfn(touched)), model.usable.contains(&touched));
    Ok(())
}

/// Drops every pin and reference; the allocator must end with all frames free
/// but the reserved ones, and hand each of them out once more.
fn tear_down(allocator: &mut FrameAllocator<'_>, model: &mut Model) -> Result<(), TestCaseError> {
    for (&pfn, holding) in &model.allocated {
        for _ in 0..holding.pins {
            allocator
                .unpin(Pfn(pfn))
                .map_err(|error| TestCaseError::fail(format!("unpin: {error}")))?;
        }
        for last in (0..holding.references).map(|left| left == 0).rev() {
            prop_assert_eq!(allocator.release(Pfn(pfn)), Ok(last));
        }
    }
    model.allocated.clear();
    prop_assert_eq!(allocator.check(), Ok(()));
    prop_assert_eq!(allocator.counters(), model.counters());
    let free = allocator.counters().free;
    prop_assert_eq!(core::iter::from_fn(|| allocator.alloc().ok()).count(), free);
    Ok(())
}

/// A byte range within the first ~3.5 MiB, unaligned, sometimes starting at 0.
fn range() -> impl Strategy<Value = PhysRange> {
    let start = prop_oneof![1 => Just(0u64), 5 => 0u64..600 * 4096];
    (start, 0u64..300 * 4096).prop_map(|(start, length)| PhysRange { start, end: start + length })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![4 => any::<usize>().prop_map(Target::Allocated), 1 => (0u64..1000).prop_map(Target::Any)]
}

fn operation() -> impl Strategy<Value = Operation> {
    let order = prop_oneof![4 => 0u32..=4, 1 => 0u32..=MAX_ORDER + 1];
    prop_oneof![
        6 => Just(Operation::Alloc),
        2 => order.clone().prop_map(Operation::AllocContiguous),
        3 => target().prop_map(Operation::Free),
        2 => (target(), order, any::<bool>()).prop_map(|(t, o, a)| Operation::FreeContiguous(t, o, a)),
        2 => target().prop_map(Operation::AddRef),
        3 => target().prop_map(Operation::Release),
        1 => target().prop_map(Operation::Pin),
        1 => target().prop_map(Operation::Unpin),
        1 => target().prop_map(Operation::Reserve),
        2 => (0usize..4).prop_map(Operation::Processor),
        1 => prop_oneof![Just(0u32), 1u32..6, Just(MAX_CACHE_LIMIT + 1)].prop_map(Operation::Caches),
        1 => Just(Operation::Drain),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn allocator_agrees_with_model(
        map in proptest::collection::vec(range(), 0..6),
        operations in proptest::collection::vec(operation(), 1..120),
        caches in prop_oneof![Just(0u32), 1u32..40],
    ) {
        let mut pages = vec![VmPage::EMPTY; FrameAllocator::pages_needed(&map)];
        let mut allocator = FrameAllocator::new(&mut pages, &map);
        allocator.set_frame_caches(caches);
        let mut model = Model::new(&map);
        agree(&allocator, &model, 0)?;
        for operation in operations {
            step(&mut allocator, &mut model, operation)?;
        }
        tear_down(&mut allocator, &mut model)?;
    }

    #[test]
    fn small_maps_exhaust_then_refill(
        map in proptest::collection::vec(range(), 1..4),
        caches in prop_oneof![Just(0u32), 1u32..40],
    ) {
        let mut pages = vec![VmPage::EMPTY; FrameAllocator::pages_needed(&map)];
        let mut allocator = FrameAllocator::new(&mut pages, &map);
        allocator.set_frame_caches(caches);
        let initial = allocator.counters();
        let taken: Vec<Pfn> = core::iter::from_fn(|| allocator.alloc().ok()).collect();
        prop_assert_eq!(taken.len(), initial.total);
        prop_assert_eq!(allocator.alloc(), Err(VmError::OutOfMemory));
        prop_assert_eq!(allocator.check(), Ok(()));
        for (position, pfn) in taken.iter().enumerate() {
            allocator.set_processor(position % 3);
            allocator.free(*pfn).map_err(|error| TestCaseError::fail(format!("free: {error}")))?;
            prop_assert_eq!(allocator.free(*pfn), Err(VmError::BadFrame));
            if position % 64 == 0 {
                prop_assert_eq!(allocator.check(), Ok(()));
            }
        }
        prop_assert_eq!(allocator.counters(), initial);
        prop_assert_eq!(allocator.check(), Ok(()));
        // Everything free again, in caches or not: the largest block the map
        // allows must be there to take.
        if let Some(largest) = largest_block(&map) {
            prop_assert!(allocator.alloc_contiguous(largest).is_ok(), "no block of order {}", largest);
        }
    }
}

/// The largest order of an aligned block inside one range of `map`, if it
/// has a frame.
fn largest_block(map: &[PhysRange]) -> Option<u32> {
    let model = Model::new(map);
    (0..=MAX_ORDER).rev().find(|&order| model.has_free_block(order))
}
