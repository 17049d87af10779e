//! What the VM's own structures cost: the page store, the chunk lists, the
//! regions, counted from the structures themselves (allocation sizes, list
//! capacities), for the monitor's `mem`. The benchmarks measure the same
//! thing from the kernel heap's counts (`kernel/src/bench/metadata.rs`).
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::mem::size_of;

use super::mmu::{Mmu, VirtAddr};
use super::object::anonymous::CHUNK_BYTES;
use super::page::VM_PAGE_BYTES;
use super::space::{Backing, Region};
use super::system::Vm;

/// Bytes one region takes in its space's tree: the entry, and a share of a
/// node's links and spare room (a B-tree node holds up to 11 entries and is
/// at least half full; counted as 1.5 entries).
pub const REGION_BYTES: usize = size_of::<(VirtAddr, Region)>() * 3 / 2;

/// The VM's metadata, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmMetadata {
    /// Private pages, counted once per chunk that names them (a page of a
    /// chunk copied since fork counts in both until it is copied too).
    pub private_pages: u64,
    /// Private pages whose contents are in swap, counted the same way.
    pub swapped_pages: u64,
    /// Distinct chunks.
    pub chunks: u64,
    /// Chunks named by more than one object (shared since a fork).
    pub shared_chunks: u64,
    /// Bytes of chunks.
    pub chunk_bytes: u64,
    /// Bytes of chunk lists, and of the spare chunks regions keep.
    pub list_bytes: u64,
    /// Regions in every space.
    pub regions: u64,
    /// Bytes of regions (see [`REGION_BYTES`]).
    pub region_bytes: u64,
}

impl VmMetadata {
    /// Bytes of page store and regions per private page, plus its page record.
    /// Page tables are apart (the MMU's).
    pub fn bytes_per_private_page(&self) -> f64 {
        let store = (self.chunk_bytes + self.list_bytes + self.region_bytes) as f64;
        store / self.private_pages.max(1) as f64 + VM_PAGE_BYTES as f64
    }
}

impl<M: Mmu> Vm<'_, M> {
    /// Counts the VM's metadata: O(regions + chunks) and a sort of the chunks.
    pub fn metadata(&self) -> VmMetadata {
        let mut counted = VmMetadata::default();
        let mut chunks: Vec<(usize, usize, usize, usize)> = Vec::new();
        for space in self.spaces() {
            for region in space.regions() {
                counted.regions += 1;
                if let Backing::Anonymous(object) = region.backing() {
                    counted.list_bytes += object.list_bytes() as u64;
                    if chunks.try_reserve(object.chunk_count()).is_err() {
                        continue;
                    }
                    chunks.extend(object.chunk_identities());
                }
            }
        }
        chunks.sort_unstable();
        chunks.dedup_by_key(|(identity, _, _, _)| *identity);
        for (_, holders, resident, swapped) in chunks {
            counted.chunks += 1;
            counted.shared_chunks += u64::from(holders > 1);
            counted.private_pages += resident as u64;
            counted.swapped_pages += swapped as u64;
        }
        counted.chunk_bytes = counted.chunks * CHUNK_BYTES as u64;
        counted.region_bytes = counted.regions * REGION_BYTES as u64;
        counted
    }
}
