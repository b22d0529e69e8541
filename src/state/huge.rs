//! An allocator for the few very large, randomly probed blocks of keyed state
//! (the hash index of a state with millions of keys): it asks Linux to back them
//! with transparent huge pages (`madvise(MADV_HUGEPAGE)`), so that a probe costs a
//! cache miss and not also a TLB miss. Everything else is the global allocator's.

use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Global, Layout};

/// Blocks from this size up are advised to use huge pages.
const HUGE_FROM: usize = 8 << 20;
const HUGE_PAGE: usize = 2 << 20;

#[derive(Debug, Clone, Copy, Default)]
pub struct HugePages;

// SAFETY: every block comes from and returns to `Global` with the same layout;
// `madvise` only advises the kernel on how to back pages of a block we own, and
// never changes its contents or its validity.
unsafe impl Allocator for HugePages {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let block = Global.allocate(layout)?;
        if layout.size() >= HUGE_FROM {
            advise_huge(block.as_ptr() as *mut u8 as usize, block.len());
        }
        Ok(block)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller passes a block this allocator gave, i.e. Global's.
        unsafe { Global.deallocate(ptr, layout) }
    }
}

#[cfg(target_os = "linux")]
fn advise_huge(start: usize, len: usize) {
    // Only whole huge pages inside the block.
    let first = (start + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
    let end = (start + len) & !(HUGE_PAGE - 1);
    if end > first {
        // SAFETY: [first, end) lies inside a live block we own; MADV_HUGEPAGE
        // does not touch its contents. A failure (THP disabled) only means
        // normal pages, so the result is ignored.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_start: usize, _len: usize) {}
