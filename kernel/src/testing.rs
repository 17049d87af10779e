//! The in-kernel test harness.
//!
//! A test kernel is a kernel whose start-up work is a list of tests. The harness
//! runs them in order and prints one line per test, `test NAME ... ok`, which the
//! runner on the host parses and counts. A failing test panics; the panic handler
//! then prints `test NAME ... FAILED` and leaves QEMU with the failure code, so a
//! failure can never look like a pass. A test that is meant to panic registers the
//! text it expects first, and passes only if the panic message contains it.
//!
//! A panic cannot be resumed from, so a test that panics as expected ends its
//! kernel with success. So that the tests after it still run, the harness says
//! first how many tests the kernel has and how many it skips
//! (`in-kernel tests: N in this kernel, the first K skipped`), and the runner
//! boots the kernel again with `skip_tests=K` to carry on after it. A clean end
//! says how many ran (`all M in-kernel tests run passed (K skipped of N)`), which
//! the runner compares with the `ok` lines it counted.
//!
//! A test kernel runs only the configuration it was asked for: a command-line
//! word the kernel does not understand (a misspelt `pt_cache=1`, say) fails it
//! before its first test.

use core::sync::atomic::{AtomicUsize, Ordering};

use spin::Mutex;

use crate::arch::{self, ExitCode};
use crate::cmdline::Options;
use crate::println;

/// One named in-kernel test.
#[derive(Clone, Copy)]
pub struct Test {
    /// The test's name, as printed.
    pub name: &'static str,
    /// The test body: returns to pass, panics to fail.
    pub run: fn(),
}

/// Builds a `[Test]` array from test functions, named after the functions.
#[macro_export]
macro_rules! tests {
    ($($test:path),* $(,)?) => {
        [$($crate::testing::Test { name: stringify!($test), run: $test }),*]
    };
}

/// What every test must leave as it found it: the frames not held by anything
/// but the kernel's own caches (free, heap, kernel-stack pool, page-table
/// cache), the kernel heap's bytes in use, and kernel stacks handed out. A test
/// that leaks a process, a space, a region tree or a stack changes one of them.
/// Heap bytes are not compared under `tlb_check`, whose shadow TLB keeps what
/// each PCID may still cache, on the heap, by design.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Books {
    frames: usize,
    heap_bytes: Option<usize>,
    stacks: usize,
}

impl Books {
    /// The books now, checking the frame allocator's own first.
    fn now() -> Books {
        let (free, tables, shadow) = crate::memory::with_vm(|vm| {
            if let Err(error) = vm.frames().check() {
                panic!("the frame allocator's books do not balance: {error:?}");
            }
            let mmu = vm.mmu();
            let tables = mmu.statistics().table_pages as usize;
            (vm.frames().counters().free, tables, mmu.tlb_checks().is_some())
        });
        Books {
            frames: free + arch::heap_frames() + arch::stack::stack_frames() + tables,
            heap_bytes: (!shadow).then(|| crate::heap::usage().1),
            stacks: arch::stack::stacks_in_use(),
        }
    }
}

/// What the harness knows about the test running now.
struct Running {
    name: &'static str,
    expected_panic: Option<&'static str>,
    expected_frames: &'static [&'static str],
    expected_leak: bool,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// Command-line words the kernel did not understand.
static UNKNOWN_WORDS: AtomicUsize = AtomicUsize::new(0);
/// Tests to skip (`skip_tests=N`).
static SKIP_TESTS: AtomicUsize = AtomicUsize::new(0);

/// Called at boot with the parsed command line and the number of words in it
/// that the parser did not understand.
pub(crate) fn configure(options: &Options, unknown_words: usize) {
    UNKNOWN_WORDS.store(unknown_words, Ordering::SeqCst);
    SKIP_TESTS.store(options.skip_tests, Ordering::SeqCst);
}

/// Makes a panic from now on end the test kernel with failure, and fails it if
/// its command line had a word the kernel did not understand; for set-up work
/// before [`run`] (which calls it too).
pub fn start() {
    crate::panic::exit_on_panic(true);
    let unknown = UNKNOWN_WORDS.load(Ordering::SeqCst);
    if unknown > 0 {
        panic!(
            "the command line has {unknown} unknown word(s), warned of above: \
             a test kernel runs only the configuration it was asked for"
        );
    }
}

/// Runs `tests` in order (after skipping as many as the command line says),
/// then powers QEMU off with success.
pub fn run(tests: &[Test]) -> ! {
    start();
    let skip = SKIP_TESTS.load(Ordering::SeqCst);
    println!("in-kernel tests: {} in this kernel, the first {skip} skipped", tests.len());
    let Some(to_run) = tests.get(skip..) else {
        panic!("skip_tests={skip}, but this kernel has only {} tests", tests.len());
    };
    for test in to_run {
        let before = Books::now();
        *RUNNING.lock() = Some(Running {
            name: test.name,
            expected_panic: None,
            expected_frames: &[],
            expected_leak: false,
        });
        (test.run)();
        let running = RUNNING.lock().take();
        if let Some(Running { expected_panic: Some(text), .. }) = running {
            println!("test {} ... FAILED (expected a panic containing {text:?})", test.name);
            arch::exit(ExitCode::Failure);
        }
        let expected_leak = running.is_some_and(|running| running.expected_leak);
        let after = Books::now();
        match (after == before, expected_leak) {
            (true, false) => println!("test {} ... ok", test.name),
            (false, true) => println!("test {} ... ok (leak caught: {after:?})", test.name),
            (true, true) => {
                println!("test {} ... FAILED (expected a leak the books would show)", test.name);
                arch::exit(ExitCode::Failure);
            }
            (false, false) => {
                println!(
                    "test {} ... FAILED (leaked: before {before:?}, after {after:?})",
                    test.name
                );
                arch::exit(ExitCode::Failure);
            }
        }
    }
    println!("all {} in-kernel tests run passed ({skip} skipped of {})", to_run.len(), tests.len());
    arch::exit(ExitCode::Success)
}

/// Declares that the running test leaks on purpose, so that the harness's
/// books must show it (for the tests of the books themselves).
pub fn expect_leak() {
    if let Some(running) = RUNNING.lock().as_mut() {
        running.expected_leak = true;
    }
}

/// Declares that the running test must panic with a message containing `text`.
pub fn expect_panic(text: &'static str) {
    expect_panic_through(text, &[]);
}

/// Like [`expect_panic`], and the panic's backtrace must name each of
/// `frames` (function names, or parts of them).
pub fn expect_panic_through(text: &'static str, frames: &'static [&'static str]) {
    if let Some(running) = RUNNING.lock().as_mut() {
        running.expected_panic = Some(text);
        running.expected_frames = frames;
    }
}

/// Called by the panic handler: true (after printing the pass) if the running
/// test expected this panic.
pub(crate) fn panic_was_expected(message: &str, backtrace: &str) -> bool {
    let Some(running) = RUNNING.try_lock().and_then(|mut running| running.take()) else {
        return false;
    };
    let frames_named = running.expected_frames.iter().all(|frame| backtrace.contains(frame));
    match running.expected_panic {
        Some(text) if message.contains(text) && frames_named => {
            crate::console::write_fmt_panicking(format_args!(
                "test {} ... ok (panicked: {message})\n",
                running.name
            ));
            true
        }
        _ => {
            // Put it back so `report_panic` names the failing test.
            *RUNNING.lock() = Some(running);
            false
        }
    }
}

/// Called by the panic handler for an unexpected panic: names the failed test.
pub(crate) fn report_panic() {
    if let Some(running) = RUNNING.try_lock().and_then(|mut running| running.take()) {
        match running.expected_panic {
            Some(text) => crate::console::write_fmt_panicking(format_args!(
                "test {} ... FAILED (panic did not contain {text:?}, or its backtrace \
                 did not name {:?})\n",
                running.name, running.expected_frames
            )),
            None => crate::console::write_fmt_panicking(format_args!(
                "test {} ... FAILED\n",
                running.name
            )),
        }
    }
}

/// The value of the test kernel's own command-line parameter
/// `test.NAME=VALUE` (see `cmdline::TEST_PARAMETER`), if the line has it.
pub fn parameter(name: &str) -> Option<&'static str> {
    let line = crate::ramdisk::get().command_line();
    line.split_ascii_whitespace().find_map(|word| {
        word.strip_prefix(crate::cmdline::TEST_PARAMETER)?.strip_prefix(name)?.strip_prefix('=')
    })
}
