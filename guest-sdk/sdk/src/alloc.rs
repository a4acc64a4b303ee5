//! Guest memory: the `fnhost_alloc` export where the host writes a call's params, and (feature
//! `arena`, on by default) the guest's global allocator.
//!
//! Both exist only on wasm32 (natively there is no host to call them, and the native allocator
//! serves unit tests). Memory is never handed back to the host: each call runs in a fresh
//! instance, which is thrown away afterwards with everything it allocated.
//!
//! ## Why an arena
//!
//! Rust's default wasm allocator takes every byte of its heap from `memory.grow`, so every call
//! grew linear memory at least once. In a pooled instance slot that costs two `mprotect`s
//! per call: the host makes the grown pages accessible, and the next instantiation takes them
//! away again (with a TLB shootdown) — about a third of a small call's time
//! (docs/PERFORMANCE.md). The [`Arena`] serves allocations from a zeroed static block instead,
//! which is part of the module's initial memory (`.bss`: no bytes in the module, no pages
//! touched until used), so a typical call never grows memory. It is a bump allocator, the right
//! shape for a heap that lives for one call: allocating is an add, freeing or growing the
//! newest allocation happens in place (a `Vec` that grows, a `String` being built), anything
//! else is left until the instance is dropped. When the block is used up, allocations go to the
//! default allocator, so a guest that needs more memory gets it as before.
//!
//! A guest that wants its own `#[global_allocator]` turns the `arena` feature off (and may
//! install an [`Arena`] of another size itself).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::{Cell, UnsafeCell};

/// The size of the arena the SDK installs on wasm32: 256 KiB, four wasm pages.
pub const ARENA_BYTES: usize = 256 << 10;

#[repr(C, align(16))]
struct Block<const N: usize>([u8; N]);

/// A bump allocator over a block of `N` bytes, handing over to `fallback` once the block is
/// used up. Single-threaded: it is `Sync` only where there are no threads (wasm32 without the
/// `atomics` feature), which is what lets the SDK install it as the global allocator there.
pub struct Arena<const N: usize, F> {
    block: UnsafeCell<Block<N>>,
    /// Bytes of the block in use, from its start.
    used: Cell<usize>,
    fallback: F,
}

// SAFETY: without the `atomics` target feature a wasm32 module has exactly one thread, so the
// cells are never touched concurrently.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<const N: usize, F: Sync> Sync for Arena<N, F> {}

impl<const N: usize, F> Arena<N, F> {
    pub const fn new(fallback: F) -> Self {
        Self {
            block: UnsafeCell::new(Block([0; N])),
            used: Cell::new(0),
            fallback,
        }
    }

    fn base(&self) -> usize {
        self.block.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= self.base() && p < self.base() + N
    }

    /// Bytes still free at the end of the block (alignment padding aside).
    pub fn remaining(&self) -> usize {
        N - self.used.get()
    }

    /// A block of `layout` from the arena, or `None` when it does not fit.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let base = self.base();
        let start = (base + self.used.get()).checked_next_multiple_of(layout.align())?;
        let end = start.checked_add(layout.size())?;
        if end > base + N {
            return None;
        }
        self.used.set(end - base);
        // Derived from the block's pointer, so it keeps the block's provenance.
        Some(self.block.get().cast::<u8>().wrapping_add(start - base))
    }

    /// Whether `ptr..ptr + size` is the newest allocation (it ends where the free space starts).
    fn is_last(&self, ptr: *mut u8, size: usize) -> bool {
        ptr as usize + size == self.base() + self.used.get()
    }
}

// SAFETY: blocks from the arena never overlap (the cursor only moves back over the newest
// allocation when it is freed or resized); everything else is the fallback's, which gets back
// only pointers it handed out.
unsafe impl<const N: usize, F: GlobalAlloc> GlobalAlloc for Arena<N, F> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(p) => p,
            // SAFETY: the caller's contract (non-zero size) is passed on unchanged.
            None => unsafe { self.fallback.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            // SAFETY: not ours, so it came from the fallback with this layout.
            return unsafe { self.fallback.dealloc(ptr, layout) };
        }
        if self.is_last(ptr, layout.size()) {
            self.used.set(ptr as usize - self.base());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // SAFETY: not ours, so it came from the fallback with this layout.
            return unsafe { self.fallback.realloc(ptr, layout, new_size) };
        }
        let offset = ptr as usize - self.base();
        if self.is_last(ptr, layout.size()) && offset + new_size <= N {
            self.used.set(offset + new_size);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size` with the old alignment is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_size > layout.size() >= 0`, so the layout has a non-zero size.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for `layout.size()` bytes and do not overlap (the
            // old one is still allocated while the new one is carved out).
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(all(
    feature = "arena",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: Arena<ARENA_BYTES, std::alloc::System> = Arena::new(std::alloc::System);

#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn fnhost_alloc(len: i32) -> i32 {
    use std::alloc::alloc;

    let Ok(len) = usize::try_from(len) else {
        return 0;
    };
    if len == 0 {
        // A valid, non-null address for zero bytes.
        return core::ptr::NonNull::<u8>::dangling().as_ptr() as usize as i32;
    }
    let Ok(layout) = Layout::from_size_align(len, 1) else {
        return 0;
    };
    // SAFETY: the layout has a non-zero size. A failed allocation (memory.grow refused) returns
    // null, which is the 0 the ABI asks for; pointers fit in i32 on wasm32.
    unsafe { alloc(layout) as usize as i32 }
}

#[cfg(test)]
mod tests {
    use std::alloc::System;

    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn bumps_aligned_blocks_and_pops_the_newest() {
        let arena = Arena::<1024, System>::new(System);
        unsafe {
            let a = arena.alloc(layout(3, 1));
            let b = arena.alloc(layout(8, 8));
            assert!(arena.owns(a) && arena.owns(b));
            assert_eq!(b as usize % 8, 0);
            assert!(b as usize >= a as usize + 3);
            let used = arena.remaining();
            // Freeing the newest gives its bytes back; freeing an older one does not.
            arena.dealloc(b, layout(8, 8));
            assert!(arena.remaining() > used);
            let before = arena.remaining();
            let c = arena.alloc(layout(4, 4));
            arena.dealloc(a, layout(3, 1));
            assert_eq!(c, b, "the freed bytes are used again");
            assert_eq!(arena.remaining(), before - 4);
        }
    }

    #[test]
    fn grows_the_newest_block_in_place_and_copies_the_others() {
        let arena = Arena::<1024, System>::new(System);
        unsafe {
            let a = arena.alloc(layout(4, 1));
            a.copy_from_nonoverlapping(b"abcd".as_ptr(), 4);
            let grown = arena.realloc(a, layout(4, 1), 100);
            assert_eq!(grown, a, "the newest block grows where it is");
            let b = arena.alloc(layout(4, 1));
            let moved = arena.realloc(a, layout(100, 1), 200);
            assert_ne!(moved, a, "an older block moves");
            assert!(moved as usize > b as usize);
            assert_eq!(std::slice::from_raw_parts(moved, 4), b"abcd");
            // Shrinking never moves.
            assert_eq!(arena.realloc(moved, layout(200, 1), 10), moved);
        }
    }

    #[test]
    fn falls_back_when_full_and_frees_to_the_right_owner() {
        let arena = Arena::<64, System>::new(System);
        unsafe {
            let big = arena.alloc(layout(100, 1));
            assert!(!big.is_null() && !arena.owns(big));
            let small = arena.alloc(layout(60, 1));
            assert!(arena.owns(small));
            // Growing past the block's end moves the newest block to the fallback.
            small.write_bytes(7, 60);
            let moved = arena.realloc(small, layout(60, 1), 80);
            assert!(!arena.owns(moved));
            assert!(
                std::slice::from_raw_parts(moved, 60)
                    .iter()
                    .all(|&b| b == 7)
            );
            assert_eq!(arena.remaining(), 64, "the moved block's bytes came back");
            arena.dealloc(moved, layout(80, 1));
            arena.dealloc(big, layout(100, 1));
        }
    }
}
