//! Starting a program from the ramdisk in a new address space.

use core::fmt;

use super::elf::{self, ElfError, Program, Segment};
use super::table::{MAX_PROCESSES, Parent, Pid, Process, State, with_table};
use crate::arch::context::{self, TrapFrame};
use crate::arch::fpu::FpuState;
use crate::arch::stack;
use crate::memory::{self, with_vm};
use crate::vm::{Access, PAGE_SIZE, Placement, Protection, SpaceId, VirtAddr, VmError};

/// One past the top of every process's stack.
pub const USER_STACK_TOP: u64 = 0x0000_7fff_f000_0000;
/// Size of a process's stack region (pages come on first touch).
pub const USER_STACK_SIZE: u64 = 256 * 1024;

/// Why a program could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// The ramdisk has no file of that name.
    NotFound,
    /// The file is not a program this kernel runs.
    BadProgram(ElfError),
    /// Mapping or filling memory failed.
    Memory(VmError),
    /// The process table is full.
    TooManyProcesses,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NotFound => f.write_str("no such program in the ramdisk"),
            SpawnError::BadProgram(error) => write!(f, "{error}"),
            SpawnError::Memory(error) => write!(f, "{error}"),
            SpawnError::TooManyProcesses => f.write_str("too many processes"),
        }
    }
}

/// Starts program `name` from the ramdisk with `argument` (its `rdi`); the
/// kernel is its parent (reap it with `wait_for`).
pub fn spawn(name: &'static str, argument: u64) -> Result<Pid, SpawnError> {
    let image = crate::ramdisk::get().file(name).ok_or(SpawnError::NotFound)?;
    let program = elf::parse(image).map_err(SpawnError::BadProgram)?;
    if with_table(|table| table.processes.len()) >= MAX_PROCESSES {
        return Err(SpawnError::TooManyProcesses);
    }
    let space = with_vm(|vm| vm.create_space());
    let stack = load(space, &program, image).and_then(|()| stack::allocate());
    let stack = match stack {
        Ok(stack) => stack,
        Err(error) => {
            with_vm(|vm| vm.destroy(space)).expect("spawn: new space vanished");
            return Err(SpawnError::Memory(error));
        }
    };
    let frame = TrapFrame::start(program.entry, USER_STACK_TOP - 8, argument);
    // SAFETY: the stack was just allocated to this process, which has not run.
    let saved = unsafe { context::prepare_stack(stack.top(), &frame) };
    let pid = with_table(|table| {
        let pid = table.allocate_pid();
        let process = Process {
            pid,
            name,
            parent: Parent::Kernel,
            space,
            stack,
            context: alloc::boxed::Box::new(saved),
            state: State::Ready,
            handles: Default::default(),
            next_handle: 1,
            fpu: alloc::boxed::Box::new(FpuState::initial()),
        };
        table.insert_ready(process);
        pid
    });
    log::info!("process {pid} ({name}) started");
    Ok(pid)
}

/// Maps `program`'s segments and its stack into `space` and fills them.
fn load(space: SpaceId, program: &Program, image: &[u8]) -> Result<(), VmError> {
    for segment in &program.segments {
        load_segment(space, segment, image)?;
    }
    let read_write = Protection::READ | Protection::WRITE;
    let placement = Placement::Exact(VirtAddr(USER_STACK_TOP - USER_STACK_SIZE));
    with_vm(|vm| vm.map_anonymous(space, placement, USER_STACK_SIZE, read_write)).map(|_| ())
}

/// Maps one segment read-write, copies its file bytes, then sets its protection.
fn load_segment(space: SpaceId, segment: &Segment, image: &[u8]) -> Result<(), VmError> {
    let (start, end) = (segment.page_start(), segment.page_end());
    let read_write = Protection::READ | Protection::WRITE;
    with_vm(|vm| {
        vm.map_anonymous(space, Placement::Exact(VirtAddr(start)), end - start, read_write)
    })?;
    let bytes = &image[segment.file_offset..segment.file_offset + segment.file_size];
    let mut address = segment.address;
    for chunk in split_at_pages(segment.address, bytes) {
        let page = VirtAddr(address & !(PAGE_SIZE - 1));
        let pfn = with_vm(|vm| vm.user_page(space, page, Access::Write))?;
        write_frame(pfn, (address - page.0) as usize, chunk);
        address += chunk.len() as u64;
    }
    with_vm(|vm| vm.protect(space, VirtAddr(start), end - start, segment.protection))
}

/// `bytes`, destined for `address` on, cut where pages begin.
fn split_at_pages(address: u64, bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let first = ((PAGE_SIZE - address % PAGE_SIZE) as usize).min(bytes.len());
    let (head, tail) = bytes.split_at(first);
    core::iter::once(head).chain(tail.chunks(PAGE_SIZE as usize)).filter(|c| !c.is_empty())
}

/// Copies `bytes` into frame `pfn` at `offset`.
fn write_frame(pfn: crate::vm::Pfn, offset: usize, bytes: &[u8]) {
    assert!(offset + bytes.len() <= PAGE_SIZE as usize, "write_frame: past the page");
    let target = (memory::physical_offset() + pfn.addr()) as *mut u8;
    // SAFETY: all physical memory is mapped at the physical offset; `pfn` was
    // just faulted in for write in a space that has never run, so it is that
    // space's private page and nothing else reads or writes it; the range stays
    // inside the page (asserted).
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), target.add(offset), bytes.len()) };
}
