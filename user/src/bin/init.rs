//! The first process: shows fork with copy-on-write, shared memory between two
//! processes and the VM statistics, then idles.
#![no_std]
#![no_main]

use user::{Ended, PROT_READ, PROT_WRITE, println};

user::entry!(main);

const PAGE: u64 = 4096;
const READ_WRITE: u64 = PROT_READ | PROT_WRITE;

fn main(_argument: u64) -> i32 {
    println!("init: pid {} running in ring 3", user::getpid());
    copy_on_write();
    shared_memory();
    let statistics = user::statistics().expect("statistics");
    println!(
        "init: statistics: {} faults, {} zero-fill, {} copy-on-write copies, {} forks, \
         {} of {} frames free, {} processes",
        statistics.faults,
        statistics.zero_fills,
        statistics.cow_copies,
        statistics.forks,
        statistics.free_frames,
        statistics.total_frames,
        statistics.processes
    );
    println!("init: demonstration done; idling");
    loop {
        user::sleep(1000);
    }
}

/// A page written by the child after fork: the parent keeps its own value.
fn copy_on_write() {
    let page = user::map_anonymous(PAGE, READ_WRITE).expect("map") as *mut u64;
    // SAFETY: `page` is a fresh private read-write page of this process.
    unsafe { page.write_volatile(1) };
    let before = user::statistics().expect("statistics").cow_copies;
    match user::fork().expect("fork") {
        0 => {
            // SAFETY: the child's copy of the same page.
            unsafe { page.write_volatile(2) };
            println!("init: child {} wrote 2 to its copy of the page", user::getpid());
            user::exit(0)
        }
        child => {
            let (_, ended) = user::wait().expect("wait");
            let copies = user::statistics().expect("statistics").cow_copies - before;
            // SAFETY: as above; the parent's own page.
            let value = unsafe { page.read_volatile() };
            println!(
                "init: fork: child {child} {ended:?}; parent still reads {value}; \
                 {copies} page(s) copied on write (the page, and the child's stack)"
            );
        }
    }
}

/// A shared page written by the child is seen by the parent.
fn shared_memory() {
    let handle = user::shared_create(PAGE).expect("shared_create");
    let page = user::map_shared(handle, 0, PAGE, READ_WRITE).expect("map_shared") as *mut u64;
    match user::fork().expect("fork") {
        0 => {
            // SAFETY: the shared page, mapped read-write in this process.
            unsafe { page.write_volatile(0x5ca1ab1e) };
            user::exit(0)
        }
        child => {
            let (_, ended) = user::wait().expect("wait");
            // SAFETY: as above.
            let value = unsafe { page.read_volatile() };
            println!("init: shared memory: child {child} {ended:?}; parent reads {value:#x}");
            let _ = user::shared_close(handle);
            assert_eq!(ended, Ended::Exited(0));
        }
    }
}
