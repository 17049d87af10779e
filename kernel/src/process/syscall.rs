//! The system calls (numbers and conventions: the `abi` crate).
//!
//! Every call validates its arguments before acting; user pointers go through
//! `usercopy`. Errors are [`Errno`] values, returned negated in `rax`.
//!
//! # Limits
//! Calls run with interrupts disabled, so each does bounded work: `write`
//! prints at most [`MAX_WRITE`] bytes a call (a short count, as a pipe would
//! give), and the VM calls cost the regions and resident pages they meet, not
//! the pages of the range. Each process has at most [`MAX_REGIONS`] regions
//! however they came to be and [`MAX_HANDLES`] shared-memory handles; processes
//! may fork until the table has [`RESERVED_PROCESSES`] slots left, which only
//! the kernel may use, so a fork bomb or a parent that never waits gets
//! `TryAgain` and the monitor can still start programs. Every call that takes
//! kernel heap first makes sure the heap has room for it (`with_vm_room`), and
//! is `NoMemory` when it has not, never a panic.
//!
//! # Privilege
//! The page-table cache is the machine's: only a process the kernel started
//! itself (from the monitor or at boot; not a forked child) may change its size
//! (`Access` otherwise); anyone may ask it. The statistics are system-wide
//! counters (faults by kind, forks, free frames, processes) of the kind Linux
//! shows every process in `/proc/vmstat` and `/proc/meminfo`: no process's own
//! figures, addresses or contents are in them.

use abi::{Errno, Statistics};

use super::scheduler;
use super::table::{MAX_PROCESSES, Parent, Pid, Process, RESERVED_PROCESSES, State, with_table};
use super::usercopy::{copy_from_user, copy_to_user};
use crate::arch::context::{self, TrapFrame};
use crate::arch::fpu::FpuState;
use crate::arch::{self, stack};
use crate::memory::{with_vm, with_vm_room};
use crate::vm::{
    PAGE_SIZE, Placement, Protection, SpaceId, USER_END, USER_START, VirtAddr, VmError,
};

/// Largest shared-memory object a process may create.
const MAX_SHARED: u64 = 1 << 30;
/// Most shared-memory handles a process may hold.
const MAX_HANDLES: usize = 64;
/// Most regions an address space may have (each costs kernel heap).
pub const MAX_REGIONS: usize = 256;
/// Most bytes one `write` prints (the rest is the caller's next call).
const MAX_WRITE: u64 = 1024;
/// Kernel heap a VM call that changes regions may need: a few tree nodes for
/// the splits, merges and inserts of one call, with a wide margin.
const CALL_HEAP: usize = 16 * 1024;
/// Kernel heap fork needs per region of the parent (the child's region and
/// its share of tree nodes); besides, the child's chunk lists (see
/// [`fork_heap`]).
const FORK_HEAP_PER_REGION: usize = 512;

/// The kernel side of `syscall`: runs call `rax` and leaves its result in `rax`.
pub extern "C" fn handle(frame: &mut TrapFrame) {
    scheduler::end_if_killed();
    let [a, b, c, d, e, f] = [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9];
    let result = match frame.rax {
        abi::WRITE => write(a, b),
        abi::EXIT => scheduler::exit_current(a & 0xffff_ffff),
        abi::FORK => fork(frame),
        abi::WAIT => wait(a),
        abi::GETPID => Ok(with_table(|table| table.running().pid.0)),
        abi::YIELD => {
            scheduler::preempt();
            Ok(0)
        }
        abi::SLEEP => {
            scheduler::sleep_until(arch::ticks().saturating_add(a));
            Ok(0)
        }
        abi::MMAP => map(a, b, c, d, e, f),
        abi::MUNMAP => unmap(a, b),
        abi::MPROTECT => protect(a, b, c),
        abi::SHM_CREATE => shared_create(a),
        abi::SHM_CLOSE => shared_close(a),
        abi::STATISTICS => statistics(a, b),
        abi::ZAP => zap(a, b),
        abi::PT_CACHE => page_table_cache(a),
        _ => Err(Errno::NoSystemCall),
    };
    frame.rax = match result {
        Ok(value) => value,
        Err(errno) => errno.to_result(),
    };
}

/// The errno for a VM error.
fn errno(error: VmError) -> Errno {
    match error {
        VmError::OutOfMemory => Errno::NoMemory,
        VmError::BadAddress => Errno::Fault,
        VmError::Protection => Errno::Access,
        VmError::InvalidArgument | VmError::BadFrame => Errno::Invalid,
        VmError::Busy => Errno::TryAgain,
    }
}

/// The running process's address space.
fn current_space() -> SpaceId {
    with_table(|table| table.running().space)
}

/// Prints up to [`MAX_WRITE`] user bytes to the console, in chunks; non-ASCII
/// bytes print as `?`. Returns how many were printed: a buffer that runs into
/// memory the process cannot read ends the write there (a short count), and is
/// `Fault` only if nothing could be printed.
fn write(address: u64, length: u64) -> Result<u64, Errno> {
    super::usercopy::check_range(address, length)?;
    let length = length.min(MAX_WRITE);
    let mut chunk = [0u8; 128];
    let mut done = 0;
    while done < length {
        let size = (length - done).min(chunk.len() as u64) as usize;
        if let Err(error) = copy_from_user(address + done, &mut chunk[..size]) {
            return if done == 0 { Err(error) } else { Ok(done) };
        }
        for byte in chunk[..size].iter_mut().filter(|byte| !byte.is_ascii()) {
            *byte = b'?';
        }
        crate::print!("{}", core::str::from_utf8(&chunk[..size]).unwrap_or(""));
        done += size as u64;
    }
    Ok(length)
}

/// Duplicates the running process; the child returns 0 from the same call.
fn fork(frame: &TrapFrame) -> Result<u64, Errno> {
    let (parent, space, name, handles) = with_table(|table| {
        let count = table.processes.len();
        let process = table.running();
        let handles = process.handles.clone();
        let room = count < MAX_PROCESSES - RESERVED_PROCESSES;
        room.then_some((process.pid, process.space, process.name, handles))
    })
    .ok_or(Errno::TryAgain)?;
    let heap = with_vm(|vm| fork_heap(vm.space(space)));
    let child_space = with_vm_room(heap, |vm| vm.fork(space)).map_err(errno)?;
    let stack = match stack::allocate() {
        Ok(stack) => stack,
        Err(error) => {
            with_vm(|vm| vm.destroy(child_space)).expect("fork: child space vanished");
            return Err(errno(error));
        }
    };
    with_vm(|vm| {
        for object in handles.values() {
            vm.open_shared(*object).expect("fork: handle of a missing object");
        }
    });
    let mut child_frame = *frame;
    child_frame.rax = 0;
    // SAFETY: the stack was just allocated to the child, which has not run.
    let saved = unsafe { context::prepare_stack(stack.top(), &child_frame) };
    let child = Process {
        pid: Pid(0),
        name,
        parent: Parent::Process(parent),
        space: child_space,
        stack,
        context: alloc::boxed::Box::new(saved),
        state: State::Ready,
        handles,
        next_handle: 0,
        fpu: alloc::boxed::Box::new(FpuState::current()),
    };
    Ok(insert_child(child).0)
}

/// Kernel heap a fork of `space` may take: per region, and per chunk of the
/// page store an entry of the child's chunk list, or, for a pinned region
/// (whose pages fork copies), a whole chunk too.
fn fork_heap(space: Option<&crate::vm::space::AddressSpace>) -> usize {
    use crate::vm::object::anonymous::{CHUNK_BYTES, LIST_ENTRY_BYTES};
    let Some(space) = space else { return 0 };
    space.regions().fold(0, |heap, region| {
        let per_chunk =
            if region.pinned() { CHUNK_BYTES + LIST_ENTRY_BYTES } else { LIST_ENTRY_BYTES };
        let chunks = match region.backing() {
            crate::vm::space::Backing::Anonymous(object) => object.chunk_count(),
            crate::vm::space::Backing::Shared { .. } => 0,
        };
        heap + FORK_HEAP_PER_REGION + chunks * per_chunk
    })
}

/// Gives `child` an id and the parent's next handle number, and makes it ready.
fn insert_child(mut child: Process) -> Pid {
    with_table(|table| {
        child.pid = table.allocate_pid();
        child.next_handle = table.running().next_handle;
        let pid = child.pid;
        table.insert_ready(child);
        pid
    })
}

/// Waits for a child to end; writes its status word to `status` (if not 0).
fn wait(status: u64) -> Result<u64, Errno> {
    let me = with_table(|table| table.running().pid);
    let mut checked = false;
    loop {
        let zombie = with_table(|table| {
            let mut children =
                table.processes.values().filter(|p| p.parent == Parent::Process(me)).peekable();
            children.peek().ok_or(Errno::NoChild)?;
            Ok(children.find(|p| matches!(p.state, State::Zombie(_))).map(|p| p.pid))
        })?;
        if status != 0 && !checked {
            copy_to_user(status, &0u64.to_le_bytes())?;
            checked = true;
        }
        match zombie {
            Some(child) => {
                let word = scheduler::reap(child).expect("wait: zombie vanished");
                if status != 0 {
                    copy_to_user(status, &word.to_le_bytes())?;
                }
                return Ok(child.0);
            }
            None => scheduler::block_waiting(),
        }
    }
}

/// The protection `bits` ask for.
fn protection(bits: u64) -> Result<Protection, Errno> {
    if bits & !(abi::PROT_READ | abi::PROT_WRITE | abi::PROT_EXEC) != 0 {
        return Err(Errno::Invalid);
    }
    let mut protection = Protection::empty();
    for (bit, right) in [
        (abi::PROT_READ, Protection::READ),
        (abi::PROT_WRITE, Protection::WRITE),
        (abi::PROT_EXEC, Protection::EXECUTE),
    ] {
        if bits & bit != 0 {
            protection |= right;
        }
    }
    Ok(protection)
}

/// A page-aligned user range of whole pages (`length` rounded up), or `Invalid`.
fn page_range(address: u64, length: u64) -> Result<(VirtAddr, u64), Errno> {
    let length = length.checked_next_multiple_of(PAGE_SIZE).ok_or(Errno::Invalid)?;
    let end = address.checked_add(length).ok_or(Errno::Invalid)?;
    let inside = address >= USER_START && end <= USER_END;
    if length == 0 || !address.is_multiple_of(PAGE_SIZE) || !inside {
        return Err(Errno::Invalid);
    }
    Ok((VirtAddr(address), length))
}

/// `mmap`: private anonymous memory, or a shared object by handle.
fn map(
    hint: u64,
    length: u64,
    bits: u64,
    flags: u64,
    handle: u64,
    offset: u64,
) -> Result<u64, Errno> {
    let protection = protection(bits)?;
    if flags & !abi::MAP_SHARED != 0 || length == 0 || length > USER_END - USER_START {
        return Err(Errno::Invalid);
    }
    let (placement, length) = match hint {
        0 => (Placement::Anywhere, length.next_multiple_of(PAGE_SIZE)),
        _ => {
            let (start, length) = page_range(hint, length)?;
            (Placement::Exact(start), length)
        }
    };
    let space = current_space();
    let address = if flags & abi::MAP_SHARED != 0 {
        let object = with_table(|table| table.running().handles.get(&handle).copied())
            .ok_or(Errno::BadHandle)?;
        with_vm_room(CALL_HEAP, |vm| {
            vm.map_shared(space, placement, object, offset, length, protection)
        })
    } else {
        with_vm_room(CALL_HEAP, |vm| vm.map_anonymous(space, placement, length, protection))
    };
    address.map(VirtAddr::value).map_err(errno)
}

/// `munmap`.
fn unmap(address: u64, length: u64) -> Result<u64, Errno> {
    let (start, length) = page_range(address, length)?;
    let space = current_space();
    with_vm_room(CALL_HEAP, |vm| vm.unmap(space, start, length)).map(|()| 0).map_err(errno)
}

/// `mprotect`: the range must be mapped throughout.
fn protect(address: u64, length: u64, bits: u64) -> Result<u64, Errno> {
    let protection = protection(bits)?;
    let (start, length) = page_range(address, length)?;
    let space = current_space();
    with_vm_room(CALL_HEAP, |vm| vm.protect(space, start, length, protection))
        .map(|()| 0)
        .map_err(errno)
}

/// `zap`: forgets the translations of a range; the pages stay.
fn zap(address: u64, length: u64) -> Result<u64, Errno> {
    let (start, length) = page_range(address, length)?;
    let space = current_space();
    with_vm(|vm| vm.zap(space, start, length)).map(|()| 0).map_err(errno)
}

/// Sets the page-table cache size (0 only asks); returns the previous size.
fn page_table_cache(size: u64) -> Result<u64, Errno> {
    let size = usize::try_from(size).map_err(|_| Errno::Invalid)?;
    if size > arch::paging::MAX_CAPACITY {
        return Err(Errno::Invalid);
    }
    let started_by_kernel = with_table(|table| table.running().parent == Parent::Kernel);
    if size != 0 && !started_by_kernel {
        return Err(Errno::Access);
    }
    Ok(with_vm(|vm| {
        let before = vm.mmu().capacity();
        if size != 0 {
            vm.mmu_mut().set_capacity(size);
        }
        before as u64
    }))
}

/// Creates a shared object and gives the caller a handle on it.
fn shared_create(length: u64) -> Result<u64, Errno> {
    if length == 0 || length > MAX_SHARED {
        return Err(Errno::Invalid);
    }
    if with_table(|table| table.running().handles.len()) >= MAX_HANDLES {
        return Err(Errno::TryAgain);
    }
    let length = length.next_multiple_of(PAGE_SIZE);
    let object = with_vm_room(CALL_HEAP, |vm| vm.create_shared(length)).map_err(errno)?;
    Ok(with_table(|table| {
        let process = table.running();
        let handle = process.next_handle;
        process.next_handle += 1;
        process.handles.insert(handle, object);
        handle
    }))
}

/// Closes one of the caller's handles.
fn shared_close(handle: u64) -> Result<u64, Errno> {
    let object =
        with_table(|table| table.running().handles.remove(&handle)).ok_or(Errno::BadHandle)?;
    with_vm(|vm| vm.close_shared(object)).map(|()| 0).map_err(errno)
}

/// Copies the VM statistics (as much as `length` allows) to `address`.
fn statistics(address: u64, length: u64) -> Result<u64, Errno> {
    let (vm, free, total) = with_vm(|vm| {
        let counters = vm.frames().counters();
        (vm.statistics(), counters.free, counters.total)
    });
    let statistics = Statistics {
        faults: vm.faults,
        zero_fills: vm.zero_fills,
        cow_copies: vm.cow_copies,
        cow_reuses: vm.cow_reuses,
        forks: vm.forks,
        free_frames: free as u64,
        total_frames: total as u64,
        processes: with_table(|table| table.processes.len()) as u64,
    };
    let mut bytes = [0u8; abi::STATISTICS_SIZE];
    for (chunk, word) in bytes.chunks_mut(8).zip(statistics.to_words()) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let size = (length as usize).min(bytes.len());
    copy_to_user(address, &bytes[..size])?;
    Ok(size as u64)
}
