//! A simulated swap device: slots in host memory, reached through the
//! simulated machine's physical memory. It refuses writes now and then (as a
//! full pool or an incompressible page would), and keeps a frame of storage
//! for some slots (as a compressed pool does), so that reclaim's use of the
//! reserve and the return of storage are exercised.

use std::boxed::Box;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use super::machine::SimMemory;
use super::rng::Rng;
use crate::vm::error::VmError;
use crate::vm::frame::FrameAllocator;
use crate::vm::page::Pfn;
use crate::vm::swap::SwapDevice;

/// Frames the device keeps for storage, by slot (shared with the driver,
/// which counts them as held).
pub type StorageFrames = Arc<Mutex<BTreeMap<u32, Pfn>>>;

/// What each slot holds (shared with the driver, which checks clean copies
/// against it).
pub type SlotContents = Arc<Mutex<Vec<Option<Box<[u8]>>>>>;

/// The simulated device.
pub struct SimSwap {
    memory: SimMemory,
    slots: SlotContents,
    storage: StorageFrames,
    rng: Rng,
    /// Chance in a thousand that a write is refused.
    refusals: u64,
}

impl SimSwap {
    /// A device of `slots` slots over `memory`.
    pub fn new(memory: SimMemory, slots: u32, seed: u64, refusals: u64) -> Self {
        SimSwap {
            memory,
            slots: Arc::new(Mutex::new((0..slots).map(|_| None).collect())),
            storage: StorageFrames::default(),
            rng: Rng::new(seed),
            refusals,
        }
    }

    /// What its slots hold, for the invariant checks.
    pub fn contents(&self) -> SlotContents {
        self.slots.clone()
    }

    /// The frames it keeps, for the invariant checks.
    pub fn storage(&self) -> StorageFrames {
        self.storage.clone()
    }
}

impl SwapDevice for SimSwap {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn slots(&self) -> u32 {
        self.slots.lock().expect("slots").len() as u32
    }

    fn write(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        slot: u32,
        pfn: Pfn,
    ) -> Result<(), VmError> {
        if self.rng.chance(self.refusals, 1000) {
            return Err(VmError::OutOfMemory);
        }
        let mut storage = self.storage.lock().expect("storage");
        if slot % 3 == 0 && !storage.contains_key(&slot) {
            storage.insert(slot, frames.alloc()?);
        }
        let memory = self.memory.lock().expect("memory");
        let contents = memory.get(&pfn).expect("SimSwap::write: frame never written").clone();
        self.slots.lock().expect("slots")[slot as usize] = Some(contents);
        Ok(())
    }

    fn read(&mut self, slot: u32, pfn: Pfn) -> Result<(), VmError> {
        let slots = self.slots.lock().expect("slots");
        let contents = slots[slot as usize].clone().expect("SimSwap::read: slot never written");
        self.memory.lock().expect("memory").insert(pfn, contents);
        Ok(())
    }

    fn discard(&mut self, frames: &mut FrameAllocator<'_>, slot: u32) {
        self.slots.lock().expect("slots")[slot as usize] = None;
        if let Some(pfn) = self.storage.lock().expect("storage").remove(&slot) {
            frames.free(pfn).expect("SimSwap::discard: storage frame not freeable");
        }
    }

    fn frames_held(&self) -> usize {
        self.storage.lock().expect("storage").len()
    }
}
