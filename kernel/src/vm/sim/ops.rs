//! The operations the driver issues, and how it picks them at random.
//!
//! Addresses fall in a small window so that mappings collide, split and merge
//! often; a few requests are malformed on purpose so that both sides must reject
//! them the same way.

use std::vec::Vec;

use super::driver::Driver;
use crate::vm::mmu::{Access, Protection, SpaceId, USER_START, VirtAddr};
use crate::vm::object::ObjectId;
use crate::vm::page::PAGE_SIZE;

/// Pages in the window where the driver maps things.
const WINDOW_PAGES: u64 = 40;

/// Most spaces alive at once.
const MAX_SPACES: usize = 6;

/// Most shared-object handles open at once.
const MAX_HANDLES: usize = 4;

/// One operation, as issued to both the VM and the model.
#[derive(Clone, Debug)]
pub enum Op {
    /// A new, empty space.
    CreateSpace,
    /// Private zero-fill memory, at an exact address or anywhere.
    MapAnonymous { space: SpaceId, exact: Option<VirtAddr>, length: u64, protection: Protection },
    /// A shared object of `pages` pages.
    CreateShared { pages: u64 },
    /// Closes a handle (perhaps one already closed).
    CloseShared { object: ObjectId },
    /// Part of a shared object, at an exact address or anywhere.
    MapShared {
        space: SpaceId,
        exact: Option<VirtAddr>,
        object: ObjectId,
        offset: u64,
        length: u64,
        protection: Protection,
    },
    /// Unmaps a range.
    Unmap { space: SpaceId, start: VirtAddr, length: u64 },
    /// Changes a range's protection.
    Protect { space: SpaceId, start: VirtAddr, length: u64, protection: Protection },
    /// Forks a space.
    Fork { space: SpaceId },
    /// Destroys a space.
    Exit { space: SpaceId },
    /// Makes a space the active one.
    Switch { space: SpaceId },
    /// A user store by the active space.
    Write { address: VirtAddr, data: Vec<u8> },
    /// A user load or instruction fetch by the active space.
    Read { address: VirtAddr, length: usize, access: Access },
    /// Forgets a space's unpinned translations.
    Discard { space: SpaceId },
    /// Forgets the translations of a range.
    Zap { space: SpaceId, start: VirtAddr, length: u64 },
    /// Pins a range.
    Pin { space: SpaceId, start: VirtAddr, length: u64 },
    /// Unpins a range.
    Unpin { space: SpaceId, start: VirtAddr, length: u64 },
    /// Takes frames out of the pool.
    Hog { count: u64 },
    /// Gives hogged frames back.
    Unhog { count: u64 },
    /// Forgets every translation of a shared object.
    ZapObject { object: ObjectId },
    /// Harvests referenced/dirty bits.
    Harvest { space: SpaceId },
    /// Runs reclaim for up to `count` frames.
    Reclaim { count: usize },
}

impl Op {
    /// The name of every kind of operation, as [`Op::kind`] gives it.
    pub const KINDS: [&'static str; 21] = [
        "CreateSpace",
        "MapAnonymous",
        "CreateShared",
        "CloseShared",
        "MapShared",
        "Unmap",
        "Protect",
        "Fork",
        "Exit",
        "Switch",
        "Write",
        "Read",
        "Discard",
        "Zap",
        "Pin",
        "Unpin",
        "Hog",
        "Unhog",
        "ZapObject",
        "Harvest",
        "Reclaim",
    ];

    /// The name of this operation's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::CreateSpace => "CreateSpace",
            Op::MapAnonymous { .. } => "MapAnonymous",
            Op::CreateShared { .. } => "CreateShared",
            Op::CloseShared { .. } => "CloseShared",
            Op::MapShared { .. } => "MapShared",
            Op::Unmap { .. } => "Unmap",
            Op::Protect { .. } => "Protect",
            Op::Fork { .. } => "Fork",
            Op::Exit { .. } => "Exit",
            Op::Switch { .. } => "Switch",
            Op::Write { .. } => "Write",
            Op::Read { .. } => "Read",
            Op::Discard { .. } => "Discard",
            Op::Zap { .. } => "Zap",
            Op::Pin { .. } => "Pin",
            Op::Unpin { .. } => "Unpin",
            Op::Hog { .. } => "Hog",
            Op::Unhog { .. } => "Unhog",
            Op::ZapObject { .. } => "ZapObject",
            Op::Harvest { .. } => "Harvest",
            Op::Reclaim { .. } => "Reclaim",
        }
    }
}

/// Picks the next operation for the driver's current state.
pub fn generate(driver: &mut Driver) -> Op {
    if driver.spaces.is_empty() {
        return Op::CreateSpace;
    }
    loop {
        if let Some(op) = attempt(driver) {
            return op;
        }
    }
}

/// One weighted draw; `None` when the drawn kind does not fit the state.
fn attempt(driver: &mut Driver) -> Option<Op> {
    let rng = &mut driver.rng;
    let space = rng.pick(&driver.spaces);
    let op = match rng.below(100) {
        0..=9 => Op::MapAnonymous {
            space,
            exact: exact(driver),
            length: length(driver),
            protection: protection(driver),
        },
        10..=12 if driver.handles.len() < MAX_HANDLES => {
            Op::CreateShared { pages: driver.rng.between(1, 8) }
        }
        13..=14 => Op::CloseShared { object: some_object(driver)? },
        15..=20 => {
            let object = some_object(driver)?;
            let offset = driver.rng.below(6) * PAGE_SIZE;
            Op::MapShared {
                space,
                exact: exact(driver),
                object,
                offset,
                length: length(driver),
                protection: protection(driver),
            }
        }
        21..=26 => Op::Unmap { space, start: start(driver), length: length(driver) },
        27..=32 => Op::Protect {
            space,
            start: start(driver),
            length: length(driver),
            protection: protection(driver),
        },
        33..=36 if driver.spaces.len() < MAX_SPACES => Op::Fork { space },
        37..=38 if driver.spaces.len() > 1 || driver.rng.chance(1, 20) => Op::Exit { space },
        39..=43 => Op::Switch { space },
        44..=66 => write(driver),
        67..=86 => read(driver),
        87..=88 => Op::Discard { space },
        89 if driver.rng.chance(1, 2) => {
            Op::Zap { space, start: start(driver), length: length(driver) }
        }
        89 => Op::ZapObject { object: some_object(driver)? },
        90..=92 => Op::Pin { space, start: start(driver), length: length(driver) },
        93..=94 => Op::Unpin { space, start: start(driver), length: length(driver) },
        95..=96 => Op::Hog { count: driver.rng.between(1, 8) },
        97..=98 => Op::Unhog { count: driver.rng.between(1, 8) },
        99 if driver.rng.chance(1, 2) => Op::Harvest { space },
        99 => Op::Reclaim { count: driver.rng.between(1, 16) as usize },
        _ => return None,
    };
    Some(op)
}

/// An open handle mostly, sometimes a closed one.
fn some_object(driver: &mut Driver) -> Option<ObjectId> {
    if !driver.closed.is_empty() && driver.rng.chance(1, 10) {
        return Some(driver.rng.pick(&driver.closed));
    }
    (!driver.handles.is_empty()).then(|| driver.rng.pick(&driver.handles))
}

/// A page in the window, now and then a malformed address.
fn start(driver: &mut Driver) -> VirtAddr {
    let page = VirtAddr(USER_START + driver.rng.below(WINDOW_PAGES) * PAGE_SIZE);
    match driver.rng.below(100) {
        0 => VirtAddr(page.0 + 8),
        1 => VirtAddr(0),
        _ => page,
    }
}

/// An exact placement mostly, sometimes "anywhere".
fn exact(driver: &mut Driver) -> Option<VirtAddr> {
    (!driver.rng.chance(1, 4)).then(|| start(driver))
}

/// A length of a few pages, now and then a malformed one.
fn length(driver: &mut Driver) -> u64 {
    match driver.rng.below(100) {
        0 => 0,
        1 => PAGE_SIZE + 1,
        _ => driver.rng.between(1, 6) * PAGE_SIZE,
    }
}

/// A protection, now and then one the machine cannot express.
fn protection(driver: &mut Driver) -> Protection {
    let read = Protection::READ;
    let choices = [
        Protection::empty(),
        read,
        read,
        read | Protection::WRITE,
        read | Protection::WRITE,
        read | Protection::EXECUTE,
    ];
    if driver.rng.chance(1, 50) {
        return Protection::WRITE;
    }
    driver.rng.pick(&choices)
}

/// An address with a span that stays inside its page: mostly in a page the active
/// space has mapped, otherwise anywhere in the window.
fn address_and_length(driver: &mut Driver) -> (VirtAddr, usize) {
    let mapped = driver.vm.active().map(|space| driver.model.mapped(space)).unwrap_or_default();
    let page = if !mapped.is_empty() && driver.rng.chance(3, 4) {
        driver.rng.pick(&mapped).0.0
    } else {
        USER_START + driver.rng.below(WINDOW_PAGES + 2) * PAGE_SIZE
    };
    let offset = driver.rng.below(PAGE_SIZE);
    let length = driver.rng.between(1, 16).min(PAGE_SIZE - offset);
    (VirtAddr(page + offset), length as usize)
}

/// A store of a few random bytes.
fn write(driver: &mut Driver) -> Op {
    let (address, length) = address_and_length(driver);
    let data = (0..length).map(|_| driver.rng.next_u64() as u8).collect();
    Op::Write { address, data }
}

/// A load, or now and then an instruction fetch.
fn read(driver: &mut Driver) -> Op {
    let (address, length) = address_and_length(driver);
    let access = if driver.rng.chance(1, 10) { Access::Execute } else { Access::Read };
    Op::Read { address, length, access }
}
