//! The other processors: starting them, knowing which one is running, and
//! interrupting one from another.
//!
//! # Start-up
//! The boot processor starts each processor the MADT lists, one at a time,
//! with INIT, then STARTUP twice (Intel's MP protocol: 10 ms after INIT, the
//! second only if the first did not take). A processor starts in real mode at
//! a page below 1 MiB: the trampoline below is copied there (into the pages
//! `memory::low_pages` kept), with a data area the boot processor fills for
//! each start: a GDT with a 64-bit code segment, a root table, a stack and
//! where to go. The trampoline turns on PAE, long mode and no-execute, loads
//! that root and enables paging in one step, far-jumps into 64-bit code and
//! calls [`processor_entry`] on the new stack. The root is a copy of the
//! kernel half of the boot root with the first 2 MiB mapped at their own
//! addresses, as the trampoline runs there while paging comes on (the copy is
//! below 4 GiB, as a real-mode `mov cr3` needs).
//!
//! [`processor_entry`] switches to the boot root, loads the processor's own
//! GDT and TSS (with interrupt stacks of its own) and the shared IDT, takes
//! the boot processor's control registers, EFER bits and PAT, enables its
//! local APIC and timer, says it is online, and becomes that processor's idle
//! task: it runs processes, and halts between interrupts when there are none
//! (see `process` and `kernel_lock`).
//!
//! # Which processor
//! [`this_cpu`] finds the running processor's index from its APIC ID, which
//! nothing in user mode can change. Kernel code does not use GS, whose base a
//! program may change; only the system-call entry reaches its per-processor
//! area through IA32_KERNEL_GS_BASE, in a `swapgs` window (see `context`).
//!
//! # Requests
//! One processor asks others for work through a mailbox each and an
//! interrupt on [`CALL_VECTOR`], and waits until every one has done it:
//! [`invalidate`] (a TLB shootdown: some pages, one `invlpg` each, or past
//! [`PAGE_CEILING`] pages everything), [`run_on`] (a function, for tests),
//! [`call`] and [`ping`] (nothing: a round trip). One batch is in flight at a time (a lock); a
//! processor waiting for that lock, or for anything a requester may hold, must
//! serve its own mailbox meanwhile ([`serve_requests`]), as its interrupts
//! are off: two processors shooting at each other would otherwise wait for
//! each other for ever.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use x86_64::PhysAddr;
use x86_64::registers::control::{Cr0, Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, Msr};
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame};
use x86_64::structures::paging::PhysFrame;

use super::acpi::MAX_CPUS;
use super::{apic, gdt, memory, tsc};
use crate::vm::page::{PAGE_SIZE, Pfn};

/// Vector of [`call`]'s interrupt.
pub const CALL_VECTOR: u8 = 0xf0;

/// Pages past which a shootdown flushes everything instead of one `invlpg`
/// a page (Linux's `tlb_single_page_flush_ceiling`).
pub const PAGE_CEILING: u64 = 33;

/// What a processor is asked to drop from its TLB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// `count` pages from `start`, one `invlpg` each.
    Pages {
        /// The first page's address.
        start: u64,
        /// How many pages.
        count: u64,
    },
    /// Every translation but the global ones (a CR3 reload).
    All,
    /// Every translation of every PCID, global ones included: for kernel
    /// mappings taken away, which any context may have cached.
    Everything,
}

impl Invalidation {
    /// `count` pages from `start`: those pages, or everything past the ceiling.
    pub fn range(start: u64, count: u64) -> Self {
        if count > PAGE_CEILING { Invalidation::All } else { Invalidation::Pages { start, count } }
    }

    /// Does it on this processor.
    fn apply(self) {
        match self {
            Invalidation::Pages { start, count } => {
                for page in 0..count {
                    let address = x86_64::VirtAddr::new(start + page * PAGE_SIZE);
                    x86_64::instructions::tlb::flush(address);
                }
            }
            Invalidation::All => {
                let (frame, flags) = Cr3::read_raw();
                // SAFETY: reloads the root already loaded, with its PCID bits:
                // only cached translations are dropped.
                unsafe { Cr3::write_raw(frame, flags) };
            }
            Invalidation::Everything => {
                // A change of CR4.PGE invalidates every TLB entry of every
                // PCID, global ones included (Intel SDM 4.10.4.1).
                let cr4 = Cr4::read();
                // SAFETY: only PGE changes, and it is put back as it was;
                // the flush is the point, and nothing else about translation
                // changes.
                unsafe {
                    Cr4::write(cr4 ^ Cr4Flags::PAGE_GLOBAL);
                    Cr4::write(cr4);
                }
            }
        }
    }
}

/// Work posted to a processor's mailbox.
const WORK_NONE: u64 = 0;
const WORK_PAGES: u64 = 1;
const WORK_ALL: u64 = 2;
const WORK_RUN: u64 = 3;
const WORK_LIST: u64 = 4;
const WORK_EVERYTHING: u64 = 5;

/// A processor's mailbox: the work, its two arguments and result, and how
/// many requests were posted and served.
struct Mailbox {
    work: AtomicU64,
    first: AtomicU64,
    second: AtomicU64,
    result: AtomicU64,
    posted: AtomicU64,
    served: AtomicU64,
}

static MAILBOXES: [Mailbox; MAX_CPUS] = [const {
    Mailbox {
        work: AtomicU64::new(WORK_NONE),
        first: AtomicU64::new(0),
        second: AtomicU64::new(0),
        result: AtomicU64::new(0),
        posted: AtomicU64::new(0),
        served: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// One batch of requests at a time.
static REQUESTS: spin::Mutex<()> = spin::Mutex::new(());

/// The processor that stops the others ([`stop_others`]): its APIC ID + 1
/// (the ID, not the index: the others go off line, and then [`this_cpu`]
/// no longer finds them); 0 while none has. Once it is set, an NMI means
/// "stop".
static STOPPER: AtomicUsize = AtomicUsize::new(0);
/// Processors that stopped when told to.
static STOPPED: AtomicUsize = AtomicUsize::new(0);

/// Shootdowns served so far by kind (pages, everything), on any processor.
static SERVED_PAGES: AtomicU64 = AtomicU64::new(0);
static SERVED_ALL: AtomicU64 = AtomicU64::new(0);

/// What the kernel knows of one processor.
struct Cpu {
    /// Its APIC ID.
    apic_id: AtomicU32,
    /// Whether it has come up.
    online: AtomicBool,
    /// Its timer interrupts so far.
    ticks: AtomicU64,
    /// [`call`]s it has answered.
    calls: AtomicU64,
    /// Its GDT (set before it starts).
    gdt: AtomicU64,
}

static CPUS: [Cpu; MAX_CPUS] = [const {
    Cpu {
        apic_id: AtomicU32::new(0),
        online: AtomicBool::new(false),
        ticks: AtomicU64::new(0),
        calls: AtomicU64::new(0),
        gdt: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Processors online (the boot processor counts from [`start`] on).
static ONLINE: AtomicUsize = AtomicUsize::new(1);
/// Processors the MADT listed (1 without one).
static LISTED: AtomicUsize = AtomicUsize::new(1);
/// The boot processor's control state, which every other takes on.
static CONTROL: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Offsets in the trampoline's data area, in the order the assembly lays it
/// out (which uses these constants).
const DATA_GDTR: usize = 0;
const DATA_FAR_JUMP: usize = 8;
const DATA_ROOT: usize = 16;
const DATA_STACK: usize = 24;
const DATA_ENTRY: usize = 32;
const DATA_INDEX: usize = 40;
const DATA_BOOT_ROOT: usize = 48;
const DATA_GDT: usize = 56;

// The trampoline. Copied to a page below 1 MiB and entered there in real mode
// with CS = the page's segment and IP = 0; every address in it is an offset
// from its start, or patched in by `start_one`.
core::arch::global_asm!(
    ".section .text.trampoline, \"ax\"",
    ".global smp_trampoline_start",
    ".global smp_trampoline_long",
    ".global smp_trampoline_data",
    ".global smp_trampoline_end",
    ".code16",
    "smp_trampoline_start:",
    "cli",
    "cld",
    "movw %cs, %ax",
    "movw %ax, %ds",
    "lgdtl (smp_trampoline_data - smp_trampoline_start + {gdtr})",
    // PAE, then the root, then long mode and no-execute, then paging.
    "movl %cr4, %eax",
    "orl $0x20, %eax",
    "movl %eax, %cr4",
    "movl (smp_trampoline_data - smp_trampoline_start + {root}), %eax",
    "movl %eax, %cr3",
    "movl $0xc0000080, %ecx",
    "rdmsr",
    "orl $0x900, %eax",
    "wrmsr",
    "movl %cr0, %eax",
    "orl $0x80000001, %eax",
    "movl %eax, %cr0",
    "ljmpl *(smp_trampoline_data - smp_trampoline_start + {far_jump})",
    ".code64",
    "smp_trampoline_long:",
    "movw $0x10, %ax",
    "movw %ax, %ds",
    "movw %ax, %es",
    "movw %ax, %ss",
    "xorl %eax, %eax",
    "movw %ax, %fs",
    "movw %ax, %gs",
    "leaq smp_trampoline_data(%rip), %rbx",
    "movq {stack}(%rbx), %rsp",
    "movq {index}(%rbx), %rdi",
    "movq {boot_root}(%rbx), %rsi",
    // A zero return address: the entry is entered as if called, and a
    // backtrace stops there.
    "pushq $0",
    "jmpq *{entry}(%rbx)",
    ".balign 8",
    "smp_trampoline_data:",
    // The GDTR: limit, base (patched).
    ".word 23",
    ".long 0",
    ".word 0",
    // The far jump into 64-bit code: offset (patched), selector 8.
    ".long 0",
    ".word 8",
    ".word 0",
    // Root, stack, entry, index, boot root (patched).
    ".quad 0",
    ".quad 0",
    ".quad 0",
    ".quad 0",
    ".quad 0",
    // The GDT: null, 64-bit code, data.
    ".quad 0",
    ".quad 0x00af9a000000ffff",
    ".quad 0x00cf92000000ffff",
    "smp_trampoline_end:",
    ".text",
    gdtr = const DATA_GDTR,
    far_jump = const DATA_FAR_JUMP,
    root = const DATA_ROOT,
    stack = const DATA_STACK,
    entry = const DATA_ENTRY,
    index = const DATA_INDEX,
    boot_root = const DATA_BOOT_ROOT,
    options(att_syntax)
);

unsafe extern "C" {
    static smp_trampoline_start: u8;
    static smp_trampoline_long: u8;
    static smp_trampoline_data: u8;
    static smp_trampoline_end: u8;
}

/// The trampoline's bytes, and the offsets of its 64-bit code and data area.
fn trampoline() -> (&'static [u8], usize, usize) {
    let start = &raw const smp_trampoline_start as usize;
    let long = &raw const smp_trampoline_long as usize;
    let data = &raw const smp_trampoline_data as usize;
    let end = &raw const smp_trampoline_end as usize;
    // SAFETY: the four labels delimit the assembly above, in one section, in
    // this order; its bytes are part of the kernel image, mapped for good.
    let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, end - start) };
    (bytes, long - start, data - start)
}

/// The index of the processor running this (0 for the boot processor, and
/// for any processor before [`start`]).
pub fn this_cpu() -> usize {
    if ONLINE.load(Ordering::Relaxed) <= 1 {
        return 0;
    }
    let id = apic::id();
    CPUS.iter()
        .position(|cpu| {
            cpu.online.load(Ordering::Acquire) && cpu.apic_id.load(Ordering::Relaxed) == id
        })
        .unwrap_or(0)
}

/// Processors online, and processors the MADT listed.
pub fn counts() -> (usize, usize) {
    (ONLINE.load(Ordering::Acquire), LISTED.load(Ordering::Relaxed))
}

/// Processor `index`'s APIC ID, timer interrupts and calls answered, if it
/// is online.
pub fn cpu(index: usize) -> Option<(u32, u64, u64)> {
    let cpu = CPUS.get(index).filter(|cpu| cpu.online.load(Ordering::Acquire))?;
    Some((
        cpu.apic_id.load(Ordering::Relaxed),
        cpu.ticks.load(Ordering::Relaxed),
        cpu.calls.load(Ordering::Relaxed),
    ))
}

/// Counts a timer interrupt of processor `cpu` (the running one).
pub fn note_tick(cpu: usize) {
    CPUS[cpu].ticks.fetch_add(1, Ordering::Relaxed);
}

/// Installs the call handler.
pub fn install(idt: &mut InterruptDescriptorTable) {
    idt[CALL_VECTOR].set_handler_fn(call_interrupt);
}

extern "x86-interrupt" fn call_interrupt(_frame: InterruptStackFrame) {
    serve_requests();
    apic::end_of_interrupt();
}

/// Does what this processor's mailbox holds, if anything; for the request
/// interrupt, and for loops that wait with interrupts off.
pub fn serve_requests() {
    let index = this_cpu();
    let mailbox = &MAILBOXES[index];
    let posted = mailbox.posted.load(Ordering::Acquire);
    if mailbox.served.load(Ordering::Relaxed) == posted {
        return;
    }
    let (first, second) =
        (mailbox.first.load(Ordering::Relaxed), mailbox.second.load(Ordering::Relaxed));
    match mailbox.work.load(Ordering::Relaxed) {
        WORK_PAGES => {
            Invalidation::Pages { start: first, count: second }.apply();
            SERVED_PAGES.fetch_add(1, Ordering::Relaxed);
        }
        work @ (WORK_ALL | WORK_EVERYTHING) => {
            let what = if work == WORK_ALL { Invalidation::All } else { Invalidation::Everything };
            what.apply();
            SERVED_ALL.fetch_add(1, Ordering::Relaxed);
        }
        WORK_LIST => {
            // SAFETY: `invalidate_pages` posted a pointer to `second` words
            // that stay put until every target has served it (it waits).
            let pages =
                unsafe { core::slice::from_raw_parts(first as *const u64, second as usize) };
            for &page in pages {
                x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(page));
            }
            SERVED_PAGES.fetch_add(1, Ordering::Relaxed);
        }
        WORK_RUN => {
            // SAFETY: `run_on` posted a `fn(u64) -> u64` as this word.
            let function: fn(u64) -> u64 = unsafe { core::mem::transmute(first as usize) };
            mailbox.result.store(function(second), Ordering::Relaxed);
        }
        _ => {}
    }
    CPUS[index].calls.fetch_add(1, Ordering::Relaxed);
    mailbox.served.store(posted, Ordering::Release);
}

/// Posts `(work, first, second)` to every processor in `targets` (indices;
/// this one and those not online are left out), interrupts them, and waits
/// until all have served it; returns how many did not within a second. A
/// processor still serving an earlier request that timed out is given up to
/// a second to end it before anything is posted to it (else it counts as
/// not answering): its mailbox's words are never changed under it.
fn request(targets: &[usize], work: u64, first: u64, second: u64) -> usize {
    let this = this_cpu();
    let batch = loop {
        if let Some(guard) = REQUESTS.try_lock() {
            break guard;
        }
        serve_requests();
        core::hint::spin_loop();
    };
    let online =
        |index: usize| CPUS.get(index).is_some_and(|cpu| cpu.online.load(Ordering::Acquire));
    let mut posted = [0u64; MAX_CPUS];
    let mut behind = 0;
    for &index in targets.iter().filter(|&&index| index != this && online(index)) {
        let mailbox = &MAILBOXES[index];
        // A request that timed out may still be in hand there: its words are
        // not written over while it may be reading them.
        let before = mailbox.posted.load(Ordering::Relaxed);
        let idle = || mailbox.served.load(Ordering::Acquire) == before;
        if !idle() && !wait_until(1_000_000, idle) {
            behind += 1;
            continue;
        }
        mailbox.work.store(work, Ordering::Relaxed);
        mailbox.first.store(first, Ordering::Relaxed);
        mailbox.second.store(second, Ordering::Relaxed);
        posted[index] = mailbox.posted.fetch_add(1, Ordering::AcqRel) + 1;
        apic::send_interrupt(CPUS[index].apic_id.load(Ordering::Relaxed), CALL_VECTOR);
    }
    let served = |index: usize| MAILBOXES[index].served.load(Ordering::Acquire) >= posted[index];
    let all = || (0..MAX_CPUS).all(served);
    let missing =
        if wait_until(1_000_000, all) { 0 } else { (0..MAX_CPUS).filter(|&i| !served(i)).count() };
    drop(batch);
    behind + missing
}

/// Makes every processor in `targets` (indices; this one, and those not
/// online, are left out) drop `what` from its TLB, and waits until all have;
/// returns how many did not answer within a second (0: all did).
pub fn invalidate(targets: &[usize], what: Invalidation) -> usize {
    match what {
        Invalidation::Pages { start, count } => request(targets, WORK_PAGES, start, count),
        Invalidation::All => request(targets, WORK_ALL, 0, 0),
        Invalidation::Everything => request(targets, WORK_EVERYTHING, 0, 0),
    }
}

/// Makes every processor in `targets` drop the translations of `pages` (page
/// addresses, any order; at most [`PAGE_CEILING`] of them, else everything
/// goes); see [`invalidate`].
pub fn invalidate_pages(targets: &[usize], pages: &[u64]) -> usize {
    if pages.len() as u64 > PAGE_CEILING {
        return invalidate(targets, Invalidation::All);
    }
    request(targets, WORK_LIST, pages.as_ptr() as u64, pages.len() as u64)
}

/// Makes every other online processor drop `what`; see [`invalidate`].
pub fn invalidate_others(what: Invalidation) -> usize {
    let every: [usize; MAX_CPUS] = core::array::from_fn(|index| index);
    invalidate(&every, what)
}

/// Makes this processor and every other online one drop `what`; see
/// [`invalidate`].
pub fn invalidate_everywhere(what: Invalidation) -> usize {
    what.apply();
    invalidate_others(what)
}

/// Runs `function(argument)` on processor `index` (in its interrupt
/// handler, interrupts off) and returns its result; `None` if the processor
/// is not online, is this one, or did not answer within a second.
pub fn run_on(index: usize, function: fn(u64) -> u64, argument: u64) -> Option<u64> {
    let online = CPUS.get(index).is_some_and(|cpu| cpu.online.load(Ordering::Acquire));
    if !online || index == this_cpu() {
        return None;
    }
    let missing = request(&[index], WORK_RUN, function as usize as u64, argument);
    (missing == 0).then(|| MAILBOXES[index].result.load(Ordering::Relaxed))
}

/// Interrupts processor `index` and waits until it has answered; false if it
/// is not online, is this one, or did not answer within a second.
pub fn call(index: usize) -> bool {
    let online = CPUS.get(index).is_some_and(|cpu| cpu.online.load(Ordering::Acquire));
    online && index != this_cpu() && ping(&[index]) == 0
}

/// Interrupts every processor in `targets` at once (see [`invalidate`] for
/// which count) and waits until all have answered; returns how many did not
/// within a second.
pub fn ping(targets: &[usize]) -> usize {
    request(targets, WORK_NONE, 0, 0)
}

/// Interrupts processor `index` (if online and not this one) without asking
/// anything of it, and does not wait: it leaves a halt and looks again at
/// what it was waiting for (see `kernel_lock`).
pub fn nudge(index: usize) {
    let Some(cpu) = CPUS.get(index).filter(|cpu| cpu.online.load(Ordering::Acquire)) else {
        return;
    };
    if index != this_cpu() {
        apic::send_interrupt(cpu.apic_id.load(Ordering::Relaxed), CALL_VECTOR);
    }
}

/// Stops every other online processor for good, as a panic does: each is
/// sent an NMI, which arrives whatever it is doing (interrupts off, waiting
/// for a lock), and halts with interrupts off in its handler. They are taken
/// off line at once, so no request waits for them. Returns how many said
/// they stopped within a tenth of a second. The first processor to call it
/// wins: another that calls it later (two panics at once) just stops, and
/// this one calling it again does nothing more.
pub fn stop_others() -> usize {
    let id = apic::id();
    let me = id as usize + 1;
    if let Err(stopper) = STOPPER.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
        if stopper == me {
            return 0;
        }
        STOPPED.fetch_add(1, Ordering::SeqCst);
        super::halt_forever();
    }
    let before = STOPPED.load(Ordering::SeqCst);
    let mut sent = 0;
    for cpu in &CPUS {
        if cpu.apic_id.load(Ordering::Relaxed) != id && cpu.online.swap(false, Ordering::SeqCst) {
            apic::send_nmi(cpu.apic_id.load(Ordering::Relaxed));
            sent += 1;
        }
    }
    wait_until(100_000, || STOPPED.load(Ordering::SeqCst) - before >= sent);
    STOPPED.load(Ordering::SeqCst) - before
}

/// For the NMI handler: if another processor is stopping the others, stops
/// this one (it never returns then).
pub fn stop_if_told() {
    let stopper = STOPPER.load(Ordering::SeqCst);
    if stopper != 0 && stopper != apic::id() as usize + 1 {
        STOPPED.fetch_add(1, Ordering::SeqCst);
        super::halt_forever();
    }
}

/// Shootdowns served so far: of some pages, and of everything.
pub fn shootdowns_served() -> (u64, u64) {
    (SERVED_PAGES.load(Ordering::Relaxed), SERVED_ALL.load(Ordering::Relaxed))
}

/// Spins until `done` or `micros` have passed; whether `done`.
fn wait_until(micros: u64, mut done: impl FnMut() -> bool) -> bool {
    let limit = tsc::frequency() / 1_000_000 * micros;
    let start = tsc::read();
    while !done() {
        if tsc::read() - start > limit {
            return done();
        }
        core::hint::spin_loop();
    }
    true
}

/// Spins for `micros` microseconds.
fn delay(micros: u64) {
    wait_until(micros, || false);
}

/// Starts every other processor the MADT lists; logs how many came up. Runs
/// once on the boot processor, with the local APIC enabled.
pub fn start() {
    let this = apic::id();
    CPUS[0].apic_id.store(this, Ordering::Relaxed);
    CPUS[0].online.store(true, Ordering::Release);
    let Some(topology) = super::acpi::topology().filter(|_| apic::active()) else {
        return;
    };
    LISTED.store(topology.cpus + topology.left_out, Ordering::Relaxed);
    let others = topology.apic_ids[..topology.cpus].iter().filter(|&&id| id != this);
    if topology.cpus < 2 {
        return;
    }
    let Some(low) = memory::low_pages() else {
        log::warn!("smp: no memory below 1 MiB to start processors from: one processor");
        return;
    };
    save_control_state();
    prepare_low_pages(low);
    for (index, &id) in (1..).zip(others) {
        if let Err(why) = start_one(low, index, id) {
            log::warn!("smp: processor {index} (APIC ID {id}) {why}; starting no more");
            break;
        }
    }
    let (online, listed) = counts();
    log::info!(
        "smp: {online} of {listed} processors online, local APICs in {:?} mode",
        apic::mode()
    );
}

/// Records the boot processor's CR0, CR4, EFER and PAT for the others.
fn save_control_state() {
    let efer = Efer::read().bits();
    // SAFETY: the PAT MSR exists on every processor this kernel runs on (it
    // checks for it before programming it, and reads only here).
    let pat = unsafe { Msr::new(0x277).read() };
    let values = [Cr0::read_raw(), Cr4::read_raw(), efer, pat];
    for (slot, value) in CONTROL.iter().zip(values) {
        slot.store(value, Ordering::Relaxed);
    }
}

/// Copies the trampoline to the low pages and builds the root table it runs
/// on: the boot root's kernel half, and the first 2 MiB at their own
/// addresses (one 2 MiB page).
fn prepare_low_pages(low: u64) {
    let (code, _, _) = trampoline();
    assert!(code.len() <= PAGE_SIZE as usize, "smp: the trampoline outgrew its page");
    let [root, upper, middle] = [1, 2, 3].map(|page| Pfn::from_addr(low + page * PAGE_SIZE));
    let boot = memory::boot_root();
    for page in 0..memory::LOW_PAGES {
        memory::fill_frame(Pfn::from_addr(low + page * PAGE_SIZE), 0);
    }
    memory::write_frame(Pfn::from_addr(low), 0, code);
    let mut entries = alloc::boxed::Box::new([0u8; PAGE_SIZE as usize]);
    memory::read_frame(boot, &mut entries);
    entries[..PAGE_SIZE as usize / 2].fill(0);
    const PRESENT_WRITABLE: u64 = 0b11;
    const HUGE: u64 = 1 << 7;
    entries[..8].copy_from_slice(&(upper.addr() | PRESENT_WRITABLE).to_le_bytes());
    memory::write_frame(root, 0, &entries[..]);
    memory::write_frame(upper, 0, &(middle.addr() | PRESENT_WRITABLE).to_le_bytes());
    memory::write_frame(middle, 0, &(PRESENT_WRITABLE | HUGE).to_le_bytes());
}

/// Starts processor `index` with APIC ID `id` from the trampoline at `low`,
/// and waits for it to come online.
fn start_one(low: u64, index: usize, id: u32) -> Result<(), &'static str> {
    // Stacks taken here are the processor's for good: their slots are never
    // given back.
    let stack = super::stack::allocate().map_err(|_| "has no stack (out of memory)")?.top();
    let mut stacks = [0; gdt::IST_INDICES.len()];
    for top in &mut stacks {
        *top = super::stack::allocate().map_err(|_| "has no interrupt stacks")?.top();
    }
    let cpu = &CPUS[index];
    cpu.gdt.store(gdt::processor_tables(index, stacks) as *const _ as u64, Ordering::Relaxed);
    cpu.apic_id.store(id, Ordering::Relaxed);
    let (_, long, data) = trampoline();
    let mut area = [0u8; DATA_GDT];
    let gdt_base = (low + (data + DATA_GDT) as u64) as u32;
    area[DATA_GDTR..DATA_GDTR + 2].copy_from_slice(&23u16.to_le_bytes());
    area[DATA_GDTR + 2..DATA_GDTR + 6].copy_from_slice(&gdt_base.to_le_bytes());
    area[DATA_FAR_JUMP..DATA_FAR_JUMP + 4]
        .copy_from_slice(&((low + long as u64) as u32).to_le_bytes());
    area[DATA_FAR_JUMP + 4..DATA_FAR_JUMP + 6].copy_from_slice(&8u16.to_le_bytes());
    let words = [
        (DATA_ROOT, low + PAGE_SIZE),
        (DATA_STACK, stack),
        (DATA_ENTRY, processor_entry as *const () as u64),
        (DATA_INDEX, index as u64),
        (DATA_BOOT_ROOT, memory::boot_root().addr()),
    ];
    for (offset, value) in words {
        area[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }
    memory::write_frame(Pfn::from_addr(low), data, &area);
    let page = u8::try_from(low / PAGE_SIZE).map_err(|_| "cannot start from above 1 MiB")?;
    apic::send_init(id);
    delay(10_000);
    apic::send_startup(id, page);
    let online = || cpu.online.load(Ordering::Acquire);
    if !wait_until(200, online) {
        apic::send_startup(id, page);
    }
    // Emulated processors can take a while to come up.
    if wait_until(2_000_000, online) { Ok(()) } else { Err("did not come up") }
}

/// Where a processor arrives from the trampoline, on its own stack, with
/// interrupts off; `boot_root` is the boot processor's page table.
extern "C" fn processor_entry(index: u64, boot_root: u64) -> ! {
    let index = index as usize;
    let frame = PhysFrame::containing_address(PhysAddr::new(boot_root));
    // SAFETY: the boot root maps the kernel half exactly as the trampoline's
    // root does (it was copied from it), so this code and its stack stay
    // mapped; PCID 0, as on the boot processor before any process.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    let cpu = &CPUS[index];
    let gdt =
        cpu.gdt.load(Ordering::Relaxed) as *const x86_64::structures::gdt::GlobalDescriptorTable;
    // SAFETY: `start_one` stored a GDT leaked for this processor.
    gdt::load_processor_tables(unsafe { &*gdt });
    super::exceptions::init();
    take_control_state();
    super::context::init_processor(index);
    apic::enable_local();
    apic::start_timer(super::interrupts::TIMER_VECTOR);
    ONLINE.fetch_add(1, Ordering::AcqRel);
    cpu.online.store(true, Ordering::Release);
    // This processor's idle task: it runs processes once there are some,
    // and the boot processor first lets go of the kernel lock.
    x86_64::instructions::interrupts::disable();
    super::kernel_lock::join_idle();
    loop {
        crate::process::idle();
    }
}

/// Takes on the boot processor's CR0, CR4, EFER bits and PAT.
fn take_control_state() {
    let [cr0, cr4, efer, pat] = CONTROL.each_ref().map(|slot| slot.load(Ordering::Relaxed));
    let wanted = EferFlags::from_bits_truncate(efer)
        & (EferFlags::NO_EXECUTE_ENABLE | EferFlags::SYSTEM_CALL_EXTENSIONS);
    // SAFETY: the boot processor runs the same kernel with these very values:
    // caching and write protection (CR0), PAE, global pages, FXSR, SMEP, SMAP,
    // UMIP and PCIDs (CR4; PCIDs may be enabled here as CR3 holds PCID 0),
    // no-execute and `syscall` (EFER), and the same memory types (PAT), so
    // every mapping means the same on this processor.
    unsafe {
        Cr0::write_raw(cr0);
        Cr4::write_raw(cr4);
        Efer::update(|flags| flags.insert(wanted));
        Msr::new(0x277).write(pat);
    }
}
