//! Guest memory: (feature `arena`, on by default) the guest's global allocator, which also
//! holds the buffer a call's params are pulled into (ABI v2, `fnhost.params`).
//!
//! It is installed only on wasm32 (natively the native allocator serves unit tests). Memory is never handed back to the host: each call runs in a fresh
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
//! else is left until the instance is dropped. When the block is used up, allocations go to
//! [`Pages`]: the same bump allocation over pages from `memory.grow`, so a guest that needs more
//! memory gets it, without the 6.4 KB of Rust's default allocator (dlmalloc).
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
    /// An arena of `N` bytes, all free, that hands allocations to `fallback` once they no longer
    /// fit. A `const fn`, so it can be a `static` `#[global_allocator]`.
    ///
    /// ```
    /// use std::alloc::{GlobalAlloc, Layout, System};
    ///
    /// use fnhost_guest::Arena;
    ///
    /// let arena = Arena::<1024, System>::new(System);
    /// let layout = Layout::from_size_align(100, 8).unwrap();
    /// let block = unsafe { arena.alloc(layout) };
    /// assert!(!block.is_null());
    /// assert!(arena.remaining() <= 1024 - 100);
    /// // The newest block is given back in place.
    /// unsafe { arena.dealloc(block, layout) };
    /// assert_eq!(arena.remaining(), 1024);
    /// ```
    ///
    /// A guest without the default `arena` feature installs its own, e.g. a larger one:
    ///
    /// ```ignore
    /// #[global_allocator]
    /// static ALLOC: fnhost_guest::Arena<{ 1 << 20 }, fnhost_guest::Pages> =
    ///     fnhost_guest::Arena::new(fnhost_guest::Pages::new());
    /// ```
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

/// Whole wasm pages from `grow`, handed out by bumping a cursor: the fallback of the arena
/// the SDK installs.
///
/// Like [`Arena`] it frees and grows the newest allocation in place and leaves anything else
/// until the instance is dropped. That is what one call needs, in about 300 bytes of code;
/// Rust's default allocator (dlmalloc) was 6.4 KB of a small guest (docs/GUESTS.md, *Size*).
/// What it gives up: memory freed out of order past the arena is not reused, so a guest that
/// keeps allocating and dropping large buffers in a loop should turn the `arena` feature off
/// (its default allocator reuses them) or install `Arena<N, std::alloc::System>`.
pub struct Pages {
    /// The next free byte of the current run of pages.
    next: Cell<usize>,
    /// The end of the current run of pages.
    end: Cell<usize>,
}

/// The size of a wasm page.
const PAGE: usize = 64 << 10;

// SAFETY: as for `Arena`: one thread only.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for Pages {}

impl Pages {
    /// No pages yet. All zeros, so an `Arena` with this fallback stays in `.bss` (a fallback
    /// holding a function pointer moved the whole 256 KiB block into the module's data).
    pub const fn new() -> Self {
        Self {
            next: Cell::new(0),
            end: Cell::new(0),
        }
    }

    /// `memory.grow`: `pages` more pages, and the memory's old size in pages (where the new
    /// pages start), or `usize::MAX` when refused.
    #[cfg(target_arch = "wasm32")]
    fn grow(pages: usize) -> usize {
        core::arch::wasm32::memory_grow(0, pages)
    }

    /// Natively (unit tests) pages come from the system allocator, page-aligned, never freed.
    #[cfg(not(target_arch = "wasm32"))]
    fn grow(pages: usize) -> usize {
        let Some(layout) = pages
            .checked_mul(PAGE)
            .and_then(|bytes| Layout::from_size_align(bytes, PAGE).ok())
        else {
            return usize::MAX;
        };
        // SAFETY: `pages` is at least 1, so the layout has a non-zero size.
        let block = unsafe { std::alloc::System.alloc(layout) };
        if block.is_null() {
            usize::MAX
        } else {
            block as usize / PAGE
        }
    }
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks are carved from pages that `grow` handed over and nothing else uses; the
// cursor only moves back over the newest block.
unsafe impl GlobalAlloc for Pages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let fits = |next: usize| {
            let start = next.checked_next_multiple_of(layout.align())?;
            Some((start, start.checked_add(layout.size())?))
        };
        let (start, end) = match fits(self.next.get()) {
            Some((start, end)) if self.next.get() != 0 && end <= self.end.get() => (start, end),
            _ => {
                // Grow by enough pages for the block, however the new pages line up.
                let Some(bytes) = layout.size().checked_add(layout.align()) else {
                    return std::ptr::null_mut();
                };
                let pages = bytes.div_ceil(PAGE);
                let old = Self::grow(pages);
                if old == usize::MAX {
                    return std::ptr::null_mut();
                }
                let base = old * PAGE;
                if base != self.end.get() || self.next.get() == 0 {
                    // Not contiguous with the current run (or the first run): start afresh.
                    self.next.set(base);
                }
                self.end.set(base + pages * PAGE);
                match fits(self.next.get()) {
                    Some((start, end)) if end <= self.end.get() => (start, end),
                    _ => return std::ptr::null_mut(),
                }
            }
        };
        self.next.set(end);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ptr as usize + layout.size() == self.next.get() {
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        if start + layout.size() == self.next.get() && start + new_size <= self.end.get() {
            self.next.set(start + new_size);
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
            // SAFETY: both blocks are valid for `layout.size()` bytes and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
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
static ALLOCATOR: Arena<ARENA_BYTES, Pages> = Arena::new(Pages::new());

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
    fn pages_bump_grow_and_refuse() {
        let pages = Pages::new();
        unsafe {
            let a = pages.alloc(layout(10, 1));
            assert!(!a.is_null());
            let b = pages.alloc(layout(8, 8));
            assert_eq!(b as usize % 8, 0);
            assert!(b as usize >= a as usize + 10);
            // The newest block grows in place, then pops.
            let grown = pages.realloc(b, layout(8, 8), 1000);
            assert_eq!(grown, b);
            pages.dealloc(grown, layout(1000, 8));
            assert_eq!(
                pages.alloc(layout(8, 8)),
                b,
                "the popped bytes are used again"
            );
            // An older block moves, with its bytes.
            a.copy_from_nonoverlapping(b"0123456789".as_ptr(), 10);
            let moved = pages.realloc(a, layout(10, 1), 20);
            assert_ne!(moved, a);
            assert_eq!(std::slice::from_raw_parts(moved, 10), b"0123456789");
            // Past the run: new pages (natively never adjacent, so the block moves).
            let big = pages.realloc(moved, layout(20, 1), 3 * PAGE);
            assert!(!big.is_null());
            assert_eq!(std::slice::from_raw_parts(big, 10), b"0123456789");
            big.add(3 * PAGE - 1).write(1);
            // More than memory can have: null, the ABI's "cannot allocate".
            assert!(pages.alloc(layout(usize::MAX / 2, 1)).is_null());
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
