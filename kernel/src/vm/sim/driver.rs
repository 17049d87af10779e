//! The random driver: one seeded stream of operations, issued to the VM (over the
//! simulated MMU) and to the reference model, with every answer compared and the
//! invariants checked after every step.
//!
//! A scheduler of its own picks the processor each step runs on and now and
//! then moves a space from one processor to another; it draws from a stream
//! apart from the operations', so that a seed given one processor runs
//! exactly as it did before the machine had several. The step's processor is
//! also the frame allocator's, so that with frame caches on (three seeds in
//! four) frames freed on one processor are taken on another.

use std::collections::{BTreeMap, VecDeque};
use std::format;
use std::string::String;
use std::vec::Vec;

use super::invariants;
use super::machine::SimMmu;
use super::model::{Model, check_protection, check_range};
use super::ops::{Op, generate};
use super::rng::Rng;
use super::swap::{SimSwap, SlotContents, StorageFrames};
use crate::vm::error::VmError;
use crate::vm::frame::{FrameAllocator, PhysRange};
use crate::vm::mmu::{Access, Protection, SpaceId, VirtAddr};
use crate::vm::object::ObjectId;
use crate::vm::page::{PAGE_SIZE, PageFlags, Pfn, VmPage};
use crate::vm::reclaim::Watermarks;
use crate::vm::system::{Placement, Vm};
use std::boxed::Box;

/// How many recent operations a failure report shows.
const HISTORY: usize = 40;

/// Mixed into a seed for the scheduler's stream.
const SCHEDULER_SEED: u64 = 0x5c4e_d01e;

/// Mixed into a seed for the processor count (apart from the scheduler's
/// stream, so that a count forced by a test leaves that stream alone).
const PROCESSORS_SEED: u64 = 0xc0_4e5;

/// Mixed into a seed for the frame cache limit (its own stream, so that
/// each seed's other draws are what they were before caches).
const CACHES_SEED: u64 = 0xcac4e;

/// Frame cache limits a seed draws from (0: caches off).
const CACHE_LIMITS: [u32; 4] = [0, 1, 4, 16];

/// Processor counts a seed draws from: two seeds in five get one processor.
const PROCESSOR_COUNTS: [usize; 5] = [1, 1, 2, 3, 4];

/// A VM over `frames` frames of simulated memory, with its own page array.
pub fn simulated_vm(frames: u64, seed: u64, chaos: u64) -> Vm<'static, SimMmu> {
    let usable = [PhysRange { start: 0x10_0000, end: 0x10_0000 + frames * PAGE_SIZE }];
    let pages = Vec::leak(vec![VmPage::EMPTY; FrameAllocator::pages_needed(&usable)]);
    Vm::new(FrameAllocator::new(pages, &usable), SimMmu::new(seed, chaos))
}

/// Everything one seed's run needs.
pub struct Driver {
    /// The seed, for reports.
    pub seed: u64,
    pub(super) rng: Rng,
    /// Picks the running processor and the spaces moved (see the module docs).
    scheduler: Rng,
    pub(super) vm: Vm<'static, SimMmu>,
    pub(super) model: Model,
    /// Live spaces.
    pub(super) spaces: Vec<SpaceId>,
    /// Open shared-object handles.
    pub(super) handles: Vec<ObjectId>,
    /// Handles already closed (to check that using them fails).
    pub(super) closed: Vec<ObjectId>,
    /// Frames taken straight from the allocator to make memory tight.
    pub(super) hogs: Vec<Pfn>,
    /// Frames the swap devices keep for storage.
    storage: Vec<StorageFrames>,
    /// What the swap devices' slots hold.
    contents: Vec<SlotContents>,
    history: VecDeque<String>,
    /// Operations that failed for lack of memory.
    pub out_of_memory: u64,
    /// Operations issued, by kind ([`Op::kind`]).
    pub operations: BTreeMap<&'static str, u64>,
    /// Spaces moved from one processor to another.
    pub migrations: u64,
    /// Whether each step ends with the invariants checked (a test turns them
    /// off to show that the comparisons with the model alone catch a fault).
    pub(super) check_invariants: bool,
}

impl Driver {
    /// A driver whose pool size, chaos rate, page-table cache size and
    /// processor count derive from `seed`.
    pub fn new(seed: u64) -> Self {
        let processors = Rng::new(seed ^ PROCESSORS_SEED).pick(&PROCESSOR_COUNTS);
        Driver::with_processors(seed, processors)
    }

    /// A driver like [`Driver::new`]'s for `seed`, on `processors` processors.
    pub fn with_processors(seed: u64, processors: usize) -> Self {
        let mut rng = Rng::new(seed);
        let frames = rng.between(12, 160);
        let chaos = rng.pick(&[0, 0, 5, 30, 150]);
        let mut vm = simulated_vm(frames, rng.next_u64(), chaos);
        vm.mmu_mut().set_processors(processors);
        vm.mmu_mut().single_table = rng.chance(1, 3);
        vm.mmu_mut().activation_refusals = rng.pick(&[0, 0, 30, 200]);
        vm.frames_mut().set_frame_caches(Rng::new(seed ^ CACHES_SEED).pick(&CACHE_LIMITS));
        // Two seeds in three swap, to one or two devices of a few to many
        // slots (odd counts, so that the second's slots start inside a
        // bitmap word).
        let mut storage = Vec::new();
        let mut contents = Vec::new();
        if rng.chance(2, 3) {
            for _ in 0..rng.between(1, 2) {
                let slots = rng.between(4, 96) as u32;
                let refusals = rng.pick(&[0, 0, 50, 300]);
                let device = SimSwap::new(vm.mmu().memory(), slots, rng.next_u64(), refusals);
                storage.push(device.storage());
                contents.push(device.contents());
                assert!(vm.attach_swap(Box::new(device)).is_ok(), "attach_swap");
            }
            let low = rng.below(6) as usize;
            vm.set_watermarks(Watermarks { low, high: low + rng.between(1, 8) as usize });
            vm.frames_mut().set_reclaim_reserve(rng.below(3) as usize);
            vm.set_usage_by_discard(rng.chance(1, 4));
        }
        Driver {
            seed,
            rng,
            scheduler: Rng::new(seed ^ SCHEDULER_SEED),
            vm,
            model: Model::default(),
            spaces: Vec::new(),
            handles: Vec::new(),
            closed: Vec::new(),
            hogs: Vec::new(),
            storage,
            contents,
            history: VecDeque::new(),
            out_of_memory: 0,
            operations: BTreeMap::new(),
            migrations: 0,
            check_invariants: true,
        }
    }

    /// The VM's statistics so far.
    pub fn vm_statistics(&self) -> crate::vm::system::VmStatistics {
        self.vm.statistics()
    }

    /// Activations the simulated MMU refused.
    pub fn refused_activations(&self) -> u64 {
        self.vm.mmu().refused_activations
    }

    /// Tables the simulated MMU write-protected as a whole.
    pub fn lazy_write_protects(&self) -> u64 {
        self.vm.mmu().lazy_write_protects
    }

    /// Translations the simulated MMU forgot on its own (chaos and pressure).
    pub fn spontaneous_discards(&self) -> u64 {
        self.vm.mmu().spontaneous_discards
    }

    /// Runs `operations` random steps, then a full read-back sweep. Panics (after
    /// printing the seed and recent history) on the first disagreement.
    pub fn run(&mut self, operations: u64) {
        for step in 0..operations {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step(step)));
            if let Err(panic) = outcome {
                self.report(step);
                std::panic::resume_unwind(panic);
            }
        }
        self.sweep();
    }

    /// Schedules, issues one random operation and checks the invariants.
    fn step(&mut self, step: u64) {
        let cpu = self.schedule(step);
        let op = generate(self);
        match cpu {
            Some(cpu) => self.record(format!("{step}: on {cpu}: {op:?}")),
            None => self.record(format!("{step}: {op:?}")),
        }
        *self.operations.entry(op.kind()).or_default() += 1;
        self.apply(&op);
        if !self.check_invariants {
            return;
        }
        if let Err(problem) = invariants::check(&self.vm, &self.held()) {
            panic!("invariant broken: {problem}");
        }
        if let Err(problem) = self.check_clean_copies() {
            panic!("invariant broken: {problem}");
        }
    }

    /// Picks the processor the next step runs on (`None` on a machine of one)
    /// and, one step in eight, moves a space loaded on another processor
    /// there, as a scheduler moving a thread does. The processor it leaves
    /// keeps it loaded, as a real one does until it switches, with whatever
    /// its TLB holds: only shootdowns keep that honest.
    fn schedule(&mut self, step: u64) -> Option<usize> {
        let processors = self.vm.mmu().processors();
        if processors == 1 {
            return None;
        }
        let cpu = self.scheduler.below(processors as u64) as usize;
        self.vm.mmu_mut().run_on(cpu);
        self.vm.enter();
        if !self.scheduler.chance(1, 8) {
            return Some(cpu);
        }
        let here = self.vm.active();
        let elsewhere: Vec<SpaceId> = (0..processors)
            .filter_map(|other| self.vm.active_on(other))
            .filter(|space| Some(*space) != here)
            .collect();
        if !elsewhere.is_empty() {
            let space = self.scheduler.pick(&elsewhere);
            self.record(format!("{step}: on {cpu}: {space:?} moves here"));
            self.migrations += u64::from(self.switch(space));
        }
        Some(cpu)
    }

    /// Frames held outside the VM's structures: hogged, or kept by the swap
    /// device for storage.
    fn held(&self) -> Vec<Pfn> {
        let mut held = self.hogs.clone();
        for storage in &self.storage {
            held.extend(storage.lock().expect("storage").values().copied());
        }
        held
    }

    /// Checks that every frame kept as a clean copy of a slot, and not
    /// written since (no dirty bit in its record or in a translation),
    /// holds what the slot holds: reclaim would drop it unwritten.
    fn check_clean_copies(&self) -> Result<(), String> {
        let frames = self.vm.frames();
        let dirty: std::collections::BTreeSet<Pfn> = self
            .vm
            .mmu()
            .entries()
            .filter(|(_, _, entry)| entry.dirty)
            .map(|(_, _, entry)| entry.pfn)
            .collect();
        for space in self.vm.spaces() {
            for region in space.regions() {
                let crate::vm::space::Backing::Anonymous(object) = region.backing() else {
                    continue;
                };
                for (_, address, entry) in object.entries_by_chunk() {
                    let crate::vm::object::anonymous::Entry::Frame(pfn) = entry else { continue };
                    let Some(slot) = frames.swap_copy(pfn) else { continue };
                    if frames.flags(pfn).contains(PageFlags::DIRTY) || dirty.contains(&pfn) {
                        continue;
                    }
                    let (device, local) = frames.slots().device_of(slot);
                    let slots = self.contents[device].lock().expect("slots");
                    let kept = slots[local as usize].as_ref().ok_or(format!(
                        "{address:?}: {pfn:?} keeps slot {slot}, which holds nothing"
                    ))?;
                    let mut now = vec![0; PAGE_SIZE as usize];
                    self.vm.mmu().read(pfn, 0, &mut now);
                    if now[..] != kept[..] {
                        return Err(format!(
                            "{address:?}: {pfn:?} is clean but differs from slot {slot}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Remembers an operation for the failure report.
    fn record(&mut self, line: String) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(line);
    }

    /// Prints how to reproduce a failure.
    fn report(&self, step: u64) {
        std::eprintln!(
            "VM simulation failed: seed {} at step {step}; reproduce with VM_SEED={}",
            self.seed,
            self.seed
        );
        for line in &self.history {
            std::eprintln!("  {line}");
        }
    }

    /// Issues one operation to both sides and compares.
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::CreateSpace => {
                let space = self.vm.create_space();
                self.model.create_space(space);
                self.spaces.push(space);
            }
            Op::MapAnonymous { space, exact, length, protection } => {
                self.map_anonymous(space, exact, length, protection)
            }
            Op::CreateShared { pages } => {
                let object = self.vm.create_shared(pages * PAGE_SIZE).expect("create_shared");
                self.model.create_shared(object, pages);
                self.handles.push(object);
            }
            Op::CloseShared { object } => {
                let expected = self.model.close_shared(object);
                agree("close_shared", &self.vm.close_shared(object), &expected);
                self.handles.retain(|handle| *handle != object);
                self.closed.push(object);
            }
            Op::MapShared { space, exact, object, offset, length, protection } => {
                self.map_shared(space, exact, object, offset, length, protection)
            }
            Op::Write { address, ref data } => self.write(address, data),
            Op::Read { address, length, access } => self.read(address, length, access),
            Op::Hog { count } => self.hog(count),
            Op::Unhog { count } => self.unhog(count),
            _ => self.apply_to_space(op),
        }
    }

    /// Issues an operation on an existing space's ranges or life cycle.
    fn apply_to_space(&mut self, op: &Op) {
        match *op {
            Op::Unmap { space, start, length } => {
                let expected = self.model.unmap(space, start, length);
                agree("unmap", &self.vm.unmap(space, start, length), &expected);
            }
            Op::Protect { space, start, length, protection } => {
                let expected = self.model.protect(space, start, length, protection);
                agree("protect", &self.vm.protect(space, start, length, protection), &expected);
            }
            Op::Pin { space, start, length } => {
                let expected = self.model.check_pin(space, start, length);
                let actual = self.vm.pin(space, start, length);
                self.agree_or_out_of_memory("pin", &actual, &expected);
            }
            Op::Unpin { space, start, length } => {
                let expected = self.model.check_pin(space, start, length);
                agree("unpin", &self.vm.unpin(space, start, length), &expected);
            }
            Op::Zap { space, start, length } => {
                let expected = check_range(start, length).map(|_| ());
                agree("zap", &self.vm.zap(space, start, length), &expected);
            }
            Op::ZapObject { object } => {
                let expected = if self.model.object_alive(object) {
                    Ok(())
                } else {
                    Err(VmError::InvalidArgument)
                };
                agree("zap_object", &self.vm.zap_object(object), &expected);
            }
            Op::Fork { space } => self.fork(space),
            Op::Exit { space } => {
                self.vm.destroy(space).expect("destroy");
                self.model.destroy(space);
                self.spaces.retain(|live| *live != space);
            }
            Op::Switch { space } => {
                self.switch(space);
            }
            Op::Discard { space } => self.vm.discard(space).expect("discard"),
            Op::Harvest { space } => self.harvest(space),
            Op::Reclaim { count } => {
                self.vm.reclaim(count);
            }
            _ => unreachable!("apply_to_space: {op:?}"),
        }
    }

    /// Maps anonymous memory in both and compares.
    fn map_anonymous(
        &mut self,
        space: SpaceId,
        exact: Option<VirtAddr>,
        length: u64,
        protection: Protection,
    ) {
        let expected =
            check_protection(protection).and_then(|()| self.model.place(space, exact, length));
        let placement = exact.map_or(Placement::Anywhere, Placement::Exact);
        let actual = self.vm.map_anonymous(space, placement, length, protection);
        agree("map_anonymous", &actual, &expected);
        if let Ok(start) = actual {
            self.model.map_anonymous(space, start, length, protection);
        }
    }

    /// Maps a shared object in both and compares.
    fn map_shared(
        &mut self,
        space: SpaceId,
        exact: Option<VirtAddr>,
        object: ObjectId,
        offset: u64,
        length: u64,
        protection: Protection,
    ) {
        let expected = self
            .model
            .check_shared(object, offset, length)
            .and_then(|()| check_protection(protection))
            .and_then(|()| self.model.place(space, exact, length));
        let placement = exact.map_or(Placement::Anywhere, Placement::Exact);
        let actual = self.vm.map_shared(space, placement, object, offset, length, protection);
        agree("map_shared", &actual, &expected);
        if let Ok(start) = actual {
            self.model.map_shared(space, start, object, offset, length, protection);
        }
    }

    /// Forks in both (unless memory runs out).
    fn fork(&mut self, space: SpaceId) {
        let before = self.snapshot();
        let reclaims = self.vm.statistics().reclaim_runs;
        match self.vm.fork(space) {
            Ok(child) => {
                self.model.fork(space, child);
                self.spaces.push(child);
            }
            Err(VmError::OutOfMemory) => {
                self.out_of_memory += 1;
                // Reclaim may have moved pages to swap (changing where they
                // are, not what they hold).
                let reclaimed = self.vm.statistics().reclaim_runs != reclaims;
                assert!(
                    reclaimed || self.snapshot() == before,
                    "fork ran out of memory but changed the VM"
                );
            }
            Err(error) => panic!("fork failed: {error:?}"),
        }
    }

    /// What a failed operation must leave as it was: for every page the model
    /// has mapped, the frame behind it and that frame's sharer count; and how many
    /// frames hold data (neither page tables nor hogged).
    fn snapshot(&self) -> (Vec<Option<(Pfn, u16)>>, usize) {
        let frames = self.vm.frames();
        let mut pages = Vec::new();
        for space in &self.spaces {
            for (page, _) in self.model.mapped(*space) {
                let resident = self.vm.permitted_translation(*space, page);
                pages.push(resident.map(|(pfn, _)| (pfn, frames.ref_count(pfn))));
            }
        }
        let tables = self.vm.mmu().table_frames().count();
        (pages, frames.counters().allocated - tables - self.held().len())
    }

    /// An access with the check that, if it runs out of memory, nothing changed.
    fn checked_access(&mut self, address: VirtAddr, access: Access) -> Result<Pfn, VmError> {
        let tight = self.vm.frames().counters().free < 3 + self.vm.frames().reclaim_reserve();
        let before = tight.then(|| self.snapshot());
        let reclaims = self.vm.statistics().reclaim_runs;
        let result = self.user_access(address, access);
        // Reclaim may have moved pages to swap (changing where they are, not
        // what they hold): then only the contents are compared, by the sweep.
        let reclaimed = self.vm.statistics().reclaim_runs != reclaims;
        if result == Err(VmError::OutOfMemory) && !reclaimed {
            let before = before.expect("an access ran out of memory with frames to spare");
            assert!(
                self.snapshot() == before,
                "{access:?} at {address:?} ran out of memory but changed the VM"
            );
        }
        result
    }

    /// The active space, activating a random one if none is.
    fn active_space(&mut self) -> SpaceId {
        if let Some(space) = self.vm.active() {
            return space;
        }
        let space = self.rng.pick(&self.spaces);
        self.switch_until_done(space);
        space
    }

    /// Activates `space`, returning whether it worked. A refused activation
    /// must change nothing: the space active before stays active, in the VM
    /// and in the machine, every page keeps its frame, and a read by the space
    /// still active still agrees with the model.
    fn switch(&mut self, space: SpaceId) -> bool {
        let previous = self.vm.active();
        let before = self.snapshot();
        match self.vm.activate(space) {
            Ok(()) => return true,
            Err(VmError::OutOfMemory) => {}
            Err(error) => panic!("activate failed: {error:?}"),
        }
        assert_eq!(self.vm.active(), previous, "a refused activation changed the active space");
        assert_eq!(self.vm.mmu().active(), previous, "a refused activation changed the machine's");
        assert!(self.snapshot() == before, "a refused activation changed the VM");
        if let Some(previous) = previous {
            let readable = self
                .model
                .mapped(previous)
                .into_iter()
                .find(|(_, protection)| protection.allows(Access::Read));
            if let Some((page, _)) = readable {
                self.read(page, 8, Access::Read);
            }
        }
        false
    }

    /// Activates `space`, trying again while the machine refuses.
    fn switch_until_done(&mut self, space: SpaceId) {
        for _ in 0..100 {
            if self.switch(space) {
                return;
            }
        }
        panic!("activation of {space:?} refused 100 times");
    }

    /// An access through the simulated processor: translate, fault, retry.
    pub(super) fn user_access(
        &mut self,
        address: VirtAddr,
        access: Access,
    ) -> Result<Pfn, VmError> {
        touch(&mut self.vm, address, access)
    }

    /// A store of `data` at `address` (within one page) by the active space.
    fn write(&mut self, address: VirtAddr, data: &[u8]) {
        let space = self.active_space();
        let expected = self.model.check_access(space, address, Access::Write);
        let actual = self.checked_access(address, Access::Write);
        if !self.agree_or_out_of_memory("write", &actual.map(|_| ()), &expected) {
            return;
        }
        let pfn = actual.expect("write: agreed success");
        let offset = (address.0 % PAGE_SIZE) as usize;
        self.vm.mmu_mut().write(pfn, offset, data);
        self.model.write(space, address, data);
        if self.rng.chance(1, 8) {
            self.vm.harvest(space).expect("harvest");
            let flags = self.vm.frames().flags(pfn);
            assert!(
                flags.contains(PageFlags::DIRTY | PageFlags::REFERENCED),
                "write not harvested: {flags:?}"
            );
        }
    }

    /// A load (or fetch) of `length` bytes at `address` by the active space.
    fn read(&mut self, address: VirtAddr, length: usize, access: Access) {
        let space = self.active_space();
        let expected = self.model.check_access(space, address, access);
        let actual = self.checked_access(address, access);
        if !self.agree_or_out_of_memory("read", &actual.map(|_| ()), &expected) {
            return;
        }
        let offset = (address.0 % PAGE_SIZE) as usize;
        let (mut seen, mut wanted) = (vec![0; length], vec![0; length]);
        self.vm.mmu().read(actual.expect("read: agreed success"), offset, &mut seen);
        self.model.read(space, address, &mut wanted);
        assert_eq!(seen, wanted, "read at {address:?} in {space:?} disagrees with the model");
    }

    /// Takes up to `count` frames out of the pool.
    fn hog(&mut self, count: u64) {
        for _ in 0..count {
            match self.vm.frames_mut().alloc() {
                Ok(pfn) => self.hogs.push(pfn),
                Err(_) => break,
            }
        }
    }

    /// Gives back up to `count` hogged frames.
    fn unhog(&mut self, count: u64) {
        for _ in 0..count.min(self.hogs.len() as u64) {
            let pfn = self.hogs.swap_remove(self.rng.below(self.hogs.len() as u64) as usize);
            self.vm.frames_mut().free(pfn).expect("unhog: free");
        }
    }

    /// Harvests a space and checks that its translations' bits were cleared.
    fn harvest(&mut self, space: SpaceId) {
        self.vm.harvest(space).expect("harvest");
        for (owner, page, entry) in self.vm.mmu().entries() {
            assert!(
                owner != space || !(entry.referenced || entry.dirty),
                "harvest left bits at {page:?}"
            );
        }
    }

    /// Compares results of an operation that may run out of memory where the
    /// model cannot (then nothing may have changed). Returns whether it succeeded.
    fn agree_or_out_of_memory(
        &mut self,
        what: &str,
        actual: &Result<(), VmError>,
        expected: &Result<(), VmError>,
    ) -> bool {
        if *actual == Err(VmError::OutOfMemory) && expected.is_ok() {
            self.out_of_memory += 1;
            return false;
        }
        agree(what, actual, expected);
        actual.is_ok()
    }

    /// Reads back every readable page of every space and compares it whole.
    fn sweep(&mut self) {
        let processors = self.vm.mmu().processors() as u64;
        for space in self.spaces.clone() {
            let cpu = self.scheduler.below(processors) as usize;
            self.vm.mmu_mut().run_on(cpu);
            self.vm.enter();
            self.switch_until_done(space);
            for (page, protection) in self.model.mapped(space) {
                if !protection.allows(Access::Read) {
                    continue;
                }
                let pfn = match self.user_access(page, Access::Read) {
                    Ok(pfn) => pfn,
                    Err(VmError::OutOfMemory) => continue,
                    Err(error) => panic!(
                        "seed {}: sweep of {page:?} in {space:?} failed: {error:?}",
                        self.seed
                    ),
                };
                let (mut seen, mut wanted) =
                    (vec![0; PAGE_SIZE as usize], vec![0; PAGE_SIZE as usize]);
                self.vm.mmu().read(pfn, 0, &mut seen);
                self.model.read(space, page, &mut wanted);
                assert!(
                    seen == wanted,
                    "seed {}: sweep of {page:?} in {space:?} disagrees",
                    self.seed
                );
            }
        }
    }
}

/// An access by the active space through the simulated processor, the way a user
/// program makes one: translate, and on a miss resolve the fault and retry.
pub fn touch(vm: &mut Vm<'_, SimMmu>, address: VirtAddr, access: Access) -> Result<Pfn, VmError> {
    let space = vm.active().expect("touch: no active space");
    for _ in 0..3 {
        if let Some(pfn) = vm.mmu_mut().translate(address, access) {
            return Ok(pfn);
        }
        vm.fault(space, address, access)?;
    }
    panic!("touch: fault at {address:?} for {access:?} keeps recurring");
}

/// Panics unless the VM's answer is the model's.
fn agree<T: PartialEq + core::fmt::Debug>(
    what: &str,
    actual: &Result<T, VmError>,
    expected: &Result<T, VmError>,
) {
    assert_eq!(actual, expected, "{what}: the VM (left) and the model (right) disagree");
}
