//! Command-line options of the `boot` tool.

/// What the tool was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Print this usage text.
    Help(&'static str),
    /// Build and boot the kernel.
    Run(Run),
    /// Build the BIOS and UEFI images only.
    Image(Run),
    /// Run the host tests and every test kernel.
    Test(Test),
    /// Boot the release kernel and run its benchmarks.
    Bench(Bench),
    /// Write an image to a USB stick (device path, UEFI image?).
    Usb(String, bool),
    /// Boot paused under QEMU and debug the kernel in GDB.
    Gdb(Run),
}

/// How to build and boot a kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Boot through UEFI firmware (OVMF) instead of BIOS.
    pub uefi: bool,
    /// No QEMU window.
    pub headless: bool,
    /// The kernel powers off when its start-up work is done.
    pub once: bool,
    /// Guest memory, in QEMU's syntax (`128M`, `1G`).
    pub memory: String,
    /// Wait for a debugger on localhost:1234.
    pub gdb: bool,
    /// Attach the image as a USB stick (xHCI mass storage) instead of a disk.
    pub usb: bool,
    /// QEMU accelerator (`tcg`, or `kvm` where it works).
    pub accel: String,
    /// Build the kernel with the release profile.
    pub release: bool,
    /// Extra words for the kernel command line.
    pub kernel_args: Vec<String>,
    /// Extra QEMU arguments (after `--`).
    pub qemu_args: Vec<String>,
    /// Boot in Bochs (a processor with PCIDs) instead of QEMU.
    pub bochs: bool,
    /// Size of a fresh swap disk to attach (virtio-blk), in QEMU's syntax.
    pub swap: Option<String>,
    /// Processors the machine has.
    pub smp: u32,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            uefi: false,
            headless: false,
            once: false,
            memory: "128M".into(),
            gdb: false,
            usb: false,
            accel: "tcg".into(),
            release: false,
            kernel_args: Vec::new(),
            qemu_args: Vec::new(),
            bochs: false,
            smp: DEFAULT_SMP,
            swap: None,
        }
    }
}

impl Run {
    /// Whether the QEMU arguments given after `--` set `option` (`-smp`,
    /// `-cpu`) themselves, in place of what the runner would.
    pub fn qemu_sets(&self, option: &str) -> bool {
        self.qemu_args.iter().any(|arg| arg == option)
    }
}

/// Options of `boot bench`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bench {
    /// How to boot.
    pub run: Run,
    /// Logs of the Linux anchor (`anchor-linux/run.sh`), whose figures the
    /// chart shows beside ours.
    pub anchors: Vec<String>,
}

/// Options of `boot test`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Test {
    /// Words choosing what to run (see [`TEST_USAGE`]); none: everything.
    pub filters: Vec<String>,
    /// Skip the host tests.
    pub kernels_only: bool,
    /// Test-kernel runs that go on at once.
    pub jobs: usize,
}

/// The word that chooses the system checks.
pub const SYSTEM_CHECKS: &str = "system";

/// The usage text.
pub const USAGE: &str = "\
usage: cargo run -- [OPTIONS] [-- QEMU-ARGS...]      build the kernel and boot it in QEMU
       cargo run -- image [OPTIONS]                   build bios.img and uefi.img only
       cargo run -- test [--kernels-only] [WORD...]   run the tests (`test --help` for more)
       cargo run -- bench [OPTIONS]                   boot the release kernel and print benchmarks
       cargo run -- usb DEVICE [--uefi]               write the BIOS (or UEFI) image to a USB stick
       cargo run -- gdb [OPTIONS]                     boot paused and debug the kernel in GDB

options:
  --uefi             boot through UEFI (OVMF, from the `ovmf` package) instead of BIOS
  --headless         no QEMU window; the serial console is on this terminal either way
  --once             the kernel powers QEMU off when its start-up work is done
  --memory SIZE      guest memory, e.g. 16M, 512M, 2G (default 128M)
  --usb              attach the image as a USB stick (xHCI) instead of an IDE disk
  --gdb              start paused, waiting for GDB on localhost:1234 (says how to attach)
  --accel NAME       QEMU accelerator: tcg (default) or kvm
  --release          build the kernel with the release profile
  --kernel-arg WORD  add WORD to the kernel command line (e.g. log=debug)
  --pt-cache N       keep page tables for N address spaces (1-64; kernel's pt_cache=N)
  --smp N            give the machine N processors (1-16, default 2)
  --swap SIZE        attach a fresh, empty swap disk of SIZE (e.g. 64M) as a virtio-blk
                     PCI device; made under target/swap/ for this run and removed after
  --bochs            boot the BIOS image in Bochs, on a processor with PCIDs (QEMU's
                     TCG has none); needs `apt-get install bochs bochs-term bochsbios vgabios`
  --anchor LOG       (bench) a Linux anchor log (anchor-linux/run.sh's tcg-N.log) whose
                     figures the chart target/bench/scale.svg shows beside ours; several
                     give their medians
  -h, --help         this text";

/// The usage text of `test`.
pub const TEST_USAGE: &str = "\
usage: cargo run -- test [--kernels-only] [--jobs N] [WORD...]    (or make test ARGS=\"...\")

Runs the host tests (`cargo test` of the portable code and of this runner), then
every test kernel in tests/src/bin/, once per `//! run:` line of its source, then
the system checks (the kernel image: its monitor, screen, USB boot, Bochs). Ends
with the failed tests by name and the line `N passed, N failed`.

  WORD            run only the test kernels whose name contains WORD, and the
                  system checks only if a WORD is `system`; several WORDs add up,
                  and a WORD that matches nothing is an error
  --kernels-only  skip the host tests
  --jobs N        boot N test kernels at once (default: one per host processor);
                  with more than one, each run's lines come out together when it ends
  -h, --help      this text";

/// Processors a machine has unless told otherwise.
pub const DEFAULT_SMP: u32 = 2;
/// Most processors the kernel starts (its `acpi::MAX_CPUS`).
pub const MAX_SMP: u32 = 16;

/// Parses the tool's arguments.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let (ours, qemu_args) = match args.iter().position(|a| a == "--") {
        Some(split) => (&args[..split], args[split + 1..].to_vec()),
        None => (args, Vec::new()),
    };
    let mut words = ours.iter().map(String::as_str).peekable();
    let mode = match words.peek() {
        Some(&"test") => "test",
        Some(&"image") => "image",
        Some(&"run") => "run",
        Some(&"bench") => "bench",
        Some(&"gdb") => "gdb",
        _ => "",
    };
    if !mode.is_empty() {
        words.next();
    }
    if words.peek() == Some(&"usb") {
        words.next();
        return parse_usb(words.collect());
    }
    if mode == "test" {
        return parse_test(words.collect());
    }
    let mut run = Run { qemu_args, ..Run::default() };
    let mut anchors = Vec::new();
    while let Some(word) = words.next() {
        let mut value = |name: &str| {
            words.next().map(str::to_string).ok_or_else(|| format!("{name} needs a value"))
        };
        match word {
            "-h" | "--help" => return Ok(Command::Help(USAGE)),
            "--uefi" => run.uefi = true,
            "--headless" => run.headless = true,
            "--once" => run.once = true,
            "--gdb" => run.gdb = true,
            "--usb" => run.usb = true,
            "--release" => run.release = true,
            "--bochs" => run.bochs = true,
            "--memory" => run.memory = parse_memory(&value(word)?)?,
            "--swap" => run.swap = Some(parse_swap(&value(word)?)?),
            "--accel" => run.accel = value(word)?,
            "--kernel-arg" => run.kernel_args.push(value(word)?),
            "--anchor" if mode == "bench" => anchors.push(value(word)?),
            "--anchor" => return Err("--anchor is an option of bench".into()),
            "--smp" => {
                let count = value(word)?;
                match count.parse::<u32>() {
                    Ok(count @ 1..=MAX_SMP) => run.smp = count,
                    _ => return Err(format!("--smp takes 1 to {MAX_SMP}, not {count:?}")),
                }
            }
            "--pt-cache" => {
                let size = value(word)?;
                match size.parse::<u32>() {
                    Ok(1..=64) => run.kernel_args.push(format!("pt_cache={size}")),
                    _ => return Err(format!("--pt-cache takes 1 to 64, not {size:?}")),
                }
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if run.bochs {
        if let Some(why) = crate::bochs::unsupported(&run) {
            return Err(why.into());
        }
        if mode == "bench" || mode == "gdb" {
            return Err(format!("`{mode}` runs under QEMU only"));
        }
    }
    Ok(match mode {
        "image" => Command::Image(run),
        "bench" => Command::Bench(Bench { run, anchors }),
        "gdb" => Command::Gdb(Run { gdb: true, headless: true, ..run }),
        _ => Command::Run(run),
    })
}

fn parse_usb(words: Vec<&str>) -> Result<Command, String> {
    match words.as_slice() {
        [device] => Ok(Command::Usb(device.to_string(), false)),
        [device, "--uefi"] | ["--uefi", device] => Ok(Command::Usb(device.to_string(), true)),
        _ => Err("usage: usb DEVICE [--uefi]".into()),
    }
}

fn parse_test(words: Vec<&str>) -> Result<Command, String> {
    let mut test = Test { jobs: host_processors(), ..Test::default() };
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        match word {
            "--kernels-only" => test.kernels_only = true,
            "--jobs" => {
                let jobs = words.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0);
                test.jobs = jobs.ok_or("--jobs takes a number of runs, at least 1")?;
            }
            "-h" | "--help" => return Ok(Command::Help(TEST_USAGE)),
            other if other.starts_with('-') => return Err(format!("unknown option {other:?}")),
            filter => test.filters.push(filter.to_string()),
        }
    }
    Ok(Command::Test(test))
}

/// Processors of this machine, as the test runner's default number of jobs.
fn host_processors() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Checks a QEMU memory size: digits followed by an optional K, M or G.
fn parse_memory(size: &str) -> Result<String, String> {
    match memory_kib(size) {
        Some(_) => Ok(size.to_uppercase()),
        None => Err(format!("bad memory size {size:?} (try 16M or 1G)")),
    }
}

/// Checks a swap disk size: a memory size (see [`memory_kib`]) of at least
/// one 4 KiB page and a whole number of them.
fn parse_swap(size: &str) -> Result<String, String> {
    match memory_kib(size) {
        Some(kib) if kib >= 4 && kib % 4 == 0 => Ok(size.to_uppercase()),
        _ => Err(format!("bad swap size {size:?} (a whole number of 4 KiB pages: try 64M)")),
    }
}

/// A memory size in QEMU's syntax (digits, then K, M or G; MiB without one), in
/// KiB.
pub fn memory_kib(size: &str) -> Option<u64> {
    let digits = size.trim_end_matches(['K', 'M', 'G', 'k', 'm', 'g']);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    match &size[digits.len()..] {
        "K" | "k" => Some(value),
        "" | "M" | "m" => value.checked_mul(1 << 10),
        "G" | "g" => value.checked_mul(1 << 20),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn default_is_an_interactive_bios_run() {
        assert_eq!(parse(&[]), Ok(Command::Run(Run::default())));
    }

    #[test]
    fn options_and_qemu_arguments_are_split_at_double_dash() {
        let args = strings(&["--uefi", "--once", "--memory", "16m", "--", "-smp", "2"]);
        let Ok(Command::Run(run)) = parse(&args) else { panic!("not a run") };
        assert!(run.uefi && run.once);
        assert_eq!(run.memory, "16M");
        assert_eq!(run.qemu_args, ["-smp", "2"]);
    }

    #[test]
    fn smp_takes_a_processor_count() {
        let Ok(Command::Run(run)) = parse(&strings(&["--smp", "4"])) else { panic!("not a run") };
        assert_eq!(run.smp, 4);
        assert_eq!(Run::default().smp, 2);
        for bad in ["0", "17", "x"] {
            assert!(parse(&strings(&["--smp", bad])).is_err(), "--smp {bad}");
        }
        assert!(parse(&strings(&["--smp"])).is_err());
    }

    #[test]
    fn pt_cache_becomes_a_kernel_argument() {
        let Ok(Command::Run(run)) = parse(&strings(&["--pt-cache", "1", "--kernel-arg", "chaos"]))
        else {
            panic!("not a run")
        };
        assert_eq!(run.kernel_args, ["pt_cache=1", "chaos"]);
        assert!(parse(&strings(&["--pt-cache", "0"])).is_err());
        assert!(parse(&strings(&["--pt-cache", "65"])).is_err());
        assert!(parse(&strings(&["--pt-cache", "x"])).is_err());
        assert!(parse(&strings(&["--pt-cache"])).is_err());
    }

    #[test]
    fn bochs_runs_take_bios_disk_options_only() {
        let Ok(Command::Run(run)) = parse(&strings(&["--bochs", "--memory", "256M"])) else {
            panic!("not a run")
        };
        assert!(run.bochs);
        assert!(parse(&strings(&["--bochs", "--uefi"])).is_err());
        assert!(parse(&strings(&["--bochs", "--", "-smp", "2"])).is_err());
        assert!(parse(&strings(&["bench", "--bochs"])).is_err());
    }

    #[test]
    fn swap_takes_a_size_of_whole_pages() {
        let Ok(Command::Run(run)) = parse(&strings(&["--swap", "64m"])) else {
            panic!("not a run")
        };
        assert_eq!(run.swap.as_deref(), Some("64M"));
        assert_eq!(Run::default().swap, None);
        assert!(parse(&strings(&["--swap"])).is_err());
        assert!(parse(&strings(&["--swap", "0"])).is_err());
        assert!(parse(&strings(&["--swap", "6K"])).is_err());
        assert!(parse(&strings(&["--swap", "lots"])).is_err());
        assert!(parse(&strings(&["--bochs", "--swap", "64M"])).is_err());
    }

    #[test]
    fn bench_takes_anchor_logs() {
        let args = strings(&["bench", "--anchor", "a.log", "--anchor", "b.log"]);
        let Ok(Command::Bench(bench)) = parse(&args) else { panic!("not a bench") };
        assert_eq!(bench.anchors, ["a.log", "b.log"]);
        assert_eq!(bench.run, Run::default());
        assert!(parse(&strings(&["bench", "--anchor"])).is_err());
        assert!(parse(&strings(&["--anchor", "a.log"])).is_err());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse(&strings(&["--memory", "lots"])).is_err());
        assert!(parse(&strings(&["--memory"])).is_err());
        assert!(parse(&strings(&["--frobnicate"])).is_err());
    }

    #[test]
    fn test_mode_takes_every_filter_word() {
        let args = strings(&["test", "--kernels-only", "page", "system"]);
        let filters = strings(&["page", "system"]);
        let expected = Test { filters, kernels_only: true, jobs: host_processors() };
        assert_eq!(parse(&args), Ok(Command::Test(expected)));
    }

    #[test]
    fn test_mode_takes_a_number_of_jobs() {
        let Ok(Command::Test(test)) = parse(&strings(&["test", "--jobs", "3", "page"])) else {
            panic!("not a test run")
        };
        assert_eq!((test.jobs, test.filters), (3, strings(&["page"])));
        assert!(parse(&strings(&["test", "--jobs"])).is_err());
        assert!(parse(&strings(&["test", "--jobs", "0"])).is_err());
        assert!(parse(&strings(&["test", "--jobs", "many"])).is_err());
    }

    #[test]
    fn test_help_is_help() {
        assert_eq!(parse(&strings(&["test", "--help"])), Ok(Command::Help(TEST_USAGE)));
        assert_eq!(parse(&strings(&["test", "page", "-h"])), Ok(Command::Help(TEST_USAGE)));
        assert_eq!(parse(&strings(&["--help"])), Ok(Command::Help(USAGE)));
        assert!(parse(&strings(&["test", "--frobnicate"])).is_err());
    }
}
