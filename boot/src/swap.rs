//! Swap disks for runs with `--swap SIZE`: a fresh raw image per run.
//!
//! The image is a sparse file of the size asked for, under `target/swap/`,
//! with a name no other run uses (this process's id and a counter), so runs
//! side by side never share a disk and every run starts from zeroes. QEMU
//! gets it as a virtio-blk PCI device, which the kernel finds by PCI
//! enumeration and swaps to. The file is removed when the run is over.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::options::{Run, memory_kib};

/// Images made by this process so far: the last part of the next one's name.
static MADE: AtomicU32 = AtomicU32::new(0);

/// A swap disk image that exists as long as this value does.
#[derive(Debug)]
pub struct SwapImage {
    path: PathBuf,
}

impl SwapImage {
    /// The swap disk `run` asks for, made now, or `None` if it asks for none.
    pub fn for_run(run: &Run) -> Result<Option<SwapImage>, String> {
        run.swap
            .as_deref()
            .map(|size| SwapImage::create(&crate::build::target_dir(), size))
            .transpose()
    }

    /// Makes a sparse image of `size` (QEMU's syntax, as `--swap` checked it)
    /// in `target/swap/`.
    pub fn create(target: &Path, size: &str) -> Result<SwapImage, String> {
        let bytes = memory_kib(size).ok_or_else(|| format!("bad swap size {size:?}"))? * 1024;
        let dir = target.join("swap");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let number = MADE.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}-{number}.img", std::process::id()));
        let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // From here on `Drop` removes the file, whatever happens.
        let image = SwapImage { path };
        file.set_len(bytes).map_err(|e| format!("{}: {e}", image.path.display()))?;
        Ok(image)
    }

    /// Where the image is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// QEMU's arguments that attach the image as a virtio-blk PCI disk.
    pub fn qemu_args(&self) -> [String; 4] {
        [
            "-drive".into(),
            format!("if=none,id=swap,format=raw,file={}", self.path().display()),
            "-device".into(),
            "virtio-blk-pci,drive=swap".into(),
        ]
    }
}

impl Drop for SwapImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory of this test's own under the system's temporary one.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("boot-swap-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn an_image_has_its_size_a_name_of_its_own_and_goes_when_dropped() {
        let target = scratch("image");
        let first = SwapImage::create(&target, "16M").unwrap();
        let second = SwapImage::create(&target, "64K").unwrap();
        assert_ne!(first.path(), second.path());
        assert!(first.path().starts_with(target.join("swap")));
        assert_eq!(std::fs::metadata(first.path()).unwrap().len(), 16 << 20);
        assert_eq!(std::fs::metadata(second.path()).unwrap().len(), 64 << 10);
        let args = first.qemu_args();
        assert_eq!(args[1], format!("if=none,id=swap,format=raw,file={}", first.path().display()));
        assert_eq!(args[3], "virtio-blk-pci,drive=swap");
        let path = first.path().to_path_buf();
        drop(first);
        assert!(!path.exists());
        drop(second);
        std::fs::remove_dir_all(target).unwrap();
    }

    #[test]
    fn a_run_without_swap_makes_no_image() {
        assert!(SwapImage::for_run(&Run::default()).unwrap().is_none());
    }
}
