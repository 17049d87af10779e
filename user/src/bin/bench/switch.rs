//! Process switches: a yield ping-pong over a shared page between two processes,
//! with the kernel's page-table cache (`pt_cache`) at N = 1, 2, 4 and 8 address
//! spaces. With N = 1 one root is shared by all and cleared at every switch, so
//! every round trip rebuilds both processes' translations; from N = 2 on both
//! keep their page tables, so N = 4 and 8 differ from N = 2 only by what a
//! larger cache costs a switch.

use crate::fork::Mailbox;
use crate::measure::{Reporter, Sample};

/// Round trips per repetition.
const ROUND_TRIPS: u64 = 1000;
/// The flag value that tells the child to stop.
const STOP: u64 = u64::MAX;

/// `switch_rtt_process_n<N>`: N is the page-table cache size.
pub fn run(reporter: &mut Reporter) -> Result<(), &'static str> {
    let before = user::set_page_table_cache(0).map_err(|_| "pt_cache query")?;
    let mailbox = Mailbox::new()?;
    let sizes = [
        ("switch_rtt_process_n1", 1),
        ("switch_rtt_process_n2", 2),
        ("switch_rtt_process_n4", 4),
        ("switch_rtt_process_n8", 8),
    ];
    for (name, size) in sizes {
        user::set_page_table_cache(size).map_err(|_| "pt_cache")?;
        let mut samples = [Sample::default(); 5];
        for sample in &mut samples {
            *sample = ping_pong(&mailbox)?;
        }
        reporter.report(name, &samples);
    }
    user::set_page_table_cache(before).map_err(|_| "pt_cache restore")?;
    mailbox.close()
}

/// One repetition: [`ROUND_TRIPS`] round trips with a fresh child.
fn ping_pong(mailbox: &Mailbox) -> Result<Sample, &'static str> {
    mailbox.put(0, 0);
    if user::fork().map_err(|_| "fork failed")? == 0 {
        answer(mailbox);
    }
    let faults = crate::measure::faults();
    let start = user::cycles();
    for round in 0..ROUND_TRIPS {
        mailbox.put(0, 2 * round + 1);
        while mailbox.get(0) != 2 * round + 2 {
            user::yield_now();
        }
    }
    let cycles = user::cycles() - start;
    let faults = crate::measure::faults() - faults;
    mailbox.put(0, STOP);
    crate::fork::reap()?;
    Ok(Sample::new(cycles, faults, ROUND_TRIPS))
}

/// The child's side: answers every odd value with the next even one.
fn answer(mailbox: &Mailbox) -> ! {
    loop {
        let value = mailbox.get(0);
        if value == STOP {
            user::exit(0);
        }
        if value % 2 == 1 {
            mailbox.put(0, value + 1);
        }
        user::yield_now();
    }
}
