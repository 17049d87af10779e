//! Writing a kernel image to a USB stick, refusing anything that might not be one.
//!
//! `cargo run -- usb /dev/sdX [--uefi]` (or `make usb DEVICE=/dev/sdX [UEFI=1]`)
//! builds the images and copies one to the device, after checks that make it hard
//! to destroy the wrong disk: the device must be a whole-disk block device, be
//! removable or on a USB bus, have no mounted partition, not hold the running
//! system, and not be in use by device-mapper or RAID. Its model and size are
//! shown and the user must type `yes`.

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::build;
use crate::options::Run;

/// What the system says about a block device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceFacts {
    /// Kernel name (`sdb`).
    pub name: String,
    /// A whole disk (listed in /sys/block), not a partition.
    pub whole_disk: bool,
    /// The kernel flags the medium as removable.
    pub removable: bool,
    /// The device hangs off a USB controller.
    pub on_usb: bool,
    /// Mount points of the disk or its partitions (swap included).
    pub mounts: Vec<String>,
    /// Other block devices built on it (device-mapper, RAID).
    pub holders: Vec<String>,
    /// Size in bytes.
    pub size: u64,
    /// Vendor and model, as the device reports them.
    pub model: String,
}

/// Why writing to the device must be refused, if it must.
pub fn refusal(facts: &DeviceFacts) -> Option<String> {
    let name = &facts.name;
    if !facts.whole_disk {
        return Some(format!(
            "{name} is not a whole-disk block device (give the disk, not a partition)"
        ));
    }
    if !facts.removable && !facts.on_usb {
        return Some(format!(
            "{name} is neither removable nor on USB: it looks like an internal disk"
        ));
    }
    if facts.mounts.iter().any(|mount| mount == "/") {
        return Some(format!("{name} holds the running system"));
    }
    if !facts.mounts.is_empty() {
        return Some(format!(
            "{name} is mounted at {} (unmount it first)",
            facts.mounts.join(", ")
        ));
    }
    if !facts.holders.is_empty() {
        return Some(format!("{name} is in use by {}", facts.holders.join(", ")));
    }
    if facts.size == 0 {
        return Some(format!("{name} has no medium"));
    }
    None
}

/// Reads the facts about `/dev/NAME` from sysfs and procfs.
pub fn inspect(device: &Path) -> Result<DeviceFacts, String> {
    let name = device
        .strip_prefix("/dev")
        .ok()
        .and_then(|rest| rest.to_str())
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
        .ok_or_else(|| format!("{} is not a /dev/NAME device path", device.display()))?
        .to_string();
    let sys = PathBuf::from("/sys/block").join(&name);
    let read =
        |file: &str| fs::read_to_string(sys.join(file)).unwrap_or_default().trim().to_string();
    let whole_disk = sys.exists();
    let on_usb = fs::canonicalize(&sys).is_ok_and(|path| path.to_string_lossy().contains("/usb"));
    let holders = fs::read_dir(sys.join("holders"))
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let model = format!("{} {}", read("device/vendor"), read("device/model")).trim().to_string();
    Ok(DeviceFacts {
        whole_disk,
        removable: read("removable") == "1",
        on_usb,
        mounts: mounts_of(&name),
        holders,
        size: read("size").parse::<u64>().unwrap_or(0) * 512,
        model,
        name,
    })
}

/// Mount points (and swap) on `/dev/NAME` or its partitions.
fn mounts_of(name: &str) -> Vec<String> {
    let on_disk = |source: &str| {
        source.strip_prefix("/dev/").is_some_and(|dev| {
            dev.strip_prefix(name).is_some_and(|rest| {
                rest.trim_start_matches('p').bytes().all(|b| b.is_ascii_digit())
            })
        })
    };
    let mut found = Vec::new();
    for line in fs::read_to_string("/proc/mounts").unwrap_or_default().lines() {
        let mut fields = line.split_whitespace();
        if let (Some(source), Some(target)) = (fields.next(), fields.next())
            && on_disk(source)
        {
            found.push(target.to_string());
        }
    }
    for line in fs::read_to_string("/proc/swaps").unwrap_or_default().lines().skip(1) {
        if line.split_whitespace().next().is_some_and(on_disk) {
            found.push("swap".to_string());
        }
    }
    found
}

/// Builds the images and writes one to `device` after the checks and a `yes`.
pub fn flash(device: &Path, uefi: bool) -> Result<bool, String> {
    let facts = inspect(device)?;
    if let Some(reason) = refusal(&facts) {
        return Err(format!("refusing to write {}: {reason}", device.display()));
    }
    let images = build::kernel_images(&Run::default())?;
    let image = if uefi { images.uefi } else { images.bios };
    let gib = facts.size as f64 / (1u64 << 30) as f64;
    println!("device: {} — {} ({gib:.1} GiB)", device.display(), facts.model);
    println!("image:  {} ({})", image.display(), if uefi { "UEFI" } else { "BIOS" });
    print!("Everything on {} will be lost. Type yes to write: ", device.display());
    std::io::stdout().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| format!("reading the answer: {e}"))?;
    if answer.trim() != "yes" {
        println!("nothing written");
        return Ok(false);
    }
    let data = fs::read(&image).map_err(|e| format!("{}: {e}", image.display()))?;
    let mut target = fs::OpenOptions::new()
        .write(true)
        .open(device)
        .map_err(|e| format!("{}: {e}", device.display()))?;
    target
        .write_all(&data)
        .and_then(|()| target.sync_all())
        .map_err(|e| format!("writing {}: {e}", device.display()))?;
    println!("wrote {} MiB; you can remove the stick", data.len() >> 20);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stick() -> DeviceFacts {
        DeviceFacts {
            name: "sdb".into(),
            whole_disk: true,
            removable: true,
            on_usb: true,
            size: 8 << 30,
            model: "Acme Stick".into(),
            ..DeviceFacts::default()
        }
    }

    #[test]
    fn an_unmounted_usb_stick_is_accepted() {
        assert_eq!(refusal(&stick()), None);
        assert_eq!(
            refusal(&DeviceFacts { removable: false, ..stick() }),
            None,
            "USB disk not flagged removable"
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let cases = [
            DeviceFacts { whole_disk: false, ..stick() },
            DeviceFacts { removable: false, on_usb: false, ..stick() },
            DeviceFacts { mounts: vec!["/".into()], ..stick() },
            DeviceFacts { mounts: vec!["/media/stick".into()], ..stick() },
            DeviceFacts { mounts: vec!["swap".into()], ..stick() },
            DeviceFacts { holders: vec!["dm-0".into()], ..stick() },
            DeviceFacts { size: 0, ..stick() },
        ];
        for facts in cases {
            assert!(refusal(&facts).is_some(), "accepted {facts:?}");
        }
    }

    #[test]
    fn paths_that_are_not_devices_are_refused() {
        assert!(inspect(Path::new("/tmp/disk.img")).is_err());
        assert!(inspect(Path::new("/dev/")).is_err());
        assert!(inspect(Path::new("/dev/disk/by-id/x")).is_err());
    }

    #[test]
    fn a_nonexistent_device_is_not_a_whole_disk() {
        let facts = inspect(Path::new("/dev/no-such-disk")).expect("a /dev path");
        assert!(refusal(&facts).is_some());
    }
}
